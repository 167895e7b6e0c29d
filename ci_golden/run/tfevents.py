"""TensorBoard event files: the TFRecord framing read directly, each Event decoded by protobuf.

A record is ``uint64 length | uint32 masked-crc32c(length) | data | uint32 masked-crc32c(data)``,
all little-endian. Both checksums are verified (CRC-32C by google-crc32c, in C): a record whose
data does not match its checksum is an error naming the file and the record's byte offset, so a
flipped bit never becomes a wrong value. A file cut short (a run killed mid-write) is read up to
the last complete record, and the cut is reported; so is a damaged record header, since nothing
after it can be framed. The file is mapped, not read, so memory stays bounded by the largest
record decoded. Decoding uses tensorboard's compiled ``event_pb2`` (the optional ``tensorboard``
extra, or tensorboardX's copy of it), which is far faster than TensorBoard's
``EventAccumulator`` with its pure-Python reader.
"""

from __future__ import annotations

import functools
import mmap
import struct
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden.errors import InputError, RunnerError
from ci_golden.goldens.model import MAX_STEP
from ci_golden.project.files import open_regular

EVENT_GLOB = "events*tfevents*"
MISSING_EXTRA = (
    "reading TensorBoard event files needs the optional tensorboard extra "
    "(tensorboard, google-crc32c): pip install 'ci-golden[tensorboard]'"
)
# Scalar events are under 200 bytes; larger records (images, histograms) are checked in chunks
# of this size and decoded only up to it, so no record costs more memory than this.
MAX_RECORD_BYTES = 64 * 1024 * 1024

_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")


def _crc32c() -> t.Any:
    try:
        import google_crc32c
    except ImportError as e:
        raise RunnerError(MISSING_EXTRA) from e
    return google_crc32c


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of ``data``."""
    return _mask(_crc32c().value(data))


@functools.lru_cache(maxsize=1)
def has_event_reader() -> bool:
    """Whether event files can be read here (tensorboard or tensorboardX, and google-crc32c)."""
    try:
        _event_class()
        _crc32c()
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
    hparams) are left out. Raises :class:`InputError` naming the byte offset of a record whose
    data fails its checksum, is not an Event, or logs a step out of range (0 to ``MAX_STEP``).
    """
    out = EventScalars(path)
    _decode_file(out, final=True)
    return out


def read_event_tail(out: EventScalars) -> None:
    """Add the records written to ``out.path`` since ``out.offset`` (a file still being written:
    a record cut short is left for the next call)."""
    _decode_file(out, final=False)


def _decode_file(out: EventScalars, *, final: bool) -> None:
    with open_regular(out.path) as f:
        size = f.seek(0, 2)
        if size <= out.offset:
            return
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise InputError(str(out.path), f"cannot read file: {e}") from e
    with data:
        decode_records(data, size, out, final=final)


def decode_records(data: t.Any, size: int, out: EventScalars, *, final: bool) -> None:
    """Decode the complete records of ``data[out.offset:size]`` (the bytes of ``out.path``)
    into ``out`` and move ``out.offset`` past them. ``final``: the file is complete, so a record
    cut short is noted as a truncation."""
    from_string = _event_class().FromString
    crc = _crc32c()
    path = out.path
    scalars = out.scalars
    other_plugin = out.other_plugin
    unpack, unpack_crc = _HEADER.unpack_from, _CRC.unpack_from
    value_of, extend = crc.value, crc.extend
    known_headers: dict[bytes, int] = {}
    pos, records = out.offset, out.records
    while pos < size:
        if pos + 12 > size:
            if final:
                out.notes.append(
                    f"{path}: truncated at byte {pos} (partial record header); "
                    f"read {records} records up to the cut"
                )
            break
        length, header_crc = unpack(data, pos)
        header = data[pos : pos + 8]
        if known_headers.get(header) != header_crc:  # a run's records have few lengths
            if _mask(value_of(header)) != header_crc:
                note = (
                    f"{path}: corrupt record header at byte {pos}; "
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
                    f"{path}: truncated at byte {pos} (record of {length} bytes cut short); "
                    f"read {records} records up to the cut"
                )
            break
        if length <= MAX_RECORD_BYTES:
            payload: bytes | None = data[start:end]
            checksum = value_of(payload)
        else:  # checked in chunks, not decoded: no scalar logger writes such a record
            payload, checksum = None, 0
            for chunk in range(start, end, MAX_RECORD_BYTES):
                checksum = extend(checksum, data[chunk : min(chunk + MAX_RECORD_BYTES, end)])
        # _mask() inlined: this runs once per record
        if (((checksum >> 15) | (checksum << 17)) + 0xA282EAD8) & 0xFFFFFFFF != unpack_crc(
            data, end
        )[0]:
            raise InputError(
                str(path),
                f"record at byte {pos} is damaged: its {length} bytes of data do not match "
                "their checksum",
            )
        at, pos = pos, end + 4
        records += 1
        if payload is None:
            out.notes.append(
                f"{path}: record at byte {at} of {length} bytes skipped "
                f"(over {MAX_RECORD_BYTES} bytes, so not a scalar)"
            )
            continue
        try:
            event = from_string(payload)
        except Exception as e:  # google.protobuf.message.DecodeError
            raise InputError(
                str(path), f"record at byte {at} is not a TensorBoard Event: {e}"
            ) from e
        step = event.step
        values = event.summary.value
        if values and not 0 <= step <= MAX_STEP:
            raise InputError(
                str(path), f"record at byte {at} logs step {step}, out of range (0 to {MAX_STEP})"
            )
        for value in values:
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
    out.offset = pos


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
