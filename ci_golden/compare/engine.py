"""The comparison engine: actual values against a golden, under one policy per metric.

Per metric (golden ``g`` is the reference operand, steps are the golden's):

- golden "nan" and actual missing or nan: not compared;
- golden finite and actual nan (or inf): a failure the budget does not cover;
- golden finite and the step not logged: ``missing``;
- golden "nan" and actual finite: compared by nobody, noted;
- else the policy's tolerance check; then, when the case is deterministic and the policy
  asks for it, the exact check: a difference the tolerance accepts is ``drift``.

Verdict precedence: fail > missing > drift > pass. Only gated metrics decide the job's verdict.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ci_golden.compare.inference import compare_inference
from ci_golden.compare.policy import (
    Policy,
    is_gated,
    is_nondeterministic,
    median_window,
    policy_for,
    resolve_policies,
    within,
)
from ci_golden.compare.result import (
    CaseResult,
    MetricResult,
    PhaseResult,
    RepeatStats,
    Verdict,
    dumps_result,
    exit_code,
    gated_verdict,
    load_result,
    worst,
    write_result,
)
from ci_golden.errors import InputError
from ci_golden.goldens.discover import MODEL_CONFIG, TestCase, is_golden_name
from ci_golden.goldens.model import GoldenValues, MetricSeries

if t.TYPE_CHECKING:
    from ci_golden.goldens.discover import Job, TestCase
    from ci_golden.project.config import Config

__all__ = [
    "CaseResult",
    "MetricResult",
    "PhaseResult",
    "Policy",
    "RepeatStats",
    "Verdict",
    "case_from_folder",
    "compare_job",
    "compare_values",
    "dumps_result",
    "exit_code",
    "is_nondeterministic",
    "load_result",
    "log_interval",
    "resolve_policies",
    "write_result",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
SERIES_POINTS = 100
SAFETY_FACTOR = 2.0


def sample_indices(
    n: int, keep: int | None = None, points: int = SERIES_POINTS
) -> npt.NDArray[np.int64]:
    """At most ``points`` indices evenly spread over ``range(n)``, always holding ``keep``."""
    if n <= points:
        return np.arange(n, dtype=np.int64)
    idx = np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))
    if keep is not None and keep not in idx:
        idx[int(np.abs(idx - keep).argmin())] = keep
        idx = np.unique(idx)
    return idx


def _series(values: FloatArray, idx: npt.NDArray[np.int64]) -> tuple[float | None, ...]:
    return tuple(None if not np.isfinite(v) else float(v) for v in values[idx])


def align(golden: MetricSeries, actual: MetricSeries) -> tuple[FloatArray, BoolArray]:
    """Actual values at the golden's steps (NaN where absent) and where the step was logged."""
    pos = np.searchsorted(actual.steps, golden.steps)
    clipped = np.minimum(pos, max(len(actual.steps) - 1, 0))
    logged = (
        (pos < len(actual.steps)) & (actual.steps[clipped] == golden.steps)
        if len(actual.steps)
        else np.zeros(len(golden.steps), dtype=np.bool_)
    )
    values = np.where(logged, actual.values[clipped] if len(actual.steps) else np.nan, np.nan)
    return values.astype(np.float64), np.asarray(logged, dtype=np.bool_)


def _first(steps: npt.NDArray[np.int64], mask: BoolArray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(steps[hits[0]]) if len(hits) else None


def compare_series(
    name: str,
    golden: MetricSeries,
    actual: MetricSeries,
    policy: Policy,
    *,
    gated: bool,
    exact: bool,
) -> MetricResult:
    """Compare one metric's series under ``policy``; ``exact`` runs the exact check."""
    steps = golden.steps
    g = golden.values
    a, logged = align(golden, actual)
    g_fin = ~golden.nan_mask
    a_fin = np.isfinite(a)
    compared = g_fin & a_fin
    nan_fail = g_fin & logged & ~a_fin
    missing = g_fin & ~logged
    notes: list[str] = []
    n_noted = int(np.count_nonzero(golden.nan_mask & a_fin))
    if n_noted:
        notes.append(
            f'{n_noted} steps are "nan" in the golden but finite in the run, '
            f"first at step {_first(steps, golden.nan_mask & a_fin)}"
        )
    ok = np.ones(len(steps), dtype=np.bool_)
    ok[compared] = within(policy.kind, a[compared], g[compared], policy.rtol, policy.atol)
    bad = compared & ~ok
    n_compared = int(np.count_nonzero(compared))
    n_failed = int(np.count_nonzero(bad))
    budget: int | None = None
    golden_stat = actual_stat = None
    window: tuple[int, int] | None = None
    if policy.kind == "median":
        window = policy.window or median_window(int(steps[-1]) if len(steps) else 0)
        in_win = compared & (steps >= window[0]) & (steps <= window[1])
        if np.any(in_win):
            golden_stat = float(np.median(g[in_win]))
            actual_stat = float(np.median(a[in_win]))
            tol_ok = bool(
                within(
                    "approx",
                    np.array([actual_stat]),
                    np.array([golden_stat]),
                    policy.rtol,
                    policy.atol,
                )[0]
            )
        else:
            tol_ok = True
            notes.append(
                f"no step of the window {window[0]}-{window[1]} has values in both golden and run"
            )
        bad = bad & in_win
        n_compared = int(np.count_nonzero(in_win))
        n_failed = int(np.count_nonzero(bad))
    else:
        budget = policy.allowed_misses(n_compared)
        tol_ok = n_failed <= budget
    differ = compared & (a != g)
    n_differ = int(np.count_nonzero(differ)) if exact else None
    diffs = np.abs(a[compared] - g[compared])
    g_cmp = np.abs(g[compared])
    nonzero = g_cmp != 0
    max_abs = float(diffs.max()) if len(diffs) else None
    with np.errstate(over="ignore"):
        max_rel = float((diffs[nonzero] / g_cmp[nonzero]).max()) if np.any(nonzero) else None
    n_missing = int(np.count_nonzero(missing))
    n_nan = int(np.count_nonzero(nan_fail))
    first: int | None = None
    verdict: Verdict
    if policy.kind == "info":
        verdict = "pass"
    elif n_nan or not tol_ok:
        verdict, first = "fail", _first(steps, nan_fail | bad)
    elif n_missing:
        verdict, first = "missing", _first(steps, missing)
    elif exact and n_differ:
        verdict, first = "drift", _first(steps, differ)
    else:
        verdict = "pass"
    message = _message(
        policy,
        verdict,
        n_compared,
        n_failed,
        budget,
        n_missing,
        n_nan,
        n_differ,
        first,
        golden_stat,
        actual_stat,
        window,
    )
    keep = int(np.searchsorted(steps, first)) if first is not None else None
    idx = sample_indices(len(steps), keep)
    return MetricResult(
        name=name,
        verdict=verdict,
        gated=gated,
        policy=policy,
        n_compared=n_compared,
        n_failed=n_failed,
        budget=budget,
        n_differ=n_differ,
        n_missing=n_missing,
        n_nan=n_nan,
        first_failing_step=first,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        golden_stat=golden_stat,
        actual_stat=actual_stat,
        window=window,
        steps=tuple(int(s) for s in steps[idx]),
        golden=_series(g, idx),
        actual=_series(a, idx),
        message=message,
        notes=tuple(notes),
    )


def _message(
    policy: Policy,
    verdict: Verdict,
    n_compared: int,
    n_failed: int,
    budget: int | None,
    n_missing: int,
    n_nan: int,
    n_differ: int | None,
    first: int | None,
    g_stat: float | None,
    a_stat: float | None,
    window: tuple[int, int] | None,
) -> str:
    if verdict == "pass":
        if policy.kind == "info":
            return (
                f"informational: {n_failed} of {n_compared} steps "
                f"outside {policy.describe(exact=False)}"
            )
        if n_compared == 0:
            return "nothing compared: the golden has no finite value the run could match"
        return f"{n_compared} steps within {policy.describe(exact=False)}"
    if verdict == "fail" and n_nan:
        return f"{n_nan} steps logged nan or inf where the golden is finite, first at step {first}"
    if verdict == "fail" and policy.kind == "median":
        assert window is not None
        return (
            f"median of steps {window[0]}-{window[1]}: {a_stat:.6g} vs golden {g_stat:.6g}, "
            f"outside {policy.describe(exact=False)}"
        )
    if verdict == "fail":
        return (
            f"{n_failed} of {n_compared} steps outside {policy.describe(exact=False)} "
            f"(budget {budget}), first at step {first}"
        )
    if verdict == "missing":
        return (
            f"{n_missing} golden steps with finite values were not logged by the run, "
            f"first at step {first}"
        )
    return (
        f"{n_differ} of {n_compared} steps differ from the golden "
        f"(within {policy.describe(exact=False)}), first at step {first}"
    )


def absent_metric(
    name: str, policy: Policy, gated: bool, golden: MetricSeries | None
) -> MetricResult:
    """A metric the run did not log at all, or a gated metric the golden lacks."""
    if golden is None:
        return MetricResult(
            name, "missing", gated, policy, message="gated metric absent from the golden file"
        )
    n_finite = int(np.count_nonzero(~golden.nan_mask))
    if n_finite == 0:
        return MetricResult(
            name, "pass", gated, policy, message="not logged by the run; every golden value is nan"
        )
    verdict: Verdict = "pass" if policy.kind == "info" else "missing"
    idx = sample_indices(len(golden.steps))
    return MetricResult(
        name,
        verdict,
        gated,
        policy,
        n_missing=n_finite,
        first_failing_step=(_first(golden.steps, ~golden.nan_mask) if verdict != "pass" else None),
        steps=tuple(int(s) for s in golden.steps[idx]),
        golden=_series(golden.values, idx),
        actual=(None,) * len(idx),
        message="metric not logged by the run",
    )


def compare_values(
    golden: GoldenValues,
    actual: GoldenValues,
    *,
    policies: t.Mapping[str, Policy],
    gated: t.Collection[str],
    nondeterministic: bool,
) -> dict[str, MetricResult]:
    """Every golden metric and every gated metric, compared. Keyed by metric name."""
    if golden.layout == "inference" or actual.layout == "inference":
        return compare_inference(golden, actual, policies=policies, gated=gated)
    out: dict[str, MetricResult] = {}
    for name in dict.fromkeys([*golden.metrics, *gated]):
        policy = policy_for(policies, name)
        is_g = is_gated(name, policy, gated)
        g = golden.metrics.get(name)
        a = actual.metrics.get(name)
        if g is None or a is None:
            if g is not None or is_g:
                out[name] = absent_metric(name, policy, is_g, g)
            continue
        out[name] = compare_series(
            name, g, a, policy, gated=is_g, exact=policy.exact and not nondeterministic
        )
    return out


def after_step(values: GoldenValues, step: int) -> GoldenValues:
    """Only the steps after ``step`` (the phase a ckpt-resume run repeats)."""
    metrics = {}
    for name, s in values.metrics.items():
        keep = s.steps > step
        if np.any(keep):
            metrics[name] = MetricSeries(
                name,
                s.steps[keep],
                s.values[keep],
                s.nan_mask[keep],
                int(s.steps[keep][0]),
                s.end_step,
                s.step_interval,
                s.value_precision,
            )
    return GoldenValues(layout=values.layout, metrics=metrics)


def repeat_stats(golden: GoldenValues, runs: t.Sequence[GoldenValues]) -> dict[str, RepeatStats]:
    """Mean and std per golden step over the runs, the largest relative deviation from the mean,
    and a suggested rtol (that deviation x :data:`SAFETY_FACTOR`)."""
    out: dict[str, RepeatStats] = {}
    for name, g in golden.metrics.items():
        if not all(name in r.metrics for r in runs):
            continue
        stack = np.vstack([align(g, r.metrics[name])[0] for r in runs])
        finite_cols = np.all(np.isfinite(stack), axis=0)
        mean = np.full(len(g.steps), np.nan)
        std = np.full(len(g.steps), np.nan)
        if np.any(finite_cols):
            mean[finite_cols] = stack[:, finite_cols].mean(axis=0)
            std[finite_cols] = stack[:, finite_cols].std(axis=0)
        denom = np.abs(mean[finite_cols])
        dev = np.abs(stack[:, finite_cols] - mean[finite_cols])
        nz = denom != 0
        max_rel = float((dev[:, nz] / denom[nz]).max()) if np.any(nz) else None
        idx = sample_indices(len(g.steps))
        out[name] = RepeatStats(
            tuple(int(s) for s in g.steps[idx]), _series(mean, idx), _series(std, idx), max_rel,
            None if max_rel is None else max_rel * SAFETY_FACTOR,
        )  # fmt: skip
    return out


def _display_path(path: Path | None, root: Path | None) -> str | None:
    if path is None:
        return None
    base = root or Path.cwd()
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def compare_job(
    job: Job,
    golden: GoldenValues | None,
    actual: GoldenValues | None,
    *,
    policies: t.Mapping[str, Policy],
    gated: t.Collection[str],
    nondeterministic: bool,
    resumed: GoldenValues | None = None,
    resume_step: int | None = None,
    repeats: t.Sequence[GoldenValues] = (),
    error: str | None = None,
    run_info: t.Mapping[str, t.Any] | None = None,
    actual_path: str | None = None,
    root: Path | None = None,
) -> CaseResult:
    """Compare one job's run with its golden.

    ``actual`` None (or ``error`` set with no values) gives ``error``; ``golden`` None gives
    ``no-golden`` (the actual values are the proposed golden). ``resumed``: the second phase
    of a ckpt-resume run, compared with ``actual`` after ``resume_step`` under the same
    policies. ``repeats``: repeats 2..N (``actual`` is repeat 1), each compared with the golden,
    plus mean/std per step over all repeats. ``actual_path`` is stored as given (relative to
    the result.json folder); the golden path is made relative to ``root`` (default: cwd).
    """
    base: dict[str, t.Any] = {
        "case": job.case,
        "environment": job.environment,
        "platform": job.platform,
        "golden": _display_path(job.golden, root),
        "actual": actual_path,
        "run": dict(run_info or {}),
        "nondeterministic": nondeterministic,
        "gated": tuple(gated),
    }
    if actual is None or (error is not None and not actual.metrics and actual.raw is None):
        return CaseResult(
            verdict="error", metrics={}, message=error or "the run produced no values", **base
        )
    if golden is None:
        message = "no golden yet: the actual values are the proposed golden file"
        return CaseResult(verdict="no-golden", metrics={}, message=error or message, **base)
    kw: dict[str, t.Any] = {
        "policies": policies,
        "gated": gated,
        "nondeterministic": nondeterministic,
    }
    metrics = compare_values(golden, actual, **kw)
    verdicts = [gated_verdict(metrics)]
    resume = None
    if resumed is not None:
        step = resume_step if resume_step is not None else 0
        phase_metrics = compare_values(after_step(actual, step), after_step(resumed, step), **kw)
        resume = PhaseResult(
            "resume", gated_verdict(phase_metrics), phase_metrics, resume_step=step
        )
        verdicts.append(resume.verdict)
    phases = []
    for k, rep in enumerate(repeats, start=2):
        rep_metrics = compare_values(golden, rep, **kw)
        phases.append(PhaseResult(f"repeat-{k}", gated_verdict(rep_metrics), rep_metrics))
        verdicts.append(phases[-1].verdict)
    stats = (
        repeat_stats(golden, [actual, *repeats]) if repeats and golden.layout != "inference" else {}
    )
    verdict = worst(verdicts)
    if error is not None:
        verdict = "error"
    return CaseResult(
        verdict=verdict,
        metrics=metrics,
        message=error,
        resume=resume,
        repeats=tuple(phases),
        repeat_stats=stats,
        **base,
    )


def case_from_folder(value: str, config: Config) -> TestCase:
    """The case in folder ``value`` (or with that id below the config's test-case root)."""

    folder = Path(value)
    if not folder.is_dir() and (config.test_cases / value).is_dir():
        folder = config.test_cases / value
    if not folder.is_dir():
        raise InputError(value, "case folder not found")
    try:
        case_id = folder.resolve().relative_to(config.test_cases.resolve()).as_posix()
    except ValueError:
        parts = folder.resolve().parts
        below = (
            parts[len(parts) - parts[::-1].index("test_cases") :] if "test_cases" in parts else ()
        )
        case_id = "/".join(below) or folder.resolve().name
    goldens = tuple(sorted(p.name for p in folder.iterdir() if is_golden_name(p.name)))
    return TestCase(
        id=case_id, path=folder, has_config=(folder / MODEL_CONFIG).is_file(), golden_files=goldens
    )


def log_interval(case: TestCase | None) -> int:
    """The case's ``--log-interval`` (MODEL_ARGS), the step spacing of its golden values; 1 when
    unset.
    """
    args = (case.model_config.get("MODEL_ARGS") or {}) if case is not None else {}
    value = args.get("--log-interval", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1
