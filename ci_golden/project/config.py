"""The project config: ``ci_golden.yaml``, else ``[tool.ci_golden]`` in pyproject.toml, else
defaults.

Built-in defaults make a Megatron-LM tree work with no file at all. A config file replaces
each top-level key it sets; keys it leaves out keep their defaults. Unknown keys, platforms
and environments are errors with a "did you mean" hint: a typo must never shrink a matrix.
"""

from __future__ import annotations

import copy
import os
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden.errors import ConfigError
from ci_golden.project.files import read_regular
from ci_golden.project.schema import did_you_mean, first_error, json_pointer
from ci_golden.project.yamlio import MAX_YAML_BYTES, load_yaml

CONFIG_FILE = "ci_golden.yaml"
BASELINE_FILE = ".ci-golden-baseline.json"

DEFAULTS: dict[str, t.Any] = {
    "test_cases": "tests/functional_tests/test_cases",
    "platforms": {
        "dgx_h100": {
            "gpu": "H100",
            "gpus_per_node": 8,
            "github": {"runs-on": ["self-hosted", "linux", "h100"]},
            "gitlab": {"tags": ["h100"]},
        },
        "dgx_a100": {
            "gpu": "A100",
            "gpus_per_node": 8,
            "github": {"runs-on": ["self-hosted", "linux", "a100"]},
            "gitlab": {"tags": ["a100"]},
        },
        "dgx_gb200": {
            "gpu": "GB200",
            "gpus_per_node": 4,
            "github": {"runs-on": ["self-hosted", "linux", "gb200"]},
            "gitlab": {"tags": ["gb200"]},
        },
    },
    "environments": {
        "dev": {"platforms": ["dgx_h100", "dgx_a100", "dgx_gb200"]},
        "lts": {"platforms": ["dgx_a100"]},
    },
    "scopes": ["mr", "nightly", "weekly"],
    "default_scope": "mr",
    "gated_metrics": ["lm loss", "num-zeros"],
    "metrics": {},
    "global_paths": [],
    "ignore_paths": ["docs/**", "**/*.md"],
    "scope_aliases": {},
    "validate": {},
    "frozen_checkpoints": None,
    "defaults": {"n_repeat": 1, "time_limit": 3600, "nodes": 1, "fail_fast": True},
}


Executor = t.Literal["local", "slurm"]


@dataclass(frozen=True)
class SlurmSettings:
    """How a platform's jobs are submitted to Slurm (``platforms.<name>.slurm``)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: tuple[str, ...] = ()  # more sbatch arguments
    container_image: str | None = None  # pyxis/enroot: every training step runs in it
    container_mounts: tuple[str, ...] = ()
    queue_timeout: int = 600  # seconds a job may wait in the queue
    poll_interval: float = 5.0  # seconds between squeue polls


@dataclass(frozen=True)
class Platform:
    name: str
    gpu: str | None
    gpus_per_node: int
    runs_on: tuple[str, ...]
    tags: tuple[str, ...]
    opt_in: bool = False
    executor: Executor = "local"
    slurm: SlurmSettings | None = None  # set when executor is slurm


@dataclass(frozen=True)
class JobDefaults:
    n_repeat: int
    time_limit: int
    nodes: int
    fail_fast: bool = True


@dataclass(frozen=True)
class ValidateSettings:
    """The ``validate:`` section: codes never reported, severities replaced, files whose
    findings are left out (globs relative to the config's folder), and the baseline file."""

    ignore: frozenset[str] = frozenset()
    severity: t.Mapping[str, t.Literal["warning", "error"]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    baseline: Path = Path(BASELINE_FILE)


@dataclass(frozen=True)
class Config:
    """The resolved project config. ``root`` is the folder paths are relative to."""

    root: Path
    source: str | None
    test_cases: Path
    platforms: dict[str, Platform]
    environments: dict[str, tuple[str, ...]]
    scopes: tuple[str, ...]
    default_scope: str
    gated_metrics: tuple[str, ...]
    metrics: dict[str, dict[str, t.Any]]
    global_paths: tuple[str, ...]
    defaults: JobDefaults
    ignore_paths: tuple[str, ...] = ()
    scope_aliases: t.Mapping[str, str] = field(default_factory=dict)
    validate: ValidateSettings = ValidateSettings()
    frozen_checkpoints: Path | None = None  # CHECKPOINT_LOAD_PATH unless the runner sets it

    def platform(self, name: str) -> Platform:
        try:
            return self.platforms[name]
        except KeyError:
            raise ConfigError(
                self.source or "<built-in config>",
                f"unknown platform {name!r}{did_you_mean(name, self.platforms)}",
            ) from None

    def scope(self, name: str) -> str:
        """The scope ``name`` stands for (itself, or the scope it is an alias of)."""
        return self.scope_aliases.get(name, name)

    def check_names(
        self,
        kind: t.Literal["platform", "environment", "scope"],
        names: t.Iterable[str],
        where: str,
    ) -> None:
        """Raise a "did you mean" error for the first name the config does not define."""
        known: t.Collection[str]
        if kind == "platform":
            known = self.platforms
        elif kind == "environment":
            known = self.environments
        else:
            known = {*self.scopes, *self.scope_aliases}
        for name in names:
            if name not in known:
                raise ConfigError(where, f"unknown {kind} {name!r}{did_you_mean(name, known)}")


def _schema_errors(data: dict[str, t.Any], name: str) -> None:
    error = first_error("project_config", data)
    if error is not None:
        raise ConfigError(name, *error)


def _read_pyproject(path: Path) -> dict[str, t.Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: tomli when it is installed
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return None
    raw = read_regular(path, max_bytes=MAX_YAML_BYTES)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), f"not UTF-8 (byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), f"cannot read: {e}") from e
    except RecursionError as e:
        raise ConfigError(str(path), "cannot read: nested too deeply") from e
    section = doc.get("tool", {}).get("ci_golden")
    return section if isinstance(section, dict) else None


def find_config(start: Path) -> Path | None:
    """``ci_golden.yaml`` in ``start``, else a pyproject.toml there with ``[tool.ci_golden]``."""
    candidate = start / CONFIG_FILE
    if os.path.lexists(candidate):  # anything there is the config, and is read (or refused)
        return candidate
    pyproject = start / "pyproject.toml"
    if pyproject.exists() and _read_pyproject(pyproject) is not None:
        return pyproject
    return None


def load_config(
    path: Path | None = None, *, cwd: Path | None = None, test_cases: Path | None = None
) -> Config:
    """Load and validate the config; ``test_cases`` overrides its root folder.

    With no ``path`` the config is looked up in ``cwd``; with none found the built-in
    defaults apply, relative to ``cwd``.
    """
    cwd = cwd or Path.cwd()
    if path is None:
        path = find_config(cwd)
    user: dict[str, t.Any] = {}
    if path is not None:
        if not os.path.lexists(path):
            raise ConfigError(str(path), "config file not found")
        if path.suffix == ".toml":
            section = _read_pyproject(path)
            if section is None:
                raise ConfigError(
                    str(path), "no [tool.ci_golden] table (reading it needs Python 3.11 or tomli)"
                )
            user = section
        else:
            loaded = load_yaml(path)
            if loaded is None:
                loaded = {}
            if not isinstance(loaded, dict):
                raise ConfigError(str(path), "the config must be a mapping", "$")
            user = loaded
        _schema_errors(user, str(path))
    merged = copy.deepcopy(DEFAULTS)
    merged.update(user)
    return _build(merged, path, cwd, test_cases)


def _labels(value: t.Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _slurm(platform: dict[str, t.Any], pname: str, name: str) -> SlurmSettings | None:
    """The platform's Slurm settings; a ``slurm:`` mapping on a local platform is an error, since
    it would be silently ignored."""
    block = platform.get("slurm")
    if platform.get("executor", "local") != "slurm":
        if block is not None:
            raise ConfigError(
                name,
                "a slurm: mapping needs executor: slurm (it would be ignored otherwise)",
                f"$.platforms.{pname}",
            )
        return None
    block = dict(block or {})
    for key in ("extra", "container_mounts"):
        block[key] = tuple(block.get(key, ()))
    return SlurmSettings(**block)


def _build(data: dict[str, t.Any], path: Path | None, cwd: Path, test_cases: Path | None) -> Config:
    name = str(path) if path else "<built-in config>"
    root = path.parent if path else cwd
    platforms = {
        pname: Platform(
            name=pname,
            gpu=p.get("gpu"),
            gpus_per_node=int(p.get("gpus_per_node", 8 if p.get("gpu") else 0)),
            runs_on=_labels(p.get("github", {}).get("runs-on")),
            tags=_labels(p.get("gitlab", {}).get("tags")),
            opt_in=bool(p.get("opt_in", False)),
            executor=p.get("executor", "local"),
            slurm=_slurm(p, pname, name),
        )
        for pname, p in data["platforms"].items()
    }
    environments = {e: tuple(v["platforms"]) for e, v in data["environments"].items()}
    for env, plats in environments.items():
        for p in plats:
            if p not in platforms:
                raise ConfigError(
                    name,
                    f"unknown platform {p!r}{did_you_mean(p, platforms)}",
                    f"$.environments.{env}.platforms",
                )
    scopes = tuple(data["scopes"])
    if data["default_scope"] not in scopes:
        raise ConfigError(
            name,
            f"default_scope {data['default_scope']!r} is not in scopes"
            f"{did_you_mean(data['default_scope'], scopes)}",
            "$.default_scope",
        )
    aliases = dict(data["scope_aliases"])
    for alias, target in aliases.items():
        if alias in scopes:
            raise ConfigError(
                name,
                f"{alias!r} is a scope and an alias of {target!r}",
                json_pointer(["scope_aliases", alias]),
            )
        if target not in scopes:
            raise ConfigError(
                name,
                f"alias {alias!r} names scope {target!r}, which is not in scopes"
                f"{did_you_mean(target, scopes)}",
                json_pointer(["scope_aliases", alias]),
            )
    section = data["validate"]
    validate = ValidateSettings(
        ignore=frozenset(section.get("ignore", ())),
        severity=dict(section.get("severity", {})),
        exclude=tuple(section.get("exclude", ())),
        baseline=root / section.get("baseline", BASELINE_FILE),
    )
    defaults = {**DEFAULTS["defaults"], **data["defaults"]}
    root_cases = test_cases if test_cases is not None else root / data["test_cases"]
    return Config(
        root=root,
        source=str(path) if path else None,
        test_cases=root_cases,
        platforms=platforms,
        environments=environments,
        scopes=scopes,
        default_scope=data["default_scope"],
        gated_metrics=tuple(data["gated_metrics"]),
        metrics=dict(data["metrics"]),
        global_paths=tuple(data["global_paths"]),
        defaults=JobDefaults(**defaults),
        ignore_paths=tuple(data["ignore_paths"]),
        scope_aliases=aliases,
        validate=validate,
        frozen_checkpoints=(
            root / data["frozen_checkpoints"] if data["frozen_checkpoints"] else None
        ),
    )
