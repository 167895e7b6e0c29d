from __future__ import annotations

import argparse

HELP = "download the results artifacts of a CI run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--github-run", metavar="ID")
    source.add_argument("--gitlab-pipeline", metavar="ID")
    parser.add_argument("--only-failing", action="store_true")
    parser.add_argument("--out", metavar="DIR", default="ci-golden-results")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden fetch-results")
