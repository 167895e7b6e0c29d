"""Fail fast: each phase of a job followed while it runs, judged as the job's final comparison
will judge it, and the result of a run stopped at its first certain failure.

Which comparison judges a phase: phase 1 of every repeat against the golden; phase 2 of a
ckpt-resume run against phase 1 after the resume step; other phases are followed for progress
only. The result of a stopped run is the engine's comparison of its best case (the steps after
the stop counted as equal to the reference: :mod:`ci_golden.compare.bound`), so the verdict and
the first failing step are those the whole run would have had.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, replace

from ci_golden.compare.bound import Judge, as_stopped, best_case, followable, outlook, upto
from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import is_gated, policy_for
from ci_golden.compare.result import CaseResult, FailFast, MetricResult
from ci_golden.run.collect import Collected, metrics_source
from ci_golden.run.follow import Decision, Follower, Reader, Status
from ci_golden.run.progress import fmt_duration, fmt_signed_pct

if t.TYPE_CHECKING:
    from ci_golden.goldens.model import GoldenValues
    from ci_golden.run.launch import Phase, RunPlan
    from ci_golden.run.spec import JobSpec

Key = tuple[int, int]  # (repeat, phase number)


@dataclass(frozen=True)
class Stop:
    """A phase the follower stopped, what it was compared with, and how fast it ran."""

    phase: Phase
    reference: GoldenValues
    judge: Judge
    decision: Decision
    startup: float


class Watch:
    """Fail-fast for one job: :meth:`follower` for each phase, then :meth:`stopped_result`."""

    def __init__(
        self,
        spec: JobSpec,
        the_plan: RunPlan,
        golden: GoldenValues | None,
        to_values: t.Callable[[Collected], GoldenValues],
        compare_kw: t.Mapping[str, t.Any],
        *,
        metrics: t.Collection[str],
        progress: t.Callable[[Status], None] | None = None,
    ) -> None:
        self.spec = spec
        self.plan = the_plan
        self.golden = golden
        self.to_values = to_values
        self.kw = dict(compare_kw)
        self.metrics = tuple(metrics)
        self.progress = progress
        self.stop: Stop | None = None
        self.confirmed: MetricResult | None = None  # the failure, on the complete read
        self.problems: list[str] = []

    def deciding(self) -> tuple[str, ...]:
        """The metrics that decide the verdict: the gated ones, as the engine tells them."""
        policies, gated = self.kw["policies"], self.kw["gated"]
        names = dict.fromkeys([*(self.golden.metrics if self.golden else ()), *gated])
        return tuple(n for n in names if is_gated(n, policy_for(policies, n), gated))

    def judge_of(
        self,
        phase: Phase,
        collected: t.Mapping[Key, Collected],
        resume_step: int | None,
        only: t.Collection[str] | None = None,
    ) -> tuple[GoldenValues, Judge] | None:
        """What ``phase``'s values are compared with, and the comparison the job's result makes
        of them; None when the phase is not compared on its own or not step by step. ``only``
        leaves the other metrics out (each metric is compared on its own: same verdicts)."""
        golden, job, kw = self.golden, self.spec.job, self.kw
        if golden is None or not followable(golden):
            return None
        golden = _only(golden, only)
        if phase.number == 1:
            return golden, lambda v: compare_job(job, golden, v, **kw).metrics
        if (phase.repeat, phase.number) == (1, 2) and self.plan.test_type == "ckpt-resume":
            first = _only(self.to_values(collected[(1, 1)]), only)

            def resumed(v: GoldenValues) -> t.Mapping[str, MetricResult]:
                r = compare_job(job, golden, first, resumed=v, resume_step=resume_step, **kw)
                return r.resume.metrics if r.resume is not None else {}

            return first, resumed
        return None

    def follower(
        self, phase: Phase, collected: t.Mapping[Key, Collected], resume_step: int | None
    ) -> Follower:
        """The follower of ``phase``; it judges only when fail-fast is on, and only the metrics
        that decide (the cost of a judgement grows with the run: it is made less often)."""
        names = self.deciding()
        target = (
            self.judge_of(phase, collected, resume_step, only=names)
            if self.spec.fail_fast
            else None
        )

        def assess(c: Collected, through: int) -> t.Any:
            assert target is not None
            deciding = Collected({n: v for n, v in c.series.items() if n in names}, c.train_iters)
            return outlook(target[1], self.to_values(deciding), target[0], through)

        return Follower(
            phase.label, phase.dir, phase.tensorboard, phase.log, metrics=self.metrics,
            assess=assess if target is not None else None, planned=self.plan.train_iters,
            on_status=self.progress,
        )  # fmt: skip

    def ended(
        self,
        phase: Phase,
        follower: Follower,
        stopped: bool,
        collected: t.Mapping[Key, Collected],
        resume_step: int | None,
    ) -> bool:
        """Note how the followed ``phase`` ended; True when the follower stopped it."""
        if follower.problem:
            self.problems.append(follower.problem)
        if follower.decision is None or not stopped:
            return False
        target = self.judge_of(phase, collected, resume_step)
        assert target is not None
        startup = follower.first[0] if follower.first else 0.0
        self.stop = Stop(phase, target[0], target[1], follower.decision, startup)
        return True

    def stopped_values(
        self, values: dict[Key, GoldenValues], collected: t.Mapping[Key, Collected]
    ) -> tuple[dict[Key, GoldenValues], GoldenValues | None, int, int]:
        """The values to compare once a phase was stopped (its best case), the real values of
        repeat 1's first phase to write as the actual file, the step the values are final up
        to, and the last step the stopped phase logged."""
        assert self.stop is not None
        phase = self.stop.phase
        key = (phase.repeat, phase.number)
        kind = metrics_source(phase.dir, phase.tensorboard, phase.log) or "log"
        reader = Reader(kind, phase.dir, phase.tensorboard, phase.log)
        reader.update()  # the whole source, read as the follower reads it: the same steps final
        through = reader.frontier(self.metrics)
        last = reader.newest(self.metrics)
        through = self.stop.decision.outlook.through if through is None else through
        last = self.stop.decision.step if last is None else last
        out = dict(values)
        real = out.get((1, 1))
        self.confirmed = outlook(self.stop.judge, out[key], self.stop.reference, through).certain
        out[key] = best_case(out[key], self.stop.reference, through)
        written = upto(real, last) if key == (1, 1) and real is not None else real
        return out, written, through, last

    def stopped_result(
        self, result: CaseResult, through: int, last: int, deadline: float
    ) -> CaseResult:
        """``result`` (the comparison of the stopped run's best case) marked as stopped: the
        plots end at ``through``, the message says where, why and what it saved. Should the
        complete read of the phase not confirm the failure, the result is an ``error``, never a
        pass."""
        assert self.stop is not None
        stop, spec = self.stop, self.spec
        decided = self.confirmed
        if decided is None:
            message = (
                f"{stop.phase.label} was stopped at step {last} as failing, but the complete "
                "read of its metrics does not confirm it; rerun with --no-fail-fast"
            )
            return replace(result, verdict="error", message=message)
        seconds = min(self.seconds_left(last), max(deadline - time.monotonic(), 0.0))
        reason = describe_failure(decided)
        info = FailFast(
            aborted_at_step=last, steps_planned=self.plan.train_iters, phase=stop.phase.label,
            metric=decided.name, step=decided.first_failing_step or through, reason=reason,
            seconds_saved=seconds, nodes=spec.nodes, gpus=spec.gpus,
        )  # fmt: skip
        return _with_part(
            replace(result, message=stop_message(info), fail_fast=info, repeat_stats={}),
            stop.phase,
            as_stopped(_part(result, stop.phase), through),
        )

    def seconds_left(self, last: int) -> float:
        """The estimated run time the stop saved: the rest of the stopped phase, then every
        phase and repeat after it (each its startup plus its steps at the observed pace)."""
        assert self.stop is not None
        stop, planned = self.stop, self.plan.train_iters
        rate = stop.decision.seconds_per_step or 0.0
        left = rate * max((planned or last) - last, 0)
        later = self.plan.phases[self.plan.phases.index(stop.phase) + 1 :]
        for phase in later:
            steps = planned or last
            if phase.number == 2:
                steps -= steps // 2  # resumed from about the middle
            left += stop.startup + rate * steps
        return left


def _only(values: GoldenValues, names: t.Collection[str] | None) -> GoldenValues:
    if names is None:
        return values
    return replace(values, metrics={n: s for n, s in values.metrics.items() if n in names})


def _part(result: CaseResult, phase: Phase) -> dict[str, MetricResult]:
    if phase.number == 2:
        return dict(result.resume.metrics) if result.resume is not None else {}
    if phase.repeat == 1:
        return dict(result.metrics)
    label = f"repeat-{phase.repeat}"
    return next((dict(r.metrics) for r in result.repeats if r.label == label), {})


def _with_part(result: CaseResult, phase: Phase, metrics: dict[str, MetricResult]) -> CaseResult:
    if phase.number == 2 and result.resume is not None:
        return replace(result, resume=replace(result.resume, metrics=metrics))
    if phase.repeat == 1:
        return replace(result, metrics=metrics)
    label = f"repeat-{phase.repeat}"
    repeats = tuple(replace(r, metrics=metrics) if r.label == label else r for r in result.repeats)
    return replace(result, repeats=repeats)


def describe_failure(m: MetricResult) -> str:
    """What decided, e.g. ``lm loss +8% from step 150``, ``lm loss nan at step 150``,
    ``iteration-time median +12% (steps 30-45)``, ``num-zeros not logged from step 105``."""
    step = m.first_failing_step
    if m.policy.kind == "median" and m.actual_stat is not None and m.golden_stat:
        where = f" (steps {m.window[0]}-{m.window[1]})" if m.window else ""
        return f"{m.name} median {fmt_signed_pct(m.actual_stat / m.golden_stat - 1)}{where}"
    if m.verdict == "missing":
        return f"{m.name} not logged from step {step}"
    if step is not None and step in m.steps:
        i = m.steps.index(step)
        g, a = m.golden[i], m.actual[i]
        if a is None:
            return f"{m.name} nan at step {step}"
        if g:
            return f"{m.name} {fmt_signed_pct(a / g - 1)} from step {step}"
    return f"{m.name} fails from step {step}"


def fmt_saved(info: FailFast) -> str:
    if info.gpus == 0:
        if info.seconds_saved < 1:
            return "saved less than a second of run time"
        return f"saved about {fmt_duration(info.seconds_saved)} of run time"
    hours = info.gpu_hours_saved
    return (
        f"saved about {hours:.1f} GPU-hours"
        if hours >= 0.1
        else f"saved about {hours * 60:.0f} GPU-minutes"
    )


def stop_message(info: FailFast) -> str:
    """``stopped at step 212 of 2,000: lm loss +8% from step 150; saved about 1.4 GPU-hours``."""
    where = "" if info.phase == "phase1" else f"{info.phase} "
    of = f" of {info.steps_planned:,}" if info.steps_planned else ""
    return f"{where}stopped at step {info.aborted_at_step:,}{of}: {info.reason}; {fmt_saved(info)}"
