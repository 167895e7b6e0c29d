"""`ci-golden run` on a project of its own: argv building, the GPU check with fake nvidia-smi
scripts, crashes, unsupported test types, time limits that stop a whole process tree, and cancel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import pytest

TRAINER = Path(__file__).resolve().parents[2] / "test_cases" / "demo" / "trainer.py"
CONFIG = """\
test_cases: cases
platforms:
  dgx_h100: {gpu: H100, gpus_per_node: 8}
  cpu: {gpu: null, gpus_per_node: 0, opt_in: true}
environments:
  dev: {platforms: [dgx_h100, cpu]}
"""
TRAIN_ARGS = """\
MODEL_ARGS:
  --train-iters: 10
  --seed: 7
  --log-jsonl: ${OUTPUT_PATH}/metrics.jsonl
"""


def project(tmp_path: Path, cases: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    (root / "cases").mkdir(parents=True)
    (root / "ci_golden.yaml").write_text(CONFIG)
    for case_id, text in cases.items():
        folder = root / "cases" / case_id
        folder.mkdir(parents=True)
        (folder / "model_config.yaml").write_text(textwrap.dedent(text))
    return root


def demo_case(extra: str = "", platforms: str = "[cpu, dgx_h100]", time_limit: int = 60) -> str:
    return (
        TRAIN_ARGS
        + extra
        + f"CI_GOLDEN:\n  platforms: {platforms}\n  command: [python, {TRAINER}]\n"
        f"  time_limit: {time_limit}\n"
    )


def fake_nvidia_smi(folder: Path, body: str) -> dict[str, str]:
    """A PATH holding only a fake ``nvidia-smi`` (a shell script) and the basic tools."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin"}


H100_LINE = "NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15"
A100_LINE = "NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05"


def lines(line: str, n: int) -> str:
    return "".join(f"echo '{line}'\n" for _ in range(n))


# --- the commands ----------------------------------------------------------------------------


def test_dry_run_prints_argv_and_environment(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(
        tmp_path,
        {
            "gpt/case": """\
        ENV_VARS:
          CUDA_DEVICE_MAX_CONNECTIONS: 1
          NVTE_ALLOW_NONDETERMINISTIC_ALGO: 0
          WANDB_API_KEY: abc123
          DEBUG: true
        MODEL_ARGS:
          --num-layers: 12
          --lr: 1.0e-5
          --bf16: true
          --fp16: false
          --split: 949,50,1
          --empty:
          --tensorboard-dir: ${TENSORBOARD_PATH}
          --data-path: ${DATA_PATH}/my-gpt3_00_text_document
          --save: ${CHECKPOINT_SAVE_PATH}
          --ranks: [0, 3]
        LAUNCHER: ft_launcher
        TEST_TYPE: regular
        CI_GOLDEN: {platforms: [dgx_h100]}
        """
        },
    )
    res = cli("run", "gpt/case", "--environment", "dev", "--platform", "dgx_h100", "--out", "o",
              "--dry-run", cwd=root, env={"DATA_PATH": "/data", "MASTER_PORT": "6000"})  # fmt: skip
    assert (res.returncode, res.stderr) == (0, "")
    run_dir = root / "o" / "run"
    # false and null are passed on (`--fp16 false`, `--empty null`), as _run_training.sh does
    pythonpath = os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))
    launch = (
        "ft_launcher --nproc_per_node 8 --nnodes 1 --node_rank 0 --master_addr localhost"
        " --master_port 6000 pretrain_gpt.py --num-layers 12 --lr 1e-05 --bf16 --fp16 false"
        f" --split 949,50,1 --empty null --tensorboard-dir {run_dir}/1/tensorboard"
        f" --data-path /data/my-gpt3_00_text_document --save {run_dir}/checkpoints --ranks 0 3"
    )
    head = (
        "# gpt/case (dev, dgx_h100): TEST_TYPE regular, MODE pretraining, TEST_EVALUATION pass, "
        "1 repeat(s), TRAIN_ITERS 100, time limit 3600 s, output o\n# --- repeat 1\n"
        f"# repeat_1_run_1 (MODEL_ARGS): load {run_dir}/tmp_checkpoints, save {run_dir}/checkpoints"
        f", tensorboard {run_dir}/1/tensorboard, log {run_dir}/1/run_1/stdout.log\n"
    )
    compare = (
        f"# compare: TensorBoard {run_dir}/1/tensorboard (the oldest event file holding scalars, "
        "values rounded to 5 decimals) on the golden's steps (metrics it lacks: steps 1..100, "
        "step 1 and every multiple of 1) against no golden yet (the values are the proposal); "
        "gated: lm loss, num-zeros\n"
    )
    assert (
        res.stdout
        == head
        + textwrap.dedent(f"""\
        cd {root}
        export NCCL_PROTO=simple
        export NCCL_ALGO=Ring
        export NCCL_COLLNET_ENABLE=0
        export NCCL_NVLS_ENABLE=0
        export NCCL_TUNER_PLUGIN=''
        export NCCL_BUFFSIZE=4194304
        export TORCH_NCCL_AVOID_RECORD_STREAMS=1
        export DATA_CACHE_PATH={run_dir}/data-cache
        export OUTPUT_PATH={run_dir}/1/run_1
        export TENSORBOARD_PATH={run_dir}/1/tensorboard
        export CHECKPOINT_SAVE_PATH={run_dir}/checkpoints
        export CHECKPOINT_LOAD_PATH={run_dir}/tmp_checkpoints
        export INFERENCE_OUTPUT_PATH={run_dir}/1/run_1/golden_values_dev_dgx_h100.json
        export REPEAT=1
        export RUN_NUMBER=1
        export CUDA_DEVICE_MAX_CONNECTIONS=1
        export NVTE_ALLOW_NONDETERMINISTIC_ALGO=0
        export WANDB_API_KEY='***'
        export DEBUG=true
        export ENABLE_LIGHTWEIGHT_MODE=false
        export GPUS_PER_NODE=8
        export PYTHONPATH={pythonpath}
        {launch}
        """)
        + compare
    )


def test_multi_node_uses_srun(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(
        tmp_path,
        {
            "gpt/case": "MODEL_ARGS: {--train-iters: 4}\n"
            "CI_GOLDEN: {nodes: 2, script: train.py, platforms: [dgx_h100]}\n"
        },
    )
    args = ("run", "gpt/case", "--environment", "dev", "--platform", "dgx_h100", "--dry-run")
    res = cli(*args, cwd=root, env={"MASTER_ADDR": "node-a", "MASTER_PORT": "29500"})
    assert res.returncode == 0
    assert res.stdout.splitlines()[-2] == (
        "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 "
        "torchrun --nproc_per_node 8 --nnodes 2 "
        "--rdzv_backend c10d --rdzv_endpoint node-a:29500 train.py --train-iters 4 "
        "--exit-interval 4"
    )
    env = {k: v for k, v in os.environ.items() if k != "MASTER_ADDR"}
    res = subprocess.run(
        [sys.executable, "-m", "ci_golden", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (res.returncode, res.stderr) == (
        2, "ci-golden run: error: a 2-node job needs MASTER_ADDR"
           " (the first node of the Slurm allocation) in the environment\n"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("${DATA_PATH}/x",
         "${DATA_PATH} is not defined: set DATA_PATH in the runner's environment"),
        ("${HOME}/x",
         "${HOME} is not a variable ci-golden fills (known: OUTPUT_PATH, TENSORBOARD_PATH, "
         "CHECKPOINT_SAVE_PATH, CHECKPOINT_LOAD_PATH, DATA_CACHE_PATH, INFERENCE_OUTPUT_PATH, "
         "REPEAT, RUN_NUMBER, DATA_PATH, WANDB_SAVE_PATH, WANDB_EXPERIMENT)"),
    ],
)  # fmt: skip
def test_undefined_variable_is_an_error(
    tmp_path: Path, cli: t.Callable[..., t.Any], arg: str, message: str
) -> None:
    root = project(
        tmp_path,
        {"gpt/case": f"MODEL_ARGS:\n  --data-path: {arg}\nCI_GOLDEN: {{platforms: [dgx_h100]}}\n"},
    )
    env = {k: v for k, v in os.environ.items() if k != "DATA_PATH"}
    res = subprocess.run(
        [sys.executable, "-m", "ci_golden", "run", "gpt/case", "--environment", "dev",
         "--platform", "dgx_h100", "--dry-run"],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    config = root / "cases" / "gpt" / "case" / "model_config.yaml"
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f'ci-golden run: error: {config}::$.MODEL_ARGS["--data-path"]: {message}\n'


def test_usage_errors(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(tmp_path, {"demo/a": demo_case()})
    res = cli("run", "demo/a", "--environment", "dev", cwd=root)
    assert (res.returncode, res.stderr) == (
        2,
        "ci-golden run: error: give CASE --environment E --platform P, or --job JSON\n",
    )
    res = cli("run", "demo/a", "--environment", "dev", "--platform", "h100", cwd=root)
    assert (res.returncode, res.stderr) == (
        2, f"ci-golden run: error: {root / 'ci_golden.yaml'}: unknown platform 'h100'"
           " (did you mean 'dgx_h100'?)\n"
    )  # fmt: skip
    res = cli(
        "run",
        "--job",
        '{"case": "demo/a", "environment": "dev", "platform": "cpu", "extra": 1}',
        cwd=root,
    )
    assert (res.returncode, res.stderr) == (
        2, "ci-golden run: error: --job::$.extra: unknown key 'extra' "
           "(known: id, name, case, environment, "
           "platform, runs-on, golden, n_repeat, time_limit, nodes, gpus)\n"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--n-repeat", "0"), "--n-repeat 0: expected 1 to 100"),
        (("--n-repeat", "-2"), "--n-repeat -2: expected 1 to 100"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu", "n_repeat": 0}'),
         "--job::$.n_repeat: n_repeat must be an integer from 1 to 100, got 0"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu", "n_repeat": 101}'),
         "--job::$.n_repeat: n_repeat must be an integer from 1 to 100, got 101"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu", "time_limit": 0}'),
         "--job::$.time_limit: time_limit must be an integer of at least 1, got 0"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu", "time_limit": -5}'),
         "--job::$.time_limit: time_limit must be an integer of at least 1, got -5"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu",'
                   ' "time_limit": 1.5}'),
         "--job::$.time_limit: time_limit must be an integer of at least 1, got 1.5"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu", "nodes": 0}'),
         "--job::$.nodes: nodes must be an integer of at least 1, got 0"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "cpu", "gpus": -1}'),
         "--job::$.gpus: gpus must be an integer of at least 0, got -1"),
    ],
)  # fmt: skip
def test_repeats_and_limits_below_one_are_refused(
    tmp_path: Path, cli: t.Callable[..., t.Any], args: tuple[str, ...], message: str
) -> None:
    root = project(tmp_path, {"demo/a": demo_case()})
    if args[0] == "--n-repeat":
        args = ("demo/a", "--environment", "dev", "--platform", "cpu", *args)
    res = cli("run", *args, "--dry-run", cwd=root)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")


def test_job_entry_values_override_the_case(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(tmp_path, {"demo/a": demo_case(time_limit=60)})
    job = {
        "case": "demo/a",
        "environment": "dev",
        "platform": "cpu",
        "n_repeat": 1,
        "time_limit": 1,
    }
    res = cli("run", "--job", json.dumps(job), "--out", "o", "--dry-run", cwd=root)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == (
        "# demo/a (dev, cpu): TEST_TYPE regular, MODE pretraining, TEST_EVALUATION pass, "
        "1 repeat(s), TRAIN_ITERS 10, time limit 1 s, output o"
    )


OTHER_ENV = CONFIG + "  lts: {platforms: [cpu]}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo/a", "--environment", "lts", "--platform", "dgx_h100"),
         "{config}: environment 'lts' has no platform 'dgx_h100' (its platforms: cpu)"),
        (("demo/a", "--environment", "lst", "--platform", "cpu"),
         "{config}: unknown environment 'lst' (did you mean 'lts'?)"),
        (("demo/a", "--environment", "dev", "--platform", "dgx_h100"),
         "case 'demo/a' has no job in environment 'dev' on platform 'dgx_h100' "
         "(its jobs: [dev, cpu], [lts, cpu]); "
         "a job needs a golden file or the platform in the case's CI_GOLDEN.platforms"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "dgx_h100"}'),
         "--job::$: case 'demo/a' has no job in environment 'dev' on platform 'dgx_h100' "
         "(its jobs: [dev, cpu], [lts, cpu]); "
         "a job needs a golden file or the platform in the case's CI_GOLDEN.platforms"),
        (("--job", '{"case": "demo/a", "environment": "lts", "platform": "dgx_h100"}'),
         "--job::$: environment 'lts' has no platform 'dgx_h100' (its platforms: cpu)"),
        (("--job", '{"case": "demo/a", "environment": "dev", "platform": "h100"}'),
         "--job::$: unknown platform 'h100' (did you mean 'dgx_h100'?)"),
        (("--job", '{"case": "demo/b", "environment": "dev", "platform": "cpu"}'),
         "--job::$: no test case 'demo/b' (did you mean 'demo/a'?)"),
    ],
)  # fmt: skip
def test_only_the_jobs_of_the_case_run(
    tmp_path: Path, cli: t.Callable[..., t.Any], args: tuple[str, ...], message: str
) -> None:
    root = project(tmp_path, {"demo/a": demo_case(platforms="[cpu]")})
    (root / "ci_golden.yaml").write_text(OTHER_ENV)
    res = cli("run", *args, "--out", "o", cwd=root)
    message = message.format(config=root / "ci_golden.yaml")
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")
    assert not (root / "o").exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("model.txt", "model.txt: exists and is not a folder"),
        ("model.txt/o", "model.txt/o: cannot create the output folder: Not a directory"),
        ("/proc/1", "/proc/1: the output folder is not writable"),
    ],
)
def test_an_output_folder_it_cannot_write_is_refused(
    tmp_path: Path, cli: t.Callable[..., t.Any], out: str, message: str
) -> None:
    if out == "/proc/1" and os.access(out, os.W_OK):
        pytest.skip("/proc/1 is writable here")
    root = project(tmp_path, {"demo/a": demo_case()})
    (root / "model.txt").write_text("kept\n")
    res = cli("run", "demo/a", "--environment", "dev", "--platform", "cpu", "--out", out, cwd=root)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")
    assert sorted(p.name for p in root.iterdir()) == ["cases", "ci_golden.yaml", "model.txt"]
    assert (root / "model.txt").read_text() == "kept\n"


# --- the GPU check ---------------------------------------------------------------------------


def test_gpu_check_passes_on_matching_runner(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(tmp_path, {"demo/a": demo_case()})
    env = fake_nvidia_smi(tmp_path / "bin", lines(H100_LINE, 8))
    res = cli(
        "run",
        "demo/a",
        "--environment",
        "dev",
        "--platform",
        "dgx_h100",
        "--out",
        "o",
        cwd=root,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    result = json.loads((root / "o" / "result.json").read_text())
    assert result["verdict"] == "no-golden"
    run = result["run"]
    assert (run["gpu"], run["gpus"], run["gpu_memory"], run["driver"]) == (
        "NVIDIA H100 80GB HBM3",
        8,
        "81559 MiB",
        "550.54.15",
    )
    assert run["exit_codes"] == {"repeat_1_run_1": 0}
    assert set(run) >= {"host", "start", "end", "commands", "test_type"}


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (lines(A100_LINE, 8), "this runner has 8 x NVIDIA A100-SXM4-80GB (driver 535.104.05)"),
        (lines(H100_LINE, 4), "this runner has 4 x NVIDIA H100 80GB HBM3 (driver 550.54.15)"),
        ("echo 'NVIDIA-SMI has failed because it couldn''t communicate"
         " with the NVIDIA driver.'\nexit 9\n",
         "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldnt communicate"
         " with the NVIDIA driver."),
        (None, "nvidia-smi not found on PATH"),
    ],
)  # fmt: skip
def test_gpu_check_refuses_wrong_runner(
    tmp_path: Path, cli: t.Callable[..., t.Any], body: str | None, found: str
) -> None:
    root = project(tmp_path, {"demo/a": demo_case()})
    if body is None:
        if any(Path(d, "nvidia-smi").exists() for d in ("/usr/bin", "/bin")):
            pytest.skip("a real nvidia-smi is installed")
        (tmp_path / "bin").mkdir()
        env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    else:
        env = fake_nvidia_smi(tmp_path / "bin", body)
    start = time.monotonic()
    res = cli(
        "run",
        "demo/a",
        "--environment",
        "dev",
        "--platform",
        "dgx_h100",
        "--out",
        "o",
        cwd=root,
        env=env,
    )
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        f"ci-golden run: error: {found}; this job needs 8 x H100 GPUs (platform dgx_h100); "
        "run it on a matching runner, or pass --skip-gpu-check\n"
    )
    assert time.monotonic() - start < 60
    # refused at once: nothing ran, only an error result for the pipeline report
    assert sorted(p.name for p in (root / "o").iterdir()) == ["result.json"]
    result = json.loads((root / "o" / "result.json").read_text())
    message = res.stderr.removeprefix("ci-golden run: error: ").rstrip("\n")
    assert (result["verdict"], result["message"], result["actual"]) == ("error", message, None)
    assert (result["case"], result["environment"], result["platform"]) == (
        "demo/a",
        "dev",
        "dgx_h100",
    )
    assert set(result["run"]) >= {"host", "start", "end"}
    assert result["run"]["exit_codes"] == {}
    report = cli("report", "o", "--format", "json", cwd=root)
    assert report.returncode == 1, report.stderr
    data = json.loads(report.stdout)
    assert (data["verdict"], data["counts"]) == ("error", {"error": 1})
    assert [(r["case"], r["verdict"], r["message"]) for r in data["results"]] == [
        ("demo/a", "error", message)
    ]
    shutil.rmtree(root / "o")
    if body is None:
        res = cli(
            "run",
            "demo/a",
            "--environment",
            "dev",
            "--platform",
            "dgx_h100",
            "--out",
            "o",
            "--skip-gpu-check",
            cwd=root,
            env=env,
        )
        assert res.returncode == 0, res.stderr


# --- failures ----------------------------------------------------------------------------------


def test_crash_keeps_exit_code_and_last_line(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    crash = "--seed: 7\n  --fake-crash-at-step: 5\n  --fake-crash-exit-code: 3\n"
    root = project(tmp_path, {"demo/a": demo_case().replace("--seed: 7\n", crash)})
    res = cli("run", "demo/a", "--environment", "dev", "--platform", "cpu", "--out", "o", cwd=root)
    assert res.returncode == 1
    result = json.loads((root / "o" / "result.json").read_text())
    assert result["verdict"] == "error"
    assert result["message"] == (
        "repeat_1_run_1 exited with code 3 (log: run/1/run_1/stdout.log);"
        " last line: RuntimeError: injected failure during iteration 5"
    )
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 3}
    # the values logged before the crash are kept, as Megatron-LM extracts them anyway
    actual = json.loads((root / "o" / result["actual"]).read_text())
    assert list(actual["lm loss"]["values"]) == ["1", "2", "3", "4"]
    assert res.stdout.endswith(f"demo/a [dev, cpu]: ERROR\n  {result['message']}\n")
    assert "[demo/a dev cpu repeat_1_run_1]  [" in res.stdout  # the log streamed with its prefix
    assert (
        (root / "o" / "run" / "1" / "run_1" / "stdout.log")
        .read_text()
        .endswith("RuntimeError: injected failure during iteration 5\n")
    )


def test_unknown_test_type_is_refused_before_anything_runs(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = project(tmp_path, {"demo/a": demo_case("TEST_TYPE: frozen-reload\n")})
    config = root / "cases" / "demo" / "a" / "model_config.yaml"
    message = (
        f"{config}::$.TEST_TYPE: unknown value 'frozen-reload' (did you mean 'frozen-resume'?)"
    )
    run = ("run", "demo/a", "--environment", "dev", "--platform", "cpu", "--out", "o")
    res = cli(*run, "--dry-run", cwd=root)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")
    res = cli(*run, cwd=root)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")
    result = json.loads((root / "o" / "result.json").read_text())
    assert (result["verdict"], result["message"]) == ("error", f"cannot plan the run: {message}")
    assert result["run"]["exit_codes"] == {}
    validate = cli("validate", cwd=root)
    assert validate.returncode == 1
    assert validate.stdout.startswith(
        'cases/demo/a/model_config.yaml:5: CG141 error: $.TEST_TYPE: "frozen-reload" '
        "'frozen-reload' is not one of ['regular', 'ckpt-resume', "
    )


def test_a_launcher_that_cannot_start_leaves_an_error_result(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    case = demo_case().replace(f"command: [python, {TRAINER}]", "command: [/nonexistent/train]")
    root = project(tmp_path, {"demo/a": case})
    res = cli("run", "demo/a", "--environment", "dev", "--platform", "cpu", "--out", "o", cwd=root)
    message = "cannot start /nonexistent/train: No such file or directory"
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")
    result = json.loads((root / "o" / "result.json").read_text())
    assert (result["verdict"], result["message"], result["actual"]) == ("error", message, None)


TREE_SCRIPT = """\
import os, signal, subprocess, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stubborn child: only SIGKILL stops it
out = Path(sys.argv[1])
stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
grandchild = subprocess.Popen([sys.executable, "-c", stubborn])
(out / "pids.txt").write_text(f"{os.getpid()} {grandchild.pid}")
print("started", flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # killed, waiting for its (re)parent to reap it


def tree_case(tmp_path: Path, time_limit: int) -> Path:
    script = tmp_path / "tree.py"
    script.write_text(TREE_SCRIPT)
    return project(
        tmp_path,
        {
            "demo/tree": "MODEL_ARGS: {}\nCI_GOLDEN:\n  platforms: [cpu]\n"
            f"  command: [python, {script}, {tmp_path}]\n  time_limit: {time_limit}\n"
        },
    )


def test_timeout_stops_the_whole_process_tree(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = tree_case(tmp_path, time_limit=3)
    res = cli(
        "run",
        "demo/tree",
        "--environment",
        "dev",
        "--platform",
        "cpu",
        "--out",
        "o",
        "--grace",
        "0.5",
        cwd=root,
    )
    assert res.returncode == 1
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    assert all(_gone(pid) for pid in pids), pids
    result = json.loads((root / "o" / "result.json").read_text())
    assert (result["verdict"], result["message"]) == (
        "error",
        "repeat_1_run_1 stopped at the job's time limit of 3 s (log: run/1/run_1/stdout.log)",
    )
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": -signal.SIGKILL}
    assert result["run"]["timed_out"] == "repeat_1_run_1"
    assert "[demo/tree dev cpu repeat_1_run_1] started\n" in res.stdout


def test_cancel_stops_the_tree_and_writes_the_result(tmp_path: Path) -> None:
    root = tree_case(tmp_path, time_limit=600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_golden", "run", "demo/tree", "--environment", "dev",
         "--platform", "cpu", "--out", "o", "--grace", "0.5"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pid_file = tmp_path / "pids.txt"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (130, "ci-golden run: interrupted\n")
    pids = [int(p) for p in pid_file.read_text().split()]
    assert all(_gone(pid) for pid in pids), pids
    result = json.loads((root / "o" / "result.json").read_text())
    assert (result["verdict"], result["message"]) == (
        "error", "cancelled: the run was interrupted and its processes stopped"
    )  # fmt: skip


def test_job_json_with_repeats(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(tmp_path, {"demo/a": demo_case()})
    job = {"id": "demo__a__dev__cpu", "name": "a dev cpu", "case": "demo/a", "environment": "dev",
           "platform": "cpu", "runs-on": "ubuntu-latest", "golden": None, "n_repeat": 2,
           "time_limit": 60, "nodes": 1, "gpus": 0}  # fmt: skip
    res = cli("run", "--job", json.dumps(job), "--out", "o", cwd=root)
    assert res.returncode == 0, res.stderr
    out = root / "o"
    assert sorted(p.name for p in out.iterdir()) == [
        "golden_values_dev_cpu.json",
        "result.json",
        "run",
    ]
    assert (out / "run" / "2" / "run_1" / "metrics.jsonl").is_file()
    assert (out / "run" / "2" / "golden_values_dev_cpu.json").is_file()
    result = json.loads((out / "result.json").read_text())
    assert result["actual"] == "golden_values_dev_cpu.json"
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0, "repeat_2_run_1": 0}
    assert result["run"]["n_repeat"] == 2
    actual = json.loads((out / "golden_values_dev_cpu.json").read_text())
    assert list(actual["lm loss"]["values"]) == [str(k) for k in range(1, 11)]
    shutil.rmtree(out)


def test_megatron_n_repeat_and_ckpt_resume_phases_in_dry_run(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    # N_REPEAT comes from ENV_VARS (a top-level N_REPEAT is not Megatron-LM's and is ignored)
    extra = (
        "N_REPEAT: 5\nENV_VARS:\n  N_REPEAT: 2\nTEST_TYPE: ckpt-resume\n"
        "MODEL_ARGS_2:\n  --train-iters: 10\n  --no-load-optim: true\n"
    )
    root = project(tmp_path, {"demo/a": demo_case(extra)})
    res = cli(
        "run", "demo/a", "--environment", "dev", "--platform", "cpu", "--out", "o", "--dry-run",
        "--n-repeat", "3", cwd=root,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0] == (
        "# demo/a (dev, cpu): TEST_TYPE ckpt-resume, MODE pretraining, TEST_EVALUATION pass, "
        "2 repeat(s), TRAIN_ITERS 10, time limit 60 s, output o"
    )
    run = root / "o" / "run"
    save, tmp = run / "checkpoints", run / "tmp_checkpoints"
    if_ok = " (if every phase so far exited 0)"
    repeat = [
        f"# repeat_{{i}}_run_1 (MODEL_ARGS): load {tmp}, save {save}, "
        f"tensorboard {run}/{{i}}/tensorboard/run_1, log {run}/{{i}}/run_1/stdout.log",
        f"# then delete {save}/iter_0000010{if_ok}",
        f"# then write 5 to {save}/latest_checkpointed_iteration.txt{if_ok}",
        f"# repeat_{{i}}_run_2 (MODEL_ARGS_2){if_ok}: load {save}, save {save}, "
        f"tensorboard {run}/{{i}}/tensorboard/run_2, log {run}/{{i}}/run_2/stdout.log",
        f"# compare: TensorBoard {run}/{{i}}/tensorboard/run_1 (the oldest event file holding "
        "scalars, values rounded to 5 decimals) on the golden's steps (metrics it lacks: steps "
        "1..10, step 1 and every multiple of 1) against no golden yet (the values are the "
        "proposal); gated: lm loss, num-zeros",
        f"# compare: TensorBoard {run}/{{i}}/tensorboard/run_2 after step 5 against the first "
        "phase after step 5, same policies",
    ]
    assert [line for line in out if line.startswith("# ")][1:] == [
        "# --- repeat 1",
        *(line.format(i=1) for line in repeat),
        "# --- repeat 2",
        f"# then empty {save}",
        f"# then empty {tmp}",
        f"# then empty {run}/2/tensorboard",
        *(line.format(i=2) for line in repeat),
    ]
    commands = [line for line in out if line.startswith(sys.executable)]
    assert commands[0].endswith(
        f"--train-iters 10 --seed 7 --log-jsonl {run}/1/run_1/metrics.jsonl --exit-interval 10"
    )
    # MODEL_ARGS_2 in phase 2, without run_ci_test.sh's edits (they change MODEL_ARGS only)
    assert commands[1] == f"{sys.executable} {TRAINER} --train-iters 10 --no-load-optim"


def test_ckpt_resume_resumes_from_half_of_train_iters(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    # run_ci_test.sh points the tracker at TRAIN_ITERS/2 whatever was saved: with no checkpoint
    # there, phase 2 cannot load and the job fails, naming the phase
    case = demo_case("TEST_TYPE: ckpt-resume\n").replace(
        "--seed: 7\n",
        "--seed: 7\n  --save: ${CHECKPOINT_SAVE_PATH}\n  --load: ${CHECKPOINT_LOAD_PATH}\n",
    )
    root = project(tmp_path, {"demo/a": case})
    res = cli("run", "demo/a", "--environment", "dev", "--platform", "cpu", "--out", "o", cwd=root)
    assert res.returncode == 1
    result = json.loads((root / "o" / "result.json").read_text())
    save = root / "o" / "run" / "checkpoints"
    assert (result["verdict"], result["message"]) == (
        "error",
        "repeat_1_run_2 exited with code 1 (log: run/1/run_2/stdout.log); last line: no "
        f"checkpoint in {save}/iter_0000005 (tracker {save}/latest_checkpointed_iteration.txt "
        "says iteration 5)",
    )
    assert result["run"]["exit_codes"] == {"repeat_1_run_1": 0, "repeat_1_run_2": 1}


# --- secrets -----------------------------------------------------------------------------------

HF = "hf_abcdefghijklmnop"
WANDB = "wandb-0123456789abcdef"
DB_PASSWORD = "db-pa55word"
S3_KEY = "s3-key-0123"
LEAKY = """\
import os, sys
print("arguments:", " ".join(sys.argv[1:]))
value = sys.argv[sys.argv.index("--hf-token") + 1]
print("  hf_token ........................................ " + value)
print("database:", os.environ["DATABASE_URL"], "token:", os.environ["HF_TOKEN"])
print("wandb: ERROR api key " + sys.argv[sys.argv.index("--wandb-api-key") + 1] + " rejected")
sys.exit(1)
"""


def leaky_case(tmp_path: Path) -> tuple[Path, Path]:
    """A case whose MODEL_ARGS and ENV_VARS hold secrets, run by a script that prints them all,
    as Megatron-LM prints its arguments."""
    script = tmp_path / "leaky.py"
    script.write_text(LEAKY)
    root = project(
        tmp_path,
        {
            "demo/leaky": f"""\
        ENV_VARS:
          HF_TOKEN: {HF}
          DATABASE_URL: postgresql://ml:{DB_PASSWORD}@db.internal/runs
          TOKENIZERS_PARALLELISM: false
        MODEL_ARGS:
          --tokenizer-type: GPT2BPETokenizer
          --hf-token: {HF}
          --wandb-api-key: {WANDB}
          --data-path: s3://reader:{S3_KEY}@bucket/data
        CI_GOLDEN:
          platforms: [cpu]
          command: [python, {script}]
        """
        },
    )
    return root, script


def test_dry_run_hides_secrets_by_name_and_in_urls(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root, script = leaky_case(tmp_path)
    res = cli("run", "demo/leaky", "--environment", "dev", "--platform", "cpu", "--out", "o",
              "--dry-run", cwd=root)  # fmt: skip
    assert (res.returncode, res.stderr) == (0, "")
    run_dir = root / "o" / "run"
    pythonpath = os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))
    head = (
        "# demo/leaky (dev, cpu): TEST_TYPE regular, MODE pretraining, TEST_EVALUATION pass, "
        "1 repeat(s), TRAIN_ITERS 100, time limit 3600 s, output o\n# --- repeat 1\n"
        f"# repeat_1_run_1 (MODEL_ARGS): load {run_dir}/tmp_checkpoints, save {run_dir}/checkpoints"
        f", tensorboard {run_dir}/1/tensorboard, log {run_dir}/1/run_1/stdout.log\n"
    )
    compare = (
        f"# compare: TensorBoard {run_dir}/1/tensorboard (the oldest event file holding scalars, "
        "values rounded to 5 decimals) on the golden's steps (metrics it lacks: steps 1..100, "
        "step 1 and every multiple of 1) against no golden yet (the values are the proposal); "
        "gated: lm loss, num-zeros\n"
    )
    assert (
        res.stdout
        == head
        + textwrap.dedent(f"""\
        cd {root}
        export NCCL_PROTO=simple
        export NCCL_ALGO=Ring
        export NCCL_COLLNET_ENABLE=0
        export NCCL_NVLS_ENABLE=0
        export NCCL_TUNER_PLUGIN=''
        export NCCL_BUFFSIZE=4194304
        export TORCH_NCCL_AVOID_RECORD_STREAMS=1
        export DATA_CACHE_PATH={run_dir}/data-cache
        export OUTPUT_PATH={run_dir}/1/run_1
        export TENSORBOARD_PATH={run_dir}/1/tensorboard
        export CHECKPOINT_SAVE_PATH={run_dir}/checkpoints
        export CHECKPOINT_LOAD_PATH={run_dir}/tmp_checkpoints
        export INFERENCE_OUTPUT_PATH={run_dir}/1/run_1/golden_values_dev_cpu.json
        export REPEAT=1
        export RUN_NUMBER=1
        export HF_TOKEN='***'
        export DATABASE_URL='postgresql://ml:***@db.internal/runs'
        export TOKENIZERS_PARALLELISM=false
        export ENABLE_LIGHTWEIGHT_MODE=false
        export GPUS_PER_NODE=0
        export PYTHONPATH={pythonpath}
        {sys.executable} {script} --tokenizer-type GPT2BPETokenizer --hf-token '***' \
--wandb-api-key '***' --data-path 's3://reader:***@bucket/data'
        """)
        + compare
    )


def test_a_run_keeps_secrets_out_of_its_logs_results_and_errors(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root, script = leaky_case(tmp_path)
    res = cli("-v", "run", "demo/leaky", "--environment", "dev", "--platform", "cpu",
              "--out", "o", cwd=root)  # fmt: skip
    assert res.returncode == 1
    result_text = (root / "o" / "result.json").read_text()
    log = (root / "o" / "run" / "1" / "run_1" / "stdout.log").read_text()
    for text in (res.stdout, res.stderr, result_text, log):
        for secret in (HF, WANDB, DB_PASSWORD, S3_KEY):
            assert secret not in text
    assert log == (
        "arguments: --tokenizer-type GPT2BPETokenizer --hf-token *** --wandb-api-key ***"
        " --data-path s3://reader:***@bucket/data\n"
        "  hf_token ........................................ ***\n"
        "database: postgresql://ml:***@db.internal/runs token: ***\n"
        "wandb: ERROR api key *** rejected\n"
    )
    result = json.loads(result_text)
    assert result["run"]["commands"] == [
        [sys.executable, str(script), "--tokenizer-type", "GPT2BPETokenizer", "--hf-token", "***",
         "--wandb-api-key", "***", "--data-path", "s3://reader:***@bucket/data"]
    ]  # fmt: skip
    assert result["message"] == (
        "repeat_1_run_1 exited with code 1 (log: run/1/run_1/stdout.log);"
        " last line: wandb: ERROR api key *** rejected"
    )
    assert "[demo/leaky dev cpu repeat_1_run_1] wandb: ERROR api key *** rejected\n" in res.stdout
    report = cli("report", root / "o", "--format", "markdown", cwd=root)
    assert report.returncode == 1
    assert "wandb: ERROR api key &#42;&#42;&#42; rejected" in report.stdout
