"""One submitted Slurm job, seen through the Slurm command-line tools, and its output file.

``squeue -t all`` gives the state and reason of a job while slurmctld still holds it (finished
jobs too, for MinJobAge seconds); ``scontrol show job`` gives its exit code. ``sacct`` is not
used: it needs slurmdbd, which many clusters run without.
"""

from __future__ import annotations

import os
import subprocess
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import RunnerError

if t.TYPE_CHECKING:
    from ci_golden.run.runner import Sink

# states of a job that has not ended yet (squeue's long names)
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED",
    "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT", "STOPPED",
})  # fmt: skip
# the job script ran to its end: ci-golden on the node wrote the result
SCRIPT_ENDED = frozenset({"COMPLETED", "FAILED"})
# what ended a job that Slurm (or someone else) stopped
ENDED_BY = {
    "TIMEOUT": "its time limit was reached",
    "NODE_FAIL": "a node of the allocation failed",
    "PREEMPTED": "a job of higher priority preempted it",
    "OUT_OF_MEMORY": "it ran out of memory",
    "BOOT_FAIL": "a node failed to boot",
    "DEADLINE": "its deadline passed",
    "CANCELLED": "it was cancelled outside ci-golden",
}
_GONE = "Invalid job id specified"


@dataclass(frozen=True)
class JobState:
    state: str  # squeue's long name: PENDING, RUNNING, TIMEOUT, ...
    reason: str  # squeue's %r: None, Priority, Resources, TimeLimit, JobHeldUser, ...
    nodes: str  # the allocated nodes, Slurm's compressed list; empty while pending

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def slurm_command(
    argv: t.Sequence[str], *, timeout: float = 60.0, environ: t.Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Slurm client command; :class:`RunnerError` when it is missing or hangs."""
    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ if environ is None else environ),
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as e:
        raise RunnerError(
            f"{argv[0]} not found on PATH: the slurm executor runs on a machine with the Slurm "
            "client tools (a login node)"
        ) from e
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RunnerError(f"{argv[0]} could not run: {e}") from e


def tool_message(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def query_state(job_id: str) -> JobState | None:
    """The job's state, or None once slurmctld has forgotten it; :class:`RunnerError` when squeue
    fails for another reason (slurmctld unreachable)."""
    proc = slurm_command(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%r|%N"])
    if proc.returncode != 0:
        if _GONE in proc.stderr:
            return None
        raise RunnerError(f"squeue failed: {tool_message(proc)}")
    line = proc.stdout.strip().splitlines()
    if not line:
        return None
    state, _, rest = line[0].partition("|")
    reason, _, nodes = rest.partition("|")
    return JobState(state, reason, nodes)


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job``'s fields (``ExitCode``, ``TimeLimit``, ...); empty once the job is
    forgotten."""
    proc = slurm_command(["scontrol", "show", "job", "-o", job_id])
    if proc.returncode != 0:
        return {}
    fields = {}
    for item in proc.stdout.split():
        key, sep, value = item.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def cancel(job_id: str) -> None:
    proc = slurm_command(["scancel", job_id])
    if proc.returncode != 0 and _GONE not in proc.stderr:
        raise RunnerError(f"scancel {job_id} failed: {tool_message(proc)}")


class Tail:
    """Follows a file another machine writes (a job's ``--output``), line by line.

    The file appears when the job starts; a line is passed on once its newline is there.
    """

    def __init__(self, path: Path, sink: Sink | None) -> None:
        self.path = path
        self.sink = sink
        self._offset = 0
        self._partial = b""
        self.last_line = ""

    def pump(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            self._emit(raw)

    def close(self) -> None:
        """Pass on what is left, a last line without its newline included."""
        self.pump()
        if self._partial:
            self._emit(self._partial)
            self._partial = b""

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if line.strip():
            self.last_line = line.strip()
        if self.sink is not None:
            self.sink(line)
