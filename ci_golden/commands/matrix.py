from __future__ import annotations

import argparse

HELP = "expand the test cases into a CI job matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ci", choices=("github", "gitlab"), required=True)
    parser.add_argument("--scope", help="scope to select (default: the config's default scope)")
    parser.add_argument("--platform", action="append", default=[], metavar="P")
    parser.add_argument("--environment", action="append", default=[], metavar="E")
    parser.add_argument("--case", action="append", default=[], metavar="GLOB")
    parser.add_argument("--changed-since", metavar="GIT_REF")
    parser.add_argument("--n-repeat", type=int, metavar="N")
    parser.add_argument("--shard", metavar="K/N", help="emit only shard K of N")
    parser.add_argument("--explain", action="store_true", help="say why each case was selected (stderr)")
    parser.add_argument("--output", metavar="FILE")
    parser.add_argument("--github-output", metavar="NAME", help="write NAME=... and NAME_count=... to $GITHUB_OUTPUT")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden matrix")
