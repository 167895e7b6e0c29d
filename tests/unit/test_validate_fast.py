"""validate.fast mirrors the shipped schemas: on mutated corpus documents it says valid exactly
when jsonschema does."""

from __future__ import annotations

import copy
import json
import math
import typing as t
from pathlib import Path

import pytest
from conftest import CORPUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_golden.project.yamlio import load_yaml
from ci_golden.validate.fast import golden_ok, model_config_ok, schema_validator

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "test_cases"
STEPS_KEPT = 6  # long step maps add time, not cases: the checks treat every step alike


def _shrink(doc: t.Any) -> t.Any:
    if isinstance(doc, dict):
        items = list(doc.items())
        if all(isinstance(k, str) and k.isdigit() for k, _ in items) and len(items) > STEPS_KEPT:
            items = items[:STEPS_KEPT]
        return {k: _shrink(v) for k, v in items}
    if isinstance(doc, list):
        return [_shrink(v) for v in doc[:STEPS_KEPT]]
    return doc


def _documents(pattern: str, load: t.Callable[[Path], t.Any], limit: int) -> list[t.Any]:
    roots = [r for r in (CORPUS, BUNDLED) if r.is_dir()]
    docs: list[t.Any] = []
    for root in roots:
        for path in sorted(root.rglob(pattern)):
            try:
                data = load(path)
            except Exception:  # unreadable corpus files are other tests' business
                continue
            if isinstance(data, dict) and data:
                docs.append(_shrink(data))
    step = max(1, len(docs) // limit)
    return docs[::step][:limit]


GOLDENS = _documents("golden_values*.json", lambda p: json.loads(p.read_text()), 120)
CONFIGS = _documents("model_config.yaml", load_yaml, 120)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "", "1", "5", "lm loss", "regular", "ckpt-resume", "-1", "1.5"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["1", "5", "values", "x", "start_step"]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)
STRING_KEYS = st.one_of(
    st.sampled_from(
        [
            "values",
            "start_step",
            "end_step",
            "step_interval",
            "value_precision",
            "1",
            "10",
            "0",
            "01",
            "-5",
            "lm loss",
            "CI_GOLDEN",
            "MODEL_ARGS",
            "ENV_VARS",
            "TEST_TYPE",
            "METRICS",
            "N_REPEAT",
            "--train-iters",
            "MODEL_ARGS_1",
            "throughput",
            "generated_tokens",
        ]
    ),
    st.text(max_size=6),
)
YAML_KEYS = st.one_of(STRING_KEYS, st.none(), st.booleans(), st.integers(min_value=-3, max_value=3))


def _containers(doc: t.Any) -> list[t.Any]:
    out = [doc]
    for value in doc.values() if isinstance(doc, dict) else doc if isinstance(doc, list) else ():
        if isinstance(value, (dict, list)):
            out += _containers(value)
    return out


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> t.Any:
    docs, new_keys = (GOLDENS, STRING_KEYS) if kind == "golden" else (CONFIGS, YAML_KEYS)
    doc = copy.deepcopy(docs[draw(st.integers(min_value=0, max_value=len(docs) - 1))])
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = draw(st.sampled_from(_containers(doc)))
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if isinstance(target, dict):
            keys = list(target)
            if action == "delete" and keys:
                del target[draw(st.sampled_from(keys))]
            elif action == "set" and keys:
                target[draw(st.sampled_from(keys))] = draw(VALUES)
            else:
                target[draw(new_keys)] = draw(VALUES)
        elif isinstance(target, list):
            if action == "delete" and target:
                target.pop(draw(st.integers(min_value=0, max_value=len(target) - 1)))
            elif action == "set" and target:
                target[draw(st.integers(min_value=0, max_value=len(target) - 1))] = draw(VALUES)
            else:
                target.append(draw(VALUES))
    return doc


def _schema_valid(name: str, doc: t.Any) -> bool:
    if isinstance(doc, dict) and any(type(k) is not str for k in doc):
        return False  # JSON has only string keys; YAML's `~:`, `on:` and `1:` fail the schema
    return schema_validator(name).is_valid(doc)


def _finite(doc: t.Any) -> bool:
    if isinstance(doc, float):
        return math.isfinite(doc)
    if isinstance(doc, dict):
        return all(_finite(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_finite(v) for v in doc)
    return True


EXAMPLES = settings(
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@pytest.mark.skipif(not GOLDENS, reason="no golden files to mutate")
@EXAMPLES
@given(doc=mutated("golden"))  # JSON keys are strings
def test_golden_mirror_agrees_with_jsonschema(doc: t.Any) -> None:
    if not _finite(doc):  # strict JSON reading refuses NaN and Infinity before any schema
        return
    assert golden_ok(doc) == _schema_valid("golden_values", doc), json.dumps(doc)[:2000]


@pytest.mark.skipif(not CONFIGS, reason="no model configs to mutate")
@EXAMPLES
@given(doc=mutated("config"))  # YAML keys may be None, bools, numbers
def test_model_config_mirror_agrees_with_jsonschema(doc: t.Any) -> None:
    assert model_config_ok(doc) == _schema_valid("model_config", doc), repr(doc)[:2000]


@pytest.mark.parametrize("key", [None, True, 1])
def test_a_non_string_top_level_key_is_invalid_not_a_crash(key: t.Any) -> None:
    doc = {key: 1, "TEST_TYPE": "regular"}
    assert model_config_ok(doc) is False
    assert golden_ok({key: {"values": {"1": 1.0}}}) is False
