"""Where a job runs: on this runner (``local``) or submitted to a Slurm cluster (``slurm``).

Both executors take the same job and options and give the same result.json; a platform's
``executor`` in the project config picks one, ``ci-golden run --executor`` overrides it.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import is_nondeterministic, resolve_policies
from ci_golden.goldens.model import load_golden
from ci_golden.run.dryrun import render_plan
from ci_golden.run.execute import execute, plan

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult
    from ci_golden.project.config import Config
    from ci_golden.project.config import Executor as ExecutorName
    from ci_golden.run.runner import Sink
    from ci_golden.run.spec import JobSpec

EXECUTORS: tuple[ExecutorName, ...] = ("local", "slurm")


@dataclass(frozen=True)
class RunOptions:
    """How ``ci-golden run`` runs a job, whichever executor runs it."""

    check_gpu: bool = True
    grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    keep_checkpoints: bool = False


class Executor(t.Protocol):
    def run(
        self, spec: JobSpec, config: Config, options: RunOptions, sink: Sink | None
    ) -> CaseResult:
        """Run the job, write its result.json and return it (see :func:`execute`)."""

    def render(self, spec: JobSpec, config: Config, options: RunOptions) -> str:
        """What :meth:`run` would do, as shell lines (``--dry-run``)."""


class LocalExecutor:
    """The job's processes run on this machine."""

    def run(
        self, spec: JobSpec, config: Config, options: RunOptions, sink: Sink | None
    ) -> CaseResult:
        return execute(
            spec, config, check_gpu=options.check_gpu, sink=sink, grace=options.grace,
            keep_checkpoints=options.keep_checkpoints,
        )  # fmt: skip

    def render(self, spec: JobSpec, config: Config, options: RunOptions) -> str:
        return render_plan(spec, plan(spec, config), config)


def executor_for(
    spec: JobSpec,
    config: Config,
    override: ExecutorName | None = None,
    *,
    notify: Sink | None = None,
) -> Executor:
    """The executor of the job's platform (or ``override``); ``notify`` gets the Slurm
    executor's status lines (submitted, running, cancelled)."""
    platform = config.platform(spec.platform)
    if (override or platform.executor) == "local":
        return LocalExecutor()
    from ci_golden.run.slurm import SlurmExecutor

    return SlurmExecutor(platform, notify=notify)


def error_result(
    spec: JobSpec, config: Config, message: str, run_info: dict[str, t.Any]
) -> CaseResult:
    """An ``error`` result of the job that says ``message``: the run gave nothing to compare."""
    golden = load_golden(spec.golden) if spec.golden is not None else None
    policies, gated = resolve_policies(config, spec.case)
    return compare_job(
        spec.job,
        golden,
        None,
        policies=policies,
        gated=gated,
        nondeterministic=is_nondeterministic(spec.case.model_config),
        error=message,
        run_info=run_info,
        root=config.root,
    )
