"""The curves the HTML report draws: per job and metric, golden and actual cut down for a chart.

A result.json keeps at most 100 points per series (``schemas/result.schema.json``); a chart
wants every step. :func:`load_curves` reads each job's full series from the files its result
names (the actual values beside result.json, the golden it was compared with) and keeps the
shape of each series with LTTB (tsdownsample) plus every step outside the tolerance, so a
100,000-step run still shows each failing step. The result's own points are used instead, with
a note saying why, when those files are absent, unreadable, outside the folders they must be
in, or disagree with the points the result stored (the golden changed since the run). The
resumed phase of a ckpt-resume run and repeats 2..N keep no values file: their charts use the
result's points.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tsdownsample import LTTBDownsampler

from ci_golden.compare.engine import align, failing_steps, median_steps
from ci_golden.errors import InputError
from ci_golden.goldens.model import load_golden

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult, MetricResult, RepeatStats
    from ci_golden.goldens.model import GoldenValues

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ChartKey = tuple[str, str]  # (phase label, metric name); the label is "" for the main run
JobCurves = dict[ChartKey, "Curve"]

DEFAULT_POINTS = 300
MIN_POINTS = 10
Series = tuple[IntArray, FloatArray, FloatArray]  # steps, golden, actual (NaN: no value)


@dataclass(frozen=True, eq=False)
class Band:
    """Mean ± std per step over a job's repeats (from the result's repeat statistics)."""

    steps: IntArray
    mean: FloatArray
    std: FloatArray
    n_runs: int


@dataclass(frozen=True, eq=False)
class Curve:
    """One chart: golden and actual at ``steps`` (ascending), kept from ``n_steps`` steps.

    ``failing`` indexes ``steps``: the kept steps counted against the metric
    (:func:`failing_mask`); ``n_failing`` counts them over all ``n_steps``. ``full``: made
    from the job's files (every step seen) rather than the result's stored points; ``note`` says
    why the files were not used, when they were looked for.
    """

    steps: IntArray
    golden: FloatArray
    actual: FloatArray
    failing: IntArray
    n_steps: int
    n_failing: int
    full: bool
    note: str | None = None
    band: Band | None = None


def failing_mask(
    metric: MetricResult, steps: IntArray, golden: FloatArray, actual: FloatArray
) -> BoolArray:
    """The steps counted against ``metric`` (its ``n_failed``), by the compare engine's own
    per-step rule (:func:`ci_golden.compare.engine.failing_steps`); a median policy counts
    the steps of its window whose value is outside the tolerance around the golden's median."""
    policy = metric.policy
    if policy.kind == "median":
        if metric.window is None or metric.golden_stat is None:
            return np.zeros(len(steps), dtype=np.bool_)
        sel = median_steps(metric.window, steps, np.isfinite(golden))
        return sel & failing_steps(policy, np.full(len(steps), metric.golden_stat), actual)
    return failing_steps(policy, golden, actual)


def _lttb(steps: IntArray, values: FloatArray, n_out: int) -> IntArray:
    """Indices of the LTTB choice among the finite values, plus both edges of every gap (so a
    line breaks there rather than bridging it) and the first and last index."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) > n_out:
        picked = finite[LTTBDownsampler().downsample(steps[finite], values[finite], n_out=n_out)]
    else:
        picked = finite
    edges = np.flatnonzero(np.diff(np.isfinite(values).astype(np.int8)) != 0)
    if len(edges) > n_out:
        edges = edges[np.linspace(0, len(edges) - 1, n_out).round().astype(np.int64)]
    ends = np.array([0, len(values) - 1], dtype=np.int64)
    return np.unique(np.concatenate([picked, edges, edges + 1, ends]).astype(np.int64))


def _failing_choice(bad: BoolArray, cap: int) -> IntArray:
    """Every failing index while there are at most ``cap``; else the first and last index of
    each run of consecutive failing steps, evenly thinned to ``cap`` (the first one stays)."""
    idx = np.flatnonzero(bad).astype(np.int64)
    if len(idx) <= cap:
        return idx
    breaks = np.flatnonzero(np.diff(idx) != 1)
    edges = np.unique(np.concatenate([idx[np.r_[0, breaks + 1]], idx[np.r_[breaks, len(idx) - 1]]]))
    if len(edges) > cap:
        edges = edges[np.unique(np.linspace(0, len(edges) - 1, cap).round().astype(np.int64))]
    return np.unique(np.concatenate([idx[:1], edges]))


def downsample(
    steps: IntArray, series: t.Sequence[FloatArray], *, keep: IntArray, points: int
) -> IntArray:
    """Sorted indices keeping the shape of each series within about ``points`` in all (LTTB,
    shared between the series that differ) and every index in ``keep``."""
    if len(steps) <= points:
        return np.arange(len(steps), dtype=np.int64)
    distinct: list[FloatArray] = []
    for s in series:
        if not any(np.array_equal(s, d, equal_nan=True) for d in distinct):
            distinct.append(s)
    per = max(points // len(distinct), 3)
    parts = [_lttb(steps, s, per) for s in distinct]
    return np.unique(np.concatenate([*parts, keep])).astype(np.int64)


def make_curve(
    metric: MetricResult,
    series: Series,
    *,
    full: bool,
    points: int = DEFAULT_POINTS,
    note: str | None = None,
    band: Band | None = None,
) -> Curve | None:
    """The chart of ``metric`` from ``series``; None when neither side has a value."""
    steps, golden, actual = series
    if not (np.isfinite(golden).any() or np.isfinite(actual).any()):
        return None
    bad = failing_mask(metric, steps, golden, actual)
    keep = _failing_choice(bad, max(points // 2, MIN_POINTS))
    if metric.first_failing_step is not None:
        keep = np.union1d(keep, np.flatnonzero(steps == metric.first_failing_step)[:1])
    idx = downsample(steps, [golden, actual], keep=keep.astype(np.int64), points=points)
    return Curve(
        steps=steps[idx], golden=golden[idx], actual=actual[idx],
        failing=np.flatnonzero(bad[idx]).astype(np.int64), n_steps=len(steps),
        n_failing=int(np.count_nonzero(bad)), full=full, note=note, band=band,
    )  # fmt: skip


def _floats(values: t.Sequence[float | None]) -> FloatArray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def stored_series(metric: MetricResult) -> Series:
    """The points ``metric`` stored in its result (at most 100)."""
    return np.asarray(metric.steps, dtype=np.int64), _floats(metric.golden), _floats(metric.actual)


def _band(stats: RepeatStats | None, n_runs: int) -> Band | None:
    if stats is None or not stats.steps:
        return None
    return Band(np.asarray(stats.steps, dtype=np.int64), _floats(stats.mean), _floats(stats.std),
                n_runs)  # fmt: skip


def _inside(path: Path, folder: Path) -> Path | None:
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(folder.resolve()) else None


def _load_files(
    actual_name: str, golden_name: str, folder: Path, root: Path
) -> tuple[GoldenValues, GoldenValues]:
    """A job's actual values (``actual_name`` below ``folder``) and golden (``golden_name``
    below ``root``), read whole; :class:`InputError` saying why not."""
    actual_path = _inside(folder / actual_name, folder)
    if actual_path is None:
        raise InputError(actual_name, "the actual values path leaves the result's folder")
    golden_path = _inside(root / golden_name, root)
    if golden_path is None:
        raise InputError(golden_name, f"the golden is outside {root}, where the report is made")
    actual, golden = load_golden(actual_path), load_golden(golden_path)
    for name, values in ((actual_name, actual), (golden_name, golden)):
        if values.layout != "current":
            raise InputError(name, f"{values.layout} layout: its steps need the case's settings")
    return actual, golden


def _agrees(full: Series, stored: Series) -> bool:
    """Whether the full series holds each stored point unchanged."""
    steps, golden, actual = full
    at = np.searchsorted(steps, stored[0])
    if np.any(at >= len(steps)) or not np.array_equal(steps[at], stored[0]):
        return False
    return np.array_equal(golden[at], stored[1], equal_nan=True) and np.array_equal(
        actual[at], stored[2], equal_nan=True
    )


def job_curves(
    result: CaseResult,
    *,
    folder: Path | None = None,
    root: Path | None = None,
    points: int = DEFAULT_POINTS,
) -> JobCurves:
    """The charts of one job. ``folder`` (that of its result.json) and ``root`` (the folder its
    golden path is relative to) set: the main run's metrics from the full files; else, and
    for the resumed phase and the repeats, from the result's stored points."""
    if points < MIN_POINTS:
        raise ValueError(f"points must be at least {MIN_POINTS}")
    files: tuple[GoldenValues, GoldenValues] | None = None
    problem: str | None = None
    if folder is not None and root is not None and result.actual and result.golden:
        try:
            files = _load_files(result.actual, result.golden, folder, root)
        except InputError as e:
            problem = f"the full series could not be read ({e}): showing the result's points"
    n_runs = 1 + len(result.repeats)
    out: JobCurves = {}
    for label, metric in result.all_metrics():
        stored = stored_series(metric)
        series, note = stored, None if label else problem
        if files is not None and not label:
            actual, golden = files
            if metric.name in golden.metrics and metric.name in actual.metrics:
                g = golden.metrics[metric.name]
                full = (g.steps, g.values, align(g, actual.metrics[metric.name])[0])
                if _agrees(full, stored):
                    series = full
                else:
                    note = (
                        "the values files differ from the points the result was compared on "
                        "(changed since the run?): showing the result's points"
                    )
        band = None if label else _band(result.repeat_stats.get(metric.name), n_runs)
        curve = make_curve(
            metric, series, full=series is not stored, points=points, note=note, band=band
        )
        if curve is not None:
            out[(label, metric.name)] = curve
    return out


def load_curves(
    results: t.Iterable[CaseResult],
    folders: t.Mapping[str, Path],
    root: Path,
    *,
    points: int = DEFAULT_POINTS,
) -> dict[str, JobCurves]:
    """Each job's charts keyed by job id; ``folders`` maps a job id to its result.json's folder
    (jobs without one use the stored points). One job's full series are in memory at a time."""
    return {
        r.job_id: job_curves(r, folder=folders.get(r.job_id), root=root, points=points)
        for r in results
    }
