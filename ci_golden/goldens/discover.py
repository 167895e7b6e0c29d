"""Discovery: the test-case folders below the root, their golden files and the jobs they have.

A case is a folder holding ``model_config.yaml`` and/or ``golden_values*.json`` files; its id is
its path below the root. For a job (environment, platform) the golden is resolved in order:
``golden_values_<env>_<platform>.json``, ``golden_values_<env>.json``, ``golden_values.json``.
A case has a job for each (environment, platform) of the config whose golden resolves, plus
each that its ``CI_GOLDEN`` block asks for (such a job may have no golden yet).
"""

from __future__ import annotations

import errno
import functools
import operator
import os
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import ConfigError, InputError
from ci_golden.goldens.testkind import unknown_kind
from ci_golden.project.config import Config
from ci_golden.project.files import not_regular
from ci_golden.project.schema import did_you_mean, first_error
from ci_golden.project.yamlio import load_yaml_text

MODEL_CONFIG = "model_config.yaml"
CASE_KEY = "CI_GOLDEN"
_GOLDEN_RE = re.compile(r"golden_values(?:_(?P<rest>.+))?\.json\Z")
SECOND_PHASE_SUFFIX = "_2nd"


def is_golden_name(filename: str) -> bool:
    return _GOLDEN_RE.match(filename) is not None


def golden_name(environment: str | None = None, platform: str | None = None) -> str:
    """The file name a golden for this environment and platform has."""
    if environment is None:
        return "golden_values.json"
    if platform is None:
        return f"golden_values_{environment}.json"
    return f"golden_values_{environment}_{platform}.json"


@dataclass(frozen=True)
class GoldenName:
    """A golden file name split into environment and the rest (the platform, when known)."""

    filename: str
    environment: str | None
    platform: str | None

    @classmethod
    def parse(cls, filename: str) -> GoldenName | None:
        m = _GOLDEN_RE.match(filename)
        if m is None:
            return None
        rest = m.group("rest")
        if rest is None:
            return cls(filename, None, None)
        env, _, platform = rest.partition("_")
        return cls(filename, env, platform or None)


def _names(value: str | t.Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class ListedJob:
    """One entry of ``CI_GOLDEN.jobs``: a job the case has, the scopes it runs in (empty: the
    case's) and its own nodes and GPUs per node (None: the case's, the platform's)."""

    environment: str
    platform: str
    scopes: tuple[str, ...] = ()
    nodes: int | None = None
    gpus: int | None = None


@dataclass(frozen=True)
class CaseSettings:
    """The optional ``CI_GOLDEN`` block of a case's model_config.yaml."""

    scopes: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    jobs: tuple[ListedJob, ...] = ()
    n_repeat: int | None = None
    time_limit: int | None = None
    nodes: int | None = None
    nondeterministic: bool | None = None
    fail_fast: bool | None = None
    script: str | None = None
    command: tuple[str, ...] = ()
    metrics: t.Mapping[str, t.Mapping[str, t.Any]] | None = None
    consistency_check: tuple[str, ...] = ()

    @classmethod
    def from_block(cls, block: t.Mapping[str, t.Any]) -> CaseSettings:
        return cls(
            scopes=_names(block.get("scope", ())),
            platforms=tuple(block.get("platforms", ())),
            environments=tuple(block.get("environments", ())),
            jobs=tuple(
                ListedJob(
                    job["environment"],
                    job["platform"],
                    _names(job.get("scope", ())),
                    job.get("nodes"),
                    job.get("gpus"),
                )
                for job in block.get("jobs", ())
            ),
            n_repeat=block.get("n_repeat"),
            time_limit=block.get("time_limit"),
            nodes=block.get("nodes"),
            nondeterministic=block.get("nondeterministic"),
            fail_fast=block.get("fail_fast"),
            script=block.get("script"),
            command=tuple(block.get("command", ())),
            metrics=block.get("metrics"),
            consistency_check=tuple(block.get("consistency_check", ())),
        )

    def listed(self, environment: str, platform: str) -> ListedJob | None:
        """The ``CI_GOLDEN.jobs`` entry of a job, or None."""
        for job in self.jobs:
            if (job.environment, job.platform) == (environment, platform):
                return job
        return None


_NO_SETTINGS = CaseSettings()  # immutable, so every case without a block shares it
_CASE_KEY_BYTES = CASE_KEY.encode()


@functools.lru_cache(maxsize=1024)
def _settings_from_block(text: str) -> CaseSettings | InputError:
    """Parse and check one ``CI_GOLDEN`` block; memoized, since many cases share the same block.

    A bad block is returned as an :class:`InputError` without a file name; the caller adds it.
    """
    try:
        parsed = load_yaml_text(text, "")
    except InputError as e:
        return e
    block = (parsed.get(CASE_KEY) if isinstance(parsed, dict) else None) or {}
    error = first_error("case_settings", block)
    if error is not None:
        message, where = error
        return ConfigError("", message, f"$.{CASE_KEY}{where[1:]}")
    return CaseSettings.from_block(block)


_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")  # where str.splitlines splits


def _top_level_block(raw: bytes, key: str) -> str | None:
    """The text of the top-level block ``key:`` of a block-style YAML mapping, or None when the
    file is not that simple (the key appears twice or nested, aliases, tags, tabs)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    start = text.find(key)
    if start < 0 or text.find(key, start + 1) >= 0:
        return None
    if start > 0 and text[start - 1] not in _LINE_BREAKS:
        return None  # not at the start of a line
    lines = text[start:].splitlines()
    if not lines[0].startswith(f"{key}:"):
        return None
    block = [lines[0]]
    for line in lines[1:]:
        if line and not line[0].isspace() and not line.startswith("#"):
            break
        block.append(line)
    body = "\n".join(block)
    if any(ch in body for ch in "*!\t"):  # an alias to elsewhere, a tag, or a tab
        return None
    return body + "\n"


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


# Blank and comment lines, then `KEY:` at the start of a line: the document is a block mapping
# (or not YAML at all, which reading the whole file says). Anything else is parsed in full.
_MAPPING_START = re.compile(rb"(?:\xef\xbb\xbf)?(?:[ \t]*(?:#[^\n]*)?\r?\n)*[A-Za-z_][\w-]*:\s")


def _starts_a_mapping(raw: bytes) -> bool:
    """Whether a config is UTF-8 and plainly a mapping, without parsing it: planning reads
    thousands of configs, and most hold no ``CI_GOLDEN`` block to parse."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return _MAPPING_START.match(raw) is not None


def _read_bytes(path: str) -> bytes:
    """The whole file; ``os.read`` skips the buffered file object, which costs more than the
    read itself for the thousands of small files a suite has. Discovery has already left out
    what is not a regular file; should one take the file's place since, ``O_NONBLOCK`` keeps the
    open from waiting and the check after it refuses it."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        kind = not_regular(os.fstat(fd).st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", path)
        chunks = [os.read(fd, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 2 else b"".join(chunks)


@dataclass(frozen=True)
class Job:
    """One CI job: a case in one environment on one platform, and the golden it reads."""

    case: str
    environment: str
    platform: str
    golden: Path | None


@dataclass(frozen=True)
class Unreferenced:
    """A golden file no job reads, and why."""

    path: Path
    reason: str
    kind: t.Literal[
        "shadowed", "second-phase", "unknown-platform", "not-in-environment", "not-listed"
    ]


_T = t.TypeVar("_T")


class _cached(t.Generic[_T]):
    """``functools.cached_property`` without its lock (Python < 3.12 takes one on every first
    use, which costs more than the value for the thousands of cases a suite has)."""

    def __init__(self, fn: t.Callable[[t.Any], _T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    @t.overload
    def __get__(self, obj: None, owner: type[t.Any] | None = None) -> _cached[_T]: ...

    @t.overload
    def __get__(self, obj: object, owner: type[t.Any] | None = None) -> _T: ...

    def __get__(self, obj: object | None, owner: type[t.Any] | None = None) -> _T | _cached[_T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


class TestCase:
    """One test-case folder. ``model_config`` is read lazily and checked against its schema.

    ``folder`` is the text of the case's path; the :class:`~pathlib.Path` is made on first use,
    since planning a suite of thousands of cases needs only the text.
    """

    __test__ = False  # not a pytest class

    def __init__(
        self, id: str, path: Path | str, has_config: bool, golden_files: tuple[str, ...]
    ) -> None:
        self.id = id
        self.folder = str(path)
        self.has_config = has_config
        self.golden_files = golden_files

    def _key(self) -> tuple[str, str, bool, tuple[str, ...]]:
        return (self.id, self.folder, self.has_config, self.golden_files)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TestCase) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"TestCase(id={self.id!r}, path={self.folder!r}, has_config={self.has_config}, "
            f"golden_files={self.golden_files!r})"
        )

    @_cached
    def path(self) -> Path:
        return Path(self.folder)

    @property
    def config_path(self) -> Path:
        return self.path / MODEL_CONFIG

    @_cached
    def _config_bytes(self) -> bytes:
        if not self.has_config:
            return b""
        try:
            folder = self.folder
            return _read_bytes(
                folder + MODEL_CONFIG if folder.endswith(os.sep) else folder + os.sep + MODEL_CONFIG
            )
        except OSError as e:
            raise InputError(str(self.config_path), f"cannot read file: {e.strerror or e}") from e

    @_cached
    def model_config(self) -> dict[str, t.Any]:
        """The parsed model_config.yaml ({} when absent); raises :class:`InputError` when
        invalid.
        """
        if not self.has_config:
            return {}
        name = str(self.config_path)
        try:
            text = self._config_bytes.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(name, f"not UTF-8 (byte {e.start})") from e
        data = load_yaml_text(text, name)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InputError(name, "model_config.yaml must be a mapping", "$")
        odd = [k for k in data if type(k) is not str]
        if odd:  # the schema's patternProperties cannot match such a key
            raise ConfigError(
                name,
                f"top-level key {odd[0]!r} is not a string (YAML reads on/off/yes/no/null/~ and "
                "numbers unquoted): quote it",
                "$",
            )
        error = first_error("model_config", data)
        if error is not None:
            raise ConfigError(name, *error)
        return data

    @_cached
    def settings(self) -> CaseSettings:
        """The ``CI_GOLDEN`` block, checked against its schema.

        Planning a matrix of thousands of cases needs only this block, so when it is a plain
        top-level block it is parsed alone; the whole file is parsed otherwise (and always by
        ``ci-golden validate``).
        """
        raw = self._config_bytes
        if _CASE_KEY_BYTES not in raw:
            if raw and not _starts_a_mapping(raw):
                _ = self.model_config  # raises for a file that is not UTF-8, YAML, or a mapping
            return _NO_SETTINGS
        block_text = _top_level_block(raw, CASE_KEY)
        if block_text is None:
            return CaseSettings.from_block(self.model_config.get(CASE_KEY) or {})
        settings = _settings_from_block(block_text)
        if isinstance(settings, InputError):
            raise InputError(str(self.config_path), settings.detail, settings.where)
        return settings

    def unknown_kind(self) -> tuple[str, str] | None:
        """A TEST_TYPE, MODE or TEST_EVALUATION of this case that Megatron-LM does not know."""
        return unknown_kind(self._config_bytes) if self.has_config else None

    @property
    def metrics(self) -> tuple[str, ...] | None:
        """The case's METRICS list (the gated metrics), or None when it names none."""
        return metrics_of(self.model_config)

    def golden_for(self, environment: str, platform: str) -> Path | None:
        """Resolve the golden of a job: exact, then environment-wide, then generic."""
        present = self.golden_files
        for name in (golden_name(environment, platform), golden_name(environment), golden_name()):
            if name in present:
                return self._golden_paths[name]
        return None

    @_cached
    def _golden_paths(self) -> dict[str, Path]:
        return {name: self.path / name for name in self.golden_files}

    @property
    def golden_paths(self) -> dict[str, Path]:
        """Each golden file name of the case and its path (made once per case)."""
        return self._golden_paths


@dataclass(frozen=True)
class TreeProblem:
    """Something wrong with the tree itself (a symlink loop, an unusable folder name)."""

    path: Path
    code: str
    message: str


@dataclass(frozen=True)
class Suite:
    config: Config
    root: Path
    cases: tuple[TestCase, ...]
    problems: tuple[TreeProblem, ...] = ()

    def require_readable(self) -> None:
        """Raise :class:`InputError` naming the first folder or file of the tree that cannot be
        read (an unusable case folder name, a symlink loop, a FIFO for a config...): planning
        never leaves such a case out silently."""
        if self.problems:
            first, more = self.problems[0], len(self.problems) - 1
            others = f" (and {more} more; `ci-golden validate` lists them)" if more else ""
            raise InputError(str(first.path), f"{first.code}: {first.message}{others}")

    def case(self, case_id: str) -> TestCase:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise InputError(
            str(self.root),
            f"no test case {case_id!r}{did_you_mean(case_id, (c.id for c in self.cases))}",
        )


_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f\ud800-\udfff]")


def _bad_folder_name(name: str) -> str | None:
    bad = _WHITESPACE_OR_CONTROL.search(name)
    if bad:
        if bad.group().isspace():
            return "has whitespace"
        # os.scandir gives the bytes of a name that is not UTF-8 as lone surrogates
        return "is not UTF-8" if bad.group() >= "\ud800" else "has a control character"
    if ".." in name:
        return "contains '..'"
    return None


def discover(config: Config, root: Path | None = None) -> Suite:
    """Walk the test-case root (without following folder symlinks) and build the suite."""
    root = root or config.test_cases
    if not root.is_dir():
        raise InputError(
            str(root),
            "test-case folder not found (set test_cases in ci_golden.yaml or pass --test-cases)",
        )
    cases: list[TestCase] = []
    problems: list[TreeProblem] = []
    root_text = str(root)
    strip = 2 if root_text == "." else 0
    stack = [root_text]
    while stack:
        folder = stack.pop()
        goldens: list[str] = []
        has_config = False
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):  # never a symlink
                        stack.append(entry.path)
                        continue
                    ours = name == MODEL_CONFIG or (
                        name.startswith("golden_values") and name.endswith(".json")
                    )
                    if entry.is_symlink():
                        problem = _symlink_problem(entry.path, ours)
                        if problem is not None:
                            problems.append(problem)
                            continue
                    elif not entry.is_file(follow_symlinks=False):  # a FIFO, socket, device
                        if ours:
                            problems.append(_special_file_problem(entry))
                        continue
                    if not ours:
                        continue
                    if name == MODEL_CONFIG:
                        has_config = True
                    else:
                        goldens.append(name)
        except OSError as e:
            problems.append(
                TreeProblem(Path(folder), "CG151", f"cannot list folder: {e.strerror or e}")
            )
            continue
        if has_config or goldens:
            rel = folder[len(root_text) + 1 :]
            if os.sep != "/":
                rel = rel.replace(os.sep, "/")
            bad = _bad_folder_name(rel) if rel else "is the test-case root itself"
            if bad:
                problems.append(
                    TreeProblem(
                        Path(folder), "CG150", f"case folder name {bad}; it cannot be a job name"
                    )
                )
                continue
            goldens.sort()
            # str(Path(folder)) is folder itself, but for the "./" a root of "." gives
            cases.append(TestCase(rel, folder[strip:], has_config, tuple(goldens)))
    cases.sort(key=operator.attrgetter("id"))
    problems.sort(key=lambda p: str(p.path))
    return Suite(config=config, root=root, cases=tuple(cases), problems=tuple(problems))


def _symlink_problem(path: str, ours: bool) -> TreeProblem | None:
    """A problem for a folder symlink (not followed) or a broken one, or for a case file
    (``ours``) linked to a FIFO, socket or device; None for a file symlink."""
    try:
        target = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return TreeProblem(Path(path), "CG151", "broken symlink or symlink loop")
    if target.is_dir():
        return TreeProblem(
            Path(path), "CG151", "folder symlink not followed; move the case into the tree"
        )
    kind = not_regular(target.stat().st_mode) if ours else None
    if kind is not None:
        return TreeProblem(
            Path(path), "CG151", f"symlink to {kind}, not to a regular file; refused unopened"
        )
    return None


def _special_file_problem(entry: os.DirEntry[str]) -> TreeProblem:
    """A FIFO, socket or device named like a case file: reported, never opened."""
    kind = not_regular(entry.stat(follow_symlinks=False).st_mode) or "not a regular file"
    code = "CG140" if entry.name == MODEL_CONFIG else "CG100"
    return TreeProblem(
        Path(entry.path), code, f"not a regular file ({kind}); refused without opening it"
    )


@dataclass(frozen=True, eq=False)  # compared (and hashed, cheaply) by identity
class JobSlot:
    """An (environment, platform) of the config, and the golden file names a job there reads,
    most specific first."""

    environment: str
    platform: str
    opt_in: bool
    candidates: tuple[str, str, str]


def job_slots(config: Config) -> tuple[JobSlot, ...]:
    """Every (environment, platform) of the config, in config order."""
    return tuple(
        JobSlot(
            env,
            platform,
            config.platforms[platform].opt_in,
            (golden_name(env, platform), golden_name(env), golden_name()),
        )
        for env, platforms in config.environments.items()
        for platform in platforms
    )


def case_job_goldens(
    case: TestCase, config: Config, slots: t.Sequence[JobSlot] | None = None
) -> list[tuple[JobSlot, str | None]]:
    """What :func:`case_jobs` gives, as (slot, golden file name or None); ``slots`` are
    ``job_slots(config)``, passed in when expanding many cases."""
    settings = case.settings
    if (settings.platforms or settings.environments or settings.scopes) and not (
        config.platforms.keys() >= set(settings.platforms)
        and config.environments.keys() >= set(settings.environments)
        and set(config.scopes) >= set(settings.scopes)
    ):  # an unknown name: say which (making the file name only then)
        where = str(case.config_path)
        config.check_names("platform", settings.platforms, where)
        config.check_names("environment", settings.environments, where)
        config.check_names("scope", settings.scopes, where)
    present = case.golden_files
    out: list[tuple[JobSlot, str | None]] = []
    if settings.jobs:
        return _listed_job_goldens(case, config, job_slots(config) if slots is None else slots)
    if not settings.platforms:  # no job is asked for explicitly: the goldens decide alone
        for slot in job_slots(config) if slots is None else slots:
            if not slot.opt_in:
                for name in slot.candidates:
                    if name in present:
                        out.append((slot, name))
                        break
        return out
    asked_envs = set(settings.environments or config.environments)
    asked_platforms = set(settings.platforms)
    for slot in job_slots(config) if slots is None else slots:
        explicit = slot.platform in asked_platforms and slot.environment in asked_envs
        if slot.opt_in and not explicit:
            continue
        golden = next((name for name in slot.candidates if name in present), None)
        if golden is not None or explicit:
            out.append((slot, golden))
    return out


def _listed_job_goldens(
    case: TestCase, config: Config, slots: t.Sequence[JobSlot]
) -> list[tuple[JobSlot, str | None]]:
    """The jobs of a case with ``CI_GOLDEN.jobs``: exactly those listed, in config order."""
    settings = case.settings
    where = str(case.config_path)
    if settings.platforms or settings.environments:
        raise ConfigError(
            where, "CI_GOLDEN gives jobs and platforms or environments: keep jobs alone"
        )
    by_name = {(slot.environment, slot.platform): slot for slot in slots}
    listed: dict[JobSlot, int] = {}
    for i, job in enumerate(settings.jobs):
        place = f"{where}: CI_GOLDEN.jobs[{i}]"
        config.check_names("environment", [job.environment], place)
        config.check_names("platform", [job.platform], place)
        config.check_names("scope", job.scopes, place)
        slot = by_name.get((job.environment, job.platform))
        if slot is None:
            raise ConfigError(
                place,
                f"environment {job.environment!r} does not run on platform {job.platform!r} "
                f"(its platforms: {', '.join(config.environments[job.environment])}); "
                "add the platform to the environment in the project config",
            )
        if slot in listed:
            raise ConfigError(
                place,
                f"{job.environment}/{job.platform} is listed again (first as jobs[{listed[slot]}]);"
                " give each environment and platform once, with all its scopes",
            )
        listed[slot] = i
    present = case.golden_files
    return [
        (slot, next((name for name in slot.candidates if name in present), None))
        for slot in slots
        if slot in listed
    ]


def case_jobs(
    case: TestCase, config: Config, slots: t.Sequence[JobSlot] | None = None
) -> list[Job]:
    """Every job of a case, in config order (environments, then their platforms); ``slots``
    are ``job_slots(config)``, passed in when checking many cases.

    Raises :class:`ConfigError` when the case's ``CI_GOLDEN`` block names an unknown
    platform or environment.
    """
    paths = case._golden_paths
    return [
        Job(case.id, slot.environment, slot.platform, None if golden is None else paths[golden])
        for slot, golden in case_job_goldens(case, config, slots)
    ]


def unreferenced_goldens(
    case: TestCase, config: Config, jobs: t.Sequence[Job] | None = None
) -> list[Unreferenced]:
    """The golden files of a case that no job reads, each with the reason; ``jobs`` are
    ``case_jobs(case, config)``, passed in when the caller has them."""
    if jobs is None:
        jobs = case_jobs(case, config)
    read = {job.golden.name for job in jobs if job.golden is not None}
    listed = bool(case.settings.jobs)
    out: list[Unreferenced] = []
    for filename in case.golden_files:
        if filename in read:
            continue
        parsed = GoldenName.parse(filename)
        if parsed is None or (
            parsed.environment is not None and parsed.environment not in config.environments
        ):
            continue  # a bad name, reported by the validator as an error instead
        path = case._golden_paths[filename]
        platform = parsed.platform
        env = parsed.environment
        if (
            listed
            and env is not None
            and (platform is None or platform in config.platforms)
            and not any(
                j.environment == env and (platform is None or j.platform == platform) for j in jobs
            )
        ):
            runs = f"environment {env!r}" + (f" on platform {platform!r}" if platform else "")
            out.append(Unreferenced(path, f"CI_GOLDEN.jobs has no job in {runs}", "not-listed"))
        elif parsed.environment is None:
            out.append(
                Unreferenced(path, "shadowed: every job has a more specific golden", "shadowed")
            )
        elif platform is None:
            out.append(
                Unreferenced(
                    path,
                    f"shadowed: every {parsed.environment} job has a more specific golden",
                    "shadowed",
                )
            )
        elif platform.endswith(SECOND_PHASE_SUFFIX):
            out.append(
                Unreferenced(
                    path, "second-phase golden of a resume run; no job reads it", "second-phase"
                )
            )
        elif platform in config.platforms:
            out.append(
                Unreferenced(
                    path,
                    f"platform {platform!r} is not in environment {parsed.environment!r} "
                    "of the config",
                    "not-in-environment",
                )
            )
        elif not close_platform(platform, config):
            out.append(
                Unreferenced(
                    path,
                    f"unknown platform {platform!r} (an old cluster name?)",
                    "unknown-platform",
                )
            )
    return out


def close_platform(platform: str, config: Config) -> str | None:
    """A configured platform the unknown name is probably a typo of."""
    cutoff = 0.8
    # difflib's first filter (real_quick_ratio), same arithmetic: most unknown names are far
    # longer or shorter than every configured one, and then difflib need not run
    if not any(_real_quick_ratio(platform, p) >= cutoff for p in config.platforms):
        return None
    import difflib

    close = difflib.get_close_matches(platform, list(config.platforms), n=1, cutoff=cutoff)
    return close[0] if close else None


def _real_quick_ratio(a: str, b: str) -> float:
    """``difflib.SequenceMatcher(None, a, b).real_quick_ratio()``: an upper bound of ratio()."""
    total = len(a) + len(b)
    return 2.0 * min(len(a), len(b)) / total if total else 1.0


def metrics_of(model_config: t.Mapping[str, t.Any]) -> tuple[str, ...] | None:
    """The gated metrics a model_config names: its METRICS list, else None (the defaults).

    An inference case whose ``METRICS:`` is left empty (null) checks nothing, as Megatron-LM's
    inference test does.
    """
    value = model_config.get("METRICS")
    if isinstance(value, list):
        return tuple(value)
    if value is None and "METRICS" in model_config and model_config.get("MODE") == "inference":
        return ()
    return None
