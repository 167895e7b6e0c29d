from __future__ import annotations

import argparse
import os
import sys
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from ci_golden.report import Report

HELP = "aggregate job results into one Markdown, JUnit, JSON or step-summary report"
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes GitHub accepts in one step's summary
DEFAULT_MAX_CHARS = 65000  # a GitHub comment holds 65,536 characters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT_OR_DIR", help="result.json files, folders holding them, or report JSON")
    parser.add_argument("--format", choices=("markdown", "junit", "json", "github-summary"), default="markdown")
    parser.add_argument("--out", metavar="FILE", help="write here (github-summary: append; default $GITHUB_STEP_SUMMARY)")
    parser.add_argument(
        "--max-chars", type=int, metavar="N",
        help="Markdown size limit; detail is cut to fit (default 65000, a GitHub comment; github-summary: what is left of 1 MiB)",
    )  # fmt: skip
    parser.add_argument("--allow-drift", action="store_true", help="drift does not fail the report (exit 0)")


def _step_summary(report: Report, target: Path, max_chars: int | None) -> str:
    """Markdown that fits what is left of the 1 MiB step-summary limit (in bytes)."""
    from ci_golden.errors import UsageError
    from ci_golden.render import MIN_CHARS, render_markdown

    used = target.stat().st_size if target.is_file() else 0
    room = STEP_SUMMARY_LIMIT - used
    limit = room if max_chars is None else min(max_chars, room)
    while limit >= MIN_CHARS:
        text = render_markdown(report, max_chars=limit)
        size = len(text.encode("utf-8"))
        if size <= room:
            return text
        limit -= size - room + 1
    raise UsageError(f"{target}: the step summary already holds {used} bytes; no room left for the report")


def run(args: argparse.Namespace) -> int:
    from ci_golden.errors import UsageError
    from ci_golden.golden import atomic_write_text
    from ci_golden.render import MIN_CHARS, RENDERERS_BY_NAME, render_annotations
    from ci_golden.report import build_report, collect_results, run_url_from_env
    from ci_golden.result import exit_code

    if args.max_chars is not None and args.max_chars < MIN_CHARS:
        raise UsageError(f"--max-chars must be at least {MIN_CHARS}")
    results = collect_results([Path(p) for p in args.results])
    report = build_report(
        results, run_url=run_url_from_env(os.environ), sources=tuple(args.results), allow_drift=args.allow_drift
    )
    code = exit_code(report.results, allow_drift=args.allow_drift)
    if args.format == "github-summary":
        target = args.out or os.environ.get("GITHUB_STEP_SUMMARY")
        if not target:
            raise UsageError("--format github-summary needs $GITHUB_STEP_SUMMARY (set by GitHub Actions) or --out FILE")
        path = Path(target)
        text = _step_summary(report, path, args.max_chars)
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
        sys.stdout.write(render_annotations(report))
        return code
    renderer = RENDERERS_BY_NAME[args.format]
    text = renderer(report, max_chars=args.max_chars or DEFAULT_MAX_CHARS) if args.format == "markdown" else renderer(report)
    if args.out:
        atomic_write_text(Path(args.out), text)
    else:
        sys.stdout.write(text)
    return code
