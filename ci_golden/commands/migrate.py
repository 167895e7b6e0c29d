from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ci_golden.commands import load_project
from ci_golden.goldens.migrate import migrate, render_migrations
from ci_golden.project.files import display_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="golden files or folders (default: the test-case root)",
    )
    parser.add_argument(
        "--apply", action="store_true", help="write the files (default: only say what would change)"
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every legacy file converts (or none is left), 1 when some cannot."""

    paths = [Path(p) for p in args.paths] or [load_project(args).test_cases]
    migrations = migrate(paths, apply=args.apply)
    sys.stdout.write(render_migrations(migrations, display=display_path))
    return 0 if all(m.ok for m in migrations) else 1
