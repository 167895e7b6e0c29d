"""The main job on one machine: validate, plan, run every selected job, compare, write the report.

``ci-golden local`` runs this on the bundled CPU cases; the same steps make up the CI
pipeline, spread there over a plan job, one runner job per matrix entry and a report job.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.goldens.discover import Suite, case_jobs
from ci_golden.plan.select import job_id
from ci_golden.project.files import atomic_write_text
from ci_golden.report.aggregate import build_report
from ci_golden.report.render import render_json, render_junit, render_markdown
from ci_golden.run.execute import make_out, spec_for
from ci_golden.run.executor import RunOptions, executor_for
from ci_golden.run.runner import Sink
from ci_golden.run.spec import JobSpec
from ci_golden.validate.engine import validate

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult
    from ci_golden.report.aggregate import Report
    from ci_golden.validate.engine import ValidationResult

REPORT_FILES = {"markdown": "report.md", "json": "report.json", "junit": "junit.xml"}


@dataclass(frozen=True)
class LocalRun:
    """What the main job did: the validation, the job results, the report and its files."""

    validation: ValidationResult
    results: tuple[CaseResult, ...] = ()
    report: Report | None = None
    files: tuple[Path, ...] = ()

    @property
    def stopped(self) -> bool:
        """Validation found errors, so nothing ran."""
        return self.validation.errors > 0


def plan_jobs(suite: Suite, platforms: t.Collection[str], out: Path) -> list[JobSpec]:
    """Every job of the suite on ``platforms``, each with its own folder below ``out``."""

    config = suite.config
    where = config.source or "<built-in config>"
    config.check_names("platform", platforms, where)
    return [
        spec_for(case, job, config, out / job_id(case.id, job.environment, job.platform))
        for case in suite.cases
        for job in case_jobs(case, config)
        if job.platform in platforms
    ]


def write_reports(report: Report, out: Path) -> tuple[Path, ...]:

    texts = {
        "markdown": render_markdown(report),
        "json": render_json(report),
        "junit": render_junit(report),
    }
    paths = []
    for kind, text in texts.items():
        path = out / REPORT_FILES[kind]
        atomic_write_text(path, text)
        paths.append(path)
    return tuple(paths)


def run_local(
    suite: Suite,
    out: Path,
    *,
    platforms: t.Collection[str] = ("cpu",),
    check_gpu: bool = True,
    allow_drift: bool = False,
    sink: Sink | None = None,
    on_job: t.Callable[[JobSpec, CaseResult], None] | None = None,
) -> LocalRun:
    """Validate the suite; unless that finds errors, run the jobs of ``platforms`` and report.

    Raises :class:`InputError` when no job is selected (an empty run must never pass).
    """

    validation = validate(suite)
    if validation.errors:
        return LocalRun(validation)
    specs = plan_jobs(suite, platforms, out)
    if not specs:
        raise InputError(
            str(suite.root),
            f"no job on platform(s) {', '.join(sorted(platforms))}: "
            "no case lists them in CI_GOLDEN.platforms",
        )
    make_out(out)
    results = []
    for spec in specs:
        executor = executor_for(spec, suite.config, notify=sink)
        result = executor.run(spec, suite.config, RunOptions(check_gpu=check_gpu), sink)
        results.append(result)
        if on_job is not None:
            on_job(spec, result)
    report = build_report(results, sources=(str(out),), allow_drift=allow_drift)
    return LocalRun(validation, tuple(results), report, write_reports(report, out))
