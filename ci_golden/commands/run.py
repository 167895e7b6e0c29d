from __future__ import annotations

import argparse

HELP = "run one job of a test case on this runner, collect and compare its metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", nargs="?", help="case id (its folder below the test-case root)")
    parser.add_argument("--job", metavar="JSON", help="one matrix entry, as JSON")
    parser.add_argument("--environment", metavar="E")
    parser.add_argument("--platform", metavar="P")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: ci-golden-out/<job>)")
    parser.add_argument("--n-repeat", type=int, metavar="N")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and environment, run nothing")
    parser.add_argument("--skip-gpu-check", action="store_true")
    parser.add_argument("--allow-drift", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden run")
