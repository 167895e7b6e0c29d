from __future__ import annotations

import argparse
import os
import sys
import typing as t

from ci_golden.commands import pr_number
from ci_golden.forge.post import PREFIX, post_report, request_figure, set_status
from ci_golden.project.redact import Redactor

if t.TYPE_CHECKING:
    from ci_golden.forge.post import Message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "report", metavar="REPORT", help="report.md (or report.json, re-rendered to fit the forge)"
    )
    parser.add_argument("--forge", choices=("auto", "github", "gitlab"), default="auto")
    parser.add_argument("--key", default="default", help="comment key: one sticky comment per key")
    parser.add_argument(
        "--only-on-regression",
        action="store_true",
        help="update an existing comment always, create one only when something regressed",
    )
    parser.add_argument("--status", action="store_true", help="also set a commit status")
    parser.add_argument(
        "--dry-run", action="store_true", help="read only: show what would be posted"
    )
    parser.add_argument(
        "--pr",
        metavar="NUMBER",
        type=pr_number,
        help="pull/merge request number (default: from the CI event or variables)",
    )


def _say(text: str, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _show(messages: t.Iterable[Message]) -> None:
    for m in messages:
        _say(m.text, err=m.err)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the comment was posted or there was nothing to post; errors raise (exit 2,
    their messages redacted by the CLI's error boundary)."""
    from pathlib import Path

    environ = os.environ
    redact = Redactor.from_environ(environ)
    verbose = bool(getattr(args, "verbose", 0))
    log = (lambda line: _say(PREFIX + line, err=True)) if verbose else None
    posting = post_report(
        Path(args.report),
        forge=args.forge,
        key=args.key,
        only_on_regression=args.only_on_regression,
        dry_run=args.dry_run,
        pr=args.pr,
        verbose=verbose,
        environ=environ,
        redact=redact,
        log=log,
    )
    _show(posting.messages)
    if args.status and posting.posted and not args.dry_run:
        _show(set_status(posting, key=args.key))
    if verbose and posting.client is not None:
        _say(PREFIX + request_figure(posting.client), err=True)
    return 0
