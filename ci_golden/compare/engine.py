"""The comparison engine: actual values against a golden, under one policy per metric.

The defaults reproduce Megatron-LM's comparator (tests/functional_tests/python_test_utils at the
pinned commit), so a team that switches gets the same red and green. Per metric:

- the golden's steps drive: a golden step the run did not log, and a ``"nan"`` on either side,
  count as +inf (so golden "nan" and an unlogged step agree; golden "nan" and a finite value do
  not); steps the run logged past the golden are ignored;
- the tolerance check is ``|a - g| <= atol + rtol*|g|`` per step and may miss ``k`` of the
  golden's ``N`` steps, ``k = min(max(N // 100, 1), 50)``, decided as ``mean(close) >= 1 - k/N``;
- the exact check (when the case is deterministic and the policy asks for it) needs every step
  equal: a run that fails only it is ``drift``;
- ``median`` (iteration-time) compares one median over a steady-state window.

What the defaults let through is named in the result's notes: a step outside tolerance inside
the budget, a non-finite value logged by the run, an unlogged step, a golden "nan" against a
finite value. Verdict precedence: fail > missing > drift > pass; only gated metrics decide.
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
    picked = values[idx]
    out: list[float | None] = picked.tolist()
    for i in np.flatnonzero(~np.isfinite(picked)).tolist():
        out[i] = None
    return tuple(out)


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


def _close(kind: str, a: FloatArray, g: FloatArray, rtol: float, atol: float) -> BoolArray:
    """Per-step tolerance test; equal infinities (two "no value" slots) agree, NaN never does."""
    with np.errstate(invalid="ignore", over="ignore"):
        if kind in ("upper", "lower"):
            ok = within(kind, a, g, rtol, atol)
        else:
            ok = np.isclose(a, g, rtol=rtol, atol=atol, equal_nan=False)
    both_inf = np.isinf(a) & np.isinf(g) & (np.sign(a) == np.sign(g))
    return np.asarray((ok & np.isfinite(a) & np.isfinite(g)) | both_inf, dtype=np.bool_)


def within_budget(n_close: int, n: int, budget: int) -> bool:
    """Megatron-LM's rule, float rounding included: one slot must match exactly, else
    ``mean(close) >= 1 - budget / n`` (for some ``n`` exactly ``budget`` misses fail)."""
    if n == 1:
        return n_close == 1
    return bool(np.float64(n_close) / np.float64(n) >= 1 - np.float64(budget) / np.float64(n))


def _rel(a: float, g: float) -> str:
    if not np.isfinite(a) or not np.isfinite(g):
        return f"{a:.6g} vs {g:.6g}" if np.isfinite(g) else f"{a:.6g} vs golden nan"
    return f"{(a - g) / abs(g):+.1%}" if g else f"{a:.6g} vs 0"


def median_steps(
    window: tuple[int, int], steps: npt.NDArray[np.int64], golden_ok: BoolArray
) -> BoolArray:
    """The steps a median policy takes: the finite golden steps inside ``window``, else the
    first four at or after its start (Megatron-LM's fallback for sparse goldens)."""
    sel = golden_ok & (steps >= window[0]) & (steps <= window[1])
    if not np.any(sel):
        after = np.flatnonzero(golden_ok & (steps >= window[0]))[:4]
        sel = np.zeros(len(steps), dtype=np.bool_)
        sel[after] = True
    return np.asarray(sel, dtype=np.bool_)


def _median_window(
    policy: Policy, steps: npt.NDArray[np.int64], golden_ok: BoolArray
) -> tuple[tuple[int, int], BoolArray]:
    finite_steps = steps[golden_ok]
    window = policy.window or median_window(int(finite_steps[-1]) if len(finite_steps) else 0)
    return window, median_steps(window, steps, golden_ok)


def failing_steps(policy: Policy, golden: FloatArray, actual: FloatArray) -> BoolArray:
    """The steps counted against a metric, per step (NaN: no value on that side): outside the
    tolerance, or a value on one side only. Median policies compare each step with the
    golden's median (pass it as ``golden``)."""
    kind = "approx" if policy.kind in ("median", "info") else policy.kind
    g = np.where(np.isnan(golden), np.inf, golden)
    a = np.where(np.isnan(actual), np.inf, actual)
    return ~_close(kind, a, g, policy.rtol, policy.atol)


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
    n = len(steps)
    g_nan = golden.nan_mask
    a_raw, logged = align(golden, actual)
    a_nan = logged & ~np.isfinite(a_raw)  # logged, but not a number
    unlogged = ~logged
    g = np.where(g_nan, np.inf, golden.values)
    a = np.where(unlogged | a_nan, np.inf, a_raw)
    g_fin = ~g_nan
    notes: list[str] = []
    n_missing = int(np.count_nonzero(unlogged & g_fin))
    n_nan = int(np.count_nonzero(a_nan & g_fin))
    n_golden_nan = int(np.count_nonzero(g_nan & logged & ~a_nan))
    compared = g_fin & logged & ~a_nan
    diffs = np.abs(a[compared] - g[compared])
    g_cmp = np.abs(g[compared])
    nonzero = g_cmp != 0
    max_abs = float(diffs.max()) if len(diffs) else None
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        max_rel = float((diffs[nonzero] / g_cmp[nonzero]).max()) if np.any(nonzero) else None
    budget: int | None = None
    golden_stat = actual_stat = None
    window: tuple[int, int] | None = None
    differ = np.zeros(n, dtype=np.bool_)
    n_window = 0
    if n == 0:
        verdict: Verdict = "pass" if policy.kind == "info" else "fail"
        bad = np.zeros(0, dtype=np.bool_)
        message = "the golden has no values for this metric"
    elif policy.kind == "median":
        golden_ok = g_fin & np.isfinite(golden.values)
        window, sel = _median_window(policy, steps, golden_ok)
        n_window = int(np.count_nonzero(sel))
        bad = np.zeros(n, dtype=np.bool_)
        if not np.any(sel):
            verdict, message = "fail", "the golden has no finite value to take a median of"
        else:
            golden_stat = float(np.median(g[sel]))
            actual_stat = float(np.median(a[sel]))
            ok = bool(_close("approx", np.array([actual_stat]), np.array([golden_stat]),
                             policy.rtol, policy.atol)[0])  # fmt: skip
            bad = sel & failing_steps(policy, np.full(n, golden_stat), a)
            chosen = steps[sel]
            span = f"steps {int(chosen[0])}-{int(chosen[-1])}"
            if int(chosen[0]) < window[0] or int(chosen[-1]) > window[1] or len(chosen) < 2:
                span += f" (the window {window[0]}-{window[1]} holds no finite golden value)"
            verdict = "pass" if ok or policy.kind == "info" else "fail"
            message = (
                f"median of {span}: {actual_stat:.6g} vs golden {golden_stat:.6g} "
                f"({_rel(actual_stat, golden_stat)}), "
                f"{'within' if ok else 'outside'} {policy.describe(exact=False)}"
            )
            n_missing = int(np.count_nonzero(sel & unlogged))
            if n_missing and ok:
                notes.append(f"{n_missing} steps of the window were not logged by the run")
    else:
        bad = failing_steps(policy, golden.values, np.where(a_nan, np.nan, a_raw))
        n_bad = int(np.count_nonzero(bad))
        budget = policy.allowed_misses(n)
        tol_ok = within_budget(n - n_bad, n, budget)
        differ = (a != g) & ~(np.isinf(a) & np.isinf(g) & (np.sign(a) == np.sign(g)))
        tol = policy.describe(exact=False)
        first_bad = _first(steps, bad)
        where = ""
        if first_bad is not None:
            i = int(np.searchsorted(steps, first_bad))
            what = "not logged" if unlogged[i] else _rel(float(a_raw[i]), float(golden.values[i]))
            where = f" (step {first_bad}: {what})"
        if policy.kind == "info":
            verdict = "pass"
            message = f"informational: {n_bad} of {n} steps outside {tol}{where}"
        elif not tol_ok:
            value_bad = bad & logged
            if n_missing and within_budget(n - int(np.count_nonzero(value_bad)), n, budget):
                verdict = "missing"
                message = (
                    f"{n_missing} of {n} golden steps were not logged by the run, "
                    f"first at step {_first(steps, unlogged & g_fin)}; budget {budget}"
                )
            else:
                verdict = "fail"
                message = f"{n_bad} of {n} steps outside {tol}{where}, over the budget of {budget}"
        elif exact and np.any(differ):
            verdict = "drift"
            message = (
                f"{int(np.count_nonzero(differ))} of {n} steps differ from the golden, first at "
                f"step {_first(steps, differ)}; within {tol}"
            )
        else:
            verdict = "pass"
            message = f"{n} steps within {tol}"
        if n_bad and tol_ok and policy.kind != "info":
            message += f"; {n_bad} of {n} steps outside {tol}{where}, within the budget of {budget}"
    if n_nan:
        notes.append(
            f"the run logged nan or inf at {n_nan} steps, first at step "
            f"{_first(steps, a_nan & g_fin)}"
        )
    if n_missing and verdict != "missing" and policy.kind != "median":
        notes.append(
            f"{n_missing} golden steps were not logged by the run, first at step "
            f"{_first(steps, unlogged & g_fin)}"
        )
    if n_golden_nan:
        notes.append(
            f'{n_golden_nan} steps are "nan" in the golden but logged by the run, first at step '
            f"{_first(steps, g_nan & logged & ~a_nan)}"
        )
    first: int | None = None
    if verdict == "drift":
        first = _first(steps, differ)
    elif verdict == "missing":
        first = _first(steps, unlogged & g_fin)
    elif verdict == "fail":
        first = _first(steps, bad)
    keep = int(np.searchsorted(steps, first)) if first is not None else None
    idx = sample_indices(n, keep)
    return MetricResult(
        name=name,
        verdict=verdict,
        gated=gated,
        policy=policy,
        n_compared=n_window if policy.kind == "median" and n else n,
        n_failed=int(np.count_nonzero(bad)),
        budget=budget,
        n_differ=int(np.count_nonzero(differ)) if exact and policy.kind != "median" else None,
        n_missing=n_missing,
        n_nan=n_nan,
        first_failing_step=first,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        golden_stat=golden_stat,
        actual_stat=actual_stat,
        window=window,
        steps=tuple(int(s) for s in steps[idx]),
        golden=_series(golden.values, idx),
        actual=_series(a_raw, idx),
        message=message,
        notes=tuple(notes),
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
    verdict: Verdict = "pass" if policy.kind == "info" else "missing"
    idx = sample_indices(len(golden.steps))
    first = _first(golden.steps, ~golden.nan_mask)
    return MetricResult(
        name,
        verdict,
        gated,
        policy,
        n_compared=len(golden.steps),
        n_missing=n_finite,
        first_failing_step=first if verdict != "pass" else None,
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
