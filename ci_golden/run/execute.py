"""Executing one job on this runner: check the machine, run every phase, collect, compare, write.

Output folder (documented in the README)::

    <out>/
      golden_values_<env>_<platform>.json    actual values, named like the golden they are
                                             compared with
      result.json                            the CaseResult
      run/phase1/{stdout.log, tensorboard/, metrics.jsonl}
      run/phase2/...                         second phase of a ckpt-resume run
      run/repeat-K/phase1/...                repeats 2..N
"""

from __future__ import annotations

import os
import platform as pyplatform
import re
import shutil
import time
import typing as t
from pathlib import Path

from ci_golden import __version__
from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import is_nondeterministic, resolve_policies
from ci_golden.compare.result import RESULT_FILE, write_result
from ci_golden.errors import ConfigError, InputError, RunnerError, UsageError
from ci_golden.goldens.discover import Job, TestCase, case_jobs
from ci_golden.goldens.model import GoldenValues, load_golden, write_golden
from ci_golden.project.config import Config
from ci_golden.run.collect import DEFAULT_METRICS, Collected, run_metrics, sample
from ci_golden.run.early import Watch
from ci_golden.run.launch import Phase, RunPlan, plan_run
from ci_golden.run.runner import Gpu, Sink, check_gpus, host_info, now, run_process
from ci_golden.run.spec import JobSpec

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult
    from ci_golden.run.follow import Status

_ITER_DIR = re.compile(r"iter_(\d+)\Z")
LATEST = "latest_checkpointed_iteration.txt"


def default_n_repeat(case: TestCase, config: Config) -> int:
    """Repeats of a case: CI_GOLDEN.n_repeat, else Megatron-LM's N_REPEAT, else the config's
    default.
    """
    n_repeat = case.model_config.get("N_REPEAT") if case.has_config else None
    if isinstance(n_repeat, bool) or not isinstance(n_repeat, int):
        n_repeat = None
    return case.settings.n_repeat or n_repeat or config.defaults.n_repeat


def spec_for(
    case: TestCase,
    job: Job,
    config: Config,
    out: Path,
    *,
    n_repeat: int | None = None,
    time_limit: int | None = None,
    nodes: int | None = None,
    gpus: int | None = None,
    fail_fast: bool | None = None,
) -> JobSpec:
    """The spec of one of the case's jobs: each setting as given (a matrix entry's, a flag's),
    else the case's ``CI_GOLDEN`` block, else the config's defaults and the platform's GPUs."""
    settings, defaults = case.settings, config.defaults
    follow = next(v for v in (fail_fast, settings.fail_fast, defaults.fail_fast) if v is not None)
    return JobSpec(
        case=case,
        environment=job.environment,
        platform=job.platform,
        golden=job.golden,
        out=out,
        n_repeat=n_repeat if n_repeat is not None else default_n_repeat(case, config),
        time_limit=_first(time_limit, settings.time_limit, defaults.time_limit),
        nodes=_first(nodes, settings.nodes, defaults.nodes),
        gpus=_first(gpus, config.platforms[job.platform].gpus_per_node),
        fail_fast=follow,
    )


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def case_job(case: TestCase, config: Config, environment: str, platform: str) -> Job:
    """The case's job in ``environment`` on ``platform``.

    :class:`ConfigError` when the config has no such environment or platform, or the environment
    does not run on the platform; :class:`UsageError` when the case has no such job.
    """
    where = config.source or "<built-in config>"
    config.check_names("environment", [environment], where)
    config.check_names("platform", [platform], where)
    platforms = config.environments[environment]
    if platform not in platforms:
        raise ConfigError(
            where,
            f"environment {environment!r} has no platform {platform!r} "
            f"(its platforms: {', '.join(platforms)})",
        )
    jobs = case_jobs(case, config)
    for job in jobs:
        if (job.environment, job.platform) == (environment, platform):
            return job
    have = ", ".join(f"[{j.environment}, {j.platform}]" for j in jobs) or "none"
    raise UsageError(
        f"case {case.id!r} has no job in environment {environment!r} on platform {platform!r} "
        f"(its jobs: {have}); "
        "a job needs a golden file or the platform in the case's CI_GOLDEN.platforms"
    )


def make_out(out: Path) -> None:
    """Create the job's output folder; :class:`InputError` naming it when that is not possible."""
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(str(out), f"cannot create the output folder: {e.strerror or e}") from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(str(out), "the output folder is not writable")


def plan(spec: JobSpec, config: Config) -> RunPlan:
    return plan_run(
        spec.case,
        spec.out,
        cwd=config.root.resolve(),
        n_repeat=spec.n_repeat,
        nodes=spec.nodes,
        gpus=spec.gpus,
        slurm=config.platform(spec.platform).slurm,
    )


def keep_midpoint(checkpoints: Path, train_iters: int | None) -> int:
    """Keep the saved iteration nearest the middle of the run, drop later ones, point ``latest``
    at it.

    Megatron-LM layout: ``iter_0000050/`` folders and ``latest_checkpointed_iteration.txt``.
    Returns the iteration phase 2 resumes from.
    """
    saved = sorted(
        int(m.group(1))
        for p in (checkpoints.iterdir() if checkpoints.is_dir() else ())
        if (m := _ITER_DIR.match(p.name))
    )
    final = train_iters or (saved[-1] if saved else 0)
    candidates = [s for s in saved if 0 < s < final]
    if not candidates:
        raise InputError(
            str(checkpoints),
            f"ckpt-resume needs a checkpoint before the last step {final} "
            f"(saved: {saved or 'none'}); "
            "set --save-interval to about half of --train-iters",
        )
    keep = min(candidates, key=lambda s: (abs(2 * s - final), s))
    for s in saved:
        if s > keep:
            shutil.rmtree(checkpoints / f"iter_{s:07d}")
    (checkpoints / LATEST).write_text(f"{keep}\n")
    return keep


def _values(
    collected: Collected,
    spec_golden: GoldenValues | None,
    metrics: t.Collection[str],
    iters: int | None,
) -> GoldenValues:
    intervals = {}
    if spec_golden is not None and spec_golden.layout == "current":
        intervals = {n: (s.start_step, s.step_interval) for n, s in spec_golden.metrics.items()}
    return sample(
        collected.series, metrics=metrics, start_step=1, step_interval=5,
        train_iters=iters or collected.train_iters, intervals=intervals,
    )  # fmt: skip


def execute(
    spec: JobSpec,
    config: Config,
    *,
    check_gpu: bool = True,
    sink: Sink | None = None,
    grace: float = 10.0,
    keep_checkpoints: bool = False,
    progress: t.Callable[[Status], None] | None = None,
) -> CaseResult:
    """Run the job and write ``result.json`` (and the actual values) into ``spec.out``.

    A wrong runner raises :class:`RunnerError` before anything runs, after writing an ``error``
    result saying what the runner has and what the job needs. A crash, a timeout or an
    unsupported TEST_TYPE gives a result with verdict ``error``. On KeyboardInterrupt the
    processes are stopped, an ``error`` result saying so is written, and the interrupt re-raised.
    Each phase is followed while it runs (``progress`` gets its status); with ``spec.fail_fast``
    a run whose verdict can no longer be pass is stopped there (:mod:`ci_golden.run.early`).
    """

    case = spec.case
    golden = load_golden(spec.golden) if spec.golden is not None else None
    policies, gated = resolve_policies(config, case)
    nondeterministic = is_nondeterministic(case.model_config)
    the_plan = plan(spec, config)
    platform = config.platform(spec.platform)
    make_out(spec.out)
    info: dict[str, t.Any] = {
        **host_info(),
        "start": now(),
        "test_type": the_plan.test_type,
        "n_repeat": spec.n_repeat,
        "time_limit": spec.time_limit,
        "python": pyplatform.python_version(),
        "ci_golden": __version__,
        "commands": [list(p.argv) for p in the_plan.phases],
        "exit_codes": {},
    }
    gpus: list[Gpu] = []
    if check_gpu and platform.gpu is not None:
        try:
            gpus = check_gpus(platform, spec.gpus or platform.gpus_per_node)
        except RunnerError as e:
            info["end"] = now()
            refused = compare_job(
                spec.job,
                golden,
                None,
                policies=policies,
                gated=gated,
                nondeterministic=nondeterministic,
                error=str(e),
                run_info=info,
                root=config.root,
            )
            write_result(spec.out / RESULT_FILE, refused)
            raise
    if gpus:
        info.update(
            gpu=gpus[0].name, gpus=len(gpus), gpu_memory=gpus[0].memory, driver=gpus[0].driver
        )
    error = the_plan.unsupported
    resume_step: int | None = None
    collected: dict[tuple[int, int], Collected] = {}
    deadline = time.monotonic() + spec.time_limit
    interrupted = False
    metrics = {
        *DEFAULT_METRICS,
        *gated,
        *(k for k in policies if "*" not in k),
        *(golden.metrics if golden else ()),
    }

    def to_values(c: Collected) -> GoldenValues:
        return _values(c, golden, metrics, the_plan.train_iters)

    kw = {"policies": policies, "gated": gated, "nondeterministic": nondeterministic}
    watch = Watch(spec, the_plan, golden, to_values, kw, metrics=metrics, progress=progress)
    try:
        error = error or _run_phases(the_plan, spec, deadline, grace, sink, info, collected, watch)
        if error is None and the_plan.test_type == "ckpt-resume":
            resume_step = info.get("resume_step")
    except KeyboardInterrupt:
        interrupted = True
        error = "cancelled: the run was interrupted and its processes stopped"
    finally:
        info["end"] = now()
    if watch.problems:
        info["fail_fast_problems"] = watch.problems
    values = {key: to_values(c) for key, c in collected.items()}
    written = values.get((1, 1))
    stopped = watch.stop is not None and error is None
    if stopped:
        values, written, through, last = watch.stopped_values(values, collected)
    actual = values.get((1, 1)) if error is None else None
    actual_path = None
    if actual is not None:
        if not actual.metrics:
            error, actual = "the run logged none of the compared metrics", None
        else:
            write_golden(spec.out / spec.actual_name, written or actual)
            actual_path = spec.actual_name
    result = compare_job(
        spec.job,
        golden,
        actual,
        policies=policies,
        gated=gated,
        nondeterministic=nondeterministic,
        resumed=values.get((1, 2)) if actual is not None else None,
        resume_step=resume_step,
        repeats=(
            [values[(k, 1)] for k in range(2, spec.n_repeat + 1) if (k, 1) in values]
            if actual
            else ()
        ),
        error=error,
        run_info=info,
        actual_path=actual_path,
        root=config.root,
    )
    if stopped and actual is not None:
        result = watch.stopped_result(result, through, last, deadline)
    write_result(spec.out / RESULT_FILE, result)
    if not keep_checkpoints:
        for p in the_plan.phases:
            shutil.rmtree(p.checkpoints, ignore_errors=True)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _run_phases(
    the_plan: RunPlan, spec: JobSpec, deadline: float, grace: float, sink: Sink | None,
    info: dict[str, t.Any], collected: dict[tuple[int, int], Collected], watch: Watch,
) -> str | None:  # fmt: skip
    """Run every phase in order, each followed by ``watch``; the error message of the first
    that failed, else None. A phase stopped at a certain failure ends the run."""
    for phase in the_plan.phases:
        if phase.number == 2:
            try:
                step = keep_midpoint(phase.checkpoints, the_plan.train_iters)
            except InputError as e:
                return f"cannot resume {phase.label}: {e.detail}"
            if phase.repeat == 1:
                info["resume_step"] = step
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"time limit of {spec.time_limit} s reached before {phase.label} started"
        phase.tensorboard.mkdir(parents=True, exist_ok=True)
        follower = watch.follower(phase, collected, info.get("resume_step"))
        with follower:
            done = run_process(
                phase.argv, env=_environment(phase), cwd=phase.cwd, log_path=phase.log,
                prefix=f"[{spec.case.id} {spec.environment} {spec.platform} {phase.label}] ",
                timeout=remaining, grace=grace, sink=sink, stop=follower.stop,
            )  # fmt: skip
        info["exit_codes"][phase.label] = done.exit_code
        collected[(phase.repeat, phase.number)] = run_metrics(
            phase.dir, phase.tensorboard, phase.log
        )
        if watch.ended(phase, follower, done.stopped, collected, info.get("resume_step")):
            return None
        log = phase.log.relative_to(spec.out.resolve()).as_posix()
        if done.timed_out:
            info["timed_out"] = phase.label
            return (
                f"{phase.label} stopped at the job's time limit of {spec.time_limit} s (log: {log})"
            )
        if done.exit_code != 0:
            return (
                f"{phase.label} exited with code {done.exit_code} (log: {log}){_last_line(phase)}"
            )
    return None


def _last_line(phase: Phase) -> str:
    try:
        lines = [ln for ln in phase.log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f"; last line: {lines[-1].strip()[:300]}" if lines else ""


def _environment(phase: Phase) -> dict[str, str]:
    return {**os.environ, **phase.env}
