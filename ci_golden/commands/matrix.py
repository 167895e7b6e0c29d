from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ci_golden.commands import load_project
from ci_golden.errors import UsageError
from ci_golden.goldens.discover import discover
from ci_golden.plan import emit
from ci_golden.plan.select import Filters, changed_paths, parse_shard, select
from ci_golden.project.files import append_text, atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ci", choices=("github", "gitlab"), required=True)
    parser.add_argument("--scope", help="scope to select (default: the config's default scope)")
    parser.add_argument("--platform", action="append", default=[], metavar="P")
    parser.add_argument("--environment", action="append", default=[], metavar="E")
    parser.add_argument("--case", action="append", default=[], metavar="GLOB")
    parser.add_argument("--changed-since", metavar="GIT_REF")
    parser.add_argument("--n-repeat", type=int, metavar="N")
    parser.add_argument("--shard", metavar="K/N", help="emit only shard K of N")
    parser.add_argument(
        "--explain", action="store_true", help="say why each case was selected (stderr)"
    )
    parser.add_argument("--output", metavar="FILE")
    parser.add_argument(
        "--github-output",
        metavar="NAME",
        help="write NAME=... and NAME_count=... to $GITHUB_OUTPUT",
    )
    parser.add_argument(
        "--gitlab-image", metavar="IMAGE", help="default image of the child pipeline's jobs"
    )
    parser.add_argument(
        "--gitlab-before-script",
        action="append",
        default=[],
        metavar="CMD",
        help="line run before each child-pipeline job (e.g. installing ci-golden); repeatable",
    )


def run(args: argparse.Namespace) -> int:

    if args.github_output is not None:
        if args.ci != "github":
            raise UsageError("--github-output needs --ci github")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", args.github_output):
            raise UsageError(f"--github-output {args.github_output!r}: not a valid output name")
        if not os.environ.get("GITHUB_OUTPUT"):
            raise UsageError(
                "--github-output: $GITHUB_OUTPUT is not set (it is inside GitHub Actions)"
            )
    if args.ci != "gitlab" and (args.gitlab_image or args.gitlab_before_script):
        raise UsageError("--gitlab-image and --gitlab-before-script need --ci gitlab")
    config = load_project(args)
    suite = discover(config)
    suite.require_readable()
    filters = Filters(
        scope=args.scope,
        platforms=tuple(args.platform),
        environments=tuple(args.environment),
        cases=tuple(args.case),
        changed=changed_paths(args.changed_since, config.root) if args.changed_since else None,
        changed_since=args.changed_since,
        n_repeat=args.n_repeat,
        shard=parse_shard(args.shard) if args.shard else None,
    )
    selection = select(suite, filters)
    if args.explain:
        for case, reason in selection.selected:
            print(f"select {case}: {reason}", file=sys.stderr)
        for case, reason in selection.skipped:
            print(f"skip   {case}: {reason}", file=sys.stderr)
    if args.ci == "github":
        text = emit.render_github(selection)
    else:
        text = emit.render_gitlab(
            selection, image=args.gitlab_image, before_script=args.gitlab_before_script
        )
    count = len(selection.jobs)
    why = selection.why_empty
    line = text if text.endswith("\n") else text + "\n"
    if args.output:
        atomic_write_text(Path(args.output), line)
    if args.github_output:
        append_text(
            os.environ["GITHUB_OUTPUT"], emit.github_output_lines(args.github_output, text, count)
        )
    elif not args.output:
        sys.stdout.write(line)
    summary = (
        f"ci-golden matrix: {count} jobs from {len(selection.selected)} "
        f"of {selection.n_cases} test cases"
    )
    print(summary + (f" ({why})" if why else ""), file=sys.stderr)
    return 0
