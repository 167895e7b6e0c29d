"""Collect: a run's metrics (TensorBoard events, JSONL logs, Megatron-LM stdout) as golden values.

Every reader returns ``{metric: {step: value}}``; :func:`sample` turns that into golden blocks
the way Megatron-LM's ``get_test_results_from_tensorboard_logs.py`` does: steps ``1..train_iters``
keeping the start step and every multiple of the interval, a step with no value written ``"nan"``.
"""

from __future__ import annotations

import json
import math
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ci_golden.errors import InputError
from ci_golden.goldens.model import GoldenValues, MetricSeries
from ci_golden.run.tfevents import EVENT_GLOB, merge_first, read_event_file, read_event_folder

SourceFormat = t.Literal["auto", "tensorboard", "jsonl", "log"]
Series = dict[str, dict[int, float]]

# What Megatron-LM keeps in a golden file (get_test_results_from_tensorboard_logs.py).
DEFAULT_METRICS = (
    "lm loss",
    "num-zeros",
    "iteration-time",
    "mem-allocated-bytes",
    "mem-max-allocated-bytes",
    "mtp_1 loss",
)

# Megatron-LM training_log fields -> the TensorBoard tag of the same quantity, and the factor
# to its unit (negative: divide, so that 1400 ms gives exactly 1.4 s).
LOG_FIELDS: dict[str, tuple[str, float]] = {
    "elapsed time per iteration (ms)": ("iteration-time", -1000.0),
    "learning rate": ("learning-rate", 1.0),
    "global batch size": ("batch-size", 1.0),
    "loss scale": ("loss-scale", 1.0),
    "grad norm": ("grad-norm", 1.0),
    "num zeros": ("num-zeros", 1.0),
    "params norm": ("params-norm", 1.0),
    "mem-allocated-bytes-avg(MB)": ("mem-allocated-bytes", 1024.0 * 1024.0),
    "mem-max-allocated-bytes-avg(MB)": ("mem-max-allocated-bytes", 1024.0 * 1024.0),
}
_ITERATION = re.compile(r"\biteration\s+(\d+)\s*/\s*(\d+)\s*\|")
_STEP_KEYS = ("step", "iteration")


@dataclass(frozen=True)
class Collected:
    """Raw per-step series read from the sources, what they said about the run, and any notes."""

    series: Series
    train_iters: int | None = None
    notes: tuple[str, ...] = ()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def parse_log_line(line: str, series: Series) -> tuple[int, int] | None:
    """Add the fields of one Megatron-LM ``training_log`` line to ``series``.

    Returns the line's (step, train_iters), or None for a line that is not an iteration line.
    Fields are ``name: value`` pairs between ``|``; ``nan``/``inf`` values are kept as
    non-finite, fields that are not numbers (or absent on a step, as Megatron omits a NaN loss)
    are simply not there for that step. Known fields get their TensorBoard names and units
    (``LOG_FIELDS``). Any prefix (timestamp, ``[default0]:``, a launcher's tag) before
    ``iteration`` is ignored.
    """
    m = _ITERATION.search(line)
    if m is None:
        return None
    step = int(m.group(1))
    for part in line[m.end() :].split("|"):
        key, sep, raw = part.partition(":")
        key = key.strip()
        if not sep or not key:
            continue
        value = _number(raw.strip())
        if value is None:
            continue
        name, scale = LOG_FIELDS.get(key, (key, 1.0))
        series.setdefault(name, {})[step] = value / -scale if scale < 0 else value * scale
    return step, int(m.group(2))


def read_megatron_log(path: Path) -> Collected:
    """Parse Megatron-LM ``training_log`` lines:
    `` iteration   10/  100 | lm loss: 1.03E+01 | ...`` (see :func:`parse_log_line`).
    """
    series: Series = {}
    train_iters: int | None = None
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(str(path), f"cannot read file: {e.strerror or e}") from e
    with handle:
        for line in handle:
            parsed = parse_log_line(line, series)
            if parsed is not None:
                train_iters = parsed[1]
    return Collected(series, train_iters)


def parse_jsonl_line(line: str, series: Series, name: str, number: int) -> int | None:
    """Add one JSONL record to ``series``; its step, or None for a blank line.

    A value that is ``null`` or ``"nan"`` is a logged non-finite value; strings and booleans
    (timestamps, flags) are not metrics and are skipped. A line that is not an object with an
    integer step is an :class:`InputError` naming file ``name`` and line ``number``.
    """
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(name, f"not JSON: {e.msg}", f"line {number}") from e
    step = next((record[k] for k in _STEP_KEYS if isinstance(record, dict) and k in record), None)
    if isinstance(step, bool) or not isinstance(step, int):
        raise InputError(name, "expected an object with an integer 'step'", f"line {number}")
    for key, value in record.items():
        if key in _STEP_KEYS:
            continue
        if value is None or (isinstance(value, str) and value.lower() == "nan"):
            series.setdefault(key, {})[step] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            series.setdefault(key, {})[step] = float(value)
    return step


def read_jsonl(path: Path) -> Collected:
    """One JSON object per line with a ``step`` (or ``iteration``) and metric values (see
    :func:`parse_jsonl_line`). A last line that is neither ended nor JSON was cut short (the run
    was stopped while writing it): it is left out, with a note.
    """
    series: Series = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"cannot read file: {e}") from e
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            parse_jsonl_line(line, series, str(path), number)
        except InputError:
            if number < len(lines) or text.endswith(("\n", "\r")):
                raise
            note = f"{path}: line {number} is cut short (the run stopped while writing it)"
            return Collected(series, notes=(note,))
    return Collected(series)


def detect_format(source: Path) -> SourceFormat:
    if source.is_dir() or "tfevents" in source.name:
        return "tensorboard"
    if source.suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "log"


def read_source(source: Path, fmt: SourceFormat = "auto") -> Collected:
    """Read one source: an event-file folder or file, a JSONL file or a log file."""
    if not source.exists():
        raise InputError(str(source), "not found")
    kind = detect_format(source) if fmt == "auto" else fmt
    if kind == "tensorboard":
        if source.is_dir():
            series, notes = read_event_folder(source)
            return Collected(series, None, tuple(notes))
        part = read_event_file(source)
        return Collected(part.scalars, None, tuple(part.notes))
    if source.is_dir():
        raise InputError(str(source), f"is a folder; a {kind} source must be a file")
    return read_jsonl(source) if kind == "jsonl" else read_megatron_log(source)


def merge(parts: t.Sequence[Collected]) -> Collected:
    """Combine sources in order; for a (metric, step) logged by several, the first one wins."""
    series: Series = {}
    notes: list[str] = []
    train_iters = None
    for part in parts:
        notes.extend(part.notes)
        train_iters = train_iters or part.train_iters
        merge_first(series, part.series)
    return Collected(series, train_iters, tuple(notes))


def sampled_steps(start_step: int, step_interval: int, end_step: int) -> list[int]:
    """Megatron-LM's sampling: the start step, then every multiple of the interval up to the end."""
    interval = max(step_interval, 1)
    if start_step > end_step:
        return []
    after = (start_step // interval + 1) * interval  # the first multiple past the start
    return [start_step, *range(after, end_step + 1, interval)]


def sample(
    series: Series,
    *,
    metrics: t.Collection[str] | None = None,
    start_step: int = 1,
    step_interval: int = 1,
    train_iters: int | None = None,
    intervals: t.Mapping[str, tuple[int, int]] | None = None,
) -> GoldenValues:
    """Golden values from raw series, sampled like Megatron-LM.

    ``train_iters`` is the last step (default: the last step any metric logged); steps with no
    value are written ``"nan"``. ``intervals`` overrides ``(start_step, step_interval)`` per metric,
    so a run's values can be sampled like the golden they are compared with. ``metrics`` keeps
    only those names (default: all), in the order the sources logged them.
    """
    last = train_iters
    if last is None:
        last = max((max(v) for v in series.values() if v), default=start_step)
    out: dict[str, MetricSeries] = {}
    for name, values in series.items():
        if metrics is not None and name not in metrics:
            continue
        first, interval = (intervals or {}).get(name, (start_step, step_interval))
        steps = sampled_steps(first, interval, last)
        if not steps:
            continue
        get = values.get
        data = np.fromiter((get(k, math.nan) for k in steps), dtype=np.float64, count=len(steps))
        data[~np.isfinite(data)] = np.nan  # a step without a finite value is "nan"
        out[name] = MetricSeries.from_arrays(
            name, np.array(steps, dtype=np.int64), data, start_step=steps[0], end_step=steps[-1],
            step_interval=max(interval, 1), value_precision="full",
        )  # fmt: skip
    return GoldenValues(layout="current", metrics=out)


def collect(
    sources: t.Sequence[Path],
    *,
    fmt: SourceFormat = "auto",
    metrics: t.Collection[str] | None = None,
    start_step: int = 1,
    step_interval: int = 1,
    train_iters: int | None = None,
) -> tuple[GoldenValues, tuple[str, ...]]:
    """Read and merge ``sources``, then :func:`sample`; returns the values and reader notes.

    With no ``train_iters``, a Megatron log's ``iteration N/TOTAL`` gives it.
    """
    merged = merge([read_source(s, fmt) for s in sources])
    if not merged.series:
        raise InputError(", ".join(map(str, sources)), "no metric values found")
    golden = sample(
        merged.series,
        metrics=metrics,
        start_step=start_step,
        step_interval=step_interval,
        train_iters=train_iters or merged.train_iters,
    )
    if metrics is not None and not golden.metrics:
        raise InputError(
            ", ".join(map(str, sources)),
            f"none of the metrics {sorted(metrics)} was logged "
            f"(found: {', '.join(sorted(merged.series))})",
        )
    return golden, merged.notes


SourceKind = t.Literal["tensorboard", "jsonl", "log"]


def metrics_source(phase_dir: Path, tensorboard_dir: Path, log_path: Path) -> SourceKind | None:
    """The best source a run has left so far: events, else metrics.jsonl, else its stdout."""
    if tensorboard_dir.is_dir() and any(tensorboard_dir.glob(EVENT_GLOB)):
        return "tensorboard"
    jsonl = phase_dir / "metrics.jsonl"
    if jsonl.is_file() and jsonl.stat().st_size:
        return "jsonl"
    if log_path.is_file():
        return "log"
    return None


def run_metrics(phase_dir: Path, tensorboard_dir: Path, log_path: Path) -> Collected:
    """A run's metrics from the best source it left (:func:`metrics_source`)."""
    kind = metrics_source(phase_dir, tensorboard_dir, log_path)
    if kind == "tensorboard":
        return read_source(tensorboard_dir, "tensorboard")
    if kind == "jsonl":
        return read_jsonl(phase_dir / "metrics.jsonl")
    if kind == "log":
        return read_megatron_log(log_path)
    return Collected({})
