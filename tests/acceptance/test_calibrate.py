"""`ci-golden calibrate`: tolerances from repeated runs (real demo runs and golden-format files)."""

from __future__ import annotations

import itertools
import json
import typing as t
from pathlib import Path

import pytest
import yaml

from ci_golden.goldens.model import load_golden
from ci_golden.lifecycle.calibrate import round_up
from ci_golden.project.schema import validator


def write_run(path: Path, metrics: dict[str, dict[int, float | str]]) -> Path:
    doc = {
        name: {
            "start_step": min(values),
            "end_step": max(values),
            "step_interval": 5,
            "values": {str(k): v for k, v in values.items()},
        }
        for name, values in metrics.items()
    }
    path.write_text(json.dumps(doc))
    return path


RUNS = [
    {
        "lm loss": {1: 2.0, 5: 1.0, 10: 0.5},
        "num-zeros": {1: 0.0, 5: 10.0, 10: 20.0},
        "iteration-time": {1: 1.0, 5: 0.10, 10: 0.12},
        "mtp_1 loss": {1: 3.0, 5: 2.0, 10: 1.0},
    },
    {
        "lm loss": {1: 2.0, 5: 1.01, 10: 0.5},
        "num-zeros": {1: 3.0, 5: 10.0, 10: 21.0},
        "iteration-time": {1: 5.0, 5: 0.11, 10: 0.13},
        "mtp_1 loss": {1: 3.0, 5: "nan", 10: 1.1},
    },
    {
        "lm loss": {1: 2.0, 5: 1.0, 10: 0.505},
        "num-zeros": {1: 0.0, 5: 10.0, 10: 20.0},
        "iteration-time": {1: 1.0, 5: 0.10, 10: 0.10},
        "mtp_1 loss": {1: 3.0, 5: 2.0, 10: 1.0},
    },
]


def test_golden_files_give_per_step_statistics_and_a_ready_policy_snippet(
    tmp_path: Path, cli: t.Any
) -> None:
    files = [write_run(tmp_path / f"run{i}.json", run) for i, run in enumerate(RUNS, start=1)]
    result = cli("calibrate", *(f.name for f in files), cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # mtp_1 loss has a step only some runs logged
    assert result.stdout == (
        "# golden files: 3 runs\n"
        "#   run 1: run1.json\n"
        "#   run 2: run2.json\n"
        "#   run 3: run3.json\n"
        "# lm loss (approx): step, mean, std, relative deviation between runs\n"
        "#    1  2  0  0\n"
        "#    5  1.00333333  0.00471404521  0.01\n"
        "#   10  0.501666667  0.0023570226  0.01\n"
        "# lm loss: max relative deviation 0.01 x safety 2 -> rtol 0.02, atol 0\n"
        "# num-zeros (approx): step, mean, std, relative deviation between runs\n"
        "#    1  1  1.41421356  -\n"
        "#    5  10  0  0\n"
        "#   10  20.3333333  0.471404521  0.05\n"
        "# num-zeros: max relative deviation 0.05 x safety 2 -> rtol 0.1, atol 6\n"
        "# iteration-time (median): step, mean, std, relative deviation between runs\n"
        "#    1  2.33333333  1.88561808  -\n"
        "#    5  0.103333333  0.00471404521  -\n"
        "#   10  0.116666667  0.0124721913  -\n"
        "# iteration-time: max relative deviation of the window medians 0.2 x safety 2"
        " -> rtol 0.4, atol 0\n"
        "# mtp_1 loss (approx): step, mean, std, relative deviation between runs\n"
        "#    1  3  0  0\n"
        "#   10  1.03333333  0.0471404521  0.1\n"
        "# mtp_1 loss: max relative deviation 0.1 x safety 2 -> rtol 0.2, atol 0\n"
        '# mtp_1 loss: warning: step 5: finite in some runs, "nan" in others;'
        " no tolerance covers that\n"
        "CI_GOLDEN:\n"
        "  metrics:\n"
        "    lm loss: {kind: approx, rtol: 0.02, atol: 0.0}\n"
        "    num-zeros: {kind: approx, rtol: 0.1, atol: 6.0}\n"
        "    iteration-time: {kind: median, rtol: 0.4, atol: 0.0}\n"
        "    mtp_1 loss: {kind: approx, rtol: 0.2, atol: 0.0}\n"
    )
    snippet = yaml.safe_load(result.stdout)
    assert list(validator("model_config").iter_errors(snippet)) == []


def test_identical_runs_get_the_floor_and_safety_scales(tmp_path: Path, cli: t.Any) -> None:
    same = {"lm loss": {1: 2.0, 5: 1.0}}
    files = [write_run(tmp_path / f"r{i}.json", same) for i in range(2)]
    result = cli("calibrate", *files, "--floor", "1e-4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "# lm loss: max relative deviation 0 x safety 2 -> rtol 0.0001 (the floor), atol 0\n"
        "CI_GOLDEN:\n  metrics:\n    lm loss: {kind: approx, rtol: 0.0001, atol: 0.0}\n"
    )
    files.append(write_run(tmp_path / "r2.json", {"lm loss": {1: 2.0, 5: 1.1}}))
    result = cli("calibrate", *files, "--safety", "3", cwd=tmp_path)
    assert "# lm loss: max relative deviation 0.1 x safety 3 -> rtol 0.3, atol 0\n" in result.stdout


def test_a_single_run_cannot_be_calibrated(tmp_path: Path, cli: t.Any) -> None:
    one = write_run(tmp_path / "r.json", {"lm loss": {1: 2.0}})
    result = cli("calibrate", one.name, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "ci-golden calibrate: error: r.json: golden files: only 1 run; calibrating needs repeats "
        "(CI_GOLDEN.n_repeat or `ci-golden run --n-repeat N`)\n"
    )


def test_a_folder_without_results_is_an_input_error(tmp_path: Path, cli: t.Any) -> None:
    result = cli("calibrate", tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"ci-golden calibrate: error: {tmp_path}: no result.json below this folder"
        " (is it a ci-golden run output?)\n"
    )


@pytest.mark.parametrize(
    ("x", "expected"),
    [(0.0, 0.0), (0.02, 0.02), (0.0201, 0.021), (1.32, 1.4), (5.2e-05, 5.2e-05), (123.4, 130.0)],
)
def test_round_up_keeps_two_significant_digits_and_never_rounds_down(
    x: float, expected: float
) -> None:
    assert round_up(x) == expected


def jsonl_values(path: Path, metric: str, steps: t.Sequence[int]) -> list[float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_step = {r["step"]: r[metric] for r in rows if metric in r}
    return [by_step[s] for s in steps]


def test_repeats_of_the_nondeterministic_demo_are_covered_by_the_recommendation(
    tmp_path: Path, cli: t.Any, repo_root: Path
) -> None:
    out = tmp_path / "out"
    ran = cli(
        "run",
        "demo/nondeterministic",
        "--environment",
        "dev",
        "--platform",
        "cpu",
        "--n-repeat",
        "3",
        "--out",
        out,
    )
    assert ran.returncode == 0, ran.stderr
    result = cli("calibrate", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "# demo/nondeterministic [dev, cpu]: 3 runs",
        f"#   run 1: {out}/golden_values_dev_cpu.json",
        f"#   run 2: {out}/run/2/golden_values_dev_cpu.json",
        f"#   run 3: {out}/run/3/golden_values_dev_cpu.json",
    ]
    assert "# merge into test_cases/demo/nondeterministic/model_config.yaml" in lines
    snippet = yaml.safe_load(result.stdout)
    assert list(validator("model_config").iter_errors(snippet)) == []
    policy = snippet["CI_GOLDEN"]["metrics"]["lm loss"]
    assert policy["kind"] == "approx" and policy["atol"] == 0.0
    assert 0 < policy["rtol"] < 0.05  # the noise is tiny: far tighter than the default

    # independently of ci_golden: every run, taken as the golden, accepts every other run
    first = load_golden(out / "golden_values_dev_cpu.json").metrics["lm loss"]
    steps = [int(s) for s in first.steps]
    runs = [list(first.values)] + [
        jsonl_values(out / "run" / str(k) / "run_1" / "metrics.jsonl", "lm loss", steps)
        for k in (2, 3)
    ]
    assert runs[1] != runs[0] and runs[2] != runs[0]
    worst = 0.0
    for golden, actual in itertools.permutations(runs, 2):
        for g, a in zip(golden, actual, strict=True):
            assert abs(a - g) <= policy["rtol"] * abs(g)
            worst = max(worst, abs(a - g) / abs(g))
    assert policy["rtol"] == max(1e-5, round_up(2 * worst))
