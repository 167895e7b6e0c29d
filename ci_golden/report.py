"""Aggregation: every job's result.json of a pipeline into one :class:`Report`."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.result import SEVERITY, CaseResult, Verdict, parse_result, worst

RESULT_FILE = "result.json"
REPORT_VERSION = 1


@dataclass(frozen=True)
class Report:
    """The pipeline's verdict and its jobs, most severe first.

    ``sources`` are the result paths the report was built from (the ``ci-golden update``
    command it suggests reads them); ``allow_drift`` says drift does not fail the pipeline.
    """

    verdict: Verdict
    results: tuple[CaseResult, ...]
    run_url: str | None = None
    sources: tuple[str, ...] = ()
    allow_drift: bool = False

    @property
    def counts(self) -> dict[str, int]:
        """Jobs per verdict, most severe first, verdicts without jobs left out."""
        out = {v: sum(1 for r in self.results if r.verdict == v) for v in SEVERITY}
        return {v: n for v, n in out.items() if n}

    @property
    def ok(self) -> bool:
        bad = {"error", "fail", "missing"} | (set() if self.allow_drift else {"drift"})
        return self.verdict not in bad

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "version": REPORT_VERSION,
            "verdict": self.verdict,
            "counts": self.counts,
            "run_url": self.run_url,
            "sources": list(self.sources),
            "allow_drift": self.allow_drift,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: t.Mapping[str, t.Any], name: str = "<report>") -> Report:
        if not isinstance(d, dict) or not isinstance(d.get("results"), list):
            raise InputError(name, "not a ci-golden report: expected an object with a 'results' list", "$")
        results = tuple(parse_result(r, f"{name}::$.results[{i}]") for i, r in enumerate(d["results"]))
        return build_report(
            results,
            run_url=d.get("run_url"),
            sources=tuple(d.get("sources") or ()),
            allow_drift=bool(d.get("allow_drift", False)),
        )


def _sort_key(r: CaseResult) -> tuple[int, str, str, str]:
    return (SEVERITY.index(r.verdict), r.case, r.environment, r.platform)


def build_report(
    results: t.Iterable[CaseResult],
    *,
    run_url: str | None = None,
    sources: t.Sequence[str] = (),
    allow_drift: bool = False,
) -> Report:
    """One report; the verdict is the most severe job verdict ("pass" only when every job passed)."""
    ordered = tuple(sorted(results, key=_sort_key))
    if not ordered:
        raise InputError("<results>", "no job results to report")
    return Report(worst(r.verdict for r in ordered), ordered, run_url, tuple(sources), allow_drift)


def _load_any(path: Path) -> list[CaseResult]:
    from ci_golden.golden import read_json

    data = read_json(path)
    if isinstance(data, dict) and "results" in data and "case" not in data:
        return list(Report.from_dict(data, str(path)).results)
    return [parse_result(data, str(path))]


def collect_results(paths: t.Sequence[Path]) -> list[CaseResult]:
    """Results from files (result.json or a report JSON) and folders (every result.json below).

    A path that does not exist, or a folder without any result.json, is an :class:`InputError`:
    a report must never pass because it found nothing.
    """
    out: list[CaseResult] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files = sorted(path.rglob(RESULT_FILE))
            if not files:
                raise InputError(str(path), f"no {RESULT_FILE} found in this folder or below")
        elif path.is_file():
            files = [path]
        else:
            raise InputError(str(path), "no such file or folder")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.extend(_load_any(f))
    return out


def run_url_from_env(environ: t.Mapping[str, str]) -> str | None:
    """The CI run's web page: GitHub Actions (GITHUB_SERVER_URL, GITHUB_REPOSITORY,
    GITHUB_RUN_ID) or GitLab CI (CI_PIPELINE_URL); None outside CI."""
    server, repo, run_id = (environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run_id:
        return f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"
    return environ.get("CI_PIPELINE_URL") or None
