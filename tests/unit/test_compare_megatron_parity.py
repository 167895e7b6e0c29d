"""The default policies give Megatron-LM's verdicts: a differential test against its comparator.

Every current-layout golden of the corpus, with a fixed set of injected scenarios, is judged by
Megatron-LM's own comparator (imported from ../shared/megatron_reference, run in process) and by
ci-golden's comparison. Labels: Megatron-LM passes -> pass; fails only its exact check -> drift;
fails -> fail (ci-golden's ``missing`` is a failure that says why).
"""

from __future__ import annotations

import collections
import json
import math
import re
import typing as t
from pathlib import Path

import pytest
import yaml

from ci_golden.compare.engine import after_step, compare_values
from ci_golden.compare.policy import is_nondeterministic, policies_for
from ci_golden.compare.result import gated_verdict
from ci_golden.goldens.discover import metrics_of
from ci_golden.goldens.model import GoldenValues, MetricSeries, parse_golden
from ci_golden.project.config import load_config

pytest.importorskip("pydantic", reason="Megatron-LM's comparator needs pydantic")
oracle_module = pytest.importorskip("support.megatron_oracle")
scenarios = pytest.importorskip("support.megatron_scenarios")

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "megatron_corpus" / "test_cases"
STANDARD_NAME = re.compile(r"golden_values_(dev|lts)_dgx_(a100|h100|gb200)\.json")
RESUME_TYPES = ("ckpt-resume", "frozen-resume")
FAILS = {"fail", "missing", "error"}


class Pair(t.NamedTuple):
    pipeline: str
    golden_path: str
    scenario: str
    golden: dict[str, t.Any]
    actual: dict[str, t.Any]
    model_config: dict[str, t.Any]


def _pipelines(model_config: dict[str, t.Any]) -> tuple[str, ...]:
    mode = str(model_config.get("MODE") or "pretraining")
    test_type = str(model_config.get("TEST_TYPE"))
    if mode == "pretraining" and test_type != "checkpoint-consistency":
        return ("regular", "resume") if test_type in RESUME_TYPES else ("regular",)
    if mode == "inference" and test_type == "frozen-start":
        return ("inference",)
    return ()


def _pairs() -> t.Iterator[Pair]:
    for path in sorted(CORPUS.rglob("golden_values_*.json")):
        config_path = path.parent / "model_config.yaml"
        if not STANDARD_NAME.fullmatch(path.name) or not config_path.is_file():
            continue
        model_config = yaml.safe_load(config_path.read_text()) or {}
        try:
            golden = json.loads(path.read_text())
        except ValueError:
            continue
        for pipeline in _pipelines(model_config):
            if pipeline == "inference":
                if not scenarios.is_inference_layout(golden):
                    continue
                found = scenarios.inference_scenarios(golden, model_config)
            else:
                if not scenarios.is_pretraining_layout(golden) or not golden:
                    continue
                found = scenarios.pretraining_scenarios(golden, model_config)
            rel = path.relative_to(CORPUS).as_posix()
            for s in found:
                yield Pair(pipeline, rel, s.name, golden, s.actual, s.model_config or model_config)


def _run_values(actual: dict[str, t.Any]) -> GoldenValues:
    """A run's values as collection builds them: a "nan" or a non-finite number is no value."""
    metrics = {
        name: MetricSeries.from_mapping(
            name,
            {
                int(step): (None if isinstance(v, str) or not math.isfinite(v) else v)
                for step, v in block["values"].items()
            },
        )
        for name, block in actual.items()
    }
    return GoldenValues("current", metrics)


CONFIG = load_config(cwd=CORPUS, test_cases=CORPUS)  # built-in defaults


def ci_golden_label(pair: Pair, train_iters: int) -> str:
    policies, gated = policies_for(CONFIG, metrics=metrics_of(pair.model_config))
    nondeterministic = is_nondeterministic(pair.model_config)
    if pair.pipeline == "inference":
        golden = parse_golden(pair.golden, pair.golden_path)
        actual = GoldenValues("inference", raw=pair.actual)
    else:
        golden = parse_golden(pair.golden, pair.golden_path)
        actual = _run_values(pair.actual)
        if pair.pipeline == "resume":  # the first run plays the golden above the resume step
            golden = after_step(_run_values(pair.golden), train_iters // 2)
            actual = after_step(actual, train_iters // 2)
    found = compare_values(
        golden, actual, policies=policies, gated=gated, nondeterministic=nondeterministic
    )
    verdict = gated_verdict(found)
    return "fail" if verdict in FAILS else verdict


def megatron_label(oracle: t.Any, pair: Pair) -> str:
    if pair.pipeline == "regular":
        v = oracle.pretraining(pair.golden, pair.actual, pair.model_config)
    elif pair.pipeline == "resume":
        v = oracle.resume(pair.golden, pair.actual, pair.model_config)
    else:
        v = oracle.inference(pair.golden, pair.actual, pair.model_config)
    return "pass" if v.passed else "drift" if v.drift else "fail"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Megatron-LM corpus not found at {CORPUS}")
def test_default_verdicts_equal_megatron_lm_comparator(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        oracle = oracle_module.MegatronOracle()
    except FileNotFoundError as e:
        pytest.skip(f"Megatron-LM reference not found: {e}")
    tally: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    disagree: list[str] = []
    for pair in _pairs():
        train_iters = oracle_module.ci_train_iters(pair.model_config)
        theirs = megatron_label(oracle, pair)
        ours = ci_golden_label(pair, train_iters)
        key = (pair.pipeline, pair.scenario)
        tally[key]["pairs"] += 1
        tally[key][theirs] += 1
        if ours == theirs:
            tally[key]["agree"] += 1
        elif len(disagree) < 40:
            disagree.append(f"{pair.pipeline} {pair.scenario} {pair.golden_path}: "
                            f"Megatron-LM {theirs}, ci-golden {ours}")  # fmt: skip
    with capsys.disabled():
        print("\npipeline   scenario                           pairs  agree  pass drift  fail")
        for (pipeline, name), c in sorted(tally.items()):
            print(f"{pipeline:<10} {name:<33} {c['pairs']:>6} {c['agree']:>6} {c['pass']:>5} "
                  f"{c['drift']:>5} {c['fail']:>5}")  # fmt: skip
        print(f"total pairs: {sum(c['pairs'] for c in tally.values())}")
    assert sum(c["pairs"] for c in tally.values()) > 10_000
    assert disagree == []
