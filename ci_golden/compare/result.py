"""Job results: what one comparison found, as frozen dataclasses and a public JSON format.

The JSON form is ``schemas/result.schema.json``; :func:`write_result` validates before writing
(atomically) and :func:`load_result` validates what it reads.
"""

from __future__ import annotations

import json
import math
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden.compare.policy import Policy
from ci_golden.errors import InputError
from ci_golden.goldens.model import read_json
from ci_golden.project.files import atomic_write_text
from ci_golden.project.schema import json_pointer, validator

Verdict = t.Literal["pass", "drift", "fail", "missing", "no-golden", "skipped", "error"]
VERDICTS: tuple[Verdict, ...] = t.get_args(Verdict)
# most severe first; the overall verdict of a set is the first one present ("skipped": the job
# ran and compared nothing, as its test type asks; a set is skipped only when all of it is)
SEVERITY: tuple[Verdict, ...] = (
    "error",
    "fail",
    "missing",
    "drift",
    "no-golden",
    "pass",
    "skipped",
)
FAILING: frozenset[str] = frozenset({"error", "fail", "missing"})


def failing_verdicts(*, allow_drift: bool = False) -> frozenset[str]:
    """The verdicts that fail a job: drift too, unless it is allowed."""
    return FAILING if allow_drift else FAILING | {"drift"}


RESULT_VERSION = 1
RESULT_FILE = "result.json"  # the name of a job's result in its output folder

Number = t.Optional[float]  # noqa: UP045 - a runtime alias on Python 3.10


def worst(verdicts: t.Iterable[Verdict], default: Verdict = "pass") -> Verdict:
    present = set(verdicts)
    return next((v for v in SEVERITY if v in present), default)


def _num(value: float | None) -> float | None:
    """JSON has no NaN/Infinity: non-finite numbers are written as null."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class MetricResult:
    """One metric compared. Series are downsampled (at most 100 points) and aligned on ``steps``.

    ``first_failing_step`` is the first step that failed the check deciding a non-pass verdict
    (the tolerance for ``fail``, a missing step for ``missing``, the exact check for ``drift``);
    None when the metric passes. For inference goldens "steps" are request ids.
    """

    name: str
    verdict: Verdict
    gated: bool
    policy: Policy
    n_compared: int = 0
    n_failed: int = 0
    budget: int | None = None
    n_differ: int | None = None
    n_missing: int = 0
    n_nan: int = 0
    first_failing_step: int | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    golden_stat: float | None = None
    actual_stat: float | None = None
    window: tuple[int, int] | None = None
    steps: tuple[int, ...] = ()
    golden: tuple[Number, ...] = ()
    actual: tuple[Number, ...] = ()
    message: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "verdict": self.verdict,
            "gated": self.gated,
            "policy": self.policy.to_dict(),
            "n_compared": self.n_compared,
            "n_failed": self.n_failed,
            "budget": self.budget,
            "n_differ": self.n_differ,
            "n_missing": self.n_missing,
            "n_nan": self.n_nan,
            "first_failing_step": self.first_failing_step,
            "max_abs_diff": _num(self.max_abs_diff),
            "max_rel_diff": _num(self.max_rel_diff),
            "golden_stat": _num(self.golden_stat),
            "actual_stat": _num(self.actual_stat),
            "window": list(self.window) if self.window else None,
            "steps": list(self.steps),
            "golden": [_num(v) for v in self.golden],
            "actual": [_num(v) for v in self.actual],
            "message": self.message,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, name: str, d: t.Mapping[str, t.Any]) -> MetricResult:
        window = d.get("window")
        return cls(
            name=name,
            verdict=d["verdict"],
            gated=d["gated"],
            policy=Policy.from_dict(d["policy"]),
            n_compared=d["n_compared"],
            n_failed=d["n_failed"],
            budget=d.get("budget"),
            n_differ=d.get("n_differ"),
            n_missing=d.get("n_missing", 0),
            n_nan=d.get("n_nan", 0),
            first_failing_step=d["first_failing_step"],
            max_abs_diff=d["max_abs_diff"],
            max_rel_diff=d["max_rel_diff"],
            golden_stat=d.get("golden_stat"),
            actual_stat=d.get("actual_stat"),
            window=(int(window[0]), int(window[1])) if window else None,
            steps=tuple(d.get("steps", ())),
            golden=tuple(d.get("golden", ())),
            actual=tuple(d.get("actual", ())),
            message=d.get("message"),
            notes=tuple(d.get("notes", ())),
        )


def metrics_to_dict(metrics: t.Mapping[str, MetricResult]) -> dict[str, t.Any]:
    return {name: m.to_dict() for name, m in metrics.items()}


def metrics_from_dict(d: t.Mapping[str, t.Any]) -> dict[str, MetricResult]:
    return {name: MetricResult.from_dict(name, m) for name, m in d.items()}


def gated_verdict(metrics: t.Mapping[str, MetricResult]) -> Verdict:
    return worst(m.verdict for m in metrics.values() if m.gated)


@dataclass(frozen=True)
class PhaseResult:
    """A secondary comparison: the resumed phase of a ckpt-resume run, or repeat K of N."""

    label: str  # "resume" or "repeat-K"
    verdict: Verdict
    metrics: dict[str, MetricResult]
    resume_step: int | None = None

    def to_dict(self) -> dict[str, t.Any]:
        out: dict[str, t.Any] = {"label": self.label, "verdict": self.verdict}
        if self.resume_step is not None:
            out["resume_step"] = self.resume_step
        out["metrics"] = metrics_to_dict(self.metrics)
        return out

    @classmethod
    def from_dict(cls, d: t.Mapping[str, t.Any]) -> PhaseResult:
        return cls(d["label"], d["verdict"], metrics_from_dict(d["metrics"]), d.get("resume_step"))


@dataclass(frozen=True)
class RepeatStats:
    """Mean and std per step over all repeats of one metric (downsampled like the plot series)."""

    steps: tuple[int, ...]
    mean: tuple[Number, ...]
    std: tuple[Number, ...]
    max_rel_dev: float | None
    suggested_rtol: float | None

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "steps": list(self.steps),
            "mean": [_num(v) for v in self.mean],
            "std": [_num(v) for v in self.std],
            "max_rel_dev": _num(self.max_rel_dev),
            "suggested_rtol": _num(self.suggested_rtol),
        }

    @classmethod
    def from_dict(cls, d: t.Mapping[str, t.Any]) -> RepeatStats:
        return cls(
            tuple(d["steps"]),
            tuple(d["mean"]),
            tuple(d["std"]),
            d["max_rel_dev"],
            d["suggested_rtol"],
        )


@dataclass(frozen=True)
class CaseResult:
    """The result of one job: its verdict, each metric, and the resume/repeat comparisons."""

    verdict: Verdict
    case: str
    environment: str
    platform: str
    metrics: dict[str, MetricResult]
    golden: str | None = None
    actual: str | None = None
    message: str | None = None
    run: dict[str, t.Any] = field(default_factory=dict)
    nondeterministic: bool = False
    gated: tuple[str, ...] = ()
    resume: PhaseResult | None = None
    repeats: tuple[PhaseResult, ...] = ()
    repeat_stats: dict[str, RepeatStats] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return f"{self.case} [{self.environment}, {self.platform}]"

    def all_metrics(self) -> t.Iterator[tuple[str, MetricResult]]:
        """(phase label, metric) for the main comparison, the resumed phase and every repeat."""
        for m in self.metrics.values():
            yield "", m
        for phase in (self.resume, *self.repeats):
            if phase is not None:
                for m in phase.metrics.values():
                    yield phase.label, m

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "version": RESULT_VERSION,
            "verdict": self.verdict,
            "case": self.case,
            "environment": self.environment,
            "platform": self.platform,
            "golden": self.golden,
            "actual": self.actual,
            "message": self.message,
            "nondeterministic": self.nondeterministic,
            "gated": list(self.gated),
            "metrics": metrics_to_dict(self.metrics),
            "resume": self.resume.to_dict() if self.resume else None,
            "repeats": [r.to_dict() for r in self.repeats],
            "repeat_stats": {k: v.to_dict() for k, v in self.repeat_stats.items()},
            "run": self.run,
        }

    @classmethod
    def from_dict(cls, d: t.Mapping[str, t.Any]) -> CaseResult:
        return cls(
            verdict=d["verdict"],
            case=d["case"],
            environment=d["environment"],
            platform=d["platform"],
            metrics=metrics_from_dict(d["metrics"]),
            golden=d.get("golden"),
            actual=d.get("actual"),
            message=d.get("message"),
            run=dict(d.get("run") or {}),
            nondeterministic=bool(d.get("nondeterministic", False)),
            gated=tuple(d.get("gated", ())),
            resume=PhaseResult.from_dict(d["resume"]) if d.get("resume") else None,
            repeats=tuple(PhaseResult.from_dict(r) for r in d.get("repeats", ())),
            repeat_stats={
                k: RepeatStats.from_dict(v) for k, v in (d.get("repeat_stats") or {}).items()
            },
        )


def exit_code(results: t.Iterable[CaseResult], *, allow_drift: bool = False) -> int:
    """1 when any job is fail, missing or error, or drift unless ``allow_drift``; else 0."""
    bad = failing_verdicts(allow_drift=allow_drift)
    return 1 if any(r.verdict in bad for r in results) else 0


def validate_result(data: t.Any, name: str) -> None:

    errors = sorted(validator("result").iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise InputError(
            name, f"not a ci-golden result: {e.message}", json_pointer(e.absolute_path)
        )


def dumps_json(data: t.Any) -> str:
    """A result or report document as written to disk: indented, UTF-8, no NaN."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def dumps_result(result: CaseResult) -> str:
    return dumps_json(result.to_dict())


def write_result(path: Path, result: CaseResult) -> None:
    """Validate ``result`` against schemas/result.schema.json and write it atomically."""

    data = result.to_dict()
    validate_result(data, str(path))
    atomic_write_text(path, dumps_json(data))


def parse_result(data: t.Any, name: str) -> CaseResult:
    validate_result(data, name)
    return CaseResult.from_dict(data)


def load_result(path: Path) -> CaseResult:
    """Read and validate one result.json; :class:`InputError` names the file and the place."""

    return parse_result(read_json(path), str(path))
