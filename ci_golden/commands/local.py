from __future__ import annotations

import argparse
import sys
import typing as t
from pathlib import Path

from ci_golden.commands import load_suite
from ci_golden.compare.result import exit_code
from ci_golden.project.files import atomic_write_text
from ci_golden.report.curves import load_curves
from ci_golden.report.html import render_html
from ci_golden.run.local import run_local
from ci_golden.run.runner import sigterm_as_interrupt
from ci_golden.validate.render import render_text

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult
    from ci_golden.run.local import LocalRun
    from ci_golden.run.spec import JobSpec


HTML_REPORT = "report.html"  # beside report.md


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="P",
        help="platforms to run (default: cpu)",
    )
    parser.add_argument("--out", metavar="DIR", default="ci-golden-out")
    parser.add_argument("--allow-drift", action="store_true")
    parser.add_argument("--skip-gpu-check", action="store_true")
    # The training logs are saved in each job's folder; -v also streams them here.


def _job_line(spec: JobSpec, result: CaseResult) -> None:
    line = f"{result.verdict.upper():<9} {spec.case.id} [{spec.environment}, {spec.platform}]"
    if result.message and result.verdict != "pass":
        line += f": {result.message}"
    print(line, flush=True)


def render_summary(
    done: LocalRun, out: Path, allow_drift: bool, files: t.Sequence[Path] = ()
) -> str:
    """The closing lines: counts per verdict, the overall verdict and where the reports
    (``done.files`` and ``files``) are."""
    from collections import Counter

    assert done.report is not None
    counts = Counter(r.verdict for r in done.results)
    parts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    lines = [f"{len(done.results)} jobs: {parts}", f"verdict: {done.report.verdict}"]
    if done.report.verdict == "drift":
        lines.append(
            "drift: numerics moved within tolerance"
            + (" (allowed)" if allow_drift else "; pass --allow-drift to accept")
        )
    lines.append("reports: " + ", ".join(str(p) for p in (*done.files, *files)))
    lines.append(f"job folders: {out}/<job>/ (result.json, actual values, run logs)")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:

    sigterm_as_interrupt()
    suite = load_suite(args)
    out = Path(args.out)
    sink = (lambda line: print(line, flush=True)) if getattr(args, "verbose", 0) else None
    folders: dict[str, Path] = {}

    def on_job(spec: JobSpec, result: CaseResult) -> None:
        folders[result.job_id] = spec.out
        _job_line(spec, result)

    done = run_local(
        suite,
        out,
        platforms=tuple(args.platform) or ("cpu",),
        check_gpu=not args.skip_gpu_check,
        allow_drift=args.allow_drift,
        sink=sink,
        on_job=on_job,
    )
    if done.validation.findings:
        sys.stderr.write(render_text(done.validation))
    if done.stopped:
        print("ci-golden local: validation found errors; nothing was run", file=sys.stderr)
        return 1
    assert done.report is not None
    html = out / HTML_REPORT
    curves = load_curves(done.report.results, folders, suite.config.root)
    atomic_write_text(html, render_html(done.report, curves=curves))
    sys.stdout.write(render_summary(done, out, args.allow_drift, (html,)))
    return exit_code(done.results, allow_drift=args.allow_drift)
