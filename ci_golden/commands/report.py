from __future__ import annotations

import argparse

HELP = "aggregate job results into one Markdown, JUnit, JSON or step-summary report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT_OR_DIR")
    parser.add_argument("--format", choices=("markdown", "junit", "json", "github-summary"), default="markdown")
    parser.add_argument("--out", metavar="FILE")
    parser.add_argument("--max-chars", type=int, default=65000)
    parser.add_argument("--allow-drift", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden report")
