"""The bundled CPU cases, run for real: exact goldens, a bit-for-bit checkpoint resume,
and a nondeterministic case that passes on tolerance."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from ci_golden.goldens.model import load_golden
from ci_golden.run.collect import read_jsonl, read_megatron_log

DEMO = Path(__file__).resolve().parents[2] / "test_cases" / "demo"
EXACT = ("lm loss", "num-zeros", "grad-norm", "learning-rate")


def run_case(
    cli: t.Callable[..., t.Any], case: str, out: Path, env: str = "dev"
) -> dict[str, t.Any]:
    res = cli("run", f"demo/{case}", "--environment", env, "--platform", "cpu", "--out", out)
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith(f"ci-golden run: demo/{case} [{env}, cpu]: pass\n")
    result: dict[str, t.Any] = json.loads((out / "result.json").read_text())
    return result


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, t.Any]]:
    from conftest import run_cli

    out = tmp_path_factory.mktemp("resume")
    return out, run_case(run_cli, "ckpt_resume", out)


def test_ckpt_resume_equals_the_continuous_run_bit_for_bit(
    resumed: tuple[Path, dict[str, t.Any]],
) -> None:
    out, result = resumed
    continuous = read_jsonl(out / "run" / "phase1" / "metrics.jsonl").series
    second = read_jsonl(out / "run" / "phase2" / "metrics.jsonl").series
    assert result["run"]["resume_step"] == 25
    assert sorted(second["lm loss"]) == list(range(26, 51))
    for name in EXACT:
        assert second[name] == {step: continuous[name][step] for step in range(26, 51)}, name
    log = (out / "run" / "phase2" / "stdout.log").read_text()
    assert (
        f"successfully loaded checkpoint from {out.resolve() / 'run' / 'checkpoints'}"
        " at iteration 25\n" in log
    )
    assert result["resume"]["verdict"] == "pass"
    assert result["resume"]["resume_step"] == 25
    assert result["resume"]["metrics"]["lm loss"]["n_compared"] == 5  # steps 30, 35, 40, 45, 50
    assert not (out / "run" / "checkpoints").exists()  # deleted after the job


def test_ckpt_resume_reproduces_its_golden_exactly(resumed: tuple[Path, dict[str, t.Any]]) -> None:
    out, result = resumed
    assert result["golden"] == "test_cases/demo/ckpt_resume/golden_values_dev_cpu.json"
    actual = load_golden(out / "golden_values_dev_cpu.json")
    golden = load_golden(DEMO / "ckpt_resume" / "golden_values_dev_cpu.json")
    for name in ("lm loss", "num-zeros"):
        assert actual.metrics[name].same_as(golden.metrics[name]), name
    assert result["metrics"]["lm loss"]["verdict"] == "pass"
    assert result["metrics"]["lm loss"]["max_abs_diff"] == 0.0


def test_log_lines_and_jsonl_agree(resumed: tuple[Path, dict[str, t.Any]]) -> None:
    out, _ = resumed
    jsonl = read_jsonl(out / "run" / "phase1" / "metrics.jsonl").series
    log = read_megatron_log(out / "run" / "phase1" / "stdout.log")
    assert log.train_iters == 50
    assert log.series["num-zeros"] == jsonl["num-zeros"]
    for step, value in jsonl["lm loss"].items():
        assert log.series["lm loss"][step] == float(f"{value:.6E}")


def test_regular_case_on_lts(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    result = run_case(cli, "regular", tmp_path, env="lts")
    assert result["golden"] == "test_cases/demo/regular/golden_values_lts_cpu.json"
    assert result["nondeterministic"] is False
    actual = json.loads((tmp_path / "golden_values_lts_cpu.json").read_text())
    golden = json.loads((DEMO / "regular" / "golden_values_lts_cpu.json").read_text())
    assert actual["lm loss"] == golden["lm loss"]
    assert actual["num-zeros"] == golden["num-zeros"]
    assert list(actual) == [
        "lm loss",
        "iteration-time",
        "mem-allocated-bytes",
        "mem-max-allocated-bytes",
        "num-zeros",
    ]


def test_nondeterministic_case_passes_on_tolerance(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    first = run_case(cli, "nondeterministic", tmp_path / "a")
    run_case(cli, "nondeterministic", tmp_path / "b")
    assert first["nondeterministic"] is True
    a = read_jsonl(tmp_path / "a" / "run" / "phase1" / "metrics.jsonl").series["lm loss"]
    b = read_jsonl(tmp_path / "b" / "run" / "phase1" / "metrics.jsonl").series["lm loss"]
    assert a != b  # the noise is real
    assert max(abs(a[s] - b[s]) / abs(b[s]) for s in a) < 0.05
    loss = first["metrics"]["lm loss"]
    assert (loss["verdict"], loss["n_failed"]) == ("pass", 0)


def test_every_demo_case_has_goldens_for_dev_and_lts() -> None:
    for case in ("regular", "ckpt_resume", "nondeterministic"):
        names = sorted(p.name for p in (DEMO / case).glob("golden_values*.json"))
        assert names == ["golden_values_dev_cpu.json", "golden_values_lts_cpu.json"], case
