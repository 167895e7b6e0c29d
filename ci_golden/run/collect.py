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

from ci_golden.errors import InputError
from ci_golden.goldens.model import MAX_STEP, GoldenValues, MetricSeries
from ci_golden.project.files import open_regular
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
_ITERATION = re.compile(r"\biteration\s+([0-9]+)\s*/\s*([0-9]+)\s*\|")
_STEP_KEYS = ("step", "iteration")
# Limits that keep the work on any input bounded: a line is read up to MAX_LINE_BYTES (a 400 MB
# line without a newline is refused after reading 4 MiB), and a golden gets at most
# MAX_SAMPLED_STEPS steps per metric whatever the step numbers.
MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_SAMPLED_STEPS = 200_000


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


def _lines(path: Path) -> t.Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a file, each line read up to :data:`MAX_LINE_BYTES`."""
    with open_regular(path) as f:
        number = 0
        while True:
            try:
                line = f.readline(MAX_LINE_BYTES + 1)
            except OSError as e:
                raise InputError(str(path), f"cannot read file: {e.strerror or e}") from e
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise InputError(
                    str(path), f"line over {MAX_LINE_BYTES} bytes; refused", f"line {number}"
                )
            yield number, line


def _step(text: str, path: Path, number: int) -> int:
    """A step number of a line, within 0..MAX_STEP."""
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(MAX_STEP)):  # no int() of a 5,000-digit number
        raise InputError(
            str(path), f"step {digits[:30]}... is out of range (0 to {MAX_STEP})", f"line {number}"
        )
    return int(digits)


def read_megatron_log(path: Path) -> Collected:
    """Parse Megatron-LM ``training_log`` lines:
    `` iteration   10/  100 | lm loss: 1.03E+01 | ...``.

    Fields are ``name: value`` pairs between ``|``; ``nan``/``inf`` values are kept as non-finite,
    fields that are not numbers (or absent on a step, as Megatron omits a NaN loss) are simply
    not there for that step. Known fields get their TensorBoard names and units (``LOG_FIELDS``).
    Any prefix (timestamp, ``[default0]:``, a launcher's tag) before ``iteration`` is ignored.
    """
    series: Series = {}
    train_iters: int | None = None
    for number, raw_line in _lines(path):
        line = raw_line.decode("utf-8", errors="replace")
        m = _ITERATION.search(line)
        if m is None:
            continue
        step, train_iters = _step(m.group(1), path, number), _step(m.group(2), path, number)
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
    return Collected(series, train_iters)


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond a double: not a finite value
        return math.inf


def _parse_line(line: bytes, path: Path, number: int) -> t.Any:
    where = f"line {number}"
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(str(path), f"not UTF-8 (byte {e.start})", where) from e
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"not JSON: {e.msg}", where) from e
    except RecursionError as e:
        raise InputError(str(path), "not JSON: nested too deeply", where) from e
    except ValueError as e:  # an integer literal over Python's digit limit
        raise InputError(str(path), "not JSON: an integer literal too long to read", where) from e


def _metric_name(key: str, path: Path, number: int) -> str:
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                str(path),
                f"metric name {json.dumps(key)} holds half of a UTF-16 surrogate pair",
                f"line {number}",
            ) from None
    return key


def read_jsonl(path: Path) -> Collected:
    """One JSON object per line with a ``step`` (or ``iteration``) and metric values.

    A value that is ``null`` or ``"nan"`` is a logged non-finite value; strings and booleans
    (timestamps, flags) are not metrics and are skipped. A blank line is skipped; a line that is
    not an object with an integer step from 0 to ``MAX_STEP`` is an error naming the line.
    """
    series: Series = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        record = _parse_line(line, path, number)
        step = next(
            (record[k] for k in _STEP_KEYS if isinstance(record, dict) and k in record), None
        )
        if isinstance(step, bool) or not isinstance(step, int):
            raise InputError(
                str(path), "expected an object with an integer 'step'", f"line {number}"
            )
        if not 0 <= step <= MAX_STEP:
            raise InputError(
                str(path), f"step {str(step)[:30]} is out of range (0 to {MAX_STEP})",
                f"line {number}",
            )  # fmt: skip
        for key, value in record.items():
            if key in _STEP_KEYS:
                continue
            if value is None or (isinstance(value, str) and value.lower() == "nan"):
                series.setdefault(_metric_name(key, path, number), {})[step] = math.nan
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                series.setdefault(_metric_name(key, path, number), {})[step] = _float(value)
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
    if end_step < start_step:
        return []
    return [start_step, *_multiples(start_step, step_interval, end_step)]


def _multiples(start_step: int, step_interval: int, end_step: int) -> range:
    """The multiples of the interval after the start, up to the end: a range, whose length
    costs nothing whatever the step numbers."""
    interval = max(step_interval, 1)
    return range((start_step // interval + 1) * interval, end_step + 1, interval)


def sample(
    series: Series,
    *,
    metrics: t.Collection[str] | None = None,
    start_step: int = 1,
    step_interval: int = 1,
    train_iters: int | None = None,
    intervals: t.Mapping[str, tuple[int, int]] | None = None,
    source: str = "the collected metrics",
) -> GoldenValues:
    """Golden values from raw series, sampled like Megatron-LM.

    ``train_iters`` is the last step (default: the last step any metric logged); steps with no
    value are written ``"nan"``. ``intervals`` overrides ``(start_step, step_interval)`` per metric,
    so a run's values can be sampled like the golden they are compared with. ``metrics`` keeps
    only those names (default: all), in the order the sources logged them. The work is
    proportional to the steps logged and sampled, never to the step numbers: a grid of more than
    :data:`MAX_SAMPLED_STEPS` steps is an :class:`InputError` naming ``source``.
    """
    last = train_iters
    if last is None:
        last = max((max(v) for v in series.values() if v), default=start_step)
    out: dict[str, MetricSeries] = {}
    for name, values in series.items():
        if metrics is not None and name not in metrics:
            continue
        first, interval = (intervals or {}).get(name, (start_step, step_interval))
        if last < first:
            continue
        multiples = _multiples(first, interval, last)
        if len(multiples) >= MAX_SAMPLED_STEPS:
            raise InputError(
                source,
                f"metric {name!r}: sampling steps {first} to {last} every {max(interval, 1)} "
                f"gives {len(multiples) + 1:,} steps, over the limit of {MAX_SAMPLED_STEPS:,}; "
                "set the last step (--train-iters) or a larger step interval",
            )
        get = values.get
        by_step: dict[int, float | None] = {first: get(first)}
        for k in multiples:
            by_step[k] = get(k)
        out[name] = MetricSeries.from_mapping(
            name, by_step, step_interval=max(interval, 1), value_precision="full"
        )
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
    names = ", ".join(map(str, sources))
    merged = merge([read_source(s, fmt) for s in sources])
    if not merged.series:
        raise InputError(names, "no metric values found")
    if metrics is not None and not set(metrics) & set(merged.series):
        raise InputError(
            names,
            f"none of the metrics {sorted(metrics)} was logged "
            f"(found: {', '.join(sorted(merged.series))})",
        )
    golden = sample(
        merged.series,
        metrics=metrics,
        start_step=start_step,
        step_interval=step_interval,
        train_iters=train_iters or merged.train_iters,
        source=names,
    )
    if not golden.metrics:
        raise InputError(names, f"every step logged is before the start step {start_step}")
    return golden, merged.notes


def run_metrics(phase_dir: Path, tensorboard_dir: Path, log_path: Path) -> Collected:
    """A run's metrics from the best source it left: events, else metrics.jsonl, else its stdout."""
    if tensorboard_dir.is_dir() and any(tensorboard_dir.glob(EVENT_GLOB)):
        return read_source(tensorboard_dir, "tensorboard")
    jsonl = phase_dir / "metrics.jsonl"
    if jsonl.is_file() and jsonl.stat().st_size:
        return read_jsonl(jsonl)
    if log_path.is_file():
        return read_megatron_log(log_path)
    return Collected({})
