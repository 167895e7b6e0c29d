"""Rules over golden values a JSON Schema cannot express.

Each check returns ``(place, code, message)`` tuples; ``place`` is the list of keys leading
to the offending entry (``["lm loss", "end_step"]``).

Megatron-LM writes steps on one of two grids: ``start_step + k * step_interval`` (e.g.
1, 2, 3, ...) or ``start_step`` followed by the multiples of ``step_interval`` (1, 5, 10, ...,
as its golden-value writer does). A block must follow one of them.
"""

from __future__ import annotations

import typing as t

Problem = tuple[list[t.Any], str, str]


def off_grid(steps: list[int], start: int, interval: int) -> list[int]:
    """The steps on neither grid (of the grid they mostly follow)."""
    off_a = [s for s in steps if (s - start) % interval]
    if not off_a:
        return []
    off_b = [s for s in steps if s != start and s % interval]
    if not off_b:
        return []
    return sorted(off_a if len(off_a) <= len(off_b) else off_b)


def run_length(model_config: t.Mapping[str, t.Any]) -> tuple[int, str] | None:
    """The last training step of the case's run and the flag that sets it.

    Megatron-LM stops at ``--train-iters``, or earlier at the first multiple of
    ``--exit-interval``. None when neither is a plain integer (e.g. ``--train-samples``).
    """
    args = model_config.get("MODEL_ARGS")
    if not isinstance(args, dict):
        return None
    iters, exit_at = args.get("--train-iters"), args.get("--exit-interval")
    candidates = [
        (v, flag)
        for v, flag in ((iters, "--train-iters"), (exit_at, "--exit-interval"))
        if type(v) is int and v > 0
    ]
    return min(candidates) if candidates else None


def check_current(
    data: t.Mapping[str, t.Any],
    steps_by_metric: t.Mapping[str, list[int] | None],
    run: tuple[int, str] | None,
) -> list[Problem]:
    """``steps_by_metric`` holds None for a block whose keys are exactly a regular grid."""
    out: list[Problem] = []
    for metric, known in steps_by_metric.items():
        block = data[metric]
        start, end, interval = block["start_step"], block["end_step"], block["step_interval"]
        if known is None:
            if run is not None:
                out += _check_run_length(metric, block, True, run)
            continue
        steps = sorted(known)  # not exactly a regular grid (see validate_fast.regular_grid)
        bad = off_grid(steps, start, interval)
        if bad:
            out.append(
                (
                    [metric, "values", str(bad[0])],
                    "CG111",
                    f"step {bad[0]} is off the grid of start_step {start} "
                    f"and step_interval {interval}"
                    + (f" ({len(bad)} steps off the grid)" if len(bad) > 1 else ""),
                )
            )
        first, last = min(steps), max(steps)
        if first != start:
            out.append(
                (
                    [metric, "start_step"],
                    "CG112",
                    f"start_step is {start} but the first step key is {first}",
                )
            )
        if last != end:
            out.append(
                (
                    [metric, "end_step"],
                    "CG112",
                    f"end_step is {end} but the last step key is {last}",
                )
            )
        if run is not None:
            out += _check_run_length(metric, block, steps == known, run)
    return out


def _check_run_length(
    metric: str, block: t.Mapping[str, t.Any], ascending: bool, run: tuple[int, str]
) -> list[Problem]:
    """``ascending``: the step keys are in ascending order."""
    length, flag = run
    end, interval = block["end_step"], block["step_interval"]
    where = [metric, "end_step"]
    if end > length:
        top = _last_logged_step(block["values"], length, ascending)
        if top is not None:
            return [
                (
                    where,
                    "CG113",
                    f"end_step {end} is past the end of the run ({flag} {length}): "
                    f"steps up to {top} can never be compared",
                )
            ]
        return [
            (
                where,
                "CG114",
                f"end_step {end} is past the end of the run ({flag} {length}); "
                'the steps after it are all "nan"',
            )
        ]
    if end + interval <= length:
        return [
            (
                where,
                "CG113",
                f"end_step {end} stops short of the run ({flag} {length}): "
                f"steps {end + interval}..{length} are not checked",
            )
        ]
    return []


def _last_logged_step(values: dict[str, t.Any], length: int, ascending: bool) -> int | None:
    """The largest step past ``length`` whose value is not ``"nan"``, else None. Steps in
    ascending order (the usual case) are read from the end, stopping at the first logged one."""
    if not ascending:
        beyond = [int(k) for k, v in values.items() if v != "nan" and int(k) > length]
        return max(beyond) if beyond else None
    for key, value in zip(reversed(values.keys()), reversed(values.values()), strict=True):
        step = int(key)
        if step <= length:
            return None
        if value != "nan":
            return step
    return None


def check_legacy(data: t.Mapping[str, t.Any]) -> list[Problem]:
    out: list[Problem] = []
    for metric, block in data.items():
        if not isinstance(block, dict):
            continue
        expected = len(range(block["start_step"], block["end_step"], block["step_interval"]))
        if len(block["values"]) != expected:
            out.append(
                (
                    [metric, "values"],
                    "CG112",
                    f"{len(block['values'])} values, "
                    f"but start_step/end_step/step_interval select {expected}",
                )
            )
    return out


def _has_metric(data: t.Mapping[str, t.Any], metric: str) -> bool:
    if metric in data:
        return True
    if "generated_tokens" in data:  # one flat inference request
        return False
    requests = [v for k, v in data.items() if k.isdigit() and isinstance(v, dict)]
    return bool(requests) and all(metric in r for r in requests)


def missing_metrics(
    metrics: t.Sequence[t.Any], goldens: t.Mapping[str, t.Any]
) -> list[tuple[int, str, list[str]]]:
    """``(index in METRICS, metric, golden files without it)`` for each metric some golden lacks.

    For inference goldens a metric names a field every request has, or a top-level entry.
    """
    out = []
    for index, metric in enumerate(metrics):
        lacking = [name for name, data in sorted(goldens.items()) if not _has_metric(data, metric)]
        if lacking:
            out.append((index, metric, lacking))
    return out
