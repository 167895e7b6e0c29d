from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ci_golden.commands import add_selection_arguments, explain, load_project, selection_filters
from ci_golden.errors import UsageError
from ci_golden.goldens.discover import discover
from ci_golden.plan import emit
from ci_golden.plan.select import parse_shard, select
from ci_golden.project.files import append_text, atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ci", choices=("github", "gitlab"), required=True)
    add_selection_arguments(parser, scope_default="the config's default scope")
    parser.add_argument("--n-repeat", type=int, metavar="N")
    parser.add_argument("--shard", metavar="K/N", help="emit only shard K of N")
    parser.add_argument("--output", metavar="FILE")
    parser.add_argument(
        "--github-output",
        metavar="NAME",
        help="write NAME=... and NAME_count=... to $GITHUB_OUTPUT",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        metavar="N",
        help="with --github-output: write the jobs as N matrices of at most 256 jobs, "
        "NAME_1..NAME_N (id, name and runs-on of each job; the rest is in --output), "
        "with NAME_K_count and NAME_count",
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
    if args.chunks is not None:
        if args.github_output is None or args.output is None:
            raise UsageError(
                "--chunks needs --github-output NAME and --output FILE (the run jobs read the "
                "whole entry of their job from that file)"
            )
        if not 1 <= args.chunks <= 64:
            raise UsageError(f"--chunks {args.chunks}: expected 1 to 64")
    config = load_project(args)
    suite = discover(config)
    suite.require_readable()
    filters = selection_filters(
        args,
        config,
        n_repeat=args.n_repeat,
        shard=parse_shard(args.shard) if args.shard else None,
    )
    selection = select(suite, filters)
    if args.explain:
        explain(selection)
    chunks: list[tuple[str, int]] = []
    if args.ci == "github":
        text = emit.render_github(selection, chunks=args.chunks or 1)
        if args.chunks is not None:
            chunks = emit.matrix_chunks(selection, args.chunks)
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
        lines = (
            emit.github_chunk_lines(args.github_output, chunks)
            if args.chunks is not None
            else emit.github_output_lines(args.github_output, text, count)
        )
        append_text(os.environ["GITHUB_OUTPUT"], lines)
    elif not args.output:
        sys.stdout.write(line)
    summary = (
        f"ci-golden matrix: {count} jobs from {len(selection.selected)} "
        f"of {selection.n_cases} test cases"
    )
    if chunks:
        summary += f" in {sum(n > 0 for _, n in chunks)} of {len(chunks)} matrices"
    print(summary + (f" ({why})" if why else ""), file=sys.stderr)
    return 0
