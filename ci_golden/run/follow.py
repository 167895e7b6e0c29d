"""Following a training run while it runs: its metrics read as they are written, the best case
of the run judged by the comparison engine as steps arrive, and the run stopped at its first
certain failure.

The source is the one the final collection reads (:func:`~ci_golden.run.collect.metrics_source`:
TensorBoard events, else metrics.jsonl, else the log), read from where the last read stopped,
whole records and lines only. A step is final once the run has gone past it: the newest
step's events, JSONL record or memory line may still be coming, so it is left for the next
round. watchfiles wakes the follower when the phase's
folder changes, and at least every ``poll`` seconds (file systems shared between nodes send no
change events).
"""

from __future__ import annotations

import threading
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from watchfiles import watch

from ci_golden.errors import CiGoldenError
from ci_golden.run.collect import (
    Collected,
    Series,
    SourceKind,
    jsonl_text,
    metrics_source,
    parse_jsonl_line,
    parse_log_line,
    read_lines,
    round_like_megatron,
)
from ci_golden.run.tfevents import EventScalars, event_files, merge_first, read_event_tail

if t.TYPE_CHECKING:
    from ci_golden.compare.bound import Outlook
    from ci_golden.compare.result import MetricResult

Assess = t.Callable[[Collected, int], "Outlook"]
COST_FACTOR = 50  # judge at most once per this many times the last judgement's cost (2%)


@dataclass(frozen=True)
class Status:
    """Where a followed phase stands, for the progress line."""

    label: str
    step: int | None
    planned: int | None
    elapsed: float
    eta: float | None
    worst: MetricResult | None = None
    stopped: bool = False


@dataclass(frozen=True)
class Decision:
    """The follower's verdict on a phase: a certain failure, and how fast the phase ran."""

    outlook: Outlook
    step: int  # the last step seen when it decided
    seconds_per_step: float | None


class _Tail:
    """A growing file, read from where the last read stopped, in whole lines (as
    :func:`~ci_golden.run.collect.read_lines` reads them for the final read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.number = 0

    def lines(self) -> t.Iterator[tuple[int, bytes]]:
        """The lines ended since the last call; an unended one is left for the next call."""
        if not self.path.exists():
            return
        for number, line in read_lines(self.path, self.offset, self.number):
            if not line.endswith(b"\n"):
                return
            self.offset += len(line)
            self.number = number
            yield number, line


class Reader:
    """One source of a phase, read incrementally into the same series the final read gives."""

    def __init__(
        self,
        kind: SourceKind,
        phase_dir: Path,
        tensorboard: Path,
        log: Path,
        *,
        merge_all: bool = False,
    ) -> None:
        self.kind = kind
        self.merge_all = merge_all
        self.series: Series = {}
        self.train_iters: int | None = None
        self.last_step: int | None = None  # newest step of a log line or JSONL record
        self._folder = tensorboard
        self._tail = _Tail(phase_dir / "metrics.jsonl" if kind == "jsonl" else log)
        self._events: dict[Path, EventScalars] = {}

    def update(self) -> None:
        if self.kind == "tensorboard":
            self._update_events()
            return
        name = str(self._tail.path)
        for number, raw in self._tail.lines():
            if self.kind == "log":
                parsed = parse_log_line(raw, self.series, name, number)
                if parsed is not None:
                    self.train_iters = parsed[1]
                    self.last_step = max(self.last_step or parsed[0], parsed[0])
            else:
                step = parse_jsonl_line(jsonl_text(raw, name, number), self.series, name, number)
                if step is not None:
                    self.last_step = max(self.last_step or step, step)

    def _update_events(self) -> None:
        changed = False
        for path in event_files(self._folder):
            part = self._events.setdefault(path, EventScalars(path))
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size > part.offset:
                read_event_tail(part)
                changed = True
        if changed:  # as read_tensorboard merges and rounds them
            merged: Series = {}
            for path in sorted(self._events):
                scalars = self._events[path].scalars
                if scalars:
                    merge_first(merged, scalars)
                    if not self.merge_all:
                        break
            self.series = round_like_megatron(merged)

    def collected(self) -> Collected:
        return Collected(self.series, self.train_iters)

    def newest(self, metrics: t.Collection[str]) -> int | None:
        """The newest step read: of an iteration line or a JSONL record; for events, the
        newest step of the compared ``metrics`` (TensorBoard also logs tags per sample)."""
        if self.kind != "tensorboard":
            return self.last_step
        names = [n for n in metrics if self.series.get(n)]
        return max((max(self.series[n]) for n in names), default=None)

    def frontier(self, metrics: t.Collection[str]) -> int | None:
        """The last step whose values are final: the one before the newest (the newest step's
        events, record or memory line may still be coming)."""
        newest = self.newest(metrics)
        return None if newest is None else newest - 1


class Follower:
    """Follows one phase on a thread while its process runs (see the module docstring).

    ``assess`` judges the phase's values, final up to a step; when it finds a certain failure,
    ``stop`` is set (the runner then stops the process group) and :attr:`decision` says why.
    ``assess`` None: progress only. ``on_status`` gets a :class:`Status` after every round.
    Only the sources in ``judged`` are judged (see :func:`judged_sources`); any gives progress.
    """

    def __init__(
        self,
        label: str,
        phase_dir: Path,
        tensorboard: Path,
        log: Path,
        *,
        metrics: t.Collection[str],
        assess: Assess | None,
        planned: int | None,
        on_status: t.Callable[[Status], None] | None = None,
        poll: float = 1.0,
        min_interval: float = 0.1,
        merge_all: bool = False,
        judged: t.Collection[SourceKind] = ("tensorboard", "jsonl", "log"),
    ) -> None:
        self.label = label
        self.judged = frozenset(judged)
        self.paths = (phase_dir, tensorboard, log)
        self.merge_all = merge_all
        self.metrics = tuple(metrics)
        self.assess = assess
        self.planned = planned
        self.on_status = on_status
        self.poll = poll
        self.min_interval = min_interval
        self.stop = threading.Event()
        self.decision: Decision | None = None
        self.problem: str | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow {label}", daemon=True)
        self._reader: Reader | None = None
        self._start = time.monotonic()
        self.first: tuple[float, int] | None = None  # (seconds since start, step) first seen
        self._newest: tuple[float, int] | None = None  # and the newest
        self._judged: int | None = None
        self._next = 0.0
        self._worst: MetricResult | None = None

    def __enter__(self) -> Follower:
        self._start = time.monotonic()
        if self.assess is not None or self.on_status is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join()

    def seconds_per_step(self) -> float | None:
        """Seconds per step between the first and the newest step seen (startup left out)."""
        if self.first is None or self._newest is None or self._newest[1] == self.first[1]:
            return None
        (t0, s0), (t1, s1) = self.first, self._newest
        return (t1 - t0) / (s1 - s0)

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as e:  # a follower that fails must not go unnoticed, nor stop the run
            self.problem = f"stopped following {self.label}: {type(e).__name__}: {e}"

    def _follow(self) -> None:
        phase_dir = self.paths[0]
        phase_dir.mkdir(parents=True, exist_ok=True)  # the process has not made it yet
        changes = watch(
            phase_dir, watch_filter=None, debounce=int(self.min_interval * 1000), step=100,
            stop_event=self._closed, rust_timeout=int(self.poll * 1000), yield_on_timeout=True,
        )  # fmt: skip
        for _ in changes:
            try:
                self._round()
            except CiGoldenError as e:
                self.problem = f"stopped following {self.label}: {e}"
                return
            if self.decision is not None:
                return

    def _round(self) -> None:
        kind = metrics_source(*self.paths)
        if kind is None:
            return
        if self._reader is None or self._reader.kind != kind:
            self._reader = Reader(kind, *self.paths, merge_all=self.merge_all)
        reader = self._reader
        reader.update()
        now = time.monotonic()
        newest = reader.newest(self.metrics)
        through = reader.frontier(self.metrics)
        if newest is not None and (self._newest is None or newest > self._newest[1]):
            self._newest = (now - self._start, newest)
            self.first = self.first or self._newest
        if (
            self.assess is not None
            and reader.kind in self.judged
            and through is not None
            and (self._judged is None or through > self._judged)
            and now >= self._next
        ):
            t0 = time.perf_counter()
            outlook = self.assess(reader.collected(), through)
            cost = time.perf_counter() - t0
            # the first judgement also pays one-time costs (imports, caches): not the pace
            paced = cost * COST_FACTOR if self._judged is not None else 0.0
            self._next = time.monotonic() + max(self.min_interval, paced)
            self._judged = through
            self._worst = worst_so_far(outlook.metrics.values())
            if outlook.certain is not None:
                self.decision = Decision(outlook, newest or through, self.seconds_per_step())
                self.stop.set()
        if self.on_status is not None:
            self.on_status(self.status(newest, reader.train_iters))

    def status(self, step: int | None, train_iters: int | None = None) -> Status:
        planned = self.planned or train_iters
        rate = self.seconds_per_step()
        eta = rate * (planned - step) if rate and planned and step is not None else None
        return Status(
            self.label, step, planned, time.monotonic() - self._start, eta, self._worst,
            stopped=self.decision is not None,
        )  # fmt: skip


def judged_sources(
    argv: t.Sequence[str], phase_dir: Path, tensorboard: Path
) -> tuple[SourceKind, ...]:
    """The sources a phase run with ``argv`` may be judged from while it runs: those its final
    read can use. A run whose arguments name its TensorBoard folder or its metrics.jsonl is read
    from those in the end, and they appear only at their first flush, long after the first log
    lines: its log (fewer digits, memory at the first step only) is never judged."""
    named = (str(tensorboard), str(phase_dir / "metrics.jsonl"))
    if any(n in a for a in argv for n in named):
        return ("tensorboard", "jsonl")
    return ("tensorboard", "jsonl", "log")


def worst_so_far(metrics: t.Iterable[MetricResult]) -> MetricResult | None:
    """The gated metric nearest to failing: a failing one, else the one that used most of its
    failure budget, else the largest relative difference."""
    order = {"fail": 0, "missing": 1}

    def key(m: MetricResult) -> tuple[int, float, float]:
        used = m.n_failed / (m.budget + 1) if m.budget is not None else 0.0
        return (order.get(m.verdict, 2), -used, -(m.max_rel_diff or 0.0))

    gated = [m for m in metrics if m.gated]
    return min(gated, key=key) if gated else None
