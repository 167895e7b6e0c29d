from __future__ import annotations

import argparse

HELP = "rewrite legacy list-layout goldens into the current layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH")
    parser.add_argument("--apply", action="store_true", help="write the files (default: only say what would change)")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden migrate")
