"""Aggregation: every job's result.json of a pipeline into one :class:`Report`.

With the plan's job list (``--expect``, the matrix ``ci-golden matrix`` wrote) each planned job
without a result becomes an ``error`` entry, so a job that never ran cannot make a pass.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.compare.result import (
    RESULT_FILE,
    SEVERITY,
    CaseResult,
    MetricResult,
    Verdict,
    failing_verdicts,
    parse_result,
    worst,
)
from ci_golden.errors import InputError
from ci_golden.goldens.model import read_json
from ci_golden.project.files import not_regular

REPORT_VERSION = 1
NO_RESULT = "no result: the job did not run or its artifact is missing"
MAX_LISTED = 10
GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"


@dataclass(frozen=True)
class CiRun:
    """The CI run a report was made in: what ``ci-golden fetch-results`` needs to download its
    results. ``forge`` is github (``id`` a workflow run) or gitlab (``id`` a pipeline);
    ``project`` the repository or project path; ``api_url`` only when not the public forge's."""

    forge: t.Literal["github", "gitlab"]
    id: str
    project: str | None = None
    api_url: str | None = None

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "forge": self.forge,
            "id": self.id,
            "project": self.project,
            "api_url": self.api_url,
        }

    @classmethod
    def from_dict(cls, d: t.Any, name: str) -> CiRun | None:
        if d is None:
            return None
        if (
            not isinstance(d, dict)
            or d.get("forge") not in ("github", "gitlab")
            or not isinstance(d.get("id"), str)
        ):
            raise InputError(
                name, "expected {forge: github|gitlab, id: string, project, api_url}", "$.ci_run"
            )
        optional = {
            k: d.get(k) if isinstance(d.get(k), str) else None for k in ("project", "api_url")
        }
        return cls(d["forge"], d["id"], **optional)


def ci_run_from_env(environ: t.Mapping[str, str]) -> CiRun | None:
    """The run from GitHub Actions (GITHUB_RUN_ID, GITHUB_REPOSITORY, GITHUB_API_URL) or GitLab
    CI (CI_PIPELINE_ID, CI_PROJECT_PATH, CI_API_V4_URL); None outside CI."""
    if environ.get("GITHUB_RUN_ID"):
        api = environ.get("GITHUB_API_URL", "").rstrip("/")
        return CiRun("github", environ["GITHUB_RUN_ID"], environ.get("GITHUB_REPOSITORY") or None,
                     api if api and api != GITHUB_API else None)  # fmt: skip
    if environ.get("CI_PIPELINE_ID"):
        api = environ.get("CI_API_V4_URL", "").rstrip("/")
        project = environ.get("CI_PROJECT_PATH") or environ.get("CI_PROJECT_ID") or None
        return CiRun(
            "gitlab", environ["CI_PIPELINE_ID"], project, api if api and api != GITLAB_API else None
        )
    return None


@dataclass(frozen=True)
class Report:
    """The pipeline's verdict and its jobs, most severe first.

    ``sources`` are the result paths the report was built from (outside CI the ``ci-golden
    update`` command it suggests reads them; ``ci_run`` set, it fetches the run's results
    first); ``allow_drift`` says drift does not fail the pipeline; ``notes`` are said once, above
    the jobs (e.g. results of jobs the plan did not list); ``html_url`` is where the HTML report
    of the same results can be opened (the CI artifact), linked from the Markdown.
    """

    verdict: Verdict
    results: tuple[CaseResult, ...]
    run_url: str | None = None
    sources: tuple[str, ...] = ()
    allow_drift: bool = False
    ci_run: CiRun | None = None
    notes: tuple[str, ...] = ()
    html_url: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Jobs per verdict, most severe first, verdicts without jobs left out."""
        out = {v: sum(1 for r in self.results if r.verdict == v) for v in SEVERITY}
        return {v: n for v, n in out.items() if n}

    @property
    def ok(self) -> bool:
        return self.verdict not in failing_verdicts(allow_drift=self.allow_drift)

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "version": REPORT_VERSION,
            "verdict": self.verdict,
            "counts": self.counts,
            "run_url": self.run_url,
            "sources": list(self.sources),
            "allow_drift": self.allow_drift,
            "ci_run": self.ci_run.to_dict() if self.ci_run else None,
            "notes": list(self.notes),
            "html_url": self.html_url,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: t.Mapping[str, t.Any], name: str = "<report>") -> Report:
        if not isinstance(d, dict) or not isinstance(d.get("results"), list):
            raise InputError(
                name, "not a ci-golden report: expected an object with a 'results' list", "$"
            )
        results = tuple(
            parse_result(r, f"{name}::$.results[{i}]") for i, r in enumerate(d["results"])
        )
        return build_report(
            results,
            run_url=d.get("run_url"),
            sources=tuple(d.get("sources") or ()),
            allow_drift=bool(d.get("allow_drift", False)),
            ci_run=CiRun.from_dict(d.get("ci_run"), name),
            notes=tuple(str(n) for n in d.get("notes") or ()),
            html_url=d["html_url"] if isinstance(d.get("html_url"), str) else None,
        )


def worst_metric(result: CaseResult) -> MetricResult | None:
    """The metric that speaks for a job in a table row: the worst gated one (any one when none
    is gated), the largest relative difference first among equals."""
    order = ("fail", "missing", "drift", "pass", "no-golden", "error")
    gated = [m for _, m in result.all_metrics() if m.gated] or [m for _, m in result.all_metrics()]
    if not gated:
        return None
    return min(gated, key=lambda m: (order.index(m.verdict), -(m.max_rel_diff or 0.0)))


def _sort_key(r: CaseResult) -> tuple[int, str, str, str]:
    return (SEVERITY.index(r.verdict), r.case, r.environment, r.platform)


def build_report(
    results: t.Iterable[CaseResult],
    *,
    run_url: str | None = None,
    sources: t.Sequence[str] = (),
    allow_drift: bool = False,
    ci_run: CiRun | None = None,
    notes: t.Sequence[str] = (),
    html_url: str | None = None,
) -> Report:
    """One report; the verdict is the most severe job verdict ("pass" only when every job
    passed).
    """
    ordered = tuple(sorted(results, key=_sort_key))
    if not ordered:
        raise InputError("<results>", "no job results to report")
    return Report(
        worst(r.verdict for r in ordered),
        ordered,
        run_url,
        tuple(sources),
        allow_drift,
        ci_run,
        tuple(notes),
        html_url,
    )


def _load_any(path: Path) -> list[tuple[CaseResult, Path | None]]:

    data = read_json(path)
    if isinstance(data, dict) and "results" in data and "case" not in data:
        return [(r, None) for r in Report.from_dict(data, str(path)).results]
    return [(parse_result(data, str(path)), path.parent)]


def locate_results(
    paths: t.Sequence[Path], *, missing_ok: bool = False
) -> list[tuple[CaseResult, Path | None]]:
    """Results from files (result.json or a report JSON) and folders (every result.json below),
    each with the folder of its result.json (None for the results of a report JSON), where the
    files the result names lie.

    A path that does not exist, or a folder without any result.json, is an :class:`InputError`:
    a report must never pass because it found nothing. ``missing_ok`` (the plan's job list is
    known, so each job without a result is reported as one) lets them yield nothing instead.
    """
    out: list[tuple[CaseResult, Path | None]] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files = sorted(path.rglob(RESULT_FILE))
            if not files and not missing_ok:
                raise InputError(str(path), f"no {RESULT_FILE} found in this folder or below")
        elif path.exists():  # a file; reading refuses a FIFO, socket or device
            files = [path]
        elif missing_ok:
            files = []
        else:
            raise InputError(str(path), "no such file or folder")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.extend(_load_any(f))
    return out


def collect_results(paths: t.Sequence[Path], *, missing_ok: bool = False) -> list[CaseResult]:
    """The results of :func:`locate_results`, without their folders."""
    return [r for r, _ in locate_results(paths, missing_ok=missing_ok)]


def run_url_from_env(environ: t.Mapping[str, str]) -> str | None:
    """The CI run's web page: GitHub Actions (GITHUB_SERVER_URL, GITHUB_REPOSITORY,
    GITHUB_RUN_ID) or GitLab CI (CI_PIPELINE_URL); None outside CI."""
    server, repo, run_id = (
        environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if server and repo and run_id:
        return f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"
    return environ.get("CI_PIPELINE_URL") or None


# --- the plan's job list ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedJob:
    """A job the plan scheduled (one ``include`` entry of the matrix)."""

    case: str
    environment: str
    platform: str
    golden: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.case, self.environment, self.platform)


def load_expected(path: Path) -> tuple[ExpectedJob, ...]:
    """The jobs of a matrix file ``{"include": [{case, environment, platform, ...}, ...]}`` (what
    ``ci-golden matrix --ci github`` writes; other keys are ignored)."""

    name = str(path)
    if not path.exists():
        raise InputError(name, "no such file")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("include"), list):
        raise InputError(
            name,
            'not a job matrix: expected {"include": [...]} '
            "as `ci-golden matrix --ci github` writes",
            "$",
        )
    jobs = []
    for i, entry in enumerate(data["include"]):
        if not isinstance(entry, dict):
            raise InputError(
                name, "expected an object with case, environment and platform", f"$.include[{i}]"
            )
        for key in ("case", "environment", "platform"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise InputError(name, f"expected a non-empty string {key!r}", f"$.include[{i}]")
        golden = entry.get("golden")
        jobs.append(
            ExpectedJob(
                entry["case"],
                entry["environment"],
                entry["platform"],
                golden if isinstance(golden, str) else None,
            )
        )
    return tuple(jobs)


def expect_jobs(
    results: t.Sequence[CaseResult], expected: t.Sequence[ExpectedJob], source: str
) -> tuple[list[CaseResult], tuple[str, ...]]:
    """``results`` plus an ``error`` entry for each expected job without one, and the notes:
    results of jobs ``expected`` (read from ``source``) does not list stay, with a note."""
    have = {(r.case, r.environment, r.platform) for r in results}
    out = list(results)
    for job in dict.fromkeys(expected):
        if job.key not in have:
            out.append(
                CaseResult(
                    "error",
                    job.case,
                    job.environment,
                    job.platform,
                    {},
                    golden=job.golden,
                    message=NO_RESULT,
                )
            )
    planned = {job.key for job in expected}
    extra = [r.job_id for r in results if (r.case, r.environment, r.platform) not in planned]
    if not extra:
        return out, ()
    listed = ", ".join(extra[:MAX_LISTED]) + (
        f" and {len(extra) - MAX_LISTED} more" if len(extra) > MAX_LISTED else ""
    )
    many = len(extra) != 1
    note = (
        f"{len(extra)} result{'s are' if many else ' is'} for {'jobs' if many else 'a job'} "
        f"the plan ({source}) does not list: {listed}"
    )
    return out, (note,)


@dataclass(frozen=True)
class Gathered:
    """What a report is made of: the results, its notes, and the folder of each job's
    result.json by job id (for the files the HTML report reads)."""

    results: list[CaseResult]
    notes: tuple[str, ...]
    folders: dict[str, Path]


def gather_results(paths: t.Sequence[Path], expect: Path | None) -> Gathered:
    """The results below ``paths``, and with ``expect`` (a matrix file) an ``error`` entry for
    each planned job without one (see :func:`expect_jobs`); and the report's notes."""
    located = locate_results(paths, missing_ok=expect is not None)
    results = [r for r, _ in located]
    folders = {r.job_id: folder for r, folder in located if folder is not None}
    if expect is None:
        return Gathered(results, (), folders)
    results, notes = expect_jobs(results, load_expected(expect), str(expect))
    return Gathered(results, notes, folders)


def check_out_path(path: Path) -> None:
    """:class:`InputError` naming ``path`` when no file can be written there: it is a folder, or
    something on its way is a file. Checked before any work, so nothing is left half-done."""
    if path.is_dir():
        raise InputError(str(path), "cannot write the file: this is a folder")
    kind = not_regular(path.stat().st_mode) if path.exists() else None
    if kind is not None:
        raise InputError(str(path), f"cannot write the file: it is {kind}, not a regular file")
    for parent in path.parents:
        if parent.is_dir():
            return
        if parent.exists() or parent.is_symlink():
            raise InputError(str(path), f"cannot write the file: {parent} is not a folder")
