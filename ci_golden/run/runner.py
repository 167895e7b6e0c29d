"""The runner side: is this the right machine, and running one training process safely.

A process runs in its own session (so in its own process group); its output is streamed line by
line with a prefix and saved to its log. On timeout or cancel (Ctrl-C, or SIGTERM from the CI
runner turned into KeyboardInterrupt by :func:`sigterm_as_interrupt`) the whole group gets
SIGTERM, then SIGKILL after a grace period; whatever is left of the group once the main process
has exited is stopped the same way, so no stray process keeps a GPU busy for the next job.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ci_golden.errors import InputError, RunnerError
from ci_golden.project.config import Platform

NVIDIA_SMI_QUERY = ("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
Sink = t.Callable[[str], None]


@dataclass(frozen=True)
class Gpu:
    name: str
    memory: str
    driver: str


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def query_gpus(environ: t.Mapping[str, str] | None = None) -> list[Gpu]:
    """The GPUs ``nvidia-smi`` reports; :class:`RunnerError` when it is missing or fails."""
    environ = os.environ if environ is None else environ
    exe = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if exe is None:
        raise RunnerError("nvidia-smi not found on PATH")
    try:
        proc = subprocess.run(
            [exe, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=60, env=dict(environ)
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RunnerError(f"nvidia-smi could not run: {e}") from e
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RunnerError(
            f"nvidia-smi failed (exit {proc.returncode}): {detail[0] if detail else 'no output'}"
        )
    gpus = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            gpus.append(Gpu(parts[0], parts[1], parts[2]))
    return gpus


def gpu_matches(wanted: str, name: str) -> bool:
    """``H100`` matches ``NVIDIA H100 80GB HBM3``, not ``NVIDIA H200``: a whole word of the name."""
    return (
        re.search(rf"(?<![A-Za-z0-9]){re.escape(wanted)}(?![A-Za-z0-9])", name, re.IGNORECASE)
        is not None
    )


def describe(gpus: t.Sequence[Gpu]) -> str:
    if not gpus:
        return "no GPU"
    names = sorted({g.name for g in gpus})
    parts = [f"{sum(g.name == n for g in gpus)} x {n}" for n in names]
    return ", ".join(parts) + f" (driver {gpus[0].driver})"


def check_gpus(
    platform: Platform, needed: int, environ: t.Mapping[str, str] | None = None
) -> list[Gpu]:
    """The GPUs of this runner when they fit the platform; else :class:`RunnerError` saying why."""
    want = f"{needed} x {platform.gpu} GPU{'s' if needed != 1 else ''} (platform {platform.name})"
    hint = "; run it on a matching runner, or pass --skip-gpu-check"
    try:
        gpus = query_gpus(environ)
    except RunnerError as e:
        raise RunnerError(f"{e}; this job needs {want}{hint}") from e
    assert platform.gpu is not None
    matching = [g for g in gpus if gpu_matches(platform.gpu, g.name)]
    if len(matching) < needed or not gpus:
        raise RunnerError(f"this runner has {describe(gpus)}; this job needs {want}{hint}")
    return gpus


def host_info() -> dict[str, str]:
    return {"host": socket.gethostname()}


def sigterm_as_interrupt() -> None:
    """Make SIGTERM (a CI runner cancelling the job) raise KeyboardInterrupt, as Ctrl-C does.

    :func:`run_process` then stops the training process group and the job writes its result.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    exit_code: int | None  # negative: killed by that signal
    timed_out: bool
    cancelled: bool
    start: str
    end: str
    seconds: float
    stopped: bool = False  # ``stop`` was set: the group was stopped on request


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is still running after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _pump(
    stream: t.IO[bytes],
    log: t.IO[bytes],
    prefix: str,
    sink: Sink | None,
    redact: t.Callable[[str], str] | None,
    failed: list[OSError],
) -> None:
    for raw in iter(stream.readline, b""):
        if redact is not None:  # bytes that are not UTF-8 pass through unchanged
            raw = redact(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        if not failed:
            try:
                log.write(raw)  # unbuffered: a full disk fails here, not at close
            except OSError as e:
                failed.append(e)  # keep reading: a process whose pipe is full would hang
        if sink is not None:
            sink(prefix + raw.decode("utf-8", errors="replace").rstrip("\r\n"))


def run_process(
    argv: t.Sequence[str],
    *,
    env: t.Mapping[str, str],
    cwd: Path,
    log_path: Path,
    prefix: str = "",
    timeout: float | None = None,
    grace: float = 10.0,
    sink: Sink | None = None,
    stop: threading.Event | None = None,
    redact: t.Callable[[str], str] | None = None,
) -> ProcessResult:
    """Run one command to its end, its timeout, ``stop`` being set, or a KeyboardInterrupt
    (re-raised after cleanup). A timeout or a stop ends the process group with SIGTERM, then
    SIGKILL after ``grace`` seconds.

    stdout and stderr go, merged, to ``log_path`` and line by line to ``sink`` with ``prefix``,
    each line through ``redact`` first. A log that cannot be written (a full disk) is an
    :class:`InputError` once the process ended.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start, t0 = now(), time.monotonic()
    timed_out = cancelled = stopped = False
    failed: list[OSError] = []
    with log_path.open("wb", buffering=0) as log:
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise RunnerError(f"cannot start {argv[0]}: {e.strerror or e}") from e
        assert proc.stdout is not None
        pump = threading.Thread(
            target=_pump, args=(proc.stdout, log, prefix, sink, redact, failed), daemon=True
        )
        pump.start()
        try:
            timed_out, stopped = _wait(proc, timeout, stop)
        except KeyboardInterrupt:
            cancelled = True
            stop_group(proc.pid, grace)
            proc.wait()
            pump.join(timeout=5)
            raise
        finally:
            if not cancelled:
                stop_group(proc.pid, grace if timed_out or stopped else min(grace, 2.0))
                proc.wait()
                pump.join(timeout=5)
    if failed:
        raise InputError(str(log_path), f"cannot write the log: {failed[0].strerror}")
    return ProcessResult(
        tuple(argv), proc.returncode, timed_out, cancelled, start, now(), time.monotonic() - t0,
        stopped,
    )  # fmt: skip


STOP_POLL = 0.05  # seconds between looks at the stop event while the process runs


def _wait(
    proc: subprocess.Popen[bytes], timeout: float | None, stop: threading.Event | None
) -> tuple[bool, bool]:
    """Wait for ``proc``; (timed out, stopped on request)."""
    if stop is None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return True, False
        return False, False
    deadline = None if timeout is None else time.monotonic() + timeout
    while proc.poll() is None:
        left = STOP_POLL if deadline is None else min(STOP_POLL, deadline - time.monotonic())
        if left <= 0:
            return True, False
        if stop.wait(left):
            return False, proc.poll() is None
    return False, False
