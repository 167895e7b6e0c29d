"""Collect: a run's metrics (TensorBoard events, JSONL logs, Megatron-LM stdout) as golden values.

Every reader returns ``{metric: {step: value}}``. TensorBoard values are rounded to 5 decimals,
as Megatron-LM's ``get_test_results_from_tensorboard_logs.py`` rounds what it reads (TensorBoard
holds float32, so 10.148325920 becomes 10.14833). The values are then put on a step grid: the
golden's own steps for the metrics it has (:func:`on_golden_grid`), else Megatron-LM's grid,
``1 <= step <= train_iters`` keeping step 1 and the multiples of the step size
(:func:`megatron_grid`). A step the run did not log is left out, never written as ``"nan"``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ci_golden.errors import InputError
from ci_golden.goldens.model import (
    MAX_STEP,
    GoldenFormatError,
    GoldenValues,
    MetricSeries,
    StepScale,
    load_golden,
)
from ci_golden.project.files import open_regular
from ci_golden.run.tfevents import (
    EVENT_GLOB,
    event_files,
    has_event_reader,
    merge_first,
    read_event_file,
)

SourceFormat = t.Literal["auto", "tensorboard", "jsonl", "log"]
ActualFormat = t.Literal["auto", "golden", "tensorboard", "jsonl", "log"]
Series = dict[str, dict[int, float]]

# What Megatron-LM keeps in a golden file (get_test_results_from_tensorboard_logs.py).
DEFAULT_METRICS = (
    "iteration-time",
    "mem-allocated-bytes",
    "mem-max-allocated-bytes",
    "lm loss",
    "num-zeros",
    "mtp_1 loss",
    "mtp_2 loss",
    "total loss",
)
TENSORBOARD_DECIMALS = 5

# Megatron-LM training_log fields -> the TensorBoard tag of the same quantity, and the factor
# to its unit (negative: divide, so that 1400 ms gives exactly 1.4 s).
LOG_FIELDS: dict[str, tuple[str, float]] = {
    "elapsed time per iteration (ms)": ("iteration-time", -1000.0),
    "throughput per GPU (TFLOP/s/GPU)": ("throughput", 1.0),
    "learning rate": ("learning-rate", 1.0),
    "global batch size": ("batch-size", 1.0),
    "loss scale": ("loss-scale", 1.0),
    "grad norm": ("grad-norm", 1.0),
    "num zeros": ("num-zeros", 1.0),
    "params norm": ("params-norm", 1.0),
}
# report_memory's line, in MB -> the TensorBoard tag in bytes
MEMORY_FIELDS = {
    "allocated": "mem-allocated-bytes",
    "max allocated": "mem-max-allocated-bytes",
    "reserved": "mem-reserved-bytes",
    "max reserved": "mem-max-reserved-bytes",
}
MEGABYTE = 1024.0 * 1024.0
_ITERATION = re.compile(r"\biteration\s+([0-9]+)\s*/\s*([0-9]+)\s*\|")
_MEMORY = re.compile(r"\(after ([0-9]+) iterations\) memory \(MB\)\s*\|")
_STEP_KEYS = ("step", "iteration")
# A line is read up to this many bytes, so that any input costs bounded memory: a 400 MB line
# without a newline is refused after 4 MiB.
MAX_LINE_BYTES = 4 * 1024 * 1024


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


def _fields(text: str) -> t.Iterator[tuple[str, float]]:
    """The numeric ``name: value`` fields of a ``|``-separated line part."""
    for part in text.split("|"):
        key, sep, raw = part.partition(":")
        key = key.strip()
        if sep and key:
            value = _number(raw.strip())
            if value is not None:
                yield key, value


def read_lines(path: Path, offset: int = 0, number: int = 0) -> t.Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a file from byte ``offset`` (where line ``number`` ended), each
    line read up to :data:`MAX_LINE_BYTES`; the last one may be unended."""
    with open_regular(path) as f:
        f.seek(offset)
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


def _step(text: str, name: str, number: int) -> int:
    """A step number of a line of file ``name``, within 0..MAX_STEP."""
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(MAX_STEP)):  # no int() of a 5,000-digit number
        raise InputError(
            name, f"step {digits[:30]}... is out of range (0 to {MAX_STEP})", f"line {number}"
        )
    return int(digits)


def read_megatron_log(path: Path) -> Collected:
    """Parse Megatron-LM's stdout: ``training_log`` lines (`` iteration   10/  100 | lm loss:
    1.03E+01 | ...``) and ``report_memory`` lines (``[Rank 0] (after 10 iterations) memory (MB) |
    allocated: 554.55 | max allocated: ...``).

    Fields are ``name: value`` pairs between ``|``; ``nan``/``inf`` values are kept as non-finite,
    fields that are not numbers (or absent on a step, as Megatron omits a NaN loss) are simply
    not there for that step. Known fields get their TensorBoard names and units (``LOG_FIELDS``,
    ``MEMORY_FIELDS``). Any prefix (timestamp, ``[default0]:``) is ignored.
    Megatron-LM prints averages since the previous line, and does not reset them after the first
    iteration: with ``--log-interval 1`` the second line's losses are a two-step mean.
    """
    series: Series = {}
    train_iters: int | None = None
    for number, raw in read_lines(path):
        parsed = parse_log_line(raw, series, str(path), number)
        if parsed is not None:
            train_iters = parsed[1]
    return Collected(series, train_iters)


def parse_log_line(raw: bytes, series: Series, name: str, number: int) -> tuple[int, int] | None:
    """Add the fields of one line of Megatron-LM's stdout (line ``number`` of file ``name``) to
    ``series`` (see :func:`read_megatron_log`); the (step, train_iters) of a ``training_log``
    line, else None."""
    line = raw.decode("utf-8", errors="replace")
    m = _ITERATION.search(line)
    if m is not None:
        step, train_iters = _step(m.group(1), name, number), _step(m.group(2), name, number)
        for key, value in _fields(line[m.end() :]):
            metric, scale = LOG_FIELDS.get(key, (key, 1.0))
            series.setdefault(metric, {})[step] = value / -scale if scale < 0 else value * scale
        return step, train_iters
    m = _MEMORY.search(line)
    if m is not None:
        step = _step(m.group(1), name, number)
        for key, value in _fields(line[m.end() :]):
            if key in MEMORY_FIELDS:
                series.setdefault(MEMORY_FIELDS[key], {})[step] = value * MEGABYTE
    return None


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond a double: not a finite value
        return math.inf


def _parse_json(line: str, name: str, number: int) -> t.Any:
    where = f"line {number}"
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(name, f"not JSON: {e.msg}", where) from e
    except RecursionError as e:
        raise InputError(name, "not JSON: nested too deeply", where) from e
    except ValueError as e:  # an integer literal over Python's digit limit
        raise InputError(name, "not JSON: an integer literal too long to read", where) from e


def _metric_name(key: str, name: str, number: int) -> str:
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                name,
                f"metric name {json.dumps(key)} holds half of a UTF-16 surrogate pair",
                f"line {number}",
            ) from None
    return key


def _shown(name: str) -> str:
    """A metric name from a file, for a one-line message: quoted and escaped when it holds a line
    break or another character that does not print."""
    return name if name.isprintable() else json.dumps(name)


def read_jsonl(path: Path) -> Collected:
    """One JSON object per line with a ``step`` (or ``iteration``) and metric values.

    A value that is ``null`` or ``"nan"`` is a logged non-finite value; strings and booleans
    (timestamps, flags) are not metrics and are skipped. A blank line is skipped; a line that is
    not an object with an integer step from 0 to ``MAX_STEP`` is an error naming the line, except
    a last line that is neither ended nor JSON: it was cut short (the run was stopped while writing
    it), and is left out with a note.
    """
    series: Series = {}
    for number, raw in read_lines(path):
        line = jsonl_text(raw, str(path), number)
        try:
            parse_jsonl_line(line, series, str(path), number)
        except InputError:
            if raw.endswith((b"\n", b"\r")):
                raise
            note = f"{path}: line {number} is cut short (the run stopped while writing it)"
            return Collected(series, notes=(note,))
    return Collected(series)


def jsonl_text(raw: bytes, name: str, number: int) -> str:
    """Line ``number`` of JSONL file ``name``, which must be UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(name, f"not UTF-8 (byte {e.start})", f"line {number}") from e


def parse_jsonl_line(line: str, series: Series, name: str, number: int) -> int | None:
    """Add one JSONL record (line ``number`` of file ``name``) to ``series``; its step, or None
    for a blank line (see :func:`read_jsonl`)."""
    if not line.strip():
        return None
    record = _parse_json(line, name, number)
    step = next((record[k] for k in _STEP_KEYS if isinstance(record, dict) and k in record), None)
    if isinstance(step, bool) or not isinstance(step, int):
        raise InputError(name, "expected an object with an integer 'step'", f"line {number}")
    if not 0 <= step <= MAX_STEP:
        raise InputError(
            name, f"step {str(step)[:30]} is out of range (0 to {MAX_STEP})", f"line {number}"
        )
    for key, value in record.items():
        if key in _STEP_KEYS:
            continue
        if value is None or (isinstance(value, str) and value.lower() == "nan"):
            series.setdefault(_metric_name(key, name, number), {})[step] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            series.setdefault(_metric_name(key, name, number), {})[step] = _float(value)
    return step


def detect_format(source: Path) -> SourceFormat:
    if source.is_dir() or "tfevents" in source.name:
        return "tensorboard"
    if source.suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "log"


def round_like_megatron(series: Series) -> Series:
    """TensorBoard values as Megatron-LM's extraction reads them: ``round(value, 5)``."""
    return {
        tag: {k: round(v, TENSORBOARD_DECIMALS) if math.isfinite(v) else v for k, v in s.items()}
        for tag, s in series.items()
    }


def read_tensorboard(source: Path, *, merge_all: bool = True) -> Collected:
    """An event file, or a folder's event files (not its sub-folders) in name order, rounded.

    ``merge_all``: every file, the first (oldest) value of a repeated step winning, as Megatron-LM
    reads a convergence test; else only the oldest file that holds scalars, as it reads a normal
    test (``--is-normal-test``). A folder with no event file is an :class:`InputError`.
    """
    files = event_files(source) if source.is_dir() else [source]  # a FIFO is refused, not globbed
    if not files:
        raise InputError(str(source), f"no {EVENT_GLOB} file in this folder")
    series: Series = {}
    notes: list[str] = []
    for path in files:
        part = read_event_file(path)
        notes.extend(part.notes)
        if not part.scalars:
            continue
        merge_first(series, part.scalars)
        if not merge_all:
            break
    return Collected(round_like_megatron(series), None, tuple(notes))


def read_source(source: Path, fmt: SourceFormat = "auto", *, merge_all: bool = True) -> Collected:
    """Read one source: an event-file folder or file, a JSONL file or a log file."""
    if not source.exists():
        raise InputError(str(source), "not found")
    kind = detect_format(source) if fmt == "auto" else fmt
    if kind == "tensorboard":
        return read_tensorboard(source, merge_all=merge_all)
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


def sampled_steps(step_size: int, steps: t.Iterable[int], train_iters: int | None) -> list[int]:
    """Megatron-LM's grid over logged ``steps``: ``1 <= step <= train_iters``, keeping step 1 and
    the multiples of ``step_size``."""
    size = max(step_size, 1)
    last = train_iters if train_iters is not None else math.inf
    return sorted(k for k in steps if 1 <= k <= last and (k == 1 or k % size == 0))


def grid_interval(steps: t.Sequence[int], step_size: int) -> int:
    """A block's ``step_interval``: the gcd of the gaps between kept steps (step 1 aside), or the
    step size when fewer than two are left."""
    rest = [k for k in steps if k != 1]
    if len(rest) < 2:
        return max(step_size, 1)
    return math.gcd(*(b - a for a, b in itertools.pairwise(rest)))


def _block(name: str, values: t.Mapping[int, float], steps: t.Sequence[int], interval: int,
           start: int | None = None, end: int | None = None) -> MetricSeries:  # fmt: skip
    # straight into arrays: a followed run is put on the grid at every judgement
    data = np.fromiter((values[k] for k in steps), dtype=np.float64, count=len(steps))
    data[~np.isfinite(data)] = np.nan  # a non-finite value is "nan"
    return MetricSeries.from_arrays(
        name, np.array(steps, dtype=np.int64), data,
        start_step=(steps[0] if steps else 0) if start is None else start,
        end_step=(steps[-1] if steps else 0) if end is None else end, step_interval=interval,
    )  # fmt: skip


def megatron_grid(
    series: Series,
    *,
    metrics: t.Collection[str] | None = None,
    step_size: int = 1,
    train_iters: int | None = None,
) -> GoldenValues:
    """Golden values as Megatron-LM's extraction writes them: each metric (of ``metrics``, default
    all) on :func:`sampled_steps`, a metric with no step on the grid left out, in the order the
    sources logged them."""
    out: dict[str, MetricSeries] = {}
    for name, values in series.items():
        if metrics is not None and name not in metrics:
            continue
        steps = sampled_steps(step_size, values, train_iters)
        if steps:
            out[name] = _block(name, values, steps, grid_interval(steps, step_size))
    return GoldenValues(layout="current", metrics=out)


def on_golden_grid(
    series: Series,
    golden: GoldenValues | None,
    *,
    metrics: t.Collection[str] | None = None,
    step_size: int = 1,
    train_iters: int | None = None,
) -> GoldenValues:
    """A run's values on the golden's steps for the metrics the golden has (its block's
    start/end/interval kept, steps the run did not log left out), on :func:`megatron_grid` for
    the others. ``metrics`` keeps only those names (the golden's are always kept)."""
    grids = {}
    if golden is not None and golden.layout != "inference":
        grids = golden.metrics
    wanted = {n for n in series if n not in grids} if metrics is None else {*metrics} - {*grids}
    rest = megatron_grid(series, metrics=wanted, step_size=step_size, train_iters=train_iters)
    out: dict[str, MetricSeries] = {}
    for name, values in series.items():
        g = grids.get(name)
        if g is None:
            if name in rest.metrics:
                out[name] = rest.metrics[name]
            continue
        logged = np.fromiter(values, dtype=np.int64, count=len(values))
        steps = g.steps[np.isin(g.steps, logged)].tolist()  # in C: the grid at every judgement
        out[name] = _block(name, values, steps, g.step_interval, g.start_step, g.end_step)
    return GoldenValues(layout="current", metrics=out)


def collect(
    sources: t.Sequence[Path],
    *,
    fmt: SourceFormat = "auto",
    metrics: t.Collection[str] | None = None,
    step_size: int = 1,
    train_iters: int | None = None,
    golden: GoldenValues | None = None,
) -> tuple[GoldenValues, tuple[str, ...]]:
    """Read and merge ``sources``, then put them on ``golden``'s grid (:func:`on_golden_grid`);
    returns the values and reader notes. With no ``train_iters``, a Megatron log's
    ``iteration N/TOTAL`` gives it."""
    merged = merge([read_source(s, fmt) for s in sources])
    where = ", ".join(map(str, sources))
    if not merged.series:
        raise InputError(where, "no metric values found")
    values = on_golden_grid(
        merged.series, golden, metrics=metrics, step_size=step_size,
        train_iters=train_iters or merged.train_iters,
    )  # fmt: skip
    if not values.metrics:
        wanted = sorted(metrics) if metrics is not None else "any metric"
        raise InputError(
            where,
            f"none of the metrics {wanted} was logged on the step grid "
            f"(found: {', '.join(map(_shown, sorted(merged.series)))})",
        )
    return values, merged.notes


SourceKind = t.Literal["tensorboard", "jsonl", "log"]


def metrics_source(phase_dir: Path, tensorboard_dir: Path, log_path: Path) -> SourceKind | None:
    """The best source a phase has left so far: events (when a TensorBoard reader is
    installed), else metrics.jsonl, else its stdout."""
    jsonl = phase_dir / "metrics.jsonl"
    has_jsonl = jsonl.is_file() and jsonl.stat().st_size > 0
    events = tensorboard_dir.is_dir() and any(tensorboard_dir.glob(EVENT_GLOB))
    if events and (not has_jsonl or has_event_reader()):
        return "tensorboard"
    if has_jsonl:
        return "jsonl"
    if log_path.is_file():
        return "log"
    return None


def run_metrics(
    phase_dir: Path, tensorboard_dir: Path, log_path: Path, *, merge_all: bool = False
) -> Collected:
    """A phase's metrics from the best source it left (:func:`metrics_source`): its TensorBoard
    events, else its ``metrics.jsonl`` (also when no TensorBoard reader is installed), else its
    stdout."""
    kind = metrics_source(phase_dir, tensorboard_dir, log_path)
    if kind == "tensorboard":
        return read_tensorboard(tensorboard_dir, merge_all=merge_all)
    if kind == "jsonl":
        return read_jsonl(phase_dir / "metrics.jsonl")
    if kind == "log":
        return read_megatron_log(log_path)
    return Collected({})


JSONL_HINT = (
    "; one JSON object per line is JSON Lines: name the file .jsonl or pass --actual-format jsonl"
)


def load_actual(
    path: Path,
    golden: GoldenValues | None,
    fmt: ActualFormat = "auto",
    *,
    log_interval: StepScale = 1,
) -> tuple[GoldenValues, tuple[str, ...]]:
    """A run's values from what it left behind: golden-format JSON (``.json``), an event folder
    or file, a JSONL file or a training log; all but JSON are put on ``golden``'s grid.
    Returns the values and reader notes."""
    kind = fmt
    if kind == "auto":
        kind = "golden" if path.suffix == ".json" and path.is_file() else detect_format(path)
    if kind != "golden":
        return collect([path], fmt=kind, golden=golden)
    try:
        return load_golden(path, log_interval=log_interval), ()
    except GoldenFormatError as e:
        if e.code == "CG102" and "Extra data" in e.detail:
            raise GoldenFormatError(e.code, e.path, e.detail + JSONL_HINT, e.where) from e
        raise
