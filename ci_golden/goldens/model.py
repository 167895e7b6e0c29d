"""Golden-value files: one in-memory model for the current, legacy-list and inference layouts.

The current layout (Megatron-LM) maps a metric name to a block::

    {"lm loss": {"start_step": 1, "end_step": 100, "step_interval": 5,
                 "values": {"1": 10.85, "5": 10.82, "10": "nan"}}}

Step keys are strings of integers; ``"nan"`` marks a step that logged no finite value and is
kept as an explicit mask, never as a number to compare. The legacy layout holds a list of
values taken as ``series[start_step:end_step:step_interval]`` of the logged series (0-based),
so index ``i`` is training step ``(start_step + i * step_interval + 1) * log_interval``.
"""

from __future__ import annotations

import json
import math
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ci_golden.errors import InputError
from ci_golden.project.files import FileTooLarge, UnreadableFile, atomic_write_text, read_regular

Layout = t.Literal["current", "legacy", "inference"]

MAX_GOLDEN_BYTES = 64 * 1024 * 1024
MAX_STEP = 10**18 - 1  # the largest step key: 18 digits
NAN = "nan"
_STEP_KEY = re.compile(r"(0|[1-9][0-9]{0,17})\Z")
_NONFINITE_LITERAL = re.compile(r"(?<![\w\"])(-?Infinity|NaN)(?![\w\"])")


class GoldenFormatError(InputError):
    """A golden file that cannot be read as golden values. ``code`` is the finding code."""

    def __init__(self, code: str, path: str, message: str, where: str | None = None) -> None:
        self.code = code
        super().__init__(path, message, where)


@dataclass(frozen=True, eq=False)
class MetricSeries:
    """One metric's per-step values. ``values`` is NaN exactly where ``nan_mask`` is set."""

    name: str
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    nan_mask: npt.NDArray[np.bool_]
    start_step: int
    end_step: int
    step_interval: int
    value_precision: str | None = None

    @classmethod
    def from_mapping(
        cls,
        name: str,
        by_step: t.Mapping[int, float | None],
        *,
        start_step: int | None = None,
        end_step: int | None = None,
        step_interval: int = 1,
        value_precision: str | None = None,
    ) -> MetricSeries:
        """Build a series from ``{step: value}``; ``None`` or a non-finite value is ``"nan"``."""
        steps = np.array(sorted(by_step), dtype=np.int64)
        values = np.array(
            [np.nan if v is None else float(v) for v in (by_step[int(s)] for s in steps)],
            dtype=np.float64,
        )
        values[~np.isfinite(values)] = np.nan
        first = int(steps[0]) if len(steps) else 0
        last = int(steps[-1]) if len(steps) else 0
        return cls.from_arrays(
            name,
            steps,
            values,
            start_step=first if start_step is None else start_step,
            end_step=last if end_step is None else end_step,
            step_interval=step_interval,
            value_precision=value_precision,
        )

    @classmethod
    def from_arrays(
        cls,
        name: str,
        steps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        *,
        start_step: int,
        end_step: int,
        step_interval: int,
        value_precision: str | None = None,
    ) -> MetricSeries:
        """Build a series from parallel arrays (any order); NaN values become the ``"nan"`` mask."""
        order = np.argsort(steps, kind="stable")
        if not np.all(order[1:] > order[:-1]):
            steps, values = steps[order], values[order]
        return cls(
            name=name,
            steps=steps,
            values=values,
            nan_mask=np.isnan(values),
            start_step=start_step,
            end_step=end_step,
            step_interval=step_interval,
            value_precision=value_precision,
        )

    def __len__(self) -> int:
        return len(self.steps)

    def as_dict(self) -> dict[int, float | None]:
        """``{step: value}`` with ``None`` for the steps marked ``"nan"``."""
        return {
            int(s): (None if m else float(v))
            for s, v, m in zip(self.steps, self.values, self.nan_mask, strict=True)
        }

    def same_as(self, other: MetricSeries) -> bool:
        return (
            self.name == other.name
            and self.start_step == other.start_step
            and self.end_step == other.end_step
            and self.step_interval == other.step_interval
            and self.value_precision == other.value_precision
            and np.array_equal(self.steps, other.steps)
            and np.array_equal(self.nan_mask, other.nan_mask)
            and np.array_equal(self.values, other.values, equal_nan=True)
        )


@dataclass(frozen=True, eq=False)
class GoldenValues:
    """A parsed golden file.

    ``metrics`` holds the per-step blocks (current and legacy layouts). ``extras`` keeps other
    top-level entries (legacy ``iteration_timing_avg``). For the inference layout ``raw`` is the
    whole document: requests keyed by id plus top-level summaries such as ``throughput``.
    """

    layout: Layout
    metrics: dict[str, MetricSeries] = field(default_factory=dict)
    extras: dict[str, t.Any] = field(default_factory=dict)
    raw: dict[str, t.Any] | None = None

    def same_as(self, other: GoldenValues) -> bool:
        if self.layout != other.layout or list(self.metrics) != list(other.metrics):
            return False
        if self.extras != other.extras or self.raw != other.raw:
            return False
        return all(a.same_as(other.metrics[n]) for n, a in self.metrics.items())

    @property
    def requests(self) -> dict[str, dict[str, t.Any]]:
        """Inference layout: the request records keyed by id."""
        if self.raw is None:
            return {}
        if "generated_tokens" in self.raw:  # a single flat request (static inference)
            return {str(self.raw.get("id", "0")): self.raw}
        return {k: v for k, v in self.raw.items() if isinstance(v, dict)}


# --- reading -----------------------------------------------------------------------------


def _unique_pairs(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _NonFinite(Exception):
    def __init__(self, literal: str) -> None:
        self.literal = literal


def _reject_constant(literal: str) -> t.NoReturn:
    raise _NonFinite(literal)


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _loads_without_duplicates(text: str) -> t.Any:
    """``json.loads`` that refuses NaN/Infinity and duplicate keys (raises _DuplicateKey).

    The exact check (every object built from its list of pairs) costs about a third of the
    parse, so the document is first parsed into plain dicts while their sizes are summed:
    each key of the text is followed by a colon, so when the text holds no more colons than
    the dicts hold keys, no key was dropped as a duplicate. Otherwise (colons in strings, a
    real duplicate, or any error) the exact parse decides, so messages stay the same.
    """
    keys = 0

    def count(d: dict[str, t.Any]) -> dict[str, t.Any]:
        nonlocal keys
        keys += len(d)
        return d

    try:
        data = json.loads(text, object_hook=count, parse_constant=_reject_constant)
        if text.count(":") == keys:
            return data
    except Exception:  # the exact parse below raises it again (or what it raised before)
        pass
    return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)


def read_json(path: Path, *, max_bytes: int = MAX_GOLDEN_BYTES) -> t.Any:
    """Strictly parse one JSON file: UTF-8 without BOM, no duplicate keys, no NaN/Infinity.

    The size is checked before anything is read, so a huge file is refused at once, and so is
    a FIFO, socket or device (without opening it).
    Raises :class:`GoldenFormatError` with the finding code and the line.
    """
    name = str(path)
    try:
        data = read_regular(name, max_bytes=max_bytes)
    except FileTooLarge as e:
        raise GoldenFormatError("CG107", name, e.detail) from e
    except UnreadableFile as e:
        raise GoldenFormatError("CG100", name, e.detail) from e
    if not data:
        raise GoldenFormatError("CG101", name, "zero-byte file: expected a JSON object")
    if data.startswith(b"\xef\xbb\xbf"):
        raise GoldenFormatError("CG103", name, "file starts with a UTF-8 byte-order mark", "line 1")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise GoldenFormatError("CG103", name, f"not UTF-8 (byte {e.start})", f"line {line}") from e
    if not text or text.isspace():  # what `not text.strip()` says, without a copy
        raise GoldenFormatError("CG101", name, "file holds only whitespace: expected a JSON object")
    return loads_strict(text, name)


def loads_strict(text: str, name: str) -> t.Any:
    """Parse JSON text as :func:`read_json` does; ``name`` is what errors name."""
    try:
        data = _loads_without_duplicates(text)
    except _DuplicateKey as e:
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(e.key)) + r"\s*:", text)]
        where = f"line {line_of(text, hits[1])}" if len(hits) > 1 else None
        raise GoldenFormatError("CG105", name, f"duplicate key {json.dumps(e.key)}", where) from e
    except _NonFinite as e:
        m = _NONFINITE_LITERAL.search(text)
        where = f"line {line_of(text, m.start())}" if m else None
        raise GoldenFormatError(
            "CG106", name, f'{e.literal} is not valid JSON; write the string "nan"', where
        ) from e
    except json.JSONDecodeError as e:
        raise GoldenFormatError(
            "CG102", name, f"not valid JSON: {e.msg}", f"line {e.lineno} column {e.colno}"
        ) from e
    except RecursionError as e:
        raise GoldenFormatError("CG102", name, "JSON nested too deeply") from e
    except ValueError as e:  # an integer literal over Python's digit limit
        m = re.search(r"-?\d{1000,}", text)
        where = f"line {line_of(text, m.start())}" if m else None
        raise GoldenFormatError(
            "CG102",
            name,
            f"number too long: an integer literal of {len(m.group()) if m else 'over 4300'} digits",
            where,
        ) from e
    if "\\u" in text and _lone_surrogate(data):
        m = _LONE_SURROGATE_ESCAPE.search(text)
        where = f"line {line_of(text, m.start())}" if m else None
        escape = m.group() if m else "a \\uD800-\\uDFFF escape"
        raise GoldenFormatError(
            "CG103", name, f"{escape} is half of a UTF-16 surrogate pair, not a character", where
        )
    return data


# a \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or one of those alone
_LONE_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _lone_surrogate(data: t.Any) -> bool:
    """Whether a string of parsed JSON holds a lone surrogate (which no UTF-8 file can hold)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def detect_layout(data: t.Mapping[str, t.Any]) -> Layout:
    blocks = [v for v in data.values() if isinstance(v, dict) and "values" in v]
    if blocks:
        return "legacy" if any(isinstance(b["values"], list) for b in blocks) else "current"
    if "generated_tokens" in data or any(
        k.isdigit() and isinstance(v, dict) for k, v in data.items()
    ):
        return "inference"
    return "current"


def _int_field(block: t.Mapping[str, t.Any], key: str, name: str, where: str) -> int:
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GoldenFormatError(
            "CG110", name, f"{key} must be an integer, got {json.dumps(value)}", f"{where}.{key}"
        )
    if not 0 <= value <= MAX_STEP:
        raise GoldenFormatError(
            "CG110", name, f"{key} {value} is out of range (0 to {MAX_STEP})", f"{where}.{key}"
        )
    return value


def _value(v: t.Any, name: str, where: str) -> float | None:
    if isinstance(v, str) and v.lower() == NAN:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise GoldenFormatError(
            "CG110", name, f'value must be a number or "nan", got {json.dumps(v)}', where
        )
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise GoldenFormatError("CG106", name, f"{v!r} is not a finite number", where)
    return f


_ALL_STEP_KEYS = re.compile(r"(?:(?:0|[1-9][0-9]{0,17}),)*(?:0|[1-9][0-9]{0,17})\Z")


def _steps_array(keys: list[str], name: str, where: str) -> npt.NDArray[np.int64]:
    if keys and not _ALL_STEP_KEYS.match(",".join(keys)):  # one C-level scan for the common case
        for key in keys:
            if not _STEP_KEY.match(key):
                raise GoldenFormatError(
                    "CG110",
                    name,
                    f"step key {json.dumps(key)} is not a non-negative integer",
                    where,
                )
    return np.array(keys, dtype=np.int64) if keys else np.zeros(0, dtype=np.int64)


def _values_array(
    raw: list[t.Any], name: str, prefix: str, keys: list[str] | None
) -> npt.NDArray[np.float64]:
    """Values as float64 with NaN for ``"nan"``; anything else that is not a finite number fails.

    ``keys`` are the step keys of the current layout (None for a legacy list), for messages.
    """

    def where(i: int) -> str:
        return f"{prefix}[{i}]" if keys is None else f"{prefix}[{json.dumps(keys[i])}]"

    out = np.empty(len(raw), dtype=np.float64)
    odd = [i for i, v in enumerate(raw) if v.__class__ is not float]
    if not odd:
        out[:] = raw
    else:
        clean = list(raw)
        for i in odd:
            v = _value(raw[i], name, where(i))
            clean[i] = np.nan if v is None else v
        out[:] = clean
    bad = np.isinf(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise GoldenFormatError("CG106", name, f"{raw[i]!r} is not a finite number", where(i))
    return out


def _where(metric: str) -> str:
    return "$" + "[" + json.dumps(metric) + "]"


StepScale = t.Union[int, t.Callable[[str], int]]  # noqa: UP007 - a runtime alias on 3.10


def parse_golden(data: t.Any, path: str | Path, *, log_interval: StepScale = 1) -> GoldenValues:
    """Turn parsed JSON into :class:`GoldenValues`, detecting the layout.

    ``log_interval`` maps legacy list indices to training steps: training steps per logged
    point, or a function of the metric name giving it
    (:func:`ci_golden.goldens.migrate.legacy_step_scale`).
    """
    name = str(path)
    if not isinstance(data, dict):
        raise GoldenFormatError(
            "CG110", name, f"expected a JSON object, got {type(data).__name__}", "$"
        )
    if not data:
        raise GoldenFormatError("CG104", name, "empty object {}: no metric to compare", "$")
    layout = detect_layout(data)
    if layout == "inference":
        return GoldenValues(layout="inference", raw=data)
    metrics: dict[str, MetricSeries] = {}
    extras: dict[str, t.Any] = {}
    for metric, block in data.items():
        where = _where(metric)
        if not isinstance(block, dict):
            if (
                layout == "legacy"
                and isinstance(block, (int, float))
                and not isinstance(block, bool)
            ):
                extras[metric] = block
                continue
            raise GoldenFormatError(
                "CG110",
                name,
                f"metric block must be an object, got {json.dumps(block)[:40]}",
                where,
            )
        if "values" not in block:
            raise GoldenFormatError("CG110", name, "metric block has no 'values'", where)
        start = _int_field(block, "start_step", name, where)
        end = _int_field(block, "end_step", name, where)
        interval = _int_field(block, "step_interval", name, where)
        precision = block.get("value_precision")
        raw_values = block["values"]
        if isinstance(raw_values, list):
            scale = log_interval(metric) if callable(log_interval) else log_interval
            last = (start + (len(raw_values) - 1) * max(interval, 1) + 1) * scale
            if last > MAX_STEP:
                raise GoldenFormatError(
                    "CG110",
                    name,
                    f"the list's last value would be step {last}, past step {MAX_STEP}",
                    f"{where}.values",
                )
            steps = (
                start + np.arange(len(raw_values), dtype=np.int64) * max(interval, 1) + 1
            ) * scale
            values = _values_array(raw_values, name, f"{where}.values", None)
        elif isinstance(raw_values, dict):
            keys = list(raw_values)
            steps = _steps_array(keys, name, f"{where}.values")
            values = _values_array(list(raw_values.values()), name, f"{where}.values", keys)
        else:
            raise GoldenFormatError(
                "CG110", name, "'values' must be an object or a list", f"{where}.values"
            )
        metrics[metric] = MetricSeries.from_arrays(
            metric,
            steps,
            values,
            start_step=start,
            end_step=end,
            step_interval=interval,
            value_precision=precision if isinstance(precision, str) else None,
        )
    return GoldenValues(layout=layout, metrics=metrics, extras=extras)


def load_golden(path: Path, *, log_interval: StepScale = 1) -> GoldenValues:
    """Read and parse one golden file; raises :class:`GoldenFormatError` naming the place."""
    return parse_golden(read_json(path), path, log_interval=log_interval)


# --- writing -----------------------------------------------------------------------------


def to_document(golden: GoldenValues) -> dict[str, t.Any]:
    """The current-layout JSON document (inference documents are kept as they are)."""
    if golden.layout == "inference":
        assert golden.raw is not None
        return golden.raw
    doc: dict[str, t.Any] = {}
    for name, s in golden.metrics.items():
        block: dict[str, t.Any] = {
            "start_step": int(s.start_step),
            "end_step": int(s.end_step),
            "step_interval": int(s.step_interval),
        }
        if s.value_precision is not None:
            block["value_precision"] = s.value_precision
        block["values"] = {
            str(int(step)): (NAN if m else float(v))
            for step, v, m in zip(s.steps, s.values, s.nan_mask, strict=True)
        }
        doc[name] = block
    return doc


def dumps_golden(golden: GoldenValues) -> str:
    """Canonical text: 4-space indent, metric order kept, steps ascending, newline at the end."""
    return json.dumps(to_document(golden), indent=4, ensure_ascii=False, allow_nan=False) + "\n"


def write_golden(path: Path, golden: GoldenValues) -> None:
    """Write ``golden`` in the current layout, atomically."""
    atomic_write_text(path, dumps_golden(golden))
