"""Fail fast: each phase of a job followed while it runs, judged as the job's final comparison
will judge it, and the result of a run stopped at its first certain failure.

Which comparison judges a phase: the phase whose TensorBoard folder a repeat's evaluation
reads, against the golden; the resumed phase of repeat 1 of a resuming test type, against the
first after the resume step. Other phases (release windows, a run expected to fail, inference,
checkpoint consistency) are followed for progress only. The result of a stopped run is the
engine's comparison of its best case (the steps after the stop counted as equal to the
reference: :mod:`ci_golden.compare.bound`), so the verdict and the first failing step are
those the whole run would have had.
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
from ci_golden.run.follow import Decision, Follower, Reader, Status, judged_sources
from ci_golden.run.phases import Phase
from ci_golden.run.progress import fmt_duration, fmt_signed_pct

if t.TYPE_CHECKING:
    from ci_golden.goldens.model import GoldenValues
    from ci_golden.run.phases import Evaluation, RepeatPlan, RunPlan
    from ci_golden.run.spec import JobSpec


@dataclass(frozen=True)
class Stop:
    """A phase the follower stopped, what it was compared with, and how fast it ran."""

    phase: Phase
    repeat: RepeatPlan
    reference: GoldenValues
    judge: Judge
    decision: Decision
    startup: float


class Watch:
    """Fail-fast for one job: :meth:`follower` for each phase, then :meth:`best_values` and
    :meth:`stopped_result` once one was stopped."""

    def __init__(
        self,
        spec: JobSpec,
        the_plan: RunPlan,
        golden: GoldenValues | None,
        to_values: t.Callable[[Collected, Evaluation], GoldenValues],
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
        rp: RepeatPlan,
        first: GoldenValues | None,
        only: t.Collection[str] | None = None,
    ) -> tuple[GoldenValues, Judge] | None:
        """What ``phase``'s values are compared with, and the comparison the job's result makes
        of them; None when the phase is not compared on its own or not step by step (release
        windows, a run expected to fail, inference). ``first``: repeat 1's values, which its
        resumed phase is compared with. ``only`` leaves the other metrics out (each metric is
        compared on its own: the same verdicts)."""
        golden, job, kw, ev = self.golden, self.spec.job, self.kw, rp.evaluation
        if golden is None or not followable(golden) or ev.kind != "golden" or ev.until:
            return None
        if self.plan.kind.evaluation == "xpass" or ev.tolerate_failure:
            return None
        golden = _only(golden, only)
        owner = next(
            (s for s in rp.steps if isinstance(s, Phase) and s.tensorboard == phase.tensorboard),
            None,
        )
        if owner != phase:
            return None  # the phase the evaluation reads is the first one writing that folder
        if phase.tensorboard == ev.first:
            return golden, lambda v: compare_job(job, golden, v, **kw).metrics
        if phase.tensorboard == ev.second and rp.number == 1 and first is not None:
            reference = _only(first, only)
            step = ev.resume_step

            def resumed(v: GoldenValues) -> t.Mapping[str, MetricResult]:
                r = compare_job(job, golden, reference, resumed=v, resume_step=step, **kw)
                return r.resume.metrics if r.resume is not None else {}

            return reference, resumed
        return None

    def follower(self, phase: Phase, rp: RepeatPlan, first: GoldenValues | None) -> Follower:
        """The follower of ``phase``; it judges only when fail-fast is on, and only the metrics
        that decide (the cost of a judgement grows with the run: it is made less often)."""
        names = self.deciding()
        target = self.judge_of(phase, rp, first, only=names) if self.spec.fail_fast else None
        ev = rp.evaluation

        def assess(c: Collected, through: int) -> t.Any:
            assert target is not None
            deciding = Collected({n: v for n, v in c.series.items() if n in names}, c.train_iters)
            return outlook(target[1], self.to_values(deciding, ev), target[0], through)

        return Follower(
            phase.label, phase.dir, phase.tensorboard, phase.log, metrics=self.metrics,
            assess=assess if target is not None else None, planned=ev.train_iters,
            on_status=self.progress, merge_all=ev.merge_all,
            judged=judged_sources(phase.argv, phase.dir, phase.tensorboard),
        )  # fmt: skip

    def ended(
        self,
        phase: Phase,
        rp: RepeatPlan,
        follower: Follower,
        stopped: bool,
        first: GoldenValues | None,
    ) -> bool:
        """Note how the followed ``phase`` ended; True when the follower stopped it."""
        if follower.problem:
            self.problems.append(follower.problem)
        if follower.decision is None or not stopped:
            return False
        target = self.judge_of(phase, rp, first)
        assert target is not None
        startup = follower.first[0] if follower.first else 0.0
        self.stop = Stop(phase, rp, target[0], target[1], follower.decision, startup)
        return True

    def best_values(self, values: GoldenValues) -> tuple[GoldenValues, GoldenValues, int, int]:
        """The stopped phase's ``values`` as compared (its best case), as written (the steps it
        logged), the step they are final up to, and the last step it logged."""
        assert self.stop is not None
        phase, ev = self.stop.phase, self.stop.repeat.evaluation
        kind = metrics_source(phase.dir, phase.tensorboard, phase.log) or "log"
        reader = Reader(kind, phase.dir, phase.tensorboard, phase.log, merge_all=ev.merge_all)
        reader.update()  # the whole source, read as the follower reads it: the same steps final
        through = reader.frontier(self.metrics)
        last = reader.newest(self.metrics)
        through = self.stop.decision.outlook.through if through is None else through
        last = self.stop.decision.step if last is None else last
        self.confirmed = outlook(self.stop.judge, values, self.stop.reference, through).certain
        return best_case(values, self.stop.reference, through), upto(values, last), through, last

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
        info = FailFast(
            aborted_at_step=last, steps_planned=stop.repeat.evaluation.train_iters,
            phase=stop.phase.label, metric=decided.name,
            step=decided.first_failing_step or through, reason=describe_failure(decided),
            seconds_saved=seconds, nodes=spec.nodes, gpus=spec.gpus,
        )  # fmt: skip
        resumed = stop.phase.tensorboard == stop.repeat.evaluation.second
        return _with_part(
            replace(
                result,
                message=stop_message(info, named=stop.phase != self.plan.phases[0]),
                fail_fast=info,
                repeat_stats={},
            ),
            stop.repeat.number,
            resumed,
            as_stopped(_part(result, stop.repeat.number, resumed), through),
        )

    def seconds_left(self, last: int) -> float:
        """The estimated run time the stop saved: the rest of the stopped phase, then every
        phase and repeat after it (each its startup plus its steps at the observed pace)."""
        assert self.stop is not None
        stop = self.stop
        planned = stop.repeat.evaluation.train_iters or last
        rate = stop.decision.seconds_per_step or 0.0
        left = rate * max(planned - last, 0)
        phases = list(self.plan.phases)
        for phase in phases[phases.index(stop.phase) + 1 :]:
            steps = planned - (planned // 2 if phase.run_number > 1 else 0)  # resumed: half
            left += stop.startup + rate * steps
        return left


def _only(values: GoldenValues, names: t.Collection[str] | None) -> GoldenValues:
    if names is None:
        return values
    return replace(values, metrics={n: s for n, s in values.metrics.items() if n in names})


def _part(result: CaseResult, repeat: int, resumed: bool) -> dict[str, MetricResult]:
    if resumed:
        return dict(result.resume.metrics) if result.resume is not None else {}
    if repeat == 1:
        return dict(result.metrics)
    label = f"repeat-{repeat}"
    return next((dict(r.metrics) for r in result.repeats if r.label == label), {})


def _with_part(
    result: CaseResult, repeat: int, resumed: bool, metrics: dict[str, MetricResult]
) -> CaseResult:
    if resumed and result.resume is not None:
        return replace(result, resume=replace(result.resume, metrics=metrics))
    if repeat == 1:
        return replace(result, metrics=metrics)
    label = f"repeat-{repeat}"
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
        return f"{m.name} not logged from step {step:,}"
    if step is not None and step in m.steps:
        i = m.steps.index(step)
        g, a = m.golden[i], m.actual[i]
        if a is None:
            return f"{m.name} nan at step {step:,}"
        if g:
            return f"{m.name} {fmt_signed_pct(a / g - 1)} from step {step:,}"
    return f"{m.name} fails from step {step:,}" if step is not None else f"{m.name} fails"


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


def stop_message(info: FailFast, *, named: bool = False) -> str:
    """``stopped at step 212 of 2,000: lm loss +8% from step 150; saved about 1.4 GPU-hours``;
    ``named``: the phase first (it is not the job's first)."""
    where = f"{info.phase} " if named else ""
    of = f" of {info.steps_planned:,}" if info.steps_planned else ""
    return f"{where}stopped at step {info.aborted_at_step:,}{of}: {info.reason}; {fmt_saved(info)}"
