"""Migration of legacy list-layout golden files to the current step-keyed layout.

A legacy block holds ``series[start_step:end_step:step_interval]`` of a metric's logged
TensorBoard series, and its generator wrote ``end_step = len(series)``. TensorBoard scalars are
written every ``--tensorboard-log-interval`` iterations (default 1, whatever ``--log-interval``
says), so when ``end_step`` equals ``--train-iters // tensorboard_log_interval`` the series had
one value per logging step and list index ``i`` is training step
``(start_step + i * step_interval + 1) * tensorboard_log_interval``. Any other length means the
run logged nothing at some iterations (fp16 loss-scale skips drop ``num-zeros``, validation
metrics follow ``--eval-interval``) or more than one phase: the positions of the values are then
unknown, and the file is listed with the reason instead of being guessed at.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.goldens.discover import MODEL_CONFIG, TestCase, is_golden_name
from ci_golden.goldens.model import (
    GoldenValues,
    MetricSeries,
    detect_layout,
    dumps_golden,
    parse_golden,
    read_json,
    write_golden,
)

Status = t.Literal["convert", "cannot", "current", "unreadable"]


@dataclass(frozen=True)
class Migration:
    """What migrating one golden file means: converted values, or why it cannot be done."""

    path: Path
    status: Status
    reason: str | None = None
    golden: GoldenValues | None = None
    notes: tuple[str, ...] = ()
    applied: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("convert", "current")


def find_goldens(paths: t.Sequence[Path]) -> list[Path]:
    """Golden files among ``paths``: files as given, folders walked (no symlinked folders)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("golden_values*.json"))
                if not p.is_dir() and is_golden_name(p.name)  # a FIFO is refused, not skipped
            )
        elif path.exists():
            found.append(path)
        else:
            raise InputError(str(path), "no such file or folder")
    return list(dict.fromkeys(found))


def _model_arg(args: t.Mapping[str, t.Any], key: str) -> t.Any:
    return args.get(key, args.get(key.replace("-", "_")))


def _positive_int(value: t.Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()) or None
    return None


MEGATRON_LOG_INTERVAL = 100  # Megatron-LM's default --log-interval


def legacy_step_scale(model_config: t.Mapping[str, t.Any]) -> t.Callable[[str], int]:
    """Training steps per entry of a legacy list, per metric: in that era iteration-time was
    written every ``--log-interval`` iterations and the other metrics every
    ``--tensorboard-log-interval`` (Megatron-LM's defaults: 100 and 1). Used by ``compare`` and
    ``migrate`` alike, so both map a legacy golden to the same steps."""
    args = model_config.get("MODEL_ARGS") or {}
    if not isinstance(args, t.Mapping):
        args = {}
    tensorboard = _positive_int(_model_arg(args, "--tensorboard-log-interval")) or 1
    log = _positive_int(_model_arg(args, "--log-interval")) or MEGATRON_LOG_INTERVAL
    return lambda metric: log if metric == "iteration-time" else tensorboard


def series_length(folder: Path) -> tuple[int, int]:
    """``(logged points per metric, tensorboard log interval)`` from the case's model_config.yaml.

    Raises :class:`InputError` saying what is missing when the length cannot be known.
    """
    config = folder / MODEL_CONFIG
    if not config.is_file():
        raise InputError(
            str(config), "no model_config.yaml beside the golden: the run length is unknown"
        )
    case = TestCase(id=folder.name, path=folder, has_config=True, golden_files=())
    args = case.model_config.get("MODEL_ARGS") or {}
    raw_iters = _model_arg(args, "--train-iters")
    iters = _positive_int(raw_iters)
    if iters is None:
        what = (
            "no --train-iters"
            if raw_iters is None
            else f"--train-iters {raw_iters!r} is not a positive integer"
        )
        raise InputError(
            str(config), f"{what} in MODEL_ARGS: the run length is unknown", "$.MODEL_ARGS"
        )
    raw_interval = _model_arg(args, "--tensorboard-log-interval")
    interval = 1 if raw_interval is None else _positive_int(raw_interval)
    if interval is None:
        raise InputError(
            str(config),
            f"--tensorboard-log-interval {raw_interval!r} is not a positive integer",
            "$.MODEL_ARGS",
        )
    return iters // interval, interval


def _check_block(
    metric: str, block: t.Mapping[str, t.Any], logged: int, train_iters: str
) -> str | None:
    """Why this legacy block's list positions do not map to steps, or None when they do."""
    where = "$[" + json.dumps(metric) + "]"
    values = block["values"]
    fields = [block.get(k) for k in ("start_step", "end_step", "step_interval")]
    if not all(isinstance(f, int) and not isinstance(f, bool) for f in fields):
        return f"{where}: start_step, end_step and step_interval must be integers"
    start, end, interval = t.cast("list[int]", fields)
    if interval < 1 or start < 0 or end < start:
        return (
            f"{where}: start_step {start}, end_step {end}, step_interval {interval} select no slice"
        )
    selected = len(range(start, end, interval))
    if len(values) != selected:
        return (
            f"{where}: lists {len(values)} values but start_step {start}, end_step {end}, "
            f"step_interval {interval} select {selected}"
        )
    if end < logged:
        return (
            f"{where}: the golden was cut from a series of {end} logged values (end_step) "
            f"but the run logs {logged} ({train_iters}): some iterations logged nothing "
            "(fp16 loss-scale skips, an eval interval), so list positions do not map to steps"
        )
    if end > logged:
        return (
            f"{where}: the golden was cut from a series of {end} logged values (end_step), "
            f"more than the {logged} the run logs ({train_iters}): "
            "a longer or multi-phase run, positions unknown"
        )
    return None


def _current(series: MetricSeries, interval: int) -> MetricSeries:
    steps = series.steps
    return MetricSeries(
        name=series.name,
        steps=steps,
        values=series.values,
        nan_mask=series.nan_mask,
        start_step=int(steps[0]) if len(steps) else 0,
        end_step=int(steps[-1]) if len(steps) else 0,
        step_interval=series.step_interval * interval,
        value_precision=series.value_precision,
    )


def plan_migration(path: Path) -> Migration:
    """Read one golden file and decide its migration; never writes."""
    try:
        data = read_json(path)
        if not isinstance(data, dict) or detect_layout(data) != "legacy":
            parse_golden(data, path)
            return Migration(path, "current")
    except InputError as e:
        return Migration(
            path, "unreadable", e.detail if e.where is None else f"{e.where}: {e.detail}"
        )
    try:
        logged, interval = series_length(path.parent)
    except InputError as e:
        return Migration(path, "cannot", str(e))
    iters = f"--train-iters {logged * interval}" + (
        f" / --tensorboard-log-interval {interval}" if interval != 1 else ""
    )
    folder = path.parent
    scale = legacy_step_scale(
        TestCase(id=folder.name, path=folder, has_config=True, golden_files=()).model_config
    )
    for metric, block in data.items():
        if isinstance(block, dict) and isinstance(block.get("values"), list):
            why = _check_block(metric, block, logged * interval // scale(metric), iters)
            if why:
                return Migration(path, "cannot", why)
    try:
        legacy = parse_golden(data, path, log_interval=scale)
    except InputError as e:
        return Migration(path, "cannot", e.detail if e.where is None else f"{e.where}: {e.detail}")
    metrics = {}
    for name, series in legacy.metrics.items():
        is_list = isinstance(data[name].get("values"), list)
        metrics[name] = _current(series, scale(name)) if is_list else series
    golden = GoldenValues(layout="current", metrics=metrics)
    notes = tuple(
        f"drops top-level {key}={json.dumps(value)} (the current layout holds only metric blocks)"
        for key, value in legacy.extras.items()
    )
    _self_check(path, legacy, golden)
    return Migration(path, "convert", golden=golden, notes=notes)


def _self_check(path: Path, legacy: GoldenValues, golden: GoldenValues) -> None:
    """The written text must read back to exactly the legacy values at the mapped steps."""
    back = parse_golden(json.loads(dumps_golden(golden)), path)
    for name, series in legacy.metrics.items():
        if (
            not back.metrics[name].same_as(golden.metrics[name])
            or series.as_dict() != back.metrics[name].as_dict()
        ):
            raise AssertionError(
                f"{path}: migrated {name!r} does not read back to its source values"
            )


def apply_migration(migration: Migration) -> Migration:
    """Write a planned conversion atomically; other plans are returned unchanged."""
    if migration.status != "convert" or migration.golden is None:
        return migration
    write_golden(migration.path, migration.golden)
    return Migration(
        migration.path, "convert", golden=migration.golden, notes=migration.notes, applied=True
    )


def migrate(paths: t.Sequence[Path], *, apply: bool = False) -> list[Migration]:
    """Plan (and with ``apply`` write) the migration of every golden file under ``paths``."""
    plans = [plan_migration(p) for p in find_goldens(paths)]
    return [apply_migration(m) for m in plans] if apply else plans


def _describe(golden: GoldenValues) -> str:
    parts = []
    for name, s in golden.metrics.items():
        span = (
            f"steps {s.start_step}..{s.end_step} every {s.step_interval}" if len(s) else "no steps"
        )
        parts.append(f"{name!r} {len(s)} values, {span}")
    return "; ".join(parts)


def render_migrations(
    migrations: t.Sequence[Migration], *, display: t.Callable[[Path], str] = str
) -> str:
    """Plain-text report: one line per legacy or unreadable file, then a count."""
    lines: list[str] = []
    for m in migrations:
        name = display(m.path)
        if m.status == "convert" and m.golden is not None:
            verb = "converted" if m.applied else "would convert"
            lines.append(f"{verb} {name}: {_describe(m.golden)}")
            lines.extend(f"  note: {note}" for note in m.notes)
        elif m.status == "cannot":
            lines.append(f"cannot convert {name}: {m.reason}")
        elif m.status == "unreadable":
            lines.append(f"not read {name}: {m.reason}")
    count = {
        s: sum(1 for m in migrations if m.status == s)
        for s in ("convert", "cannot", "current", "unreadable")
    }
    applied = any(m.applied for m in migrations)
    summary = (
        f"{count['convert']} legacy file(s) {'converted' if applied else 'to convert'}, "
        f"{count['cannot']} cannot be converted, {count['unreadable']} unreadable, "
        f"{count['current']} already current"
    )
    if count["convert"] and not applied:
        summary += "; run with --apply to write them"
    lines.append(summary)
    return "\n".join(lines) + "\n"
