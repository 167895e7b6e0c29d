"""Commands: a case's model_config.yaml turned into the argv and environment of one phase.

MODEL_ARGS become argv the way Megatron-LM's ``_run_training.sh`` builds them: ``true`` is a
bare flag, ``false`` and ``null`` are passed as ``--flag false`` and ``--flag null``, ``""``
leaves the flag out, a list gives several values, anything else one value. ``${VAR}`` is filled
from a fixed set of variables (the paths of this run, and a few taken from the runner's
environment); any other or undefined variable is an error. No shell is involved anywhere: every
command is an argv list.
"""

from __future__ import annotations

import re
import sys
import typing as t
from pathlib import Path

from ci_golden.errors import InputError, RunnerError
from ci_golden.goldens.discover import TestCase
from ci_golden.project.config import SlurmSettings

# filled by ci-golden from the run's folders
PATH_VARS = (
    "OUTPUT_PATH", "TENSORBOARD_PATH", "CHECKPOINT_SAVE_PATH", "CHECKPOINT_LOAD_PATH",
    "DATA_CACHE_PATH", "INFERENCE_OUTPUT_PATH", "REPEAT", "RUN_NUMBER",
)  # fmt: skip
# taken from the runner's environment (DATA_CACHE_PATH too, when set there)
ENVIRON_VARS = ("DATA_PATH", "DATA_CACHE_PATH", "WANDB_SAVE_PATH", "WANDB_EXPERIMENT")
VARIABLES = tuple(dict.fromkeys(PATH_VARS + ENVIRON_VARS))
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
    """A YAML scalar as text: booleans lower-case, null empty, numbers in their shortest exact
    form."""
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
        elif value == "":
            continue
        elif value is False or value is None:
            argv.extend([flag, "false" if value is False else "null"])
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


def script_of(case: TestCase) -> str:
    """The training script: CI_GOLDEN.script, else the default of the case's model folder."""
    return case.settings.script or DEFAULT_SCRIPTS.get(case.id.split("/", 1)[0]) or ""


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


def program(
    case: TestCase,
    nodes: int,
    gpus: int,
    environ: t.Mapping[str, str],
    slurm: SlurmSettings | None = None,
) -> list[str]:
    """The launcher and script (or CI_GOLDEN.command) that MODEL_ARGS follow."""
    settings = case.settings
    source = str(case.config_path)
    if settings.command:
        first, *rest = settings.command
        if first in ("python", "python3") and not (slurm and slurm.container_image):
            first = sys.executable  # a container has its own python
        return [first, *rest]
    script = script_of(case)
    if not script:
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
