"""Progress of a running job: one line per status, shown live on a terminal or every 30 s in a
CI log.

:func:`render_status` is pure; :class:`Display` decides where and how often lines go: on a
terminal one line redrawn in place (the training log scrolls above it), elsewhere a plain line
now and then, since CI logs keep every line.
"""

from __future__ import annotations

import shutil
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from ci_golden.compare.result import MetricResult
    from ci_golden.run.follow import Status

PLAIN_EVERY = 30.0  # seconds between progress lines in a CI log
LIVE_EVERY = 0.2  # seconds between redraws of a terminal's live line
_CLEAR = "\r\x1b[2K"


def fmt_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_signed_pct(rel: float) -> str:
    """A relative difference as ``+8%``, ``-0.52%``."""
    pct = rel * 100
    return f"{pct:+.0f}%" if abs(pct) >= 10 else f"{pct:+.2g}%"


def describe_metric(m: MetricResult) -> str:
    """How far a metric is from its golden so far, e.g. ``lm loss 3 of 20 allowed misses, max
    4.1%``."""
    parts = [m.name]
    if m.policy.kind == "median" and m.actual_stat is not None and m.golden_stat:
        parts.append(f"median {fmt_signed_pct(m.actual_stat / m.golden_stat - 1)}")
    elif m.n_failed and m.budget is not None:
        parts.append(f"{m.n_failed} of {m.budget} allowed misses,")
    if m.max_rel_diff is not None and m.policy.kind != "median":
        parts.append(f"max {m.max_rel_diff * 100:.2g}%")
    if m.verdict in ("fail", "missing"):
        parts.append(f"({m.verdict})")
    return " ".join(parts)


def render_status(status: Status) -> str:
    """One progress line: ``phase1: step 120/2,000 · 1m02s elapsed · ETA 15m30s · worst: ...``."""
    step = "starting" if status.step is None else f"step {status.step:,}"
    if status.step is not None and status.planned:
        step += f"/{status.planned:,}"
    parts = [f"{status.label}: {step}", f"{fmt_duration(status.elapsed)} elapsed"]
    if status.eta is not None:
        parts.append(f"ETA {fmt_duration(status.eta)}")
    if status.worst is not None:
        parts.append(f"worst: {describe_metric(status.worst)}")
    if status.stopped:
        parts.append("stopping: the verdict can no longer be pass")
    return " · ".join(parts)


class Display:
    """Progress lines on ``stream``: live (redrawn in place) or plain (one every ``every`` s,
    the first after ``every`` s).

    :meth:`wrap` gives a sink for the training log that keeps the live line below it.
    """

    def __init__(
        self,
        stream: t.TextIO,
        *,
        live: bool,
        prefix: str = "",
        every: float | None = None,
        clock: t.Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.stream = stream
        self.live = live
        self.width = width or shutil.get_terminal_size().columns
        self.prefix = prefix
        self.every = every if every is not None else (LIVE_EVERY if live else PLAIN_EVERY)
        self.clock = clock
        self._lock = threading.Lock()
        self._line = ""
        # a CI log's first line comes after ``every`` seconds: short jobs print none
        self._last: float | None = None if live else clock()

    def update(self, status: Status) -> None:
        now = self.clock()
        with self._lock:
            if (
                self._last is not None
                and now - self._last < self.every
                and not (status.stopped and self.live)
            ):
                return
            self._last = now
            self._line = self.prefix + render_status(status)
            if self.live:
                self._line = self._line[: max(self.width - 1, 20)]  # one row: \r redraws it
                self.stream.write(_CLEAR + self._line)
            else:
                self.stream.write(self._line + "\n")
            self.stream.flush()

    def wrap(self, sink: t.Callable[[str], None]) -> t.Callable[[str], None]:
        if not self.live:
            return sink

        def wrapped(line: str) -> None:
            with self._lock:
                if self._line:
                    self.stream.write(_CLEAR)
                    self.stream.flush()
                sink(line)
                if self._line:
                    self.stream.write(self._line)
                    self.stream.flush()

        return wrapped

    def close(self) -> None:
        """End the live line (the next output starts on a clean line)."""
        with self._lock:
            if self.live and self._line:
                self.stream.write(_CLEAR)
                self.stream.flush()
            self._line = ""
