"""Launch plans: a case's model_config.yaml turned into the exact commands of each run phase.

MODEL_ARGS become argv the way Megatron-LM's ``_run_training.sh`` builds them: ``true`` is a
bare flag, ``false``/``null``/``""`` leave the flag out, a list gives several values, anything
else one value. ``${VAR}`` is filled from a fixed set of variables (the paths of this run, and
a few taken from the runner's environment); any other or undefined variable is an error.
No shell is involved anywhere: every command is an argv list.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import InputError, RunnerError
from ci_golden.goldens.discover import TestCase
from ci_golden.project.config import SlurmSettings

if t.TYPE_CHECKING:
    from ci_golden.run.spec import JobSpec

# filled by ci-golden from the run's folders
PATH_VARS = (
    "OUTPUT_PATH", "TENSORBOARD_PATH", "CHECKPOINT_SAVE_PATH", "CHECKPOINT_LOAD_PATH",
    "DATA_CACHE_PATH", "INFERENCE_OUTPUT_PATH", "REPEAT", "RUN_NUMBER",
)  # fmt: skip
# taken from the runner's environment (DATA_CACHE_PATH too, when set there)
ENVIRON_VARS = ("DATA_PATH", "DATA_CACHE_PATH", "WANDB_SAVE_PATH", "WANDB_EXPERIMENT")
VARIABLES = tuple(dict.fromkeys(PATH_VARS + ENVIRON_VARS))
SUPPORTED_TEST_TYPES = ("regular", "ckpt-resume")
LAUNCHERS = ("torchrun", "ft_launcher", "none")
# default training script per model folder, as Megatron-LM's recipes run them
DEFAULT_SCRIPTS = {
    "gpt": "pretrain_gpt.py",
    "moe": "pretrain_gpt.py",
    "bert": "pretrain_bert.py",
    "t5": "pretrain_t5.py",
    "mamba": "pretrain_mamba.py",
    "hybrid": "pretrain_mamba.py",
}
_VAR = re.compile(r"\$\{([^}]*)\}")
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|PRIVATE|CREDENTIAL|AUTH", re.IGNORECASE)


def substitute(text: str, variables: t.Mapping[str, str], source: str, where: str) -> str:
    """Fill ``${VAR}`` from ``variables``; an unknown or undefined one is an :class:`InputError`."""

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in variables:
            return variables[name]
        if name in VARIABLES:
            raise InputError(
                source, f"${{{name}}} is not defined: set {name} in the runner's environment", where
            )
        raise InputError(
            source,
            f"${{{name}}} is not a variable ci-golden fills (known: {', '.join(VARIABLES)})",
            where,
        )

    return _VAR.sub(fill, text)


def scalar_text(value: t.Any) -> str:
    """A YAML scalar as text: booleans lower-case, numbers in their shortest exact form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value) if not isinstance(value, float) else repr(value)


def model_args_argv(
    args: t.Mapping[str, t.Any] | None, variables: t.Mapping[str, str], source: str, key: str
) -> list[str]:
    """MODEL_ARGS as argv, in file order."""
    argv: list[str] = []
    for flag, value in (args or {}).items():
        where = f'$.{key}["{flag}"]'
        if value is True:
            argv.append(flag)
        elif value is False or value is None or value == "":
            continue
        elif isinstance(value, list):
            argv.append(flag)
            argv.extend(substitute(scalar_text(v), variables, source, where) for v in value)
        else:
            argv.extend([flag, substitute(scalar_text(value), variables, source, where)])
    return argv


def env_vars(
    block: t.Mapping[str, t.Any] | None, variables: t.Mapping[str, str], source: str
) -> dict[str, str]:
    return {
        str(k): substitute(scalar_text(v), variables, source, f"$.ENV_VARS.{k}")
        for k, v in (block or {}).items()
    }


def redact(env: t.Mapping[str, str]) -> dict[str, str]:
    """Values of secret-looking variables (tokens, keys, passwords) replaced by ``***``."""
    return {k: ("***" if _SECRET.search(k) and v else v) for k, v in env.items()}


@dataclass(frozen=True)
class Phase:
    """One training process: ``phase1`` (and ``phase2`` of a ckpt-resume run) of one repeat."""

    name: str
    repeat: int
    number: int
    argv: tuple[str, ...]
    env: dict[str, str]  # what is set on top of the runner's environment
    cwd: Path
    dir: Path
    checkpoints: Path

    @property
    def log(self) -> Path:
        return self.dir / "stdout.log"

    @property
    def tensorboard(self) -> Path:
        return self.dir / "tensorboard"

    @property
    def label(self) -> str:
        return self.name if self.repeat == 1 else f"repeat-{self.repeat}/{self.name}"


@dataclass(frozen=True)
class RunPlan:
    test_type: str
    phases: tuple[Phase, ...]
    n_repeat: int
    train_iters: int | None
    unsupported: str | None = None


def repeat_dir(out: Path, repeat: int) -> Path:
    return out / "run" if repeat == 1 else out / "run" / f"repeat-{repeat}"


def srun_step(nodes: int, slurm: SlurmSettings, cwd: Path, out: Path) -> list[str]:
    """The ``srun`` that starts a phase inside a Slurm allocation: one task per node (the launcher
    starts the processes of the node's GPUs), in the platform's container when it has one, with
    the project and the output folder mounted at the same paths."""
    argv = ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    if slurm.container_image:
        folders = [cwd] if out.is_relative_to(cwd) else [cwd, out]
        mounts = dict.fromkeys([*(f"{p}:{p}" for p in folders), *slurm.container_mounts])
        argv += [
            f"--container-image={slurm.container_image}",
            f"--container-mounts={','.join(mounts)}",
            f"--container-workdir={cwd}",
        ]
    return argv


def _program(
    case: TestCase,
    nodes: int,
    gpus: int,
    environ: t.Mapping[str, str],
    slurm: SlurmSettings | None = None,
) -> list[str]:
    settings = case.settings
    source = str(case.config_path)
    if settings.command:
        first, *rest = settings.command
        if first in ("python", "python3") and not (slurm and slurm.container_image):
            first = sys.executable  # a container has its own python
        return [first, *rest]
    script = settings.script or DEFAULT_SCRIPTS.get(case.id.split("/", 1)[0])
    if script is None:
        raise InputError(
            source, "no training script: set CI_GOLDEN.script or CI_GOLDEN.command", "$.CI_GOLDEN"
        )
    launcher = str(case.model_config.get("LAUNCHER") or "torchrun")
    if launcher not in LAUNCHERS:
        raise InputError(
            source, f"unknown LAUNCHER {launcher!r} (known: {', '.join(LAUNCHERS)})", "$.LAUNCHER"
        )
    if launcher == "none":
        return [sys.executable, script] if script.endswith(".py") else [script]
    addr = environ.get("MASTER_ADDR", "localhost")
    port = environ.get("MASTER_PORT", "29500")
    nproc = str(max(gpus, 1))
    if nodes <= 1:
        return [launcher, "--nproc_per_node", nproc, "--nnodes", "1", "--node_rank", "0",
                "--master_addr", addr, "--master_port", port, script]  # fmt: skip
    if "MASTER_ADDR" not in environ:
        raise RunnerError(
            f"a {nodes}-node job needs MASTER_ADDR "
            "(the first node of the Slurm allocation) in the environment"
        )
    srun = (
        [] if slurm else ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    )
    return [*srun, launcher, "--nproc_per_node", nproc, "--nnodes", str(nodes),
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"{addr}:{port}", script]  # fmt: skip


def train_iters(model_args: t.Mapping[str, t.Any] | None) -> int | None:
    value = (model_args or {}).get("--train-iters")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def plan_run(
    case: TestCase,
    out: Path,
    *,
    cwd: Path,
    n_repeat: int = 1,
    nodes: int = 1,
    gpus: int = 0,
    environ: t.Mapping[str, str] | None = None,
    slurm: SlurmSettings | None = None,
) -> RunPlan:
    """The phases of every repeat of a case, with their folders, argv and environment.

    With ``slurm`` (a platform whose jobs run in a Slurm allocation) every phase starts through
    :func:`srun_step`.
    """
    environ = os.environ if environ is None else environ
    mc = case.model_config
    source = str(case.config_path)
    test_type = str(mc.get("TEST_TYPE") or "regular")
    iters = train_iters(mc.get("MODEL_ARGS"))
    if test_type not in SUPPORTED_TEST_TYPES:
        why = (
            f"TEST_TYPE {test_type!r} is not supported yet "
            f"(supported: {', '.join(SUPPORTED_TEST_TYPES)})"
        )
        return RunPlan(test_type, (), n_repeat, iters, unsupported=why)
    out = out.resolve()
    program = _program(case, nodes, gpus, environ, slurm)
    if slurm is not None:
        program = srun_step(nodes, slurm, cwd, out) + program
    phases = []
    for repeat in range(1, n_repeat + 1):
        base = repeat_dir(out, repeat)
        for number in (1, 2) if test_type == "ckpt-resume" else (1,):
            phase_dir = base / f"phase{number}"
            variables = {k: environ[k] for k in ENVIRON_VARS if environ.get(k)}
            variables.setdefault("DATA_CACHE_PATH", str(out / "run" / "data-cache"))
            variables.update(
                OUTPUT_PATH=str(phase_dir),
                TENSORBOARD_PATH=str(phase_dir / "tensorboard"),
                CHECKPOINT_SAVE_PATH=str(base / "checkpoints"),
                CHECKPOINT_LOAD_PATH=str(base / "checkpoints"),
                INFERENCE_OUTPUT_PATH=str(phase_dir / "inference.json"),
                REPEAT=str(repeat),
                RUN_NUMBER=str(number),
            )
            key = "MODEL_ARGS_2" if number == 2 and "MODEL_ARGS_2" in mc else "MODEL_ARGS"
            argv = [substitute(a, variables, source, "$.CI_GOLDEN.command") for a in program]
            argv += model_args_argv(mc.get(key), variables, source, key)
            env = {
                k: v
                for k, v in variables.items()
                if k not in ENVIRON_VARS or k == "DATA_CACHE_PATH"
            }
            env.update(env_vars(mc.get("ENV_VARS"), variables, source))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(cwd), environ.get("PYTHONPATH"))))
            phases.append(
                Phase(
                    f"phase{number}",
                    repeat,
                    number,
                    tuple(argv),
                    env,
                    cwd,
                    phase_dir,
                    base / "checkpoints",
                )
            )
    return RunPlan(test_type, tuple(phases), n_repeat, iters)


def render_plan(spec: JobSpec, plan: RunPlan) -> str:
    """The exact commands and environment of every phase, as shell lines (secrets redacted)."""
    lines = [
        f"# {spec.case.id} ({spec.environment}, {spec.platform}): TEST_TYPE {plan.test_type}, "
        f"{plan.n_repeat} repeat(s), time limit {spec.time_limit} s, output {spec.out}"
    ]
    if plan.unsupported:
        return "\n".join([*lines, f"# not run: {plan.unsupported}"]) + "\n"
    for phase in plan.phases:
        if phase.number == 2:
            lines.append(
                "# keep the checkpoint nearest the middle of the run, "
                "drop later ones, resume from it"
            )
        lines.append(f"# {phase.label}: log {phase.log}")
        lines.append(f"cd {shlex.quote(str(phase.cwd))}")
        lines.extend(f"export {k}={shlex.quote(v)}" for k, v in redact(phase.env).items())
        lines.append(shlex.join(phase.argv))
    return "\n".join(lines) + "\n"
