"""The slurm executor: a job submitted to a Slurm cluster from a CI runner on its login node.

``sbatch`` submits the job script of :mod:`~ci_golden.run.slurm_submit`, which runs the job on
the first node of the allocation (GPU check, phases through ``srun``, collection, comparison)
as on a local runner. Here, ci-golden polls ``squeue``, streams the job's output file into the
CI log and reads the result.json the job wrote: the project and the output folder must be on a
filesystem the login node and the compute nodes share.

A job that Slurm ends (time limit, node failure, preemption) or that is still pending after the
platform's ``queue_timeout`` gets an ``error`` result that says so; SIGTERM or Ctrl-C cancels
the job with ``scancel``.
"""

from __future__ import annotations

import dataclasses
import signal
import time
import typing as t
from pathlib import Path

from ci_golden.compare.result import RESULT_FILE, load_result, write_result
from ci_golden.errors import RunnerError
from ci_golden.project.config import Platform, SlurmSettings
from ci_golden.project.files import atomic_write_text
from ci_golden.run.execute import make_out
from ci_golden.run.executor import RunOptions, error_result
from ci_golden.run.runner import host_info, now
from ci_golden.run.slurm_job import (
    ACTIVE_STATES,
    ENDED_BY,
    SCRIPT_ENDED,
    JobState,
    Tail,
    cancel,
    job_fields,
    query_state,
    slurm_command,
    tool_message,
)
from ci_golden.run.slurm_submit import Submission, node_plan, render_submission, submission

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult
    from ci_golden.project.config import Config
    from ci_golden.run.runner import Sink
    from ci_golden.run.spec import JobSpec

TAIL_INTERVAL_S = 0.25
SQUEUE_OUTAGE_S = 300  # squeue failing this long: the job is given up
CANCEL_WAIT_S = 120  # how long a cancelled job may take to end


class SlurmExecutor:
    """Submits the job with sbatch, follows it, and cancels it when interrupted."""

    def __init__(
        self,
        platform: Platform,
        *,
        notify: Sink | None = None,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = platform.slurm or SlurmSettings()
        self.notify = notify or (lambda line: None)
        self.sleep = sleep
        self.clock = clock

    def render(self, spec: JobSpec, config: Config, options: RunOptions) -> str:
        return render_submission(spec, config, submission(spec, config, options, cwd=Path.cwd()))

    def run(
        self, spec: JobSpec, config: Config, options: RunOptions, sink: Sink | None
    ) -> CaseResult:
        node_plan(spec, config)  # a case's config error shows here, before the job queues
        make_out(spec.out)
        sub = submission(spec, config, options, cwd=Path.cwd())
        sub.script_path.parent.mkdir(exist_ok=True)
        atomic_write_text(sub.script_path, sub.script)
        (spec.out / RESULT_FILE).unlink(missing_ok=True)  # only the job's own result counts
        info: dict[str, t.Any] = {**host_info(), "start": now()}
        # a SIGTERM arriving while sbatch runs is held until the job id is known
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            job = self._submit(sub, spec, config, info)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        follow = _Follow(self, job, sub, Tail(sub.output(job), sink))
        try:
            started = follow.until_ended()
        except KeyboardInterrupt:
            follow.cancel()
            self.notify(f"cancelled Slurm job {job} (scancel)")
            message = f"cancelled: the run was interrupted and Slurm job {job} cancelled (scancel)"
            # written at once (a CI runner's SIGKILL may follow), again once the job has ended
            follow.finish(spec, config, info, message)
            follow.until_cancelled()
            follow.finish(spec, config, info, message)
            raise
        if not started:
            reason = follow.state.reason if follow.state else "unknown"
            message = (
                f"not run: Slurm job {job} was still pending after the queue timeout of "
                f"{self.settings.queue_timeout} s (reason: {reason}); cancelled it (scancel)"
            )
            follow.until_cancelled()
            return follow.finish(spec, config, info, message)
        return follow.finish(spec, config, info, None)

    def _submit(
        self, sub: Submission, spec: JobSpec, config: Config, info: dict[str, t.Any]
    ) -> str:
        proc = slurm_command(sub.sbatch)
        job = proc.stdout.strip().split(";")[0]
        if proc.returncode != 0 or not job.isdigit():
            message = f"sbatch refused the job: {tool_message(proc)}"
            run_info = {**info, "end": now(), "slurm": {"sbatch": list(sub.sbatch)}}
            write_result(spec.out / RESULT_FILE, error_result(spec, config, message, run_info))
            raise RunnerError(message)
        log = sub.output(job).relative_to(spec.out.resolve())
        self.notify(f"submitted Slurm job {job} (output: {log})")
        return job


class _Follow:
    """One submitted job: its state as squeue reports it, and its output streamed."""

    def __init__(self, executor: SlurmExecutor, job: str, sub: Submission, tail: Tail) -> None:
        self.executor = executor
        self.job = job
        self.sub = sub
        self.tail = tail
        self.state: JobState | None = None  # the last state squeue reported
        self.gone = False  # slurmctld no longer knows the job
        self._failing_since: float | None = None

    @property
    def ended(self) -> bool:
        return self.gone or (self.state is not None and not self.state.active)

    def poll(self) -> bool:
        """Ask squeue; False when it failed (retried until :data:`SQUEUE_OUTAGE_S`). Says each
        change of state or reason."""
        try:
            state = query_state(self.job)
        except RunnerError as e:
            now_ = self.executor.clock()
            if self._failing_since is None:
                self._failing_since = now_
                self.executor.notify(f"{e}; retrying")
            elif now_ - self._failing_since > SQUEUE_OUTAGE_S:
                raise RunnerError(f"lost track of Slurm job {self.job}: {e}") from e
            return False
        self._failing_since = None
        before = self.state
        if state is None:
            self.gone = True
        elif before is None or (state.state, state.reason) != (before.state, before.reason):
            where = f" on {state.nodes}" if state.state == "RUNNING" and state.nodes else ""
            why = f" ({state.reason})" if state.reason not in ("", "None") else ""
            self.executor.notify(f"Slurm job {self.job} is {state.state}{why}{where}")
            self.state = state
        return True

    def _watch(self, stop: t.Callable[[], bool]) -> None:
        ex = self.executor
        next_poll = ex.clock()
        while True:
            self.tail.pump()
            if ex.clock() >= next_poll:
                if self.poll() and stop():
                    return
                next_poll = ex.clock() + ex.settings.poll_interval
            ex.sleep(TAIL_INTERVAL_S)

    def until_ended(self) -> bool:
        """Follow the job to its end and pass on all its output; False when it was still pending
        after the queue timeout (it is cancelled then)."""
        ex = self.executor
        deadline = ex.clock() + ex.settings.queue_timeout
        started = False

        def stop() -> bool:
            nonlocal started
            started = started or (self.state is not None and self.state.state != "PENDING")
            return self.ended or (not started and ex.clock() > deadline)

        self._watch(stop)
        if not self.ended:
            self.cancel()
            return False
        self.tail.close()
        return True

    def until_cancelled(self) -> None:
        """Wait for a cancelled job to end (at most :data:`CANCEL_WAIT_S`), passing on its
        output."""
        ex = self.executor
        deadline = ex.clock() + CANCEL_WAIT_S
        self._watch(lambda: self.ended or ex.clock() > deadline)
        self.tail.close()

    def cancel(self) -> None:
        cancel(self.job)

    def finish(
        self,
        spec: JobSpec,
        config: Config,
        info: dict[str, t.Any],
        message: str | None,
    ) -> CaseResult:
        """Write and return the job's result: the one the job wrote, with Slurm's facts added,
        else an ``error`` result saying ``message`` or what ended the job."""
        state = self.state
        fields = job_fields(self.job)
        log = self.tail.path.relative_to(spec.out.resolve()).as_posix()
        slurm_info: dict[str, t.Any] = {
            "job": self.job,
            "state": state.state if state else fields.get("JobState", "unknown"),
            "reason": state.reason if state else fields.get("Reason", ""),
            "nodes": state.nodes if state else fields.get("NodeList", ""),
            "exit_code": fields.get("ExitCode", ""),
            "output": log,
            "sbatch": list(self.sub.sbatch),
        }
        path = spec.out / RESULT_FILE
        written = load_result(path) if path.is_file() else None
        ended = slurm_info["state"]
        if message is None and ended not in {*SCRIPT_ENDED, *ACTIVE_STATES, "unknown"}:
            what = ENDED_BY.get(ended, "Slurm ended it")
            if ended == "TIMEOUT":
                what = f"its time limit of {self.sub.minutes} min was reached"
            message = (
                f"Slurm ended job {self.job} with {ended}: {what} "
                f"(reason: {slurm_info['reason']}); log: {log}"
            )
        refused = message is None and written is None
        if refused:
            seen = (
                f"last line of {log}: {self.tail.last_line}"
                if self.tail.last_line
                else f"no output in {log}: is {spec.out} on a filesystem the compute nodes mount?"
            )
            message = (
                f"Slurm job {self.job} ended {ended} (exit code {slurm_info['exit_code'] or '?'}) "
                f"without writing {RESULT_FILE}; {seen}"
            )
        if written is None:
            run_info = {**info, "end": now(), "slurm": slurm_info}
            result = error_result(spec, config, message or "", run_info)
        else:
            run = {**written.run, "slurm": slurm_info}
            result = dataclasses.replace(written, run=run)
            if message is not None:
                result = dataclasses.replace(result, verdict="error", message=message)
        write_result(path, result)
        if refused:
            raise RunnerError(result.message or "")
        if message is None and slurm_info["exit_code"].split(":")[0] == "2":
            # the run on the node refused the job (a wrong GPU): exit 2, as a local run does
            raise RunnerError(result.message or f"Slurm job {self.job} exited with code 2")
        return result
