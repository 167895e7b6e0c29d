from __future__ import annotations

import argparse

HELP = "write new golden files from the actual values behind job results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS")
    parser.add_argument("--only-failing", action="store_true")
    parser.add_argument("--only-drift", action="store_true")
    parser.add_argument("--case", action="append", default=[], metavar="GLOB")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--summary", metavar="FILE", help="write the Markdown change summary here")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden update")
