"""Expansion and selection: the suite's jobs, and which of them a CI run gets.

``select`` turns the cases that pass the filters (scope, platform, environment, case globs,
changed files, shard) into their jobs (``discover.case_job_goldens``) with the settings a runner
needs, and records why each case was kept or left out. The jobs are kept per case (a
:class:`JobList` of :class:`CaseJobs`) and made into :class:`MatrixJob` s when asked for.
Emitters live in ``ci_golden.plan.emit``.
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import itertools
import re
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ci_golden.errors import ConfigError, UsageError
from ci_golden.goldens.discover import (
    CaseSettings,
    JobSlot,
    Suite,
    TestCase,
    case_job_goldens,
    job_slots,
)
from ci_golden.goldens.testkind import KNOWN
from ci_golden.project.config import Config
from ci_golden.project.git import changed_files
from ci_golden.project.globs import glob_match
from ci_golden.project.schema import did_you_mean

MAX_NAME = 255
MAX_ID = 200
_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]")
# the keys of one matrix entry (MatrixJob.entry), in emitted order
ENTRY_KEYS = (
    "id", "name", "case", "environment", "platform", "runs-on", "golden",
    "n_repeat", "time_limit", "nodes", "gpus",
)  # fmt: skip


class MatrixJob(t.NamedTuple):
    """One CI job with everything the runner needs. ``gpus`` is per node. A named tuple:
    immutable, and built at tuple speed (a suite has tens of thousands)."""

    id: str
    name: str
    case: str
    environment: str
    platform: str
    runs_on: tuple[str, ...]
    tags: tuple[str, ...]
    golden: str | None
    n_repeat: int
    time_limit: int
    nodes: int
    gpus: int

    def entry(self) -> dict[str, t.Any]:
        """The matrix entry (keys :data:`ENTRY_KEYS`): the JSON object ``ci-golden run --job``
        reads.
        """
        return dict(zip(ENTRY_KEYS, (
            self.id, self.name, self.case, self.environment, self.platform, list(self.runs_on),
            self.golden, self.n_repeat, self.time_limit, self.nodes, self.gpus,
        ), strict=True))  # fmt: skip


@dataclass(frozen=True)
class Filters:
    """What to select. Empty tuples mean "all"; ``changed`` None means no change filter."""

    scope: str | None = None
    platforms: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    changed: tuple[str, ...] | None = None
    changed_since: str | None = None
    n_repeat: int | None = None
    shard: tuple[int, int] | None = None
    any_scope: bool = False  # every scope (``ci-golden list`` without --scope)


@dataclass(frozen=True)
class Selection:
    """The selected jobs, and per case why it was selected or left out. ``total`` is the number
    of jobs before ``--shard`` took its part; ``jobless`` the cases that passed every filter but
    have no job at all."""

    jobs: t.Sequence[MatrixJob]
    selected: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    n_cases: int = 0
    notes: tuple[str, ...] = field(default=())
    total: int | None = None
    shard: tuple[int, int] | None = None
    jobless: tuple[str, ...] = ()

    @property
    def unsharded(self) -> int:
        """The number of jobs of the selection before ``--shard``."""
        return len(self.jobs) if self.total is None else self.total

    @property
    def why_empty(self) -> str | None:
        """One sentence saying why nothing was selected, or None when something was."""
        if self.jobs:
            return None
        if self.notes and self.selected:
            return "; ".join(self.notes)
        if not self.n_cases:
            return "the test-case folder holds no test case"
        counts = Counter(_category(reason) for _, reason in self.skipped)
        parts = [
            f"{n} {what}" for what, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        parts.extend(self.notes)
        return f"none of the {self.n_cases} test cases has a selected job: " + "; ".join(parts)


def _category(reason: str) -> str:
    return reason.split(":", 1)[0]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]  # a name, not a secret


def job_id(case: str, environment: str, platform: str) -> str:
    """Stable id usable as a folder and artifact name:
    ``<case with / as __>__<env>__<platform>``.
    """
    raw = f"{case.replace('/', '__')}__{environment}__{platform}"
    safe = _ID_SAFE.sub("_", raw)
    if safe != raw or len(safe) > MAX_ID:
        tail = f"-{_digest(raw)}"
        safe = safe[: MAX_ID - len(tail)] + tail
    return safe


def _labels(cases: t.Sequence[TestCase]) -> dict[str, str]:
    """Short display label per case: its folder name, or the full id where names collide."""
    leaves = [c.id.rpartition("/")[2] for c in cases]
    counts = Counter(leaves)
    return {
        c.id: leaf if counts[leaf] == 1 else c.id for c, leaf in zip(cases, leaves, strict=True)
    }


def job_name(label: str, case: str, environment: str, platform: str) -> str:
    """``<label> <env> <platform>``, at most 255 characters (long labels keep a hash of the id)."""
    suffix = f" {environment} {platform}"
    name = label + suffix
    if len(name) <= MAX_NAME:
        return name
    tail = f"~{_digest(case)}"
    return label[: MAX_NAME - len(suffix) - len(tail)] + tail + suffix


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX), or as given when outside it; string work only."""
    text, prefix = path.as_posix(), root.as_posix().rstrip("/") + "/"
    return text[len(prefix) :] if text.startswith(prefix) else text


class JobRow(t.NamedTuple):
    """What a job has that does not depend on its case's id: its environment and platform, the
    platform's runner settings, the golden file name, and what ``CI_GOLDEN.jobs`` gives the job
    itself. Cases with the same golden files and settings share their rows."""

    environment: str
    platform: str
    id_suffix: str  # "__<environment>__<platform>"
    name_suffix: str  # " <environment> <platform>"
    runs_on: tuple[str, ...]
    tags: tuple[str, ...]
    gpus: int  # per node
    golden: str | None  # a file name in the case folder
    nodes: int | None = None  # None: the case's
    scopes: frozenset[str] | None = None  # the scopes the job runs in; None: the case's


class CaseJobs(t.NamedTuple):
    """The selected jobs of one case: a row per job, and what its jobs share."""

    case: str
    label: str
    folder: str  # relative to the project root (POSIX)
    rows: tuple[JobRow, ...]
    n_repeat: int
    time_limit: int
    nodes: int
    # each job's id is id_prefix + id_suffix (so the case id has only [A-Za-z0-9._/-], which JSON
    # takes unescaped, and so has the label) and its name label + name_suffix; set by select
    plain: bool

    @property
    def id_prefix(self) -> str:
        return self.case.replace("/", "__")

    def jobs(self) -> list[MatrixJob]:
        case, label, folder, rows, n_repeat, time_limit, nodes, plain = self
        folder += "/"
        if not plain:  # an id or name that needs a hash
            return [
                MatrixJob(
                    job_id(case, r.environment, r.platform),
                    job_name(label, case, r.environment, r.platform),
                    case, r.environment, r.platform, r.runs_on, r.tags,
                    None if r.golden is None else folder + r.golden,
                    n_repeat, time_limit, nodes if r.nodes is None else r.nodes, r.gpus,
                )
                for r in rows
            ]  # fmt: skip
        id_prefix = self.id_prefix
        make = MatrixJob._make  # from one tuple: cheaper than the twelve-argument constructor
        return [
            make((
                id_prefix + id_suffix, label + name_suffix, case, env, platform, runs_on, tags,
                None if golden is None else folder + golden, n_repeat, time_limit,
                nodes if row_nodes is None else row_nodes, gpus,
            ))
            for env, platform, id_suffix, name_suffix, runs_on, tags, gpus, golden, row_nodes, _
            in rows
        ]  # fmt: skip


class JobList(t.Sequence[MatrixJob]):
    """The jobs of a selection, stored per case (:class:`CaseJobs`). A :class:`MatrixJob` is made
    only when one is asked for, so an emitter can write tens of thousands of jobs case by case.
    Slices are job lists too (``--shard`` takes one)."""

    def __init__(self, groups: t.Iterable[CaseJobs] = ()) -> None:
        self.groups = tuple(groups)
        self._ends = list(itertools.accumulate(len(g.rows) for g in self.groups))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self) -> t.Iterator[MatrixJob]:
        for group in self.groups:
            yield from group.jobs()

    @t.overload
    def __getitem__(self, index: int) -> MatrixJob: ...

    @t.overload
    def __getitem__(self, index: slice) -> JobList: ...

    def __getitem__(self, index: int | slice) -> MatrixJob | JobList:
        if isinstance(index, slice):
            return self._slice(index)
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError("job index out of range")
        g = bisect.bisect_right(self._ends, position)
        group = self.groups[g]
        return group.jobs()[position - self._ends[g] + len(group.rows)]

    def _slice(self, index: slice) -> JobList:
        start, stop, step = index.indices(len(self))
        if step < 1:
            raise ValueError("a job list is sliced forwards only")
        out = []
        g = bisect.bisect_right(self._ends, start)
        while g < len(self.groups) and start < stop:
            group, end = self.groups[g], self._ends[g]
            begin = end - len(group.rows)
            rows = group.rows[start - begin : min(stop, end) - begin : step]
            if rows:
                out.append(group if len(rows) == len(group.rows) else group._replace(rows=rows))
            if end > start:  # the first index at or after end that the slice takes
                start += -(-(end - start) // step) * step
            g += 1
        return JobList(out)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (JobList, tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"<JobList: {len(self)} jobs of {len(self.groups)} cases>"


class _Plan(t.NamedTuple):
    settings: CaseSettings
    rows: tuple[JobRow, ...]
    n_repeat: int
    time_limit: int
    nodes: int
    scopes: frozenset[str]  # the case's, for rows without their own

    def in_scope(self, scope: str) -> tuple[JobRow, ...]:
        """The rows that run in ``scope``."""
        case_scopes = self.scopes
        return tuple(
            row for row in self.rows if scope in (case_scopes if row.scopes is None else row.scopes)
        )

    def all_scopes(self) -> list[str]:
        found = {s for row in self.rows if row.scopes is not None for s in row.scopes}
        if not self.rows or any(row.scopes is None for row in self.rows):
            found |= self.scopes
        return sorted(found)


class _Expansion:
    """What every case's expansion shares, worked out once per suite: per (environment,
    platform) its :class:`JobRow` parts, and per distinct (golden files, CI_GOLDEN settings) of
    the cases the rows they give."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.root_prefix = config.root.as_posix().rstrip("/") + "/"
        self.slots = job_slots(config)
        self.per_slot: dict[
            JobSlot, tuple[str, str, str, str, tuple[str, ...], tuple[str, ...], int]
        ] = {}
        for slot in self.slots:
            platform = config.platforms[slot.platform]
            self.per_slot[slot] = (
                slot.environment,
                slot.platform,
                f"__{slot.environment}__{slot.platform}",
                f" {slot.environment} {slot.platform}",
                platform.runs_on,
                platform.tags,
                platform.gpus_per_node,
            )
        parts = self.per_slot.values()
        # a case whose id prefix is safe and short enough against these needs no per-job checks
        self.suffixes_safe = all(_ID_SAFE.search(p[2]) is None for p in parts)
        self.longest_id_suffix = max((len(p[2]) for p in parts), default=0)
        self.longest_name_suffix = max((len(p[3]) for p in parts), default=0)
        # (golden files, id(settings)) -> the case's plan
        self.plans: dict[tuple[tuple[str, ...], int], _Plan] = {}

    def plan(self, case: TestCase) -> _Plan:
        """The rows of a case's jobs and what they share: the same for every case with the same
        golden files and settings (checked, for the first, by case_job_goldens). Scopes are
        resolved through the config's aliases."""
        settings = case.settings
        key = (case.golden_files, id(settings))
        plan = self.plans.get(key)
        if plan is None or plan.settings is not settings:
            config = self.config
            defaults = config.defaults
            rows = []
            for slot, golden in case_job_goldens(case, config, self.slots):
                row = JobRow(*self.per_slot[slot], golden)
                listed = settings.listed(slot.environment, slot.platform) if settings.jobs else None
                if listed is not None:
                    row = row._replace(
                        gpus=row.gpus if listed.gpus is None else listed.gpus,
                        nodes=listed.nodes,
                        scopes=frozenset(map(config.scope, listed.scopes)) or None,
                    )
                rows.append(row)
            plan = self.plans[key] = _Plan(
                settings,
                tuple(rows),
                settings.n_repeat or defaults.n_repeat,
                settings.time_limit or defaults.time_limit,
                settings.nodes or defaults.nodes,
                frozenset(map(config.scope, settings.scopes)) or frozenset([config.default_scope]),
            )
        return plan

    def case_jobs(
        self,
        case: TestCase,
        label: str,
        rows: tuple[JobRow, ...],
        n_repeat: int,
        time_limit: int,
        nodes: int,
    ) -> CaseJobs:
        text = case.folder  # _rel(case.path, config.root), on the text of the path
        prefix = self.root_prefix
        folder = text[len(prefix) :] if text.startswith(prefix) else text
        id_prefix = case.id.replace("/", "__")
        plain = (
            self.suffixes_safe
            and len(id_prefix) + self.longest_id_suffix <= MAX_ID
            and len(label) + self.longest_name_suffix <= MAX_NAME
            and _ID_SAFE.search(id_prefix) is None
        )
        return CaseJobs(case.id, label, folder, rows, n_repeat, time_limit, nodes, plain)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UsageError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 1/2")
    return int(m.group(1)), int(m.group(2))


def changed_paths(ref: str, root: Path) -> tuple[str, ...]:
    """:func:`ci_golden.project.git.changed_files` relative to ``root`` (POSIX), as
    :attr:`Filters.changed` takes them."""
    resolved = root.resolve()
    return tuple(sorted({_rel(path, resolved) for path in changed_files(ref, root)}))


def _changed_reasons(
    suite: Suite, changed: t.Sequence[str], since: str
) -> tuple[dict[str, str] | None, str | None]:
    """(case id -> reason) for cases whose folder changed, or (None, reason) when all are.

    Every case is selected by a change to the project config, to a ``global_paths`` glob, or
    to any file outside the test-case root that no ``ignore_paths`` glob matches: code the
    cases exercise lives there, and a regression tool must not guess that it is unrelated.
    """
    config = suite.config
    root = config.root.resolve()
    config_path = _rel(Path(config.source), root) if config.source else None
    cases_root = config.test_cases.resolve()
    inside = "" if cases_root == root else _rel(cases_root, root) + "/"
    outside = [
        path
        for path in changed
        if not path.startswith(inside)
        and path != config_path
        and not any(glob_match(path, pattern) for pattern in config.ignore_paths)
    ]
    for path in changed:
        if path == config_path:
            return None, f"the project config {path} changed since {since}"
        for pattern in config.global_paths:
            if glob_match(path, pattern):
                return None, f"global path {pattern!r} changed since {since} ({path})"
    if outside:
        more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
        return None, (
            f"{outside[0]}{more} changed since {since}: outside the test-case root and "
            "not in ignore_paths"
        )
    folders = {_rel(c.path.resolve(), root): c.id for c in suite.cases}
    hits: dict[str, list[str]] = {}
    for path in changed:
        for parent in PurePosixPath(path).parents:
            case = folders.get(parent.as_posix())
            if case is not None:
                hits.setdefault(case, []).append(path)
                break
    reasons = {}
    for case, paths in hits.items():
        more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
        reasons[case] = f"changed since {since}: {paths[0]}{more}"
    return reasons, None


def check_filters(config: Config, filters: Filters) -> None:
    """Unknown names and combinations that can never give a job are usage errors."""
    if filters.scope is not None:
        config.check_names("scope", [filters.scope], "--scope")
    config.check_names("platform", filters.platforms, "--platform")
    config.check_names("environment", filters.environments, "--environment")
    if filters.n_repeat is not None and not 1 <= filters.n_repeat <= 100:
        raise UsageError(f"--n-repeat {filters.n_repeat}: expected 1 to 100")
    if filters.platforms and filters.environments:
        reachable = {p for e in filters.environments for p in config.environments[e]}
        if not reachable & set(filters.platforms):
            raise UsageError(
                f"no --environment {' '.join(filters.environments)} "
                f"runs on --platform {' '.join(filters.platforms)}; "
                f"the config gives them {', '.join(sorted(reachable))}"
            )


def select(suite: Suite, filters: Filters = Filters()) -> Selection:
    """The jobs that pass ``filters``, with the reason each case was selected or left out."""
    config = suite.config
    check_filters(config, filters)
    scope = config.scope(filters.scope or config.default_scope)
    ids = [c.id for c in suite.cases] if filters.cases else []
    for pattern in filters.cases:
        if not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
            raise UsageError(f"--case {pattern!r} matches no test case{did_you_mean(pattern, ids)}")
    changed_reasons: dict[str, str] | None = None
    everything_changed: str | None = None
    notes: list[str] = []
    if filters.changed is not None:
        since = filters.changed_since or "the base"
        changed_reasons, everything_changed = _changed_reasons(suite, filters.changed, since)
        if not filters.changed:
            notes.append(f"no file changed since {since}")
    labels = _labels(suite.cases)
    expansion = _Expansion(config)
    scope_reason = "every scope" if filters.any_scope else f"scope {scope}"
    if filters.scope is not None and filters.scope != scope:
        scope_reason += f" ({filters.scope})"
    jobless: list[str] = []
    groups: list[CaseJobs] = []
    selected: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for case in suite.cases:
        reasons = []
        if filters.cases:
            matched = [p for p in filters.cases if fnmatch.fnmatchcase(case.id, p)]
            if not matched:
                skipped.append((case.id, "not matching --case: " + " ".join(filters.cases)))
                continue
            reasons.append(f"--case {matched[0]}")
        # every case in the selection's reach is expanded (and so checked), selected or not;
        # only the jobs of selected ones are built
        case_plan = expansion.plan(case)
        settings, plan, n_repeat, time_limit, nodes, case_scopes = case_plan
        if not filters.any_scope:
            if settings.jobs or scope not in case_scopes:
                plan = case_plan.in_scope(scope)
            if not plan and (case_plan.rows or scope not in case_scopes):
                skipped.append(
                    (
                        case.id,
                        f"not in scope {scope}: its scopes are {', '.join(case_plan.all_scopes())}",
                    )
                )
                continue
        reasons.append(scope_reason)
        if changed_reasons is not None:
            if case.id not in changed_reasons:
                skipped.append(
                    (
                        case.id,
                        f"unchanged: no file in its folder changed since {filters.changed_since}",
                    )
                )
                continue
            reasons.append(changed_reasons[case.id])
        elif everything_changed:
            reasons.append(everything_changed)
        if not plan:
            skipped.append(
                (case.id, "has no job: no golden resolves for any environment and platform")
            )
            jobless.append(case.id)
            continue
        kept = plan
        if filters.platforms or filters.environments:
            kept = tuple(
                row
                for row in plan
                if (not filters.platforms or row.platform in filters.platforms)
                and (not filters.environments or row.environment in filters.environments)
            )
        if not kept:
            skipped.append(
                (
                    case.id,
                    "has no job on the selected platforms and environments: it has "
                    + ", ".join(f"{row.environment}/{row.platform}" for row in plan),
                )
            )
            continue
        unknown = case.unknown_kind()
        if unknown is not None:
            key, value = unknown
            raise ConfigError(
                str(case.config_path),
                f"{key} {value!r} is not one Megatron-LM's run_ci_test.sh knows "
                f"(known: {', '.join(KNOWN[key])}); refusing to plan a job that cannot run",
                f"$.{key}",
            )
        if filters.n_repeat is not None:
            n_repeat = filters.n_repeat
        groups.append(expansion.case_jobs(case, labels[case.id], kept, n_repeat, time_limit, nodes))
        selected.append((case.id, "; ".join(reasons)))
    jobs = JobList(groups)
    total = len(jobs)
    if filters.shard is not None:
        k, n = filters.shard
        jobs = jobs[k - 1 :: n]
        if not jobs:
            notes.append(f"shard {k}/{n} is empty: the selection has {total} jobs")
    return Selection(
        jobs=jobs,
        selected=tuple(selected),
        skipped=tuple(skipped),
        n_cases=len(suite.cases),
        notes=tuple(notes),
        total=total,
        shard=filters.shard,
        jobless=tuple(jobless),
    )
