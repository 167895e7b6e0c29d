"""Every TEST_TYPE of Megatron-LM's run_ci_test.sh, run for real on the bundled demo cases with
the demo trainer (Megatron-LM's checkpoints, tracker file, TensorBoard tags and log lines): the
phases, their checkpoint and TensorBoard folders, the tracker edits between phases and what is
compared, as the script does them; and the dry run that prints them."""

from __future__ import annotations

import json
import shutil
import typing as t
from pathlib import Path

import numpy as np
import pytest

from ci_golden.run.collect import read_jsonl

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "test_cases" / "demo"
FROZEN = DEMO / "frozen_checkpoints"
TRACKER = "latest_checkpointed_iteration.txt"
Cli = t.Callable[..., t.Any]


def run_case(
    cli: Cli, case: str, out: Path, *extra: str, expect: int = 0, env: dict[str, str] | None = None
) -> dict[str, t.Any]:
    res = cli("run", f"demo/{case}", "--environment", "dev", "--platform", "cpu", "--out", out,
              "--keep-checkpoints", *extra, env=env)  # fmt: skip
    assert res.returncode == expect, res.stdout[-3000:] + res.stderr
    result: dict[str, t.Any] = json.loads((out / "result.json").read_text())
    return result


def dry_run(cli: Cli, case: str, out: Path, env: dict[str, str] | None = None) -> list[str]:
    res = cli("run", f"demo/{case}", "--environment", "dev", "--platform", "cpu", "--out", out,
              "--dry-run", env=env)  # fmt: skip
    assert (res.returncode, res.stderr) == (0, "")
    return [line for line in res.stdout.splitlines() if line.startswith("# ")]


def log(out: Path, run_number: int, repeat: int = 1) -> str:
    return (out / "run" / str(repeat) / f"run_{run_number}" / "stdout.log").read_text()


def events(folder: Path) -> list[str]:
    return sorted(p.name.split(".")[0] for p in folder.glob("events*tfevents*"))


def not_found(folder: Path) -> str:
    return f"WARNING: could not find the metadata file {folder / TRACKER}\n"


def loaded(folder: Path, iteration: int) -> str:
    return (
        f"  successfully loaded checkpoint from {folder} [ t 1/1, p 1/1 ] at iteration {iteration}"
    )


def test_regular(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    result = run_case(cli, "regular", out)
    run, save = out / "run", out / "run" / "checkpoints"
    assert result["verdict"] == "pass"
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0}
    assert not_found(run / "tmp_checkpoints") in log(out, 1)  # phase 1 loads /tmp/checkpoints/
    assert events(run / "1" / "tensorboard") == ["events"]
    assert sorted(p.name for p in save.iterdir()) == ["iter_0000025", "iter_0000050", TRACKER]
    assert (save / TRACKER).read_text() == "50"  # Megatron-LM writes it without a newline
    # the gated metrics are METRICS; every metric of the golden is compared
    assert result["gated"] == ["lm loss", "num-zeros", "iteration-time", "mem-allocated-bytes"]
    assert sorted(result["metrics"]) == sorted(
        ["lm loss", "num-zeros", "iteration-time", "mem-allocated-bytes", "mem-max-allocated-bytes"]
    )
    assert result["metrics"]["lm loss"]["n_compared"] == 50
    assert result["metrics"]["iteration-time"]["window"] == [30, 45]


def test_ckpt_resume(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    assert dry_run(cli, "ckpt_resume", out)[3:6] == [
        f"# then delete {out / 'run' / 'checkpoints' / 'iter_0000050'} "
        "(if every phase so far exited 0)",
        f"# then write 25 to {out / 'run' / 'checkpoints' / TRACKER} "
        "(if every phase so far exited 0)",
        f"# repeat_1_run_2 (MODEL_ARGS) (if every phase so far exited 0): load "
        f"{out / 'run' / 'checkpoints'}, save {out / 'run' / 'checkpoints'}, tensorboard "
        f"{out / 'run' / '1' / 'tensorboard' / 'run_2'}, "
        f"log {out / 'run' / '1' / 'run_2' / 'stdout.log'}",
    ]
    result = run_case(cli, "ckpt_resume", out)
    run, save = out / "run", out / "run" / "checkpoints"
    assert result["verdict"] == "pass"
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0, "repeat_1_run_2": 0}
    assert not_found(run / "tmp_checkpoints") in log(out, 1)
    assert loaded(save, 25) in log(out, 2)
    for phase in ("run_1", "run_2"):
        assert events(run / "1" / "tensorboard" / phase) == ["events"]
    assert (save / TRACKER).read_text() == "50"  # phase 2 saved step 50 again
    # phase 1 against the golden; phase 2's steps 26-50 against phase 1's
    assert result["metrics"]["lm loss"]["n_compared"] == 50
    assert (result["resume"]["verdict"], result["resume"]["resume_step"]) == ("pass", 25)
    assert result["resume"]["metrics"]["lm loss"]["n_compared"] == 25
    first = read_jsonl(run / "1" / "run_1" / "metrics.jsonl").series
    second = read_jsonl(run / "1" / "run_2" / "metrics.jsonl").series
    for name in ("lm loss", "num-zeros", "grad-norm", "learning-rate"):
        assert second[name] == {k: first[name][k] for k in range(26, 51)}, name


def test_frozen_start(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    result = run_case(cli, "frozen_start", out)
    assert result["verdict"] == "pass"
    assert loaded(FROZEN, 25) in log(out, 1)
    assert result["metrics"]["lm loss"]["steps"][0] == 26
    assert result["metrics"]["lm loss"]["n_compared"] == 25


def test_frozen_resume_and_its_recording_mode(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    result = run_case(cli, "frozen_resume", out)
    save, tmp = out / "run" / "checkpoints", out / "run" / "tmp_checkpoints"
    assert result["verdict"] == "pass"
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0, "repeat_1_run_2": 0}
    assert not_found(tmp) in log(out, 1)
    assert loaded(FROZEN, 25) in log(out, 2)  # phase 2 resumes from the frozen checkpoint
    assert f"to {tmp} in torch_dist format" in log(out, 2)  # ... and saves to /tmp/checkpoints/
    # afterwards the job's own checkpoint is the next frozen one: step 50 dropped, tracker 25
    assert sorted(p.name for p in save.iterdir()) == ["iter_0000025", TRACKER]
    assert (save / TRACKER).read_text() == "25\n"
    assert (result["resume"]["verdict"], result["resume"]["resume_step"]) == ("pass", 25)

    # with no frozen checkpoint: one phase, not compared, and the save folder holds a new one
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "rec"
    result = run_case(cli, "frozen_resume", out, env={"CHECKPOINT_LOAD_PATH": str(empty)})
    save = out / "run" / "checkpoints"
    assert result["verdict"] == "skipped"
    assert result["message"] == (
        f"not compared: frozen-resume recording mode: {save} now holds the frozen checkpoint at "
        f"iteration 25 for {empty}"
    )
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0}
    assert sorted(p.name for p in save.iterdir()) == ["iter_0000025", TRACKER]
    state = "iter_0000025/fake_state.npz"
    with np.load(save / state) as new, np.load(FROZEN / state) as bundled:
        assert sorted(new.files) == sorted(bundled.files)
        assert all(np.array_equal(new[k], bundled[k]) for k in new.files)


def test_checkpoint_consistency(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    res = cli("run", "demo/checkpoint_consistency", "--environment", "dev", "--platform", "cpu",
              "--out", out, "--dry-run")  # fmt: skip
    save, tb = out / "run" / "checkpoints", out / "run" / "1" / "tensorboard"
    comments = [line for line in res.stdout.splitlines() if line.startswith("# ")]
    assert comments[2:] == [
        f"# repeat_1_run_1 (MODEL_ARGS): load {FROZEN}, save {save}/repeat_1_key_MODEL_ARGS, "
        f"tensorboard {tb}, log {out}/run/1/run_1/stdout.log",
        f"# repeat_1_run_2 (MODEL_ARGS_2): load {FROZEN}, save {save}/repeat_1_key_MODEL_ARGS_2, "
        f"tensorboard {tb}, log {out}/run/1/run_2/stdout.log",
        "# compare: python test_cases/demo/grads_match.py on "
        f"{save}/repeat_1_key_MODEL_ARGS/iter_0000001, "
        f"{save}/repeat_1_key_MODEL_ARGS_2/iter_0000001 (no golden)",
    ]
    assert [line for line in res.stdout.splitlines() if "GPUS_PER_NODE" in line] == [
        "export GPUS_PER_NODE=1",
        "export GPUS_PER_NODE=2",
    ]
    result = run_case(cli, "checkpoint_consistency", out)
    assert (result["verdict"], result["message"]) == (
        "pass",
        "checkpoint consistency: python test_cases/demo/grads_match.py on 2 checkpoints passed",
    )
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0, "repeat_1_run_2": 0}
    assert (save / "repeat_1_key_MODEL_ARGS_2" / "iter_0000001" / "mp_rank_00").is_dir()
    assert events(tb)  # every key writes to the one folder

    # a key whose first step differs: the optimizer states differ, and the job fails
    root = tmp_path / "proj"
    shutil.copytree(DEMO, root / "test_cases" / "demo")
    shutil.copy(REPO / "ci_golden.yaml", root / "ci_golden.yaml")
    config = root / "test_cases" / "demo" / "checkpoint_consistency" / "model_config.yaml"
    config.write_text(config.read_text().replace("--ckpt-format: torch\n", "--seed: 5\n"))
    res = cli("run", "demo/checkpoint_consistency", "--environment", "dev", "--platform", "cpu",
              "--out", "o", cwd=root)  # fmt: skip
    assert res.returncode == 1
    result = json.loads((root / "o" / "result.json").read_text())
    assert result["verdict"] == "fail"
    assert result["message"] == (
        "checkpoint consistency: python test_cases/demo/grads_match.py on 2 checkpoints exited "
        "with code 1 (log: run/consistency.log); last line: grads_match: 2 checkpoints, "
        "6 tensors each, 6 differ"
    )


def test_release_windows_resume_across_time_limits(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    comments = dry_run(cli, "release", out)
    assert comments[-1] == (
        "# only once latest_checkpointed_iteration.txt reaches 30; an earlier window is not "
        "compared, whatever its exit code"
    )
    result = run_case(cli, "release", out)  # one window reaches --exit-interval 30
    assert result["verdict"] == "pass"
    assert result["metrics"]["lm loss"]["steps"] == [1, 5, 10, 15, 20, 25, 30]

    # a 60 s job window gives --exit-duration-in-mins 1; at 1 s a step (40 s for the first of a
    # process) the first window stops at step 22 and the second reaches 30
    out = tmp_path / "windows"
    job = json.dumps({"case": "demo/release", "environment": "dev", "platform": "cpu",
                      "time_limit": 60})  # fmt: skip
    slow = {"FAKE_MEGATRON_ITERATION_SECONDS": "1"}
    first = cli("run", "--job", job, "--out", out, env=slow)
    assert first.returncode == 0, first.stderr
    assert "--exit-duration-in-mins 1 " in " ".join(json.loads(
        (out / "result.json").read_text())["run"]["commands"][0])  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert (result["verdict"], result["message"]) == (
        "skipped",
        "release intermediate window: the latest checkpoint is at iteration 22 of 30; not "
        "compared. Rerun the job with the same output folder to continue",
    )
    second = cli("run", "--job", job, "--out", out, env=slow)
    assert second.returncode == 0, second.stdout[-2000:]
    assert loaded(out / "run" / "checkpoints", 22) in log(out, 1)
    result = json.loads((out / "result.json").read_text())
    assert result["verdict"] == "pass"
    assert events(out / "run" / "1" / "tensorboard") == ["events", "events"]  # both windows
    assert result["metrics"]["lm loss"]["n_compared"] == 7
    assert result["metrics"]["lm loss"]["n_differ"] == 0


def test_inference(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    result = run_case(cli, "inference", out)
    assert result["verdict"] == "pass"
    assert (out / "run" / "1" / "run_1" / "golden_values_dev_cpu.json").is_file()
    assert result["actual"] == "golden_values_dev_cpu.json"
    assert loaded(FROZEN, 25) in log(out, 1)
    out = tmp_path / "changed"
    result = run_case(
        cli, "inference", out, expect=1, env={"FAKE_MEGATRON_REGRESSION": "generated_tokens:2@5"}
    )
    assert result["verdict"] == "fail"
    assert result["metrics"]["generated_tokens"]["verdict"] == "fail"


def test_xpass_tolerates_a_failure_and_pass_does_not(tmp_path: Path, cli: Cli) -> None:
    result = run_case(cli, "xpass", tmp_path / "o")
    assert result["verdict"] == "skipped"
    assert result["message"].startswith(
        "TEST_EVALUATION xpass tolerates a training failure; values not compared: "
        "repeat_1_run_1 exited with code 1 (log: run/1/run_1/stdout.log); last line: "
        "[exiting program at iteration 20]"
    )
    root = tmp_path / "proj"
    shutil.copytree(DEMO, root / "test_cases" / "demo")
    shutil.copy(REPO / "ci_golden.yaml", root / "ci_golden.yaml")
    config = root / "test_cases" / "demo" / "xpass" / "model_config.yaml"
    config.write_text(config.read_text().replace("TEST_EVALUATION: xpass\n", ""))
    res = cli("run", "demo/xpass", "--environment", "dev", "--platform", "cpu", "--out", "o",
              cwd=root)  # fmt: skip
    assert res.returncode == 1
    assert json.loads((root / "o" / "result.json").read_text())["verdict"] == "error"


def test_lightweight_mode(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "o"
    env = {"ENABLE_LIGHTWEIGHT_MODE": "true"}
    comments = dry_run(cli, "ckpt_resume", out, env=env)
    assert comments[1] == "# note: lightweight mode: --exit-interval 4, values not compared"
    assert comments[-1] == "# not compared: lightweight mode"
    tracker = out / "run" / "checkpoints" / TRACKER
    assert f"# then write 2 to {tracker} (if every phase so far exited 0)" in comments
    result = run_case(cli, "ckpt_resume", out, "--n-repeat", "3", env=env)
    assert (result["verdict"], result["message"]) == ("skipped", "not compared: lightweight mode")
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0, "repeat_1_run_2": 0}  # 1 repeat
    assert "--exit-interval 4" in " ".join(result["run"]["commands"][0])
    assert "[exiting program at iteration 4]" in log(out, 1)
    assert loaded(out / "run" / "checkpoints", 2) in log(out, 2)


@pytest.mark.parametrize("environment", ["dev", "lts"])
def test_nondeterministic_case_passes_on_tolerance(
    tmp_path: Path, cli: Cli, environment: str
) -> None:
    res = cli("run", "demo/nondeterministic", "--environment", environment, "--platform", "cpu",
              "--out", tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["nondeterministic"] is True
    assert result["metrics"]["lm loss"]["n_differ"] is None  # the exact check is skipped
    assert 0 < result["metrics"]["lm loss"]["max_rel_diff"] < 0.05
