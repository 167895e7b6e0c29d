from __future__ import annotations

import argparse
import sys

from ci_golden.commands import load_suite
from ci_golden.goldens.prune import apply_prune, plan_prune, render_prune
from ci_golden.project.files import display_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="delete the files (default: only list them)"
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 after listing (or deleting); 2, deleting nothing, when a case cannot be judged."""

    plan = plan_prune(load_suite(args))
    applied = args.apply and plan.complete
    if applied:
        apply_prune(plan)
    sys.stdout.write(render_prune(plan, applied=applied, display=display_path))
    return 0 if plan.complete else 2
