"""`ci-golden run` through the slurm executor, on a real one-node Slurm cluster on 127.0.0.1
(tests/support/slurm_cluster.py; the tests skip where the machine cannot start it): the bundled
demo case passes, Slurm's time limit, SIGTERM, the queue timeout, the GPU check on the allocated
node, and a job sbatch refuses."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from support.slurm_cluster import Cluster, ClusterUnavailable, start_cluster

REPO = Path(__file__).resolve().parents[2]
GPUS = 2  # stand-in GPU devices on the test node


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Cluster]:
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"), gpus=GPUS)
    except ClusterUnavailable as e:
        pytest.skip(f"no local Slurm cluster: {e}")
    try:
        yield cluster
    finally:
        cluster.stop()


def project(tmp_path: Path, slurm_settings: str, cases: dict[str, str] | None = None) -> Path:
    """A project with the bundled demo cases and a `cpu` platform that submits to Slurm."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "test_cases" / "demo", root / "test_cases" / "demo")
    (root / "ci_golden.yaml").write_text(
        "test_cases: test_cases\n"
        "platforms:\n"
        "  cpu: {gpu: null, gpus_per_node: 0, opt_in: true, executor: slurm,\n"
        f"        slurm: {{partition: debug, poll_interval: 0.5, {slurm_settings}}}}}\n"
        f"  h100: {{gpu: H100, gpus_per_node: {GPUS}, executor: slurm,\n"
        "         slurm: {poll_interval: 0.5}}\n"
        "environments:\n  dev: {platforms: [cpu, h100]}\n"
    )
    for case_id, text in (cases or {}).items():
        (root / "test_cases" / case_id).mkdir(parents=True)
        (root / "test_cases" / case_id / "model_config.yaml").write_text(text)
    return root


SLEEPER = """\
import os, sys, time
from pathlib import Path
Path(sys.argv[1]).write_text(f"{os.getpid()} {os.environ.get('SLURM_JOB_ID', '')}")
print("started", flush=True)
time.sleep(600)
"""


def sleeper_case(tmp_path: Path, time_limit: int) -> str:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    return (
        "MODEL_ARGS: {}\nCI_GOLDEN:\n  platforms: [cpu]\n"
        f"  command: [python, {script}, {tmp_path / 'pid.txt'}]\n  time_limit: {time_limit}\n"
    )


def trainer_gone(tmp_path: Path, job: str) -> bool:
    """The sleeper ran inside the Slurm job and no longer runs."""
    pid, job_in_trainer = (tmp_path / "pid.txt").read_text().split()
    assert job_in_trainer == job
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def run_args(case: str, platform: str = "cpu") -> list[str]:
    return ["run", case, "--environment", "dev", "--platform", platform, "--out", "o"]


def submitted_job(stderr: str) -> str:
    match = re.search(r"^ci-golden run: submitted Slurm job (\d+) \(output: ", stderr, re.M)
    assert match, stderr
    return match.group(1)


def stable_lines(stderr: str, job: str) -> list[str]:
    """stderr without the states a job may or may not be seen in between two polls."""
    passing = (
        f"ci-golden run: Slurm job {job} is PENDING",
        f"ci-golden run: Slurm job {job} is COMPLETING",
    )
    return [line for line in stderr.splitlines() if line not in passing]


def active_jobs(slurm: Cluster) -> str:
    return slurm.run(["squeue", "-h", "-o", "%A %T"]).stdout


def result_of(root: Path) -> dict[str, t.Any]:
    data: dict[str, t.Any] = json.loads((root / "o" / "result.json").read_text())
    return data


def test_demo_case_runs_through_slurm_and_passes(
    slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = project(tmp_path, "queue_timeout: 60")
    res = cli(*run_args("demo/regular"), cwd=root, env=slurm.env)
    assert res.returncode == 0, res.stderr
    job = submitted_job(res.stderr)
    assert stable_lines(res.stderr, job) == [
        f"ci-golden run: submitted Slurm job {job} (output: slurm/slurm-{job}.out)",
        f"ci-golden run: Slurm job {job} is RUNNING on {slurm.node_name}",
        f"ci-golden run: Slurm job {job} is COMPLETED",
        "ci-golden run: demo/regular [dev, cpu]: pass",
        "ci-golden run: result written to o/result.json",
    ]
    # the job's output, streamed live with the usual prefix, and the run's own summary there;
    # then the per-metric table, once more on this side
    lines = res.stdout.splitlines()
    assert "ci-golden run: demo/regular [dev, cpu]: pass" in lines
    assert f"ci-golden run: result written to {root / 'o' / 'result.json'}" in lines
    trained = [line for line in lines if line.startswith("[")]
    assert len(trained) > 50
    assert all(line.startswith("[demo/regular dev cpu repeat_1_run_1] ") for line in trained)
    table = len(lines) - 1 - lines[::-1].index("demo/regular [dev, cpu]: PASS")
    assert lines[table + 1 :] and all(line.startswith("  ") for line in lines[table + 1 :])
    result = result_of(root)
    assert (result["verdict"], result["message"]) == ("pass", None)
    assert result["run"]["host"] == slurm.node_name
    slurm_run = result["run"]["slurm"]
    assert slurm_run.pop("sbatch")[-1] == str(root / "o" / "slurm" / "job.sh")
    assert slurm_run == {
        "job": job,
        "state": "COMPLETED",
        "reason": "None",
        "nodes": slurm.node_name,
        "exit_code": "0:0",
        "output": f"slurm/slurm-{job}.out",
    }
    # the trainer started through srun inside the allocation
    assert result["run"]["commands"][0][:5] == [
        "srun", "--nodes=1", "--ntasks-per-node=1", "--kill-on-bad-exit=1", sys.executable
    ]  # fmt: skip
    assert active_jobs(slurm) == ""


def test_time_limit_kills_the_job_and_says_why(
    slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = project(tmp_path, "queue_timeout: 60", {"demo/sleeper": sleeper_case(tmp_path, 60)})
    res = cli(*run_args("demo/sleeper"), cwd=root, env=slurm.env, timeout=300)
    assert res.returncode == 1, res.stderr
    job = submitted_job(res.stderr)
    message = (
        f"Slurm ended job {job} with TIMEOUT: its time limit of 1 min was reached "
        f"(reason: TimeLimit); log: slurm/slurm-{job}.out"
    )
    assert res.stderr.splitlines()[-2:] == [
        f"ci-golden run: demo/sleeper [dev, cpu]: error: {message}",
        "ci-golden run: result written to o/result.json",
    ]
    assert "[demo/sleeper dev cpu repeat_1_run_1] started\n" in res.stdout
    assert re.search(
        rf"\*\*\* JOB {job} ON \S+ CANCELLED AT \S+ DUE TO TIME LIMIT \*\*\*", res.stdout
    )
    result = result_of(root)
    assert (result["verdict"], result["message"], result["actual"]) == ("error", message, None)
    assert (result["run"]["slurm"]["state"], result["run"]["slurm"]["reason"]) == (
        "TIMEOUT",
        "TimeLimit",
    )
    assert trainer_gone(tmp_path, job)
    assert active_jobs(slurm) == ""


def test_sigterm_cancels_the_slurm_job(slurm: Cluster, tmp_path: Path) -> None:
    root = project(tmp_path, "queue_timeout: 60", {"demo/sleeper": sleeper_case(tmp_path, 600)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_golden", *run_args("demo/sleeper")],
        cwd=root, env={**os.environ, **slurm.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the trainer's first line, streamed from the job's output
    assert line == "[demo/sleeper dev cpu repeat_1_run_1] started\n"
    # the output is streamed apart from squeue's polls: signal once a poll has seen it running
    assert proc.stderr is not None
    before = []
    while not before or " is RUNNING on " not in before[-1]:
        before.append(proc.stderr.readline())
        assert before[-1], "".join(before)
    proc.send_signal(signal.SIGTERM)
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(before) + rest
    job = submitted_job(stderr)
    assert proc.returncode == 130, stderr
    assert stable_lines(stderr, job) == [
        f"ci-golden run: submitted Slurm job {job} (output: slurm/slurm-{job}.out)",
        f"ci-golden run: Slurm job {job} is RUNNING on {slurm.node_name}",
        f"ci-golden run: cancelled Slurm job {job} (scancel)",
        f"ci-golden run: Slurm job {job} is CANCELLED",
        "ci-golden run: interrupted",
    ]
    assert re.search(rf"\*\*\* JOB {job} ON \S+ CANCELLED AT \S+ \*\*\*", stdout)
    assert active_jobs(slurm) == ""
    assert trainer_gone(tmp_path, job)
    state = slurm.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"]).stdout.strip()
    assert state == "CANCELLED"
    result = result_of(root)
    assert (result["verdict"], result["message"]) == (
        "error",
        f"cancelled: the run was interrupted and Slurm job {job} cancelled (scancel)",
    )
    assert result["run"]["slurm"]["state"] == "CANCELLED"


def test_pending_past_the_queue_timeout_is_cancelled(
    slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = project(tmp_path, "queue_timeout: 2, extra: [--hold]")
    res = cli(*run_args("demo/regular"), cwd=root, env=slurm.env)
    assert res.returncode == 1, res.stderr
    job = submitted_job(res.stderr)
    message = (
        f"not run: Slurm job {job} was still pending after the queue timeout of 2 s "
        "(reason: JobHeldUser); cancelled it (scancel)"
    )
    assert res.stderr.splitlines() == [
        f"ci-golden run: submitted Slurm job {job} (output: slurm/slurm-{job}.out)",
        f"ci-golden run: Slurm job {job} is PENDING (JobHeldUser)",
        f"ci-golden run: Slurm job {job} is CANCELLED (JobHeldUser)",
        f"ci-golden run: demo/regular [dev, cpu]: error: {message}",
        "ci-golden run: result written to o/result.json",
    ]
    assert res.stdout == f"demo/regular [dev, cpu]: ERROR\n  {message}\n"
    result = result_of(root)
    assert (result["verdict"], result["message"]) == ("error", message)
    assert active_jobs(slurm) == ""


def test_gpu_check_runs_on_the_allocated_node(
    slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = project(
        tmp_path,
        "queue_timeout: 60",
        {
            "demo/gpu": "MODEL_ARGS: {}\n"
            "CI_GOLDEN: {platforms: [h100], command: [python, -c, pass]}\n"
        },
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(
        f'#!/bin/sh\necho "$SLURM_JOB_ID $CUDA_VISIBLE_DEVICES" > {tmp_path / "where.txt"}\n'
        + "echo 'NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05'\n" * GPUS
    )
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {**slurm.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    res = cli(*run_args("demo/gpu", "h100"), cwd=root, env=env)
    message = (
        f"this runner has {GPUS} x NVIDIA A100-SXM4-80GB (driver 535.104.05); this job needs "
        f"{GPUS} x H100 GPUs (platform h100); run it on a matching runner, or pass --skip-gpu-check"
    )
    assert (res.returncode, res.stderr.splitlines()[-1]) == (2, f"ci-golden run: error: {message}")
    job = submitted_job(res.stderr)
    # nvidia-smi ran inside the job, which Slurm gave the GPUs the platform asks for
    assert (tmp_path / "where.txt").read_text() == f"{job} 0,1\n"
    result = result_of(root)
    assert (result["verdict"], result["message"]) == ("error", message)
    assert result["run"]["slurm"]["exit_code"] == "2:0"
    assert f"--gpus-per-node={GPUS}" in result["run"]["slurm"]["sbatch"]


def test_a_job_sbatch_refuses(slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = project(tmp_path, "queue_timeout: 60, extra: [--partition=nosuch]")
    res = cli(*run_args("demo/regular"), cwd=root, env=slurm.env)
    message = (
        "sbatch refused the job: "
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    assert (res.returncode, res.stdout, res.stderr) == (2, "", f"ci-golden run: error: {message}\n")
    result = result_of(root)
    assert (result["verdict"], result["message"]) == ("error", message)


def test_a_job_that_ends_without_a_result(
    slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    # a Python that cannot start on the node: the job fails before ci-golden runs there
    root = project(tmp_path, "queue_timeout: 60, extra: ['--export=ALL,PYTHONHOME=/nonexistent']")
    res = cli(*run_args("demo/regular"), cwd=root, env=slurm.env)
    job = submitted_job(res.stderr)
    prefix = (
        f"Slurm job {job} ended FAILED (exit code 1:0) without writing result.json; "
        f"last line of slurm/slurm-{job}.out: "
    )
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1].startswith(f"ci-golden run: error: {prefix}")
    assert "Fatal Python error" in res.stdout
    result = result_of(root)
    assert result["verdict"] == "error" and result["message"].startswith(prefix)
    assert result["run"]["slurm"]["state"] == "FAILED"


def test_squeue_failing_for_a_while_is_retried(
    slurm: Cluster, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    # slurmctld unreachable for the first two polls: an outage, not a job that ended
    squeue = shutil.which("squeue")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(
        f"#!/bin/sh\necho x >> {tmp_path / 'calls'}\n"
        f'if [ "$(wc -l < {tmp_path / "calls"})" -le 2 ]; then\n'
        "  echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2\n"
        f'  exit 1\nfi\nexec {squeue} "$@"\n'
    )
    (bin_dir / "squeue").chmod(0o755)
    root = project(tmp_path, "queue_timeout: 60")
    env = {**slurm.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    res = cli(*run_args("demo/regular"), cwd=root, env=env)
    assert res.returncode == 0, res.stderr
    job = submitted_job(res.stderr)
    retried, seen = stable_lines(res.stderr, job)[1:3]
    assert retried == (
        "ci-golden run: squeue failed: slurm_load_jobs error: Unable to contact slurm controller"
        " (connect failure); retrying"
    )
    # the short demo job may end while squeue is down: the next poll sees it running or done
    assert seen in (
        f"ci-golden run: Slurm job {job} is RUNNING on {slurm.node_name}",
        f"ci-golden run: Slurm job {job} is COMPLETED",
    )
    assert result_of(root)["verdict"] == "pass"


# --- no cluster needed ------------------------------------------------------------------------

PYXIS_CONFIG = """\
test_cases: cases
platforms:
  dgx_h100:
    gpu: H100
    gpus_per_node: 8
    executor: slurm
    slurm:
      partition: batch
      account: llm
      qos: normal
      extra: [--exclusive]
      container_image: nvcr.io/nvidia/pytorch:24.05-py3
      container_mounts: [/data:/data:ro]
environments:
  dev: {platforms: [dgx_h100]}
"""


def test_dry_run_prints_the_sbatch_and_srun_commands(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = tmp_path / "proj"
    (root / "cases" / "gpt" / "case").mkdir(parents=True)
    (root / "ci_golden.yaml").write_text(PYXIS_CONFIG)
    (root / "cases" / "gpt" / "case" / "model_config.yaml").write_text(
        "MODEL_ARGS: {--train-iters: 4}\n"
        "CI_GOLDEN: {nodes: 2, script: train.py, platforms: [dgx_h100], time_limit: 1790}\n"
    )
    res = cli(*run_args("gpt/case", "dgx_h100"), "--dry-run", cwd=root, env={"MASTER_PORT": "6000"})
    assert (res.returncode, res.stderr) == (0, "")
    out, run_dir = root / "o", root / "o" / "run"
    entry = (
        '{"case":"gpt/case","environment":"dev","platform":"dgx_h100","n_repeat":1,'
        '"time_limit":2100,"nodes":2,"gpus":8}'
    )
    pythonpath = os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))
    assert res.stdout == (
        "# gpt/case (dev, dgx_h100): submitted to Slurm, time limit 30 min\n"
        "sbatch --parsable --job-name=ci-golden:gpt__case__dev__dgx_h100 --nodes=2"
        f" --ntasks-per-node=1 --gpus-per-node=8 --time=30 --output={out}/slurm/slurm-%j.out"
        f" --chdir={root} --no-requeue --partition=batch --account=llm --qos=normal --exclusive"
        f" {out}/slurm/job.sh\n"
        f"# {out}/slurm/job.sh:\n"
        "#   #!/bin/bash\n"
        "#   # ci-golden: runs the job on the first node of the allocation\n"
        '#   MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"\n'
        "#   export MASTER_ADDR\n"
        '#   if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then'
        ' export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"; fi\n'
        f"#   exec {sys.executable} -m ci_golden --test-cases {root}/cases"
        f" --config {root}/ci_golden.yaml run --job '{entry}' --out {out} --executor local"
        " --grace 10\n"
        "# on the first node of the allocation:\n"
        "# gpt/case (dev, dgx_h100): TEST_TYPE regular, MODE pretraining, TEST_EVALUATION pass, "
        "1 repeat(s), TRAIN_ITERS 4, time limit 1790 s, output o\n"
        "# --- repeat 1\n"
        f"# repeat_1_run_1 (MODEL_ARGS): load {run_dir}/tmp_checkpoints, save {run_dir}/checkpoints"
        f", tensorboard {run_dir}/1/tensorboard, log {run_dir}/1/run_1/stdout.log\n"
        f"cd {root}\n"
        "export NCCL_PROTO=simple\n"
        "export NCCL_ALGO=Ring\n"
        "export NCCL_COLLNET_ENABLE=0\n"
        "export NCCL_NVLS_ENABLE=0\n"
        "export NCCL_TUNER_PLUGIN=''\n"
        "export NCCL_BUFFSIZE=4194304\n"
        "export TORCH_NCCL_AVOID_RECORD_STREAMS=1\n"
        f"export DATA_CACHE_PATH={run_dir}/data-cache\n"
        f"export OUTPUT_PATH={run_dir}/1/run_1\n"
        f"export TENSORBOARD_PATH={run_dir}/1/tensorboard\n"
        f"export CHECKPOINT_SAVE_PATH={run_dir}/checkpoints\n"
        f"export CHECKPOINT_LOAD_PATH={run_dir}/tmp_checkpoints\n"
        f"export INFERENCE_OUTPUT_PATH={run_dir}/1/run_1/golden_values_dev_dgx_h100.json\n"
        "export REPEAT=1\n"
        "export RUN_NUMBER=1\n"
        "export ENABLE_LIGHTWEIGHT_MODE=false\n"
        "export GPUS_PER_NODE=8\n"
        f"export PYTHONPATH={pythonpath}\n"
        "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1"
        " --container-image=nvcr.io/nvidia/pytorch:24.05-py3"
        f" --container-mounts={root}:{root},/data:/data:ro --container-workdir={root}"
        " torchrun --nproc_per_node 8 --nnodes 2 --rdzv_backend c10d"
        " --rdzv_endpoint '$MASTER_ADDR:6000' train.py --train-iters 4 --exit-interval 4\n"
        f"# compare: TensorBoard {run_dir}/1/tensorboard (the oldest event file holding scalars, "
        "values rounded to 5 decimals) on the golden's steps (metrics it lacks: steps 1..4, step 1 "
        "and every multiple of 1) against no golden yet (the values are the proposal); gated: lm "
        "loss, num-zeros\n"
    )
    assert sorted(p.name for p in root.iterdir()) == ["cases", "ci_golden.yaml"]  # nothing written
    # --executor local runs the same job on this machine, through srun as on the node
    res = cli(*run_args("gpt/case", "dgx_h100"), "--dry-run", "--executor", "local", cwd=root,
              env={"MASTER_ADDR": "node-a"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == (
        "# gpt/case (dev, dgx_h100): TEST_TYPE regular, MODE pretraining, TEST_EVALUATION pass, "
        "1 repeat(s), TRAIN_ITERS 4, time limit 1790 s, output o"
    )
    assert "--rdzv_endpoint node-a:29500 train.py" in res.stdout.splitlines()[-2]
