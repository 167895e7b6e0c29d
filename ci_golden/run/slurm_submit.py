"""What a Slurm job of ci-golden is: the sbatch command and the job script (pure: nothing is run
or written here), and the plan the script runs on the first node of the allocation.

The script runs ``ci-golden run --executor local`` for the job on that node, with
``MASTER_ADDR`` set to it for multi-node cases; Slurm gets the case's time limit, rounded up to
whole minutes, and the run on the node its own limit :data:`BACKSTOP_S` later.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.plan.select import job_id as make_job_id
from ci_golden.project.config import SlurmSettings
from ci_golden.run.dryrun import render_plan
from ci_golden.run.execute import plan
from ci_golden.run.phases import RunPlan

if t.TYPE_CHECKING:
    from ci_golden.project.config import Config
    from ci_golden.run.executor import RunOptions
    from ci_golden.run.spec import JobSpec

BACKSTOP_S = 300
MASTER_ADDR_NOTE = "$MASTER_ADDR"  # set by the job script to the allocation's first node


@dataclass(frozen=True)
class Submission:
    """What is submitted: the sbatch command (the job script's path last) and the script."""

    sbatch: tuple[str, ...]
    script: str
    script_path: Path
    minutes: int  # Slurm's time limit

    def output(self, job: str) -> Path:
        return self.script_path.parent / f"slurm-{job}.out"


def submission(
    spec: JobSpec, config: Config, options: RunOptions, *, cwd: Path, python: str = sys.executable
) -> Submission:
    """The sbatch command and job script of the job (pure: nothing is written)."""
    slurm = config.platform(spec.platform).slurm or SlurmSettings()
    out = spec.out.resolve()
    folder = out / "slurm"
    minutes = max(1, math.ceil(spec.time_limit / 60))
    entry = {
        "case": spec.case.id, "environment": spec.environment, "platform": spec.platform,
        "n_repeat": spec.n_repeat, "time_limit": minutes * 60 + BACKSTOP_S,
        "nodes": spec.nodes, "gpus": spec.gpus,
    }  # fmt: skip
    inner = [python, "-m", "ci_golden", "--test-cases", str(config.test_cases.resolve())]
    if config.source:
        inner += ["--config", str(Path(config.source).resolve())]
    inner += ["run", "--job", json.dumps(entry, separators=(",", ":")), "--out", str(out),
              "--executor", "local", "--grace", f"{options.grace:g}"]  # fmt: skip
    if not options.check_gpu:
        inner.append("--skip-gpu-check")
    if options.keep_checkpoints:
        inner.append("--keep-checkpoints")
    lines = ["#!/bin/bash", "# ci-golden: runs the job on the first node of the allocation"]
    if spec.nodes > 1:
        lines += ['MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
                  "export MASTER_ADDR"]  # fmt: skip
    # srun 22.05 and later no longer take --cpus-per-task from the job
    lines.append(
        'if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then '
        'export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"; fi'
    )
    lines.append(f"exec {shlex.join(inner)}")
    sbatch = [
        "sbatch", "--parsable",
        f"--job-name=ci-golden:{make_job_id(spec.case.id, spec.environment, spec.platform)}",
        f"--nodes={spec.nodes}", "--ntasks-per-node=1",
    ]  # fmt: skip
    if spec.gpus > 0:
        sbatch.append(f"--gpus-per-node={spec.gpus}")
    sbatch += [f"--time={minutes}", f"--output={folder}/slurm-%j.out", f"--chdir={cwd}",
               "--no-requeue"]  # fmt: skip
    for flag, value in (
        ("partition", slurm.partition), ("account", slurm.account), ("qos", slurm.qos)
    ):  # fmt: skip
        if value:
            sbatch.append(f"--{flag}={value}")
    sbatch += [*slurm.extra, str(folder / "job.sh")]
    return Submission(tuple(sbatch), "\n".join(lines) + "\n", folder / "job.sh", minutes)


def node_plan(spec: JobSpec, config: Config) -> RunPlan:
    """The plan the job runs on its first node; ``MASTER_ADDR`` is only known there."""
    environ = dict(os.environ)
    if spec.nodes > 1:
        environ["MASTER_ADDR"] = MASTER_ADDR_NOTE
    return plan(spec, config, environ)


def render_submission(spec: JobSpec, config: Config, sub: Submission) -> str:
    """``--dry-run``: the sbatch command, the job script, and what the script runs on the node."""
    return (
        f"# {spec.case.id} ({spec.environment}, {spec.platform}): submitted to Slurm, "
        f"time limit {sub.minutes} min\n{shlex.join(sub.sbatch)}\n# {sub.script_path}:\n"
        + "".join(f"#   {line}\n" for line in sub.script.splitlines())
        + "# on the first node of the allocation:\n"
        + render_plan(spec, node_plan(spec, config), config)
    )
