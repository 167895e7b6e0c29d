"""Executing one job on this runner: check the machine, walk the run plan, collect, compare, write.

Output folder (documented in the README)::

    <out>/
      golden_values_<env>_<platform>.json    actual values of repeat 1, named like the golden
      result.json                            the CaseResult, written whatever happened
      run/<i>/...                            repeat i: TensorBoard folders, phase logs, and its
                                             actual values (see phases.py)
"""

from __future__ import annotations

import contextlib
import os
import platform as pyplatform
import shutil
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden import __version__
from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import is_nondeterministic, resolve_policies
from ci_golden.compare.result import RESULT_FILE, CaseResult, write_result
from ci_golden.errors import CiGoldenError, ConfigError, InputError, RunnerError, UsageError
from ci_golden.goldens.discover import Job, TestCase, case_jobs
from ci_golden.goldens.model import GoldenValues, load_golden, parse_golden, read_json, write_golden
from ci_golden.project.config import Config
from ci_golden.project.redact import Redactor, redact_argv
from ci_golden.run.collect import DEFAULT_METRICS, Collected, on_golden_grid, run_metrics
from ci_golden.run.early import Watch
from ci_golden.run.phases import (
    CheckpointEdit,
    Evaluation,
    Phase,
    PlanInputs,
    RepeatPlan,
    RunPlan,
    plan_run,
    redactor_for,
    repeat_dir,
)
from ci_golden.run.runner import Gpu, Sink, check_gpus, host_info, now, run_process
from ci_golden.run.spec import JobSpec

if t.TYPE_CHECKING:
    from ci_golden.run.follow import Status


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
    else the job's entry in ``CI_GOLDEN.jobs``, else the case's ``CI_GOLDEN`` block, else the
    config's defaults and the platform's GPUs. (A config's ``ENV_VARS.N_REPEAT`` wins over all of
    them when the plan is made, as in Megatron-LM.)"""
    settings, defaults = case.settings, config.defaults
    listed = settings.listed(job.environment, job.platform)
    follow = next(v for v in (fail_fast, settings.fail_fast, defaults.fail_fast) if v is not None)
    return JobSpec(
        case=case,
        environment=job.environment,
        platform=job.platform,
        golden=job.golden,
        out=out,
        n_repeat=_first(n_repeat, settings.n_repeat, defaults.n_repeat),
        time_limit=_first(time_limit, settings.time_limit, defaults.time_limit),
        nodes=_first(nodes, listed.nodes if listed else None, settings.nodes, defaults.nodes),
        gpus=_first(
            gpus, listed.gpus if listed else None, config.platforms[job.platform].gpus_per_node
        ),
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
    needs = (
        "the case's CI_GOLDEN.jobs lists its jobs"
        if case.settings.jobs
        else "a job needs a golden file or the platform in the case's CI_GOLDEN.platforms"
    )
    raise UsageError(
        f"case {case.id!r} has no job in environment {environment!r} on platform {platform!r} "
        f"(its jobs: {have}); {needs}"
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


def plan(spec: JobSpec, config: Config, environ: t.Mapping[str, str] | None = None) -> RunPlan:
    return plan_run(
        spec.case,
        PlanInputs(
            out=spec.out, cwd=config.root.resolve(), actual_name=spec.actual_name,
            n_repeat=spec.n_repeat, nodes=spec.nodes, gpus=spec.gpus,
            time_limit=spec.time_limit, frozen_checkpoints=config.frozen_checkpoints,
            slurm=config.platform(spec.platform).slurm,
            environ=dict(os.environ if environ is None else environ),
        ),
    )  # fmt: skip


def apply_edit(edit: CheckpointEdit) -> None:
    """Carry out one of run_ci_test.sh's checkpoint edits."""
    if edit.action == "remove":
        shutil.rmtree(edit.path, ignore_errors=True)
    elif edit.action == "clear":
        for child in edit.path.iterdir() if edit.path.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    else:
        edit.path.parent.mkdir(parents=True, exist_ok=True)
        edit.path.write_text(f"{edit.iteration}\n")


@dataclass
class RepeatRun:
    """What one repeat's phases did: the training exit code (run_ci_test.sh's
    TRAINING_EXIT_CODE), the first failure's message, and whether the time limit hit."""

    exit_code: int = 0
    failure: str | None = None
    timed_out: bool = False
    ran: list[Phase] = field(default_factory=list)
    stopped: bool = False  # fail-fast stopped a phase: its verdict could no longer be pass


@dataclass(frozen=True)
class Context:
    spec: JobSpec
    deadline: float
    grace: float
    sink: Sink | None
    info: dict[str, t.Any]
    redact: Redactor = field(default_factory=Redactor)  # the logs, results and errors go through it
    watch: Watch | None = None  # follows each phase (progress, fail-fast)
    golden: GoldenValues | None = None  # the job's golden, None before its first refresh
    metrics: t.Collection[str] = ()  # the metrics collected from each phase


def _run_repeat(rp: RepeatPlan, ctx: Context) -> RepeatRun:
    done = RepeatRun()
    for step in rp.steps:
        if step.when == "ok" and done.exit_code != 0:
            continue
        if isinstance(step, CheckpointEdit):
            apply_edit(step)
            continue
        remaining = ctx.deadline - time.monotonic()
        if remaining <= 0:
            done.exit_code, done.timed_out = 1, True
            done.failure = done.failure or (
                f"time limit of {ctx.spec.time_limit} s reached before {step.label} started"
            )
            continue
        step.tensorboard.mkdir(parents=True, exist_ok=True)
        step.save.mkdir(parents=True, exist_ok=True)
        step.load.mkdir(parents=True, exist_ok=True)
        first = _first_values(rp, step, ctx)
        follower = ctx.watch.follower(step, rp, first) if ctx.watch else None
        with follower or contextlib.nullcontext():
            result = run_process(
                step.argv, env={**os.environ, **step.env}, cwd=step.cwd, log_path=step.log,
                prefix=f"[{ctx.spec.case.id} {ctx.spec.environment} {ctx.spec.platform} "
                f"{step.name}] ",
                timeout=remaining, grace=ctx.grace, sink=ctx.sink, redact=ctx.redact,
                stop=follower.stop if follower else None,
            )  # fmt: skip
        done.ran.append(step)
        ctx.info["exit_codes"][step.name] = result.exit_code
        if ctx.watch and follower and ctx.watch.ended(step, rp, follower, result.stopped, first):
            done.stopped = True
            break
        log = _relative(step.log, ctx.spec.out)
        if result.timed_out:
            ctx.info["timed_out"] = step.name
            done.exit_code, done.timed_out = 1, True
            done.failure = done.failure or (
                f"{step.label} stopped at the job's time limit of {ctx.spec.time_limit} s "
                f"(log: {log})"
            )
        elif result.exit_code != 0:
            done.exit_code = 1
            done.failure = done.failure or (
                f"{step.label} exited with code {result.exit_code} (log: {log}){_last_line(step)}"
            )
    return done


def _first_values(rp: RepeatPlan, phase: Phase, ctx: Context) -> GoldenValues | None:
    """Repeat 1's values, when ``phase`` is its resumed phase (compared with them)."""
    ev = rp.evaluation
    if rp.number != 1 or ev.second is None or phase.tensorboard != ev.second:
        return None
    return _phase_values(rp, ev.first, ctx.golden, ctx.metrics)


def _relative(path: Path, out: Path) -> str:
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _last_line(phase: Phase) -> str:
    try:
        lines = [ln for ln in phase.log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f"; last line: {lines[-1].strip()[:300]}" if lines else ""


@dataclass(frozen=True)
class Values:
    """One repeat's values: of its first phase, and of its resumed phase (if any)."""

    first: GoldenValues | None
    second: GoldenValues | None = None


def _phase_of(rp: RepeatPlan, tensorboard: Path | None) -> Phase | None:
    return next(
        (s for s in rp.steps if isinstance(s, Phase) and s.tensorboard == tensorboard), None
    )


def _collect(rp: RepeatPlan, golden: GoldenValues | None, metrics: t.Collection[str]) -> Values:
    ev = rp.evaluation
    if ev.kind == "inference":
        if ev.first is None or not ev.first.is_file():
            return Values(None)
        return Values(parse_golden(read_json(ev.first), ev.first))

    return Values(
        _phase_values(rp, ev.first, golden, metrics), _phase_values(rp, ev.second, golden, metrics)
    )


def _phase_values(
    rp: RepeatPlan, tb: Path | None, golden: GoldenValues | None, metrics: t.Collection[str]
) -> GoldenValues | None:
    """The values of the phase writing TensorBoard folder ``tb``, on the golden's grid."""
    phase = _phase_of(rp, tb)
    if phase is None or tb is None:
        return None
    ev = rp.evaluation
    collected = run_metrics(phase.dir, tb, phase.log, merge_all=ev.merge_all)
    if not collected.series:
        return None
    return _grid(collected, ev, golden, metrics)


def _grid(
    collected: Collected, ev: Evaluation, golden: GoldenValues | None, metrics: t.Collection[str]
) -> GoldenValues:
    return on_golden_grid(
        collected.series, golden, metrics=metrics, step_size=ev.step_size,
        train_iters=ev.train_iters,
    )  # fmt: skip


def _tracker(folder: Path) -> int:
    """The iteration of ``latest_checkpointed_iteration.txt``; 0 when missing or not a number."""
    try:
        text = (folder / "latest_checkpointed_iteration.txt").read_text().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _consistency(ev: Evaluation, cwd: Path, out: Path, ctx: Context) -> tuple[bool, str]:
    """Run the checkpoint-consistency program on the checkpoint folders: (passed, message)."""
    first, *rest = ev.check
    argv = [sys.executable if first in ("python", "python3") else first, *rest]
    argv += [str(p) for p in ev.checkpoints]
    log = out / "run" / "consistency.log"
    try:
        done = run_process(
            argv, env=dict(os.environ), cwd=cwd, log_path=log, prefix="[consistency] ",
            timeout=max(ctx.deadline - time.monotonic(), 1.0), grace=ctx.grace, sink=ctx.sink,
            redact=ctx.redact,
        )  # fmt: skip
    except RunnerError as e:
        return False, str(e)
    what = f"{' '.join(ev.check)} on {len(ev.checkpoints)} checkpoints"
    if done.exit_code == 0:
        return True, f"checkpoint consistency: {what} passed"
    return False, (
        f"checkpoint consistency: {what} exited with code {done.exit_code} "
        f"(log: {_relative(log, out)}){_tail(log)}"
    )


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return f"; last line: {lines[-1].strip()[:300]}"
    return ""


def execute(
    spec: JobSpec,
    config: Config,
    *,
    check_gpu: bool = True,
    sink: Sink | None = None,
    grace: float = 10.0,
    keep_checkpoints: bool = False,
    environ: t.Mapping[str, str] | None = None,
    progress: t.Callable[[Status], None] | None = None,
) -> CaseResult:
    """Run the job and write ``result.json`` (and the actual values) into ``spec.out``.

    ``result.json`` is written whatever happens: a config it cannot plan, a wrong runner, a
    launcher that cannot start (each an ``error`` result, then the error is raised), a crash or
    a timeout (an ``error`` result). On KeyboardInterrupt the processes are stopped, an
    ``error`` result saying so is written, and the interrupt re-raised. Each phase is followed
    while it runs (``progress`` gets its status); with ``spec.fail_fast`` a run whose verdict can
    no longer be pass is stopped there (:mod:`ci_golden.run.early`).
    """
    case = spec.case
    make_out(spec.out)
    info: dict[str, t.Any] = {
        **host_info(),
        "start": now(),
        "n_repeat": spec.n_repeat,
        "time_limit": spec.time_limit,
        "python": pyplatform.python_version(),
        "ci_golden": __version__,
        "exit_codes": {},
    }
    nondeterministic = False
    policies: t.Any = {}
    gated: tuple[str, ...] = ()
    golden: GoldenValues | None = None
    redact = Redactor.from_environ(os.environ if environ is None else environ)

    def refuse(message: str) -> CaseResult:
        info["end"] = now()
        result = compare_job(
            spec.job, golden, None, policies=policies, gated=gated,
            nondeterministic=nondeterministic, error=redact(message), run_info=info,
            root=config.root,
        )  # fmt: skip
        write_result(spec.out / RESULT_FILE, result)
        return result

    try:
        golden = load_golden(spec.golden) if spec.golden is not None else None
        policies, gated = resolve_policies(config, case)
        nondeterministic = is_nondeterministic(case.model_config)
        the_plan = plan(spec, config, environ)
    except CiGoldenError as e:
        refuse(f"cannot plan the run: {e}")
        raise
    redact = redactor_for(the_plan, os.environ if environ is None else environ)
    info.update(
        test_type=the_plan.kind.test_type, mode=the_plan.kind.mode,
        evaluation=the_plan.kind.evaluation, n_repeat=the_plan.n_repeat,
        commands=[redact_argv(p.argv) for p in the_plan.phases],
    )  # fmt: skip
    if the_plan.notes:
        info["notes"] = list(the_plan.notes)
    platform = config.platform(spec.platform)
    if check_gpu and platform.gpu is not None:
        try:
            gpus: list[Gpu] = check_gpus(platform, spec.gpus or platform.gpus_per_node, environ)
        except RunnerError as e:
            refuse(str(e))
            raise
        if gpus:
            info.update(
                gpu=gpus[0].name, gpus=len(gpus), gpu_memory=gpus[0].memory, driver=gpus[0].driver
            )
    metrics = {
        *DEFAULT_METRICS, *gated, *(k for k in policies if "*" not in k),
        *(golden.metrics if golden else ()),
    }  # fmt: skip
    kw = {"policies": policies, "gated": gated, "nondeterministic": nondeterministic}
    watch = Watch(
        spec, the_plan, golden, lambda c, ev: _grid(c, ev, golden, metrics), kw,
        metrics=metrics, progress=progress,
    )  # fmt: skip
    ctx = Context(
        spec, time.monotonic() + spec.time_limit, grace, sink, info, redact, watch, golden,
        metrics,
    )  # fmt: skip
    try:
        result = _run_and_compare(the_plan, spec, config, ctx, policies, gated)
    except KeyboardInterrupt:
        refuse("cancelled: the run was interrupted and its processes stopped")
        raise
    except RunnerError as e:  # a launcher that cannot start
        refuse(str(e))
        raise
    finally:
        if not (keep_checkpoints or the_plan.keep_checkpoints):
            for path in {the_plan.save, the_plan.save.parent / "tmp_checkpoints"}:
                shutil.rmtree(path, ignore_errors=True)
    return result


def _run_and_compare(
    the_plan: RunPlan, spec: JobSpec, config: Config, ctx: Context, policies: t.Any,
    gated: tuple[str, ...],
) -> CaseResult:  # fmt: skip
    """Walk the repeats as run_ci_test.sh does, then compare and write the result."""
    golden = ctx.golden
    kind = the_plan.kind
    firsts: list[GoldenValues] = []
    resumed: GoldenValues | None = None
    error: str | None = None
    skipped: str | None = None
    consistency: tuple[bool, str] | None = None
    stopped: tuple[int, int] | None = None  # (through, last step) of a phase fail-fast stopped
    written: GoldenValues | None = None
    for rp in the_plan.repeats:
        done = _run_repeat(rp, ctx)
        ev = rp.evaluation
        values = (
            _collect(rp, golden, ctx.metrics)
            if ev.kind in ("golden", "inference")
            else Values(None)
        )
        if done.stopped and ctx.watch is not None and ctx.watch.stop is not None:
            values, written, stopped = _stopped_values(values, ctx.watch, ev)
        if values.first is not None:
            path = repeat_dir(spec.out, rp.number) / spec.actual_name
            write_golden(path, written if stopped and written is not None else values.first)
        if stopped is not None:
            if values.first is not None:
                firsts.append(values.first)
            if rp.number == 1 and values.second is not None:
                resumed = values.second
            break
        failed = done.exit_code != 0
        if kind.test_type == "release" and ev.until is not None:
            reached = _tracker(the_plan.save)
            ctx.info["release_iteration"] = reached
            if reached < ev.until:
                skipped = (
                    f"release intermediate window: the latest checkpoint is at iteration "
                    f"{reached} of {ev.until}; not compared. Rerun the job with the same output "
                    "folder to continue"
                ) + (f" ({done.failure})" if done.failure else "")
                break
            if values.first is not None:
                firsts.append(values.first)
            continue  # a release's final window is compared even when its training failed
        if ev.kind == "none":
            if failed and not (kind.evaluation == "xpass" or ev.tolerate_failure):
                error = done.failure
            else:
                skipped = f"{ev.reason}; {done.failure}" if failed else ev.reason
            break
        if failed:
            if kind.evaluation == "xpass":
                skipped = skipped or (
                    f"TEST_EVALUATION xpass tolerates a training failure; values not compared: "
                    f"{done.failure}"
                )
                continue
            error = done.failure
            if values.first is not None and not firsts:
                firsts.append(values.first)
            break
        if ev.kind == "consistency":
            consistency = _consistency(ev, config.root.resolve(), spec.out, ctx)
            if not consistency[0]:
                break
            continue
        if values.first is None:
            error = (
                f"repeat {rp.number} logged none of the compared metrics "
                f"(no TensorBoard events, metrics.jsonl or training log lines in "
                f"{_relative(ev.first or spec.out, spec.out)})"
                if ev.kind == "golden"
                else f"repeat {rp.number} wrote no output at "
                f"{_relative(ev.first or spec.out, spec.out)}"
            )
            break
        firsts.append(values.first)
        if rp.number == 1 and ev.second is not None:
            resumed = values.second
            if resumed is None:
                error = "the resumed phase of repeat 1 logged none of the compared metrics"
                break
    if ctx.watch is not None and ctx.watch.problems:
        ctx.info["fail_fast_problems"] = ctx.watch.problems
    ctx.info["end"] = now()
    finish = None
    if stopped is not None and ctx.watch is not None:
        watch, (through, last) = ctx.watch, stopped
        deadline = ctx.deadline

        def finish(result: CaseResult) -> CaseResult:
            return watch.stopped_result(result, through, last, deadline)

    return _result(
        the_plan, spec, config, ctx, firsts, resumed, error, skipped, consistency,
        policies, gated, written=written if firsts and stopped else None, finish=finish,
    )  # fmt: skip


def _stopped_values(
    values: Values, watch: Watch, ev: Evaluation
) -> tuple[Values, GoldenValues | None, tuple[int, int]]:
    """A repeat whose phase fail-fast stopped: that phase's best case to compare, the values of
    the first phase as logged (to write), and (through, last step)."""
    assert watch.stop is not None
    if watch.stop.phase.tensorboard == ev.second and values.second is not None:
        best, _real, through, last = watch.best_values(values.second)
        return Values(values.first, best), values.first, (through, last)
    assert values.first is not None
    best, real, through, last = watch.best_values(values.first)
    return Values(best, values.second), real, (through, last)


def _result(
    the_plan: RunPlan, spec: JobSpec, config: Config, ctx: Context,
    firsts: list[GoldenValues], resumed: GoldenValues | None,
    error: str | None, skipped: str | None, consistency: tuple[bool, str] | None,
    policies: t.Any, gated: tuple[str, ...], *, written: GoldenValues | None = None,
    finish: t.Callable[[CaseResult], CaseResult] | None = None,
) -> CaseResult:  # fmt: skip
    case, golden = spec.case, ctx.golden
    nondeterministic = is_nondeterministic(case.model_config)
    error = ctx.redact(error) if error else None
    skipped = ctx.redact(skipped) if skipped else None
    base: dict[str, t.Any] = dict(
        case=case.id, environment=spec.environment, platform=spec.platform,
        golden=_golden_display(spec, config), run=dict(ctx.info),
        nondeterministic=nondeterministic, gated=tuple(gated),
    )  # fmt: skip
    actual_path = None
    if firsts:
        write_golden(spec.out / spec.actual_name, written or firsts[0])
        actual_path = spec.actual_name
    if consistency is not None and error is None:
        result = CaseResult(
            verdict="pass" if consistency[0] else "fail", metrics={},
            message=ctx.redact(consistency[1]), actual=None, **base,
        )  # fmt: skip
    elif skipped is not None and error is None and not firsts:
        result = CaseResult(verdict="skipped", metrics={}, message=skipped, actual=None, **base)
    elif error is not None and golden is None:
        result = CaseResult(verdict="error", metrics={}, message=error, actual=actual_path, **base)
    else:
        half = the_plan.repeats[0].evaluation.resume_step if the_plan.repeats else None
        result = compare_job(
            spec.job, golden, firsts[0] if firsts else None, policies=policies, gated=gated,
            nondeterministic=nondeterministic, resumed=resumed if error is None else None,
            resume_step=half, repeats=firsts[1:] if error is None else (),
            error=error, run_info=ctx.info, actual_path=actual_path, root=config.root,
        )  # fmt: skip
        if finish is not None:
            result = finish(result)
    write_result(spec.out / RESULT_FILE, result)
    return result


def _golden_display(spec: JobSpec, config: Config) -> str | None:
    if spec.golden is None:
        return None
    try:
        return spec.golden.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return spec.golden.as_posix()
