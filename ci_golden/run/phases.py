"""The run plan of a job: which phases run, with which arguments and folders, and what is compared.

This is Megatron-LM's ``run_ci_test.sh`` as data (each rule cites the script in the README's
"Running a job" section). The plan is made before anything runs and holds no process: the
executor (``execute.py``) walks it, and a dry run prints it. Folders, below the job's output::

    run/<i>/tensorboard/                  TENSORBOARD_PATH of repeat i (run_1/, run_2/ for the
                                          resuming test types)
    run/<i>/run_<n>/stdout.log            the log of phase n of repeat i (its OUTPUT_PATH)
    run/checkpoints/                      CHECKPOINT_SAVE_PATH (checkpoint-consistency: one
                                          folder per MODEL_ARGS key)
    run/tmp_checkpoints/                  Megatron-LM's /tmp/checkpoints/: where phase 1 of
                                          regular, ckpt-resume and frozen-resume loads from, and
                                          frozen-resume's phase 2 saves to
    CHECKPOINT_LOAD_PATH                  the frozen checkpoints: the runner's environment, else
                                          the project config's ``frozen_checkpoints``
"""

from __future__ import annotations

import os
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden.goldens.testkind import RESUMING, TestKind, read_kind
from ci_golden.project.config import SlurmSettings
from ci_golden.project.redact import Redactor, argv_secrets, env_secrets
from ci_golden.run.launch import (
    ENVIRON_VARS,
    env_vars,
    model_args_argv,
    program,
    script_of,
    srun_step,
    substitute,
)

if t.TYPE_CHECKING:
    from ci_golden.goldens.discover import TestCase

TRACKER = "latest_checkpointed_iteration.txt"
DEFAULT_TRAIN_ITERS = 100  # `yq '.MODEL_ARGS."--exit-interval" // "100"'`
RL_TRAIN_ITERS = 50
LIGHTWEIGHT_ITERS = 4
CONVERGENCE_STEP = 5  # get_test_results_from_tensorboard_logs.py's default --step-size
# _run_training.sh sets these unless the environment already does
NCCL_DEFAULTS = {
    "NCCL_PROTO": "simple", "NCCL_ALGO": "Ring", "NCCL_COLLNET_ENABLE": "0",
    "NCCL_NVLS_ENABLE": "0", "NCCL_TUNER_PLUGIN": "", "NCCL_BUFFSIZE": "4194304",
    "TORCH_NCCL_AVOID_RECORD_STREAMS": "1",
}  # fmt: skip
# the test types that read the frozen checkpoints
FROZEN = frozenset({"frozen-start", "frozen-resume", "checkpoint-consistency"})
_ARGS_KEY = re.compile(r"MODEL_ARGS(?:_(\d+))?\Z")
When = t.Literal["always", "ok"]


@dataclass(frozen=True)
class Phase:
    """One training process of one repeat. ``when`` "ok": only if every earlier phase of the
    repeat exited 0."""

    repeat: int
    run_number: int
    key: str  # the MODEL_ARGS key its arguments come from
    argv: tuple[str, ...]
    env: dict[str, str]  # set on top of the runner's environment
    cwd: Path
    dir: Path
    load: Path
    save: Path
    tensorboard: Path
    when: When = "always"

    @property
    def name(self) -> str:
        """run_ci_test.sh's phase name."""
        return f"repeat_{self.repeat}_run_{self.run_number}"

    @property
    def label(self) -> str:
        return self.name

    @property
    def log(self) -> Path:
        return self.dir / "stdout.log"


@dataclass(frozen=True)
class CheckpointEdit:
    """What run_ci_test.sh does to a checkpoint folder between phases: ``remove`` a folder,
    ``clear`` a folder's contents, or write ``iteration`` to a ``tracker`` file."""

    action: t.Literal["remove", "clear", "tracker"]
    path: Path
    iteration: int | None = None
    when: When = "always"

    def describe(self) -> str:
        if self.action == "tracker":
            return f"write {self.iteration} to {self.path}"
        return f"{'delete' if self.action == 'remove' else 'empty'} {self.path}"


Step = t.Union[Phase, CheckpointEdit]  # noqa: UP007 - a runtime alias on Python 3.10


@dataclass(frozen=True)
class Evaluation:
    """What one repeat's values are and what they are compared with.

    ``kind``: ``golden`` (pretraining: TensorBoard scalars of ``first`` against the golden, and
    for the resuming types ``second``'s steps after ``resume_step`` against ``first``'s),
    ``inference`` (the JSON written to ``first``), ``consistency`` (``check`` run on the
    ``checkpoints``), or ``none`` (``reason`` says why). ``merge_all``: every event file of
    ``first`` merged (a convergence test) instead of the oldest one holding scalars;
    ``step_size``: Megatron-LM's step grid for metrics the golden lacks. ``until``: release only,
    the tracker iteration a window must reach before it is compared. ``tolerate_failure``: the
    job passes whatever the training exit code (frozen-resume's recording mode).
    """

    kind: t.Literal["golden", "inference", "consistency", "none"]
    first: Path | None = None
    second: Path | None = None
    resume_step: int | None = None
    train_iters: int | None = None
    step_size: int = 1
    merge_all: bool = False
    until: int | None = None
    tolerate_failure: bool = False
    checkpoints: tuple[Path, ...] = ()
    check: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class RepeatPlan:
    number: int
    steps: tuple[Step, ...]
    evaluation: Evaluation


@dataclass(frozen=True)
class RunPlan:
    """Every repeat of a job. ``notes`` say where the plan departs from a plain run (recording
    mode, an unset CHECKPOINT_LOAD_PATH, lightweight mode)."""

    kind: TestKind
    repeats: tuple[RepeatPlan, ...]
    train_iters: int | None
    load: Path
    save: Path
    notes: tuple[str, ...] = ()
    keep_checkpoints: bool = False

    @property
    def phases(self) -> tuple[Phase, ...]:
        return tuple(s for r in self.repeats for s in r.steps if isinstance(s, Phase))

    @property
    def n_repeat(self) -> int:
        return len(self.repeats)


def repeat_dir(out: Path, repeat: int) -> Path:
    return out / "run" / str(repeat)


def args_keys(model_config: t.Mapping[str, t.Any]) -> list[tuple[str, int]]:
    """The ``MODEL_ARGS`` and ``MODEL_ARGS_<n>`` keys in file order, with their run numbers."""
    keys = []
    for key in model_config:
        m = _ARGS_KEY.match(str(key))
        if m:
            keys.append((str(key), int(m.group(1)) if m.group(1) else 1))
    return keys


def _int(value: t.Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def edited_args(
    model_config: t.Mapping[str, t.Any], kind: TestKind
) -> tuple[dict[str, dict[str, t.Any]], int | None]:
    """The MODEL_ARGS keys after run_ci_test.sh's in-place edits, and TRAIN_ITERS.

    Pretraining (not release): ``--exit-interval`` := ``--train-iters``, or 4 in lightweight
    mode (with ``--save-interval`` 2 for the resuming types); NeMo: ``trainer.max_steps``.
    Release: TRAIN_ITERS is ``--exit-interval``; rl: ``--exit-interval`` (default 50).
    """
    keys = {k: dict(model_config.get(k) or {}) for k, _ in args_keys(model_config)}
    main = keys.setdefault("MODEL_ARGS", {})
    iters: int | None = None
    if kind.mode == "pretraining" and kind.test_type != "release":
        if kind.nemo:
            if kind.lightweight:
                main["trainer.max_steps"] = 2
            iters = _int(main.get("trainer.max_steps")) or DEFAULT_TRAIN_ITERS
        elif kind.lightweight:
            main["--exit-interval"] = LIGHTWEIGHT_ITERS
            if kind.test_type in RESUMING:
                main["--save-interval"] = 2
            iters = LIGHTWEIGHT_ITERS
        else:
            if "--train-iters" in main:
                main["--exit-interval"] = main["--train-iters"]
            iters = _int(main.get("--exit-interval")) or DEFAULT_TRAIN_ITERS
    elif kind.mode == "pretraining":
        iters = _int(main.get("--exit-interval")) or DEFAULT_TRAIN_ITERS
    elif kind.mode == "rl":
        iters = _int(main.get("--exit-interval")) or RL_TRAIN_ITERS
    return keys, iters


def exit_duration(environ: t.Mapping[str, str], time_limit: int | None) -> int | None:
    """``--exit-duration-in-mins`` for a job window: the Slurm window (SLURM_JOB_START_TIME and
    SLURM_JOB_END_TIME), else ``time_limit`` seconds; 15 minutes short of it, or 4/5 of a window
    of 15 minutes or less (at least 1)."""
    start, end = environ.get("SLURM_JOB_START_TIME"), environ.get("SLURM_JOB_END_TIME")
    if start and end and start.isdigit() and end.isdigit():
        window = (int(end) - int(start)) // 60
    elif time_limit is not None:
        window = time_limit // 60
    else:
        return None
    return window - 15 if window > 15 else max(1, window * 4 // 5)


@dataclass(frozen=True)
class _PhaseMaker:
    """What every phase of a plan shares; :meth:`make` fills in one phase."""

    case: TestCase
    kind: TestKind
    keys: dict[str, dict[str, t.Any]]
    inputs: PlanInputs
    out: Path
    duration: int | None
    base: list[str]

    def make(
        self, repeat: int, run_number: int, key: str, load: Path, save: Path, tensorboard: Path,
        when: When,
    ) -> Phase:  # fmt: skip
        inputs, environ, source = self.inputs, self.inputs.environ, str(self.case.config_path)
        mc = self.case.model_config
        phase_dir = repeat_dir(self.out, repeat) / f"run_{run_number}"
        variables = {k: environ[k] for k in ENVIRON_VARS if environ.get(k)}
        variables.setdefault("DATA_CACHE_PATH", str(self.out / "run" / "data-cache"))
        variables.update(
            OUTPUT_PATH=str(phase_dir), TENSORBOARD_PATH=str(tensorboard),
            CHECKPOINT_SAVE_PATH=str(save), CHECKPOINT_LOAD_PATH=str(load),
            INFERENCE_OUTPUT_PATH=str(phase_dir / inputs.actual_name),
            REPEAT=str(repeat), RUN_NUMBER=str(run_number),
        )  # fmt: skip
        gpus = inputs.gpus
        if self.kind.test_type == "checkpoint-consistency":
            per_key = (mc.get("MODEL_ENV_VARS") or {}).get(key) or {}
            gpus = _int(per_key.get("GPUS_PER_NODE")) or inputs.gpus
        prog = self.base
        if gpus != inputs.gpus:
            prog = _start(self.case, inputs, self.out, gpus)
        argv = [substitute(a, variables, source, "$.CI_GOLDEN") for a in prog]
        if self.duration is not None and not self.kind.nemo:
            argv += ["--exit-duration-in-mins", str(self.duration)]
        argv += model_args_argv(self.keys.get(key), variables, source, key)
        env = {k: v for k, v in NCCL_DEFAULTS.items() if k not in environ}
        env.update(
            (k, v) for k, v in variables.items() if k not in ENVIRON_VARS or k == "DATA_CACHE_PATH"
        )
        env.update(env_vars(mc.get("ENV_VARS"), variables, source))
        env["ENABLE_LIGHTWEIGHT_MODE"] = "true" if self.kind.lightweight else "false"
        env["GPUS_PER_NODE"] = str(gpus)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, (str(inputs.cwd), environ.get("PYTHONPATH")))
        )
        return Phase(repeat, run_number, key, tuple(argv), env, inputs.cwd, phase_dir, load, save,
                     tensorboard, when)  # fmt: skip


@dataclass(frozen=True)
class PlanInputs:
    """What the plan is made from besides the case: the job's folders and settings."""

    out: Path
    cwd: Path
    actual_name: str
    n_repeat: int = 1
    nodes: int = 1
    gpus: int = 0
    time_limit: int = 3600
    frozen_checkpoints: Path | None = None
    slurm: SlurmSettings | None = None  # a platform whose jobs run in a Slurm allocation
    environ: t.Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def _start(case: TestCase, inputs: PlanInputs, out: Path, gpus: int) -> list[str]:
    """The program a phase runs, through ``srun`` inside a Slurm allocation."""
    argv = program(case, inputs.nodes, gpus, inputs.environ, inputs.slurm)
    if inputs.slurm is not None:
        argv = srun_step(inputs.nodes, inputs.slurm, inputs.cwd, out) + argv
    return argv


def _load_path(inputs: PlanInputs, kind: TestKind, notes: list[str]) -> Path:
    given = inputs.environ.get("CHECKPOINT_LOAD_PATH")
    if given:
        return Path(given)
    if inputs.frozen_checkpoints is not None:
        return inputs.frozen_checkpoints
    if kind.test_type in FROZEN:
        notes.append(
            "CHECKPOINT_LOAD_PATH is not set (the runner's environment, or frozen_checkpoints "
            "in the project config): frozen checkpoints are read from an empty folder"
        )
    return inputs.out / "run" / "frozen_checkpoints"


def _is_empty(folder: Path) -> bool:
    try:
        return not any(folder.iterdir())
    except OSError:
        return True


def plan_run(case: TestCase, inputs: PlanInputs) -> RunPlan:
    """The phases of every repeat of ``case``, their folders, argv and environment, and what
    each repeat compares. Raises :class:`~ci_golden.errors.InputError` for a config it cannot
    run (an unknown variable or launcher)."""
    mc = case.model_config
    environ = inputs.environ
    kind = read_kind(mc, environ, script=script_of(case))
    out = inputs.out.resolve()
    notes: list[str] = []
    load = _load_path(inputs, kind, notes).resolve()
    save = out / "run" / "checkpoints"
    tmp = out / "run" / "tmp_checkpoints"
    keys, iters = edited_args(mc, kind)
    n_repeat = kind.n_repeat or inputs.n_repeat
    release = kind.test_type == "release"
    if release:
        load = save  # each window resumes from the one before (the job's output folder persists)
        notes.append(
            f"release: every window loads and saves {save}; rerun the job with the same "
            "output folder to continue"
        )
    recording = kind.test_type == "frozen-resume" and _is_empty(load)
    if recording:
        notes.append(
            f"frozen-resume: {load} holds no frozen checkpoint, so this is recording mode: one "
            f"phase, then {save} holds the checkpoint at iteration {(iters or 0) // 2}"
        )
    if kind.skip_pytest or recording:
        n_repeat = 1  # run_ci_test.sh exits (or breaks) after the first repeat
    if kind.lightweight:
        notes.append("lightweight mode: --exit-interval 4, values not compared")
    if kind.mode == "rl":
        notes.append(
            "rl: compared with the pretraining rules on steps 1..--exit-interval, not with the "
            "tolerances of Megatron-LM's test_grpo_training_loop.py"
        )
    maker = _PhaseMaker(
        case, kind, keys, inputs, out,
        exit_duration(environ, inputs.time_limit if release else None),
        _start(case, inputs, out, inputs.gpus),
    )  # fmt: skip
    repeats = []
    for repeat in range(1, n_repeat + 1):
        tb = repeat_dir(out, repeat) / "tensorboard"

        def phase(
            run_number: int, key: str, p_load: Path, p_save: Path, p_tb: Path, when: When = "always"
        ) -> Phase:
            return maker.make(repeat, run_number, key, p_load, p_save, p_tb, when)  # noqa: B023

        second_key = "MODEL_ARGS_2" if "MODEL_ARGS_2" in keys else "MODEL_ARGS"
        steps: list[Step] = []
        if repeat > 1:
            steps += [CheckpointEdit("clear", p) for p in (save, tmp, tb)]
        half = (iters or 0) // 2
        tracker_half = [
            CheckpointEdit("remove", save / f"iter_{iters or 0:07d}", when="ok"),
            CheckpointEdit("tracker", save / TRACKER, half, when="ok"),
        ]
        evaluation: Evaluation
        if kind.test_type == "checkpoint-consistency":
            dirs = []
            for key, run_number in args_keys(mc):
                key_save = save / f"repeat_{repeat}_key_{key}"
                steps.append(phase(run_number, key, load, key_save, tb))
                dirs.append(key_save / "iter_0000001")
            evaluation = Evaluation(
                "consistency", checkpoints=tuple(dirs), check=consistency_check(case)
            )
        elif kind.test_type == "ckpt-resume":
            steps.append(phase(1, "MODEL_ARGS", tmp, save, tb / "run_1"))
            steps += tracker_half
            steps.append(phase(2, second_key, save, save, tb / "run_2", "ok"))
            evaluation = Evaluation("golden", tb / "run_1", tb / "run_2", half, iters, reason=None)
        elif kind.test_type == "frozen-resume":
            steps.append(phase(1, "MODEL_ARGS", tmp, save, tb / "run_1"))
            if recording:
                steps += [
                    CheckpointEdit("remove", save / f"iter_{iters or 0:07d}"),
                    CheckpointEdit("tracker", save / TRACKER, half),
                ]
                evaluation = Evaluation(
                    "none",
                    tolerate_failure=True,
                    reason=f"not compared: frozen-resume recording mode: {save} now holds the "
                    f"frozen checkpoint at iteration {half} for {load}",
                )
            else:
                steps.append(phase(2, second_key, load, tmp, tb / "run_2", "ok"))
                steps += tracker_half
                evaluation = Evaluation("golden", tb / "run_1", tb / "run_2", half, iters)
        else:
            first_load = load if kind.test_type in ("frozen-start", "release") else tmp
            steps.append(phase(1, "MODEL_ARGS", first_load, save, tb))
            if kind.mode == "inference":
                evaluation = Evaluation(
                    "inference" if kind.test_type == "frozen-start" else "none",
                    first=repeat_dir(out, repeat) / "run_1" / inputs.actual_name,
                    reason=None
                    if kind.test_type == "frozen-start"
                    else "not compared: inference is compared only for TEST_TYPE frozen-start",
                )
            elif kind.mode == "rl" and kind.test_type != "frozen-start":
                evaluation = Evaluation(
                    "none", reason="not compared: rl is compared only for frozen-start"
                )
            else:
                evaluation = Evaluation(
                    "golden", tb, train_iters=iters,
                    step_size=CONVERGENCE_STEP if release else 1, merge_all=release,
                    until=iters if release else None,
                )  # fmt: skip
        if kind.skip_pytest and evaluation.kind != "none":
            why = "lightweight mode" if kind.lightweight else "ENV_VARS.SKIP_PYTEST is 1"
            evaluation = Evaluation(
                "none", reason=f"not compared: {why}",
                tolerate_failure=evaluation.tolerate_failure,
            )  # fmt: skip
        repeats.append(RepeatPlan(repeat, tuple(steps), evaluation))
    return RunPlan(kind, tuple(repeats), iters, load, save, tuple(notes), keep_checkpoints=release)


MEGATRON_CONSISTENCY_CHECK = (
    "tests/functional_tests/python_test_utils/test_optimizer_grads_match.py"
)


def consistency_check(case: TestCase) -> tuple[str, ...]:
    """The program checkpoint-consistency runs on the checkpoint folders."""
    return case.settings.consistency_check or ("python", MEGATRON_CONSISTENCY_CHECK)


def redactor_for(plan: RunPlan, environ: t.Mapping[str, str] | None = None) -> Redactor:
    """A redactor of the plan's secrets (values of secret-named MODEL_ARGS and ENV_VARS, URL
    passwords) and of the runner's environment, for the logs, results and errors of the run."""
    secrets = env_secrets(os.environ if environ is None else environ)
    for phase in plan.phases:
        secrets += argv_secrets(phase.argv) + env_secrets(phase.env)
    return Redactor(secrets)
