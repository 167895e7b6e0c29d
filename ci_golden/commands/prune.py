from __future__ import annotations

import argparse

HELP = "list golden files no job reads; delete them with --apply"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden prune")
