"""The dry run: a job's plan as shell lines and comments, nothing run, secrets hidden (by name in
MODEL_ARGS and ENV_VARS, and inside URLs)."""

from __future__ import annotations

import shlex
import typing as t

from ci_golden.compare.policy import resolve_policies
from ci_golden.project.redact import redact_argv, redact_env
from ci_golden.run.phases import CheckpointEdit, Evaluation, Phase, RunPlan

if t.TYPE_CHECKING:
    from ci_golden.project.config import Config
    from ci_golden.run.spec import JobSpec

_IF_OK = " (if every phase so far exited 0)"


def _phase_lines(phase: Phase) -> list[str]:
    when = _IF_OK if phase.when == "ok" else ""
    return [
        f"# {phase.name} ({phase.key}){when}: load {phase.load}, save {phase.save}, "
        f"tensorboard {phase.tensorboard}, log {phase.log}",
        f"cd {shlex.quote(str(phase.cwd))}",
        *(f"export {k}={shlex.quote(v)}" for k, v in redact_env(phase.env).items()),
        shlex.join(redact_argv(phase.argv)),
    ]


def _edit_line(edit: CheckpointEdit) -> str:
    return f"# then {edit.describe()}{_IF_OK if edit.when == 'ok' else ''}"


def describe_evaluation(
    ev: Evaluation, golden: str | None, gated: t.Sequence[str], xpass: bool
) -> list[str]:
    """What a repeat compares, as comment lines."""
    if ev.kind == "none":
        return [f"# {ev.reason}"]
    against = f"golden {golden}" if golden else "no golden yet (the values are the proposal)"
    if ev.kind == "consistency":
        return [
            f"# compare: {shlex.join(ev.check)} on "
            + ", ".join(str(p) for p in ev.checkpoints)
            + " (no golden)"
        ]
    metrics = ", ".join(gated) or "none"
    if ev.kind == "inference":
        lines = [f"# compare: the inference output {ev.first} against {against}; gated: {metrics}"]
    else:
        files = (
            "every event file merged, the oldest value of a step kept"
            if ev.merge_all
            else "the oldest event file holding scalars"
        )
        grid = f"steps 1..{ev.train_iters}" if ev.train_iters else "every logged step"
        lines = [
            f"# compare: TensorBoard {ev.first} ({files}, values rounded to 5 decimals) on the "
            f"golden's steps (metrics it lacks: {grid}, step 1 and every multiple of "
            f"{ev.step_size}) against {against}; gated: {metrics}"
        ]
        if ev.until is not None:
            lines.append(
                f"# only once latest_checkpointed_iteration.txt reaches {ev.until}; an earlier "
                "window is not compared, whatever its exit code"
            )
        if ev.second is not None:
            lines.append(
                f"# compare: TensorBoard {ev.second} after step {ev.resume_step} against the "
                f"first phase after step {ev.resume_step}, same policies"
            )
    if xpass:
        lines.append(
            "# TEST_EVALUATION xpass: a training failure is tolerated, then nothing is compared"
        )
    return lines


def render_plan(spec: JobSpec, plan: RunPlan, config: Config) -> str:
    """The phases, checkpoint edits and comparisons of every repeat, as shell lines."""
    _policies, gated = resolve_policies(config, spec.case)
    golden = spec.golden.as_posix() if spec.golden is not None else None
    kind = plan.kind
    lines = [
        f"# {spec.case.id} ({spec.environment}, {spec.platform}): TEST_TYPE {kind.test_type}, "
        f"MODE {kind.mode}, TEST_EVALUATION {kind.evaluation}, {plan.n_repeat} repeat(s), "
        f"TRAIN_ITERS {plan.train_iters if plan.train_iters is not None else '-'}, "
        f"time limit {spec.time_limit} s, output {spec.out}"
    ]
    lines += [f"# note: {note}" for note in plan.notes]
    for rp in plan.repeats:
        lines.append(f"# --- repeat {rp.number}")
        for step in rp.steps:
            lines += _phase_lines(step) if isinstance(step, Phase) else [_edit_line(step)]
        lines += describe_evaluation(rp.evaluation, golden, gated, kind.evaluation == "xpass")
    return "\n".join(lines) + "\n"
