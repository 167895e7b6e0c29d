from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ci_golden.commands import load_suite
from ci_golden.errors import InputError
from ci_golden.lifecycle.update import plan_updates, refresh, render_summary_text
from ci_golden.project.files import display_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="result.json files or folders holding them (run outputs, fetched artifacts)",
    )
    parser.add_argument(
        "--only-failing",
        action="store_true",
        help="only results whose verdict is not pass (drift included)",
    )
    parser.add_argument(
        "--only-drift", action="store_true", help="only results whose verdict is drift"
    )
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="GLOB",
        help="only cases whose id matches (repeatable)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change, write no golden"
    )
    parser.add_argument("--summary", metavar="FILE", help="write the Markdown change summary here")
    parser.add_argument(
        "--actual",
        metavar="A",
        help="refresh from these values (any folder; golden JSON, TensorBoard events, JSONL or a "
        "log) instead of the result's own; needs exactly one result",
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every selected result was applied, 1 when some could not be, 2 on bad input."""

    suite = load_suite(args)
    updates = plan_updates(
        [Path(p) for p in args.results], suite,
        only_failing=args.only_failing, only_drift=args.only_drift, cases=args.case,
        actual=Path(args.actual) if args.actual else None,
    )  # fmt: skip
    if not updates:
        raise InputError(
            ", ".join(args.results),
            "no result matches the selection (--only-failing, --only-drift, --case)",
        )
    summary_file = Path(args.summary) if args.summary else None
    updates, _markdown = refresh(
        updates, suite, dry_run=args.dry_run, summary=summary_file, display=display_path
    )
    for path in (p for u in updates for p in u.cleaned):
        print(
            f"ci-golden update: removed {display_path(path)}, left by an interrupted update",
            file=sys.stderr,
        )
    sys.stdout.write(render_summary_text(updates, dry_run=args.dry_run, display=display_path))
    return 0 if all(u.problem is None for u in updates) else 1
