"""`ci-golden run` stopping a doomed run: the demo trainer against a golden that goes wrong
from step 300, stopped there with the verdict and first failing step of the whole run, every
process of its group gone; and never stopped when fail-fast is off."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

CliResult = t.Any  # tests/conftest.py's CliResult: returncode, stdout, stderr

TRAINER = Path(__file__).resolve().parents[2] / "test_cases" / "demo" / "trainer.py"
ITERS = 5000  # long enough that the stop comes well before the end, even on a busy machine
RESUMED_REGRESSION = ITERS // 2 + 200
REGRESSION_STEP = 300
CONFIG = """\
test_cases: cases
platforms:
  cpu: {gpu: null, gpus_per_node: 0, opt_in: true}
environments:
  dev: {platforms: [cpu]}
"""
# SIGTERM ignored by a launcher and its trainer: only the SIGKILL after the grace period ends them
STUBBORN = """\
import signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.exit(subprocess.call([sys.executable, *sys.argv[1:]]))
"""


def model_config(*, command: str = f"[python, {TRAINER}]", extra: str = "") -> str:
    return textwrap.dedent(f"""\
        ENV_VARS:
          OMP_NUM_THREADS: 1
        MODEL_ARGS:
          --train-iters: {ITERS}
          --seed: 1234
          --log-interval: 1
          --log-num-zeros-in-grad: true
          --log-jsonl: ${{OUTPUT_PATH}}/metrics.jsonl
        METRICS: [lm loss, num-zeros]
        CI_GOLDEN:
          platforms: [cpu]
          command: {command}
        """) + textwrap.dedent(extra)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> dict[str, t.Any]:
    """The demo trainer's own values for ITERS steps: the proposed golden of a first run."""
    root = project(tmp_path_factory.mktemp("golden"), model_config())
    argv = ["run", "case", "--environment", "dev", "--platform", "cpu", "--out", root / "out"]
    done = subprocess.run([sys.executable, "-m", "ci_golden", *map(str, argv)], cwd=root,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    data: dict[str, t.Any] = json.loads((root / "out" / "golden_values_dev_cpu.json").read_text())
    return data


def project(tmp_path: Path, config: str, golden: dict[str, t.Any] | None = None) -> Path:
    root = tmp_path / "proj"
    case = root / "cases" / "case"
    case.mkdir(parents=True)
    (root / "ci_golden.yaml").write_text(CONFIG)
    (case / "model_config.yaml").write_text(config)
    (root / "stubborn.py").write_text(STUBBORN)
    if golden is not None:
        (case / "golden_values_dev_cpu.json").write_text(json.dumps(golden))
    return root


def regressed(golden: dict[str, t.Any], factor: float = 1.08) -> dict[str, t.Any]:
    """The golden with lm loss moved by ``factor`` from REGRESSION_STEP on: the run, unchanged,
    then differs from it by -7.4% there."""
    out = json.loads(json.dumps(golden))
    values = out["lm loss"]["values"]
    for step, value in values.items():
        if int(step) >= REGRESSION_STEP and value != "nan":
            values[step] = value * factor
    return out


def result(root: Path) -> dict[str, t.Any]:
    data: dict[str, t.Any] = json.loads((root / "out" / "result.json").read_text())
    return data


def left_behind(root: Path) -> list[str]:
    """Command lines of live processes that belong to this project's run."""
    marker = str(root / "out").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def run(cli: t.Callable[..., CliResult], root: Path, *args: str) -> CliResult:
    return cli("run", "case", "--environment", "dev", "--platform", "cpu", "--out", root / "out",
               *args, cwd=root, timeout=600)  # fmt: skip


SAVED = r"saved about \d+(\.\d)? (GPU-hours|GPU-minutes)|saved about [0-9hms]+ of run time"


def test_a_doomed_run_is_stopped_with_the_verdict_the_whole_run_has(
    tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    root = project(tmp_path / "early", model_config(), regressed(golden))
    stopped = run(cli, root, "--n-repeat", "2")
    assert stopped.returncode == 1, stopped.stderr
    early = result(root)
    ff = early["fail_fast"]
    assert early["verdict"] == "fail"
    assert (ff["phase"], ff["metric"], ff["step"], ff["steps_planned"]) == (
        "repeat_1_run_1",
        "lm loss",
        REGRESSION_STEP,
        ITERS,
    )
    assert REGRESSION_STEP < ff["aborted_at_step"] < ITERS
    assert ff["reason"] == "lm loss -7.4% from step 300"
    assert ff["seconds_saved"] > 0 and ff["gpus"] == 0 and ff["gpu_hours_saved"] == 0
    assert re.fullmatch(
        rf"stopped at step {ff['aborted_at_step']:,} of 5,000: lm loss -7\.4% from step 300; "
        rf"saved about [0-9hms]+ of run time",
        early["message"],
    )
    assert f"ci-golden run: case [dev, cpu]: fail: {early['message']}" in stopped.stderr
    assert not (root / "out" / "run" / "2").exists()  # the second repeat never ran
    assert left_behind(root) == []
    # the values written are what the run logged, up to where it stopped
    actual = json.loads((root / "out" / "golden_values_dev_cpu.json").read_text())
    assert actual["lm loss"]["end_step"] <= ff["aborted_at_step"]

    whole_root = project(tmp_path / "whole", model_config(), regressed(golden))
    whole = run(cli, whole_root, "--no-fail-fast")
    assert whole.returncode == 1
    full = result(whole_root)
    assert "fail_fast" not in full
    assert full["verdict"] == early["verdict"]
    for name, m in full["metrics"].items():
        if m["gated"]:
            assert early["metrics"][name]["verdict"] == m["verdict"], name
            assert early["metrics"][name]["first_failing_step"] == m["first_failing_step"], name
    assert full["metrics"]["lm loss"]["budget"] == early["metrics"]["lm loss"]["budget"]
    whole_values = json.loads((whole_root / "out" / "golden_values_dev_cpu.json").read_text())
    assert len(whole_values["lm loss"]["values"]) == len(golden["lm loss"]["values"])


def test_sigterm_ignored_means_sigkill_after_the_grace_period_and_gpu_time_is_counted(
    tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    stubborn = f"[python, stubborn.py, {TRAINER}]"
    root = project(tmp_path, model_config(command=stubborn), regressed(golden))
    job = json.dumps({"case": "case", "environment": "dev", "platform": "cpu", "gpus": 8})
    done = cli("run", "--job", job, "--out", root / "out", "--grace", "1", cwd=root, timeout=600)
    assert done.returncode == 1, done.stderr
    data = result(root)
    assert data["run"]["exit_codes"] == {"repeat_1_run_1": -9}  # killed: SIGTERM was ignored
    assert data["fail_fast"]["gpus"] == 8
    assert re.fullmatch(
        rf"stopped at step [0-9,]+ of 5,000: lm loss -7\.4% from step 300; {SAVED}",
        data["message"],
    )
    assert left_behind(root) == []


@pytest.mark.parametrize("switch", ["case config", "environment"])
def test_fail_fast_off_trains_to_the_end(
    switch: str, tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    config, env = model_config(), {}
    if switch == "case config":
        config = config.replace("CI_GOLDEN:\n", "CI_GOLDEN:\n  fail_fast: false\n")
    else:  # what the shipped pipelines set when run to refresh goldens
        env = {"CI_GOLDEN_FAIL_FAST": "false"}
    root = project(tmp_path, config, regressed(golden))
    done = cli("run", "case", "--environment", "dev", "--platform", "cpu", "--out", root / "out",
               cwd=root, timeout=600, env=env)  # fmt: skip
    assert done.returncode == 1, done.stderr
    data = result(root)
    assert "fail_fast" not in data and data["verdict"] == "fail"
    assert data["metrics"]["lm loss"]["first_failing_step"] == REGRESSION_STEP
    assert data["run"]["exit_codes"] == {"repeat_1_run_1": 0}


def test_ci_golden_fail_fast_with_another_value_is_a_usage_error(
    tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    root = project(tmp_path, model_config(), regressed(golden))
    done = cli("run", "case", "--environment", "dev", "--platform", "cpu", "--out", root / "out",
               cwd=root, env={"CI_GOLDEN_FAIL_FAST": "no"})  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ci-golden run: error: CI_GOLDEN_FAIL_FAST must be true or false (or 1, 0)"
    ]
    assert not (root / "out").exists()


def test_a_passing_run_is_followed_not_stopped(
    tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    root = project(tmp_path, model_config(), golden)
    done = run(cli, root)
    assert done.returncode == 0, done.stderr
    data = result(root)
    assert data["verdict"] == "pass" and "fail_fast" not in data
    assert data["run"]["exit_codes"] == {"repeat_1_run_1": 0}


def test_the_resumed_phase_of_a_ckpt_resume_run_is_stopped_when_it_leaves_the_first(
    tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    args = model_config().split("METRICS:")[0].split("MODEL_ARGS:\n")[1]
    ckpt = textwrap.indent(
        "--save: ${CHECKPOINT_SAVE_PATH}\n--load: ${CHECKPOINT_LOAD_PATH}\n"
        f"--save-interval: {ITERS // 2}\n",
        "  ",
    )
    config = model_config().replace(args, args + ckpt) + "TEST_TYPE: ckpt-resume\n"
    config += "MODEL_ARGS_2:\n" + args + ckpt
    config += f'  --fake-regression: "lm loss:1.3@{RESUMED_REGRESSION}"\n'
    root = project(tmp_path, config, golden)
    done = run(cli, root)
    assert done.returncode == 1, done.stderr
    data = result(root)
    assert data["metrics"]["lm loss"]["verdict"] == "pass"  # phase 1 is the golden's run
    assert data["resume"]["verdict"] == "fail"
    ff = data["fail_fast"]
    assert (ff["phase"], ff["metric"], ff["step"]) == (
        "repeat_1_run_2", "lm loss", RESUMED_REGRESSION
    )  # fmt: skip
    assert RESUMED_REGRESSION <= ff["aborted_at_step"] < ITERS
    assert data["message"].startswith(
        f"repeat_1_run_2 stopped at step {ff['aborted_at_step']:,} of {ITERS:,}: lm loss +30% "
        f"from step {RESUMED_REGRESSION:,}"
    )
    assert left_behind(root) == []


def test_update_refuses_the_partial_values_of_a_stopped_run(
    tmp_path: Path, cli: t.Callable[..., CliResult], golden: dict[str, t.Any]
) -> None:
    root = project(tmp_path, model_config(), regressed(golden))
    assert run(cli, root).returncode == 1
    step = result(root)["fail_fast"]["aborted_at_step"]
    before = (root / "cases" / "case" / "golden_values_dev_cpu.json").read_text()
    done = cli("update", root / "out", cwd=root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"the run was stopped at step {step} as failing (fail-fast), so its values are partial; "
        "rerun the job with --no-fail-fast (in CI: CI_GOLDEN_FAIL_FAST=false) to refresh its golden"
    ) in done.stdout + done.stderr
    assert (root / "cases" / "case" / "golden_values_dev_cpu.json").read_text() == before
    shutil.rmtree(root / "out")
