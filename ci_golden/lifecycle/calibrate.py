"""Calibration: tolerances recommended from repeated runs of one job.

Runs come from ``ci-golden run`` output folders (repeat 1 is the actual-values file beside
``result.json``; repeat K >= 2 is re-collected from ``run/repeat-K/phase1``) or from golden-format
files, one run each. Runs of the same (case, environment, platform) are pooled.

The golden a future run is compared with is itself one run, so the deviation that matters is
between two runs: per step ``(max - min) / min |v|`` over the runs. The recommended ``rtol`` is the
largest such deviation times a safety factor, rounded up to two significant digits, and never
below a floor; steps where a run logged exactly 0 cannot be covered relatively and set ``atol``
(their largest absolute spread times the safety factor). A ``median`` policy is calibrated on
the per-run medians of its window, like the comparison it feeds.
"""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ci_golden.compare.policy import Policy, median_window
from ci_golden.compare.result import RESULT_FILE, load_result
from ci_golden.errors import InputError
from ci_golden.goldens.model import GoldenValues, load_golden
from ci_golden.run.phases import repeat_dir

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult

DEFAULT_SAFETY = 2.0
DEFAULT_FLOOR = 1e-5
LOOSE_FILES = "golden files"


@dataclass(frozen=True)
class RunSet:
    """Repeated runs of one job, in order, and where each came from."""

    case: str | None
    environment: str | None
    platform: str | None
    runs: tuple[GoldenValues, ...]
    sources: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.case is None:
            return LOOSE_FILES
        return f"{self.case} [{self.environment}, {self.platform}]"


@dataclass(frozen=True)
class MetricCalibration:
    """One metric over the runs: per-step statistics and the recommended tolerance."""

    name: str
    policy: Policy
    steps: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    rel_dev: tuple[float | None, ...] = ()
    max_rel_dev: float = 0.0
    max_abs_dev_at_zero: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0
    note: str | None = None

    @property
    def recommended(self) -> dict[str, t.Any]:
        """The policy in its config form (``$defs/policy``): kind, window if set, rtol, atol."""
        out: dict[str, t.Any] = {"kind": self.policy.kind}
        if self.policy.window is not None:
            out["window"] = list(self.policy.window)
        out["rtol"] = self.rtol
        out["atol"] = self.atol
        return out


@dataclass(frozen=True)
class Calibration:
    runset: RunSet
    metrics: tuple[MetricCalibration, ...]
    safety: float
    floor: float


# --- reading runs ------------------------------------------------------------------------


def repeat_values(out: Path, name: str, n_repeat: int) -> list[tuple[str, GoldenValues]]:
    """Repeats 2..n of a run output folder: the actual values each one wrote (``run/<k>/NAME``)."""

    found = []
    for k in range(2, n_repeat + 1):
        path = repeat_dir(out, k) / name
        if not path.is_file():
            raise InputError(str(path), f"repeat {k} of {n_repeat} left no actual values")
        found.append((path.as_posix(), load_golden(path)))
    return found


def runs_of_result(path: Path, result: CaseResult) -> list[tuple[str, GoldenValues]]:
    """Every run behind one result.json: its actual values, then each repeat's."""
    if result.actual is None:
        raise InputError(
            str(path), f"verdict {result.verdict}: the job left no actual values to calibrate on"
        )
    actual = path.parent / result.actual
    first = load_golden(actual)
    n_repeat = int(result.run.get("n_repeat") or 1)
    return [(actual.as_posix(), first), *repeat_values(path.parent, actual.name, n_repeat)]


def load_runsets(paths: t.Sequence[Path]) -> list[RunSet]:
    """Group the runs behind ``paths`` (folders searched for result.json, result files, golden
    files).
    """

    groups: dict[tuple[str, str, str] | None, list[tuple[str, GoldenValues]]] = {}
    for path in paths:
        if path.is_dir():
            results = sorted(path.rglob(RESULT_FILE))
            if not results:
                raise InputError(
                    str(path), "no result.json below this folder (is it a ci-golden run output?)"
                )
        elif path.exists():  # a file; reading refuses a FIFO, socket or device
            results = [path] if path.name == RESULT_FILE else []
            if not results:
                groups.setdefault(None, []).append((path.as_posix(), load_golden(path)))
                continue
        else:
            raise InputError(str(path), "no such file or folder")
        for rpath in results:
            result = load_result(rpath)
            job = (result.case, result.environment, result.platform)
            groups.setdefault(job, []).extend(runs_of_result(rpath, result))
    out = []
    for group, runs in groups.items():
        values, sources = tuple(v for _, v in runs), tuple(s for s, _ in runs)
        out.append(
            RunSet(None, None, None, values, sources)
            if group is None
            else RunSet(*group, values, sources)
        )
    return out


# --- statistics --------------------------------------------------------------------------


def round_up(x: float, digits: int = 2) -> float:
    """``x`` rounded up to ``digits`` significant digits (0 stays 0)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    value = float(f"{math.ceil(round(x / scale, 9)) * scale:.{digits}g}")
    return value if value >= x * (1 - 1e-9) else float(f"{value + scale:.{digits}g}")


def _stack(
    name: str, runs: t.Sequence[GoldenValues]
) -> tuple[np.ndarray[t.Any, np.dtype[np.int64]], np.ndarray[t.Any, np.dtype[np.float64]]]:
    """(steps all runs logged, runs x steps values with NaN where a run has "nan")."""
    series = [r.metrics[name] for r in runs]
    common = series[0].steps
    for s in series[1:]:
        common = np.intersect1d(common, s.steps)
    rows = [s.values[np.searchsorted(s.steps, common)] for s in series]
    return common, np.vstack(rows)


def calibrate_metric(
    name: str, runs: t.Sequence[GoldenValues], policy: Policy, *, safety: float, floor: float
) -> MetricCalibration:
    """Per-step mean/std over ``runs`` and the tolerance that covers every pair of them."""
    if policy.kind == "info":
        return MetricCalibration(
            name, policy, note="informational (kind info): never fails, nothing to calibrate"
        )
    missing = [i + 1 for i, r in enumerate(runs) if name not in r.metrics]
    if missing:
        return MetricCalibration(
            name, policy, note=f"not logged by run(s) {', '.join(map(str, missing))}"
        )
    steps, stack = _stack(name, runs)
    finite = np.all(np.isfinite(stack), axis=0)
    mixed = ~finite & np.any(np.isfinite(stack), axis=0)
    note = None
    if np.any(mixed):
        bad = steps[mixed].tolist()
        shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        note = (
            f'step{"s" if len(bad) > 1 else ""} {shown}: finite in some runs, "nan" in others; '
            "no tolerance covers that"
        )
    steps, stack = steps[finite], stack[:, finite]
    if not len(steps):
        return MetricCalibration(name, policy, note=note or "no step with a value in every run")
    mean, std = stack.mean(axis=0), stack.std(axis=0)
    if policy.kind == "median":
        window = policy.window or median_window(int(steps[-1]))
        inside = (steps >= window[0]) & (steps <= window[1])
        if not np.any(inside):
            return MetricCalibration(
                name, policy, note=f"no step in the median window {window[0]}-{window[1]}"
            )
        deviation_input = np.median(stack[:, inside], axis=1)[:, None]
    else:
        deviation_input = stack
    spread = deviation_input.max(axis=0) - deviation_input.min(axis=0)
    smallest = np.abs(deviation_input).min(axis=0)
    relative = np.divide(spread, smallest, out=np.full(spread.shape, np.nan), where=smallest > 0)
    max_rel = float(np.nanmax(relative)) if np.any(smallest > 0) else 0.0
    max_abs_zero = float(spread[smallest == 0].max()) if np.any(smallest == 0) else 0.0
    per_step_rel: tuple[float | None, ...]
    if policy.kind == "median":
        per_step_rel = tuple(None for _ in steps)
    else:
        per_step_rel = tuple(None if math.isnan(v) else float(v) for v in relative)
    return MetricCalibration(
        name=name,
        policy=policy,
        steps=tuple(int(s) for s in steps),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        rel_dev=per_step_rel,
        max_rel_dev=max_rel,
        max_abs_dev_at_zero=max_abs_zero,
        rtol=max(floor, round_up(max_rel * safety)),
        atol=round_up(max_abs_zero * safety),
        note=note,
    )


def calibrate(
    runset: RunSet,
    policies: t.Callable[[str], Policy],
    *,
    safety: float = DEFAULT_SAFETY,
    floor: float = DEFAULT_FLOOR,
) -> Calibration:
    """Calibrate every metric of the first run; needs at least two runs."""
    if len(runset.runs) < 2:
        raise InputError(
            runset.sources[0],
            f"{runset.label}: only 1 run; calibrating needs repeats "
            "(CI_GOLDEN.n_repeat or `ci-golden run --n-repeat N`)",
        )
    names = list(runset.runs[0].metrics)
    metrics = tuple(
        calibrate_metric(n, runset.runs, policies(n), safety=safety, floor=floor) for n in names
    )
    return Calibration(runset, metrics, safety, floor)


# --- rendering ---------------------------------------------------------------------------


def policy_snippet(calibration: Calibration) -> str:
    """The ``CI_GOLDEN:`` block holding the recommended policies, as YAML."""
    import yaml

    metrics = {m.name: m.recommended for m in calibration.metrics if m.note is None or m.steps}
    return yaml.safe_dump(
        {"CI_GOLDEN": {"metrics": metrics}},
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
    )


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.9g}"


def render_calibration(calibration: Calibration, *, target: str | None = None) -> str:
    """One YAML document: comments with the per-step statistics, then the policy snippet."""
    runset = calibration.runset
    lines = [f"# {runset.label}: {len(runset.runs)} runs"]
    lines.extend(f"#   run {i}: {src}" for i, src in enumerate(runset.sources, start=1))
    for m in calibration.metrics:
        if not m.steps:
            lines.append(f"# {m.name}: not calibrated: {m.note}")
            continue
        lines.append(
            f"# {m.name} ({m.policy.kind}): step, mean, std, relative deviation between runs"
        )
        width = max(len(str(s)) for s in m.steps)
        lines.extend(
            f"#   {s:>{width}}  {_g(mean)}  {_g(std)}  {_g(rel)}"
            for s, mean, std, rel in zip(m.steps, m.mean, m.std, m.rel_dev, strict=True)
        )
        scope = "of the window medians " if m.policy.kind == "median" else ""
        floor = (
            " (the floor)"
            if m.rtol == calibration.floor and m.max_rel_dev * calibration.safety < m.rtol
            else ""
        )
        lines.append(
            f"# {m.name}: max relative deviation {scope}{m.max_rel_dev:.3g} "
            f"x safety {calibration.safety:g}"
            f" -> rtol {m.rtol:g}{floor}, atol {m.atol:g}"
        )
        if m.note:
            lines.append(f"# {m.name}: warning: {m.note}")
    if target:
        lines.append(f"# merge into {target}")
    return "\n".join(lines) + "\n" + policy_snippet(calibration)
