from __future__ import annotations

import argparse

HELP = "run the whole flow on this machine: validate, plan, run the jobs, compare, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", action="append", default=[], metavar="P", help="platforms to run (default: cpu)")
    parser.add_argument("--out", metavar="DIR", default="ci-golden-out")
    parser.add_argument("--allow-drift", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden local")
