from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ci_golden.compare.result import exit_code
from ci_golden.errors import UsageError
from ci_golden.project.files import append_text, atomic_write_text
from ci_golden.project.redact import Redactor
from ci_golden.report.aggregate import (
    build_report,
    check_out_path,
    ci_run_from_env,
    gather_results,
    run_url_from_env,
)
from ci_golden.report.curves import load_curves
from ci_golden.report.html import safe_url
from ci_golden.report.render import (
    MIN_CHARS,
    render_annotations,
    render_report,
    render_step_summary,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULT_OR_DIR",
        help="result.json files, folders holding them, or report JSON",
    )
    parser.add_argument(
        "--format",
        choices=("markdown", "junit", "json", "github-summary", "html"),
        default="markdown",
        help="html: one self-contained page with a chart of every metric, from each job's files",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write here (github-summary: append; default $GITHUB_STEP_SUMMARY)",
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        metavar="N",
        help=(
            "Markdown size limit; detail is cut to fit (default 65000, a GitHub comment; "
            "github-summary: what is left of 1 MiB)"
        ),
    )
    parser.add_argument(
        "--allow-drift", action="store_true", help="drift does not fail the report (exit 0)"
    )
    parser.add_argument(
        "--html-url",
        metavar="URL",
        help="where the HTML report of these results can be opened (a CI artifact): linked "
        "from the Markdown, kept in the JSON",
    )
    parser.add_argument(
        "--expect",
        metavar="FILE",
        help=(
            'the planned jobs ({"include": [...]} as `ci-golden matrix --ci github` writes): '
            "each one without a result is an error"
        ),
    )


def run(args: argparse.Namespace) -> int:

    if args.max_chars is not None and args.max_chars < MIN_CHARS:
        raise UsageError(f"--max-chars must be at least {MIN_CHARS}")
    target: str | None = args.out
    if args.format == "github-summary":
        target = target or os.environ.get("GITHUB_STEP_SUMMARY")
        if not target:
            raise UsageError(
                "--format github-summary needs $GITHUB_STEP_SUMMARY (set by GitHub Actions) "
                "or --out FILE"
            )
    if args.html_url is not None and safe_url(args.html_url) is None:
        raise UsageError(f"--html-url must be an http(s) address, got {args.html_url!r}")
    if target:
        check_out_path(Path(target))
    gathered = gather_results(
        [Path(p) for p in args.results], Path(args.expect) if args.expect else None
    )
    report = build_report(
        gathered.results,
        run_url=run_url_from_env(os.environ),
        sources=tuple(args.results),
        allow_drift=args.allow_drift,
        ci_run=ci_run_from_env(os.environ),
        notes=gathered.notes,
        html_url=args.html_url,
    )
    code = exit_code(report.results, allow_drift=args.allow_drift)
    # results come from jobs that ran pull request code: no secret of this job goes out
    redact = Redactor.from_environ(os.environ)
    if args.format == "github-summary" and target:
        path = Path(target)
        text = render_step_summary(
            report,
            used=path.stat().st_size if path.is_file() else 0,
            max_chars=args.max_chars,
            name=str(path),
        )
        append_text(path, redact(text))
        sys.stdout.write(redact(render_annotations(report)))
        return code
    # the HTML charts read each job's full series from its files; golden paths in results
    # are relative to the repository root, where CI makes the report
    curves = (
        load_curves(report.results, gathered.folders, Path.cwd()) if args.format == "html" else None
    )
    text = redact(render_report(report, args.format, max_chars=args.max_chars, curves=curves))
    if target:
        atomic_write_text(Path(target), text)
    else:
        sys.stdout.write(text)
    return code
