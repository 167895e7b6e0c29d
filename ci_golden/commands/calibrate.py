from __future__ import annotations

import argparse

HELP = "recommend tolerances from repeated runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS")
    parser.add_argument("--safety", type=float, default=2.0, help="safety factor on the observed deviation")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden calibrate")
