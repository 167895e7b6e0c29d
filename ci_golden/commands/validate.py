from __future__ import annotations

import argparse

HELP = "check golden files and case configs against their schemas and the tree's rules"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to check (default: the whole tree)")
    parser.add_argument("--changed-since", metavar="GIT_REF", help="only files changed since this git ref")
    parser.add_argument("--format", choices=("text", "github", "json"), default="text")
    parser.add_argument("--strict", action="store_true", help="warnings fail too")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden validate")
