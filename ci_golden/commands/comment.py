from __future__ import annotations

import argparse

HELP = "post or update the one report comment on the pull/merge request"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT", help="report.md (or report.json, re-rendered to fit the forge)")
    parser.add_argument("--forge", choices=("auto", "github", "gitlab"), default="auto")
    parser.add_argument("--key", default="default", help="comment key: one sticky comment per key")
    parser.add_argument("--only-on-regression", action="store_true")
    parser.add_argument("--status", action="store_true", help="also set a commit status")
    parser.add_argument("--dry-run", action="store_true")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden comment")
