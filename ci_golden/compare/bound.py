"""Can a partial run still pass? The comparison engine, applied to the best case of the run.

A run that has reached step ``through`` (its values up to there are final) can at best go on
to reproduce its reference exactly: :func:`best_case` builds that run, and the engine judges
it as it judges any run. This module adds no rule of its own; it decides only when the engine's
verdict is the same for every possible rest of the run:

- a per-step policy (``approx``, ``upper``, ``lower``): a later step equal to the reference is
  compared, within every tolerance, exact, and present, which no other value beats; the
  failure budget depends on the golden (and on the compared steps, all of them in the best
  case). So a gated metric that fails or is missing in the best case, at a step up to
  ``through``, fails or is missing whatever the run does next.
- a ``median`` policy: the median is monotone in every value, so when the run fails with every
  later value at the lowest extreme and again at the highest, with the statistic on the same
  side of the golden's both times (or not moved at all), every continuation fails.
- a metric whose reference has no step after ``through`` is final as it is.

Never on drift: only ``fail`` and ``missing`` decide.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, replace

import numpy as np

from ci_golden.goldens.model import GoldenValues, MetricSeries

if t.TYPE_CHECKING:
    from ci_golden.compare.result import MetricResult

Judge = t.Callable[[GoldenValues], t.Mapping[str, "MetricResult"]]
DECIDING = frozenset({"fail", "missing"})
EXTREME = 1e300  # far beyond any metric, yet finite: the engine compares it like any value


def followable(reference: GoldenValues | None) -> bool:
    """Whether a run compared with ``reference`` can be judged before it ends: per-step blocks
    (the current layout) only; legacy and inference goldens are judged at the end."""
    return reference is not None and reference.layout == "current" and bool(reference.metrics)


def _filled(
    name: str, run: MetricSeries, ref: MetricSeries | None, through: int, fill: float | None
) -> MetricSeries:
    keep = run.steps <= through
    steps, values = run.steps[keep], run.values[keep]
    if ref is not None:
        later = ref.steps > through
        extra = ref.values[later] if fill is None else np.where(ref.nan_mask[later], np.nan, fill)
        steps = np.concatenate([steps, ref.steps[later]])
        values = np.concatenate([values, extra])
    return MetricSeries.from_arrays(
        name, steps.astype(np.int64), values.astype(np.float64),
        start_step=run.start_step, end_step=max(run.end_step, ref.end_step if ref else 0),
        step_interval=run.step_interval, value_precision=run.value_precision,
    )  # fmt: skip


def best_case(
    run: GoldenValues, reference: GoldenValues, through: int, *, fill: float | None = None
) -> GoldenValues:
    """``run`` up to step ``through``, then ``reference`` exactly (its "nan" steps included).

    ``fill`` instead puts that value at every later step where the reference is finite (the
    extremes a median is tried with). A metric the run has not logged at all stays absent.
    """
    metrics = {
        name: _filled(name, series, reference.metrics.get(name), through, fill)
        for name, series in run.metrics.items()
    }
    return replace(run, metrics=metrics)


def upto(run: GoldenValues, step: int) -> GoldenValues:
    """Only the steps up to ``step`` (what a run stopped there really logged)."""
    metrics = {}
    for name, s in run.metrics.items():
        keep = s.steps <= step
        if np.any(keep):
            metrics[name] = MetricSeries.from_arrays(
                name, s.steps[keep], s.values[keep], start_step=s.start_step,
                end_step=int(s.steps[keep][-1]), step_interval=s.step_interval,
                value_precision=s.value_precision,
            )  # fmt: skip
    return replace(run, metrics=metrics)


@dataclass(frozen=True)
class Outlook:
    """The engine's verdicts on the best case of a partial run, and the gated metric (if any)
    whose failure no rest of the run can undo: the one failing first."""

    through: int
    metrics: t.Mapping[str, MetricResult]
    certain: MetricResult | None = None

    @property
    def step(self) -> int | None:
        """The step the certain failure is dated at: its first failing step."""
        m = self.certain
        if m is None:
            return None
        if m.first_failing_step is not None:
            return m.first_failing_step
        return m.window[1] if m.window else self.through


def _same_side(low: MetricResult, high: MetricResult) -> bool:
    if low.verdict not in DECIDING or high.verdict not in DECIDING:
        return False
    if low.actual_stat is None or high.actual_stat is None or low.golden_stat is None:
        return False
    if low.actual_stat == high.actual_stat:
        return True
    side_low = np.sign(low.actual_stat - low.golden_stat)
    return bool(side_low != 0 and side_low == np.sign(high.actual_stat - low.golden_stat))


def outlook(judge: Judge, run: GoldenValues, reference: GoldenValues, through: int) -> Outlook:
    """Judge the best case of ``run`` (final up to ``through``) with ``judge`` (the engine, as
    the run's final comparison applies it) and find a certain failure."""
    metrics = judge(best_case(run, reference, through))
    certain: list[MetricResult] = []
    for m in metrics.values():
        if not m.gated or m.verdict not in DECIDING:
            continue
        ref = reference.metrics.get(m.name)
        if ref is not None and (not len(ref.steps) or ref.steps[-1] <= through):
            if m.policy.kind == "median" or m.first_failing_step is not None:
                certain.append(m)  # no step of it is left to come: its verdict is final
        elif m.policy.kind == "median":
            low = judge(best_case(run, reference, through, fill=-EXTREME)).get(m.name)
            high = judge(best_case(run, reference, through, fill=EXTREME)).get(m.name)
            if low is not None and high is not None and _same_side(low, high):
                certain.append(m)
        elif m.first_failing_step is not None and m.first_failing_step <= through:
            certain.append(m)
    first = min(
        certain,
        key=lambda m: (
            m.first_failing_step if m.first_failing_step is not None else through,
            m.name,
        ),
        default=None,
    )
    return Outlook(through, metrics, first)


def as_stopped(metrics: t.Mapping[str, MetricResult], through: int) -> dict[str, MetricResult]:
    """The best-case results of a run stopped after step ``through``, as a result shows them:
    the plotted run ends there, and a note says how the later steps were counted."""
    out = {}
    for name, m in metrics.items():
        later = sum(1 for s in m.steps if s > through)
        actual = tuple(None if s > through else v for s, v in zip(m.steps, m.actual, strict=True))
        note = (
            f"the run was stopped after step {through}: "
            "the steps after it are counted as equal to the golden (the best case)"
        )
        out[name] = replace(
            m, actual=actual if later else m.actual, notes=(*m.notes, note) if m.steps else m.notes
        )
    return out
