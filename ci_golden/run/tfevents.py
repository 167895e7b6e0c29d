"""TensorBoard event files: the TFRecord framing read directly, each Event decoded by protobuf.

A record is ``uint64 length | uint32 masked-crc32c(length) | data | uint32 masked-crc32c(data)``,
all little-endian. The header checksum is verified (memoized: a run's records have few distinct
lengths); the payload checksum is not, the protobuf decoder rejects a damaged payload instead.
A file cut short (a run killed mid-write) is read up to the last complete record, and the cut
is reported. Decoding uses tensorboard's compiled ``event_pb2`` (the optional ``tensorboard``
extra, or tensorboardX's copy of it), which is far faster than TensorBoard's
``EventAccumulator`` with its pure-Python reader.
"""

from __future__ import annotations

import functools
import struct
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden.errors import InputError, RunnerError

EVENT_GLOB = "events*tfevents*"
MISSING_EXTRA = (
    "reading TensorBoard event files needs the optional tensorboard package: "
    "pip install 'ci-golden[tensorboard]'"
)

_HEADER = struct.Struct("<QI")
_CRC_TABLE: list[int] = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of ``data``."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@functools.lru_cache(maxsize=1)
def has_event_reader() -> bool:
    """Whether event files can be read here (tensorboard or tensorboardX installed)."""
    try:
        _event_class()
    except RunnerError:
        return False
    return True


def _event_class() -> t.Any:
    """The compiled ``Event`` message: tensorboard's, else tensorboardX's (the same proto)."""
    try:
        from tensorboard.compat.proto import event_pb2
    except ImportError as e:
        try:
            from tensorboardX.proto import event_pb2
        except ImportError:
            raise RunnerError(MISSING_EXTRA) from e
    return event_pb2.Event


# TensorProto dtype -> (repeated field holding the value, struct format of tensor_content)
_DTYPES: dict[int, tuple[str, str]] = {
    1: ("float_val", "<f"),  # DT_FLOAT
    2: ("double_val", "<d"),  # DT_DOUBLE
    3: ("int_val", "<i"),  # DT_INT32
    9: ("int64_val", "<q"),  # DT_INT64
    19: ("half_val", "<e"),  # DT_HALF: half_val holds the 16 bits
    14: ("half_val", "<H"),  # DT_BFLOAT16: half_val holds the 16 bits
}


def _tensor_scalar(tensor: t.Any) -> float | None:
    """The value of a single-element numeric tensor, else None."""
    dtype = tensor.dtype
    spec = _DTYPES.get(dtype)
    if spec is None or any(d.size != 1 for d in tensor.tensor_shape.dim):
        return None
    name, fmt = spec
    if tensor.tensor_content:
        raw = tensor.tensor_content
        if len(raw) != struct.calcsize(fmt):
            return None
        value = struct.unpack(fmt, raw)[0]
        if dtype == 14:
            return float(struct.unpack("<f", struct.pack("<I", value << 16))[0])
        return float(value)
    values = getattr(tensor, name)
    if len(values) != 1:
        return None
    if dtype == 19:
        return float(struct.unpack("<e", struct.pack("<H", values[0] & 0xFFFF))[0])
    if dtype == 14:
        return float(struct.unpack("<f", struct.pack("<I", (values[0] & 0xFFFF) << 16))[0])
    return float(values[0])


@dataclass
class EventScalars:
    """The scalars of one event file: ``{tag: {step: value}}``; a repeated step keeps its last
    value. ``offset`` is where the next record starts (the end of the last complete one).
    """

    path: Path
    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    records: int = 0
    notes: list[str] = field(default_factory=list)
    offset: int = 0
    other_plugin: set[str] = field(default_factory=set)


def read_event_file(path: Path) -> EventScalars:
    """Every scalar of one event file: ``simple_value`` summaries and single-element tensors.

    Tensors of a tag whose metadata names a plugin other than ``scalars`` (text, histograms,
    hparams) are left out.
    """
    out = EventScalars(path)
    decode_records(_read_bytes(path), out, final=True)
    return out


def read_event_tail(out: EventScalars) -> None:
    """Add the records written to ``out.path`` since ``out.offset`` (a file still being written:
    a record cut short is left for the next call)."""
    try:
        with out.path.open("rb") as f:
            f.seek(out.offset)
            data = f.read()
    except OSError as e:
        raise InputError(str(out.path), f"cannot read file: {e.strerror or e}") from e
    if data:
        decode_records(data, out, final=False)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(str(path), f"cannot read file: {e.strerror or e}") from e


def decode_records(data: bytes, out: EventScalars, *, final: bool) -> None:
    """Decode the complete records of ``data`` (the bytes of ``out.path`` from ``out.offset``)
    into ``out`` and move ``out.offset`` past them. ``final``: the file is complete, so a record
    cut short is noted as a truncation."""
    event_cls = _event_class()
    from_string = event_cls.FromString
    path, base = out.path, out.offset
    scalars = out.scalars
    other_plugin = out.other_plugin
    known_headers: dict[bytes, int] = {}
    unpack = _HEADER.unpack_from
    pos, size, records = 0, len(data), out.records
    while pos < size:
        if pos + 12 > size:
            if final:
                out.notes.append(
                    f"{path}: truncated at byte {base + pos} (partial record header); "
                    f"read {records} records up to the cut"
                )
            break
        length, header_crc = unpack(data, pos)
        header = data[pos : pos + 8]
        if known_headers.get(header) != header_crc:
            if masked_crc32c(header) != header_crc:
                note = (
                    f"{path}: corrupt record header at byte {base + pos}; "
                    f"read {records} records up to there"
                )
                if note not in out.notes:  # a followed file meets it again on every call
                    out.notes.append(note)
                break
            known_headers[header] = header_crc
        start = pos + 12
        end = start + length
        if end + 4 > size:
            if final:
                out.notes.append(
                    f"{path}: truncated at byte {base + pos} (record of {length} bytes cut short); "
                    f"read {records} records up to the cut"
                )
            break
        try:
            event = from_string(data[start:end])
        except Exception as e:  # google.protobuf.message.DecodeError
            raise InputError(
                str(path), f"record at byte {base + pos} is not a TensorBoard Event: {e}"
            ) from e
        pos = end + 4
        records += 1
        step = event.step
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            tag = value.tag
            if kind == "simple_value":
                number: float | None = value.simple_value
            elif kind == "tensor":
                if value.HasField("metadata"):
                    plugin = value.metadata.plugin_data.plugin_name
                    if plugin and plugin != "scalars":
                        other_plugin.add(tag)
                if tag in other_plugin:
                    continue
                number = _tensor_scalar(value.tensor)
                if number is None:
                    continue
            else:
                continue
            series = scalars.get(tag)
            if series is None:
                series = scalars[tag] = {}
            series[step] = number  # type: ignore[assignment]
    out.records = records
    out.offset = base + pos


def event_files(folder: Path) -> list[Path]:
    """The ``events*tfevents*`` files of a folder (not its sub-folders), sorted by name.

    Writers put the creation time first in the name (``events.out.tfevents.<unix time>.<host>``),
    so name order is creation order and does not depend on file-system timestamps.
    """
    return sorted(p for p in folder.glob(EVENT_GLOB) if p.is_file())


def read_event_folder(folder: Path) -> tuple[dict[str, dict[int, float]], list[str]]:
    """Merge the scalars of every event file of a folder, in name order.

    Where files repeat a step (a run resumed into the same folder), the first file's value is
    kept, as Megatron-LM's golden extraction does. Files holding no scalar (a header-only file
    from a run that died at start) contribute nothing.
    """
    files = event_files(folder)
    if not files:
        raise InputError(str(folder), f"no {EVENT_GLOB} file in this folder")
    merged: dict[str, dict[int, float]] = {}
    notes: list[str] = []
    for path in files:
        part = read_event_file(path)
        notes.extend(part.notes)
        merge_first(merged, part.scalars)
    return merged, notes


def merge_first(
    merged: dict[str, dict[int, float]], scalars: t.Mapping[str, t.Mapping[int, float]]
) -> None:
    """Add ``scalars`` to ``merged``; a (tag, step) ``merged`` already holds keeps its value."""
    for tag, series in scalars.items():
        into = merged.setdefault(tag, {})
        for step, value in series.items():
            into.setdefault(step, value)
