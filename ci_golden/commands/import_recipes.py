from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ci_golden.commands import load_suite
from ci_golden.errors import InputError
from ci_golden.lifecycle.recipes import changes, plan_import, render_diff, render_summary
from ci_golden.project.files import PendingFile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "recipes", metavar="DIR", help="Megatron-LM's recipe folder (tests/test_utils/recipes)"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the changes (default: print them as a unified diff, write nothing)",
    )


def run(args: argparse.Namespace) -> int:

    suite = load_suite(args)
    plan = plan_import(suite, Path(args.recipes))
    todo = changes(plan, suite)
    if args.write:
        pending: list[PendingFile] = []
        try:  # every file can be written before any is: nothing half-written
            for change in todo:
                pending.append(PendingFile(change.path))
        except InputError:
            for p in pending:
                p.discard()
            raise
        for p, change in zip(pending, todo, strict=True):
            p.write(change.new)
    else:
        sys.stdout.write(render_diff(todo, Path.cwd()))
    sys.stderr.write(render_summary(plan, todo, written=args.write))
    return 0
