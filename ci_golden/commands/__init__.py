"""One module per subcommand; shared helpers for loading the project context and for the
selection options that ``matrix`` and ``list`` share."""

from __future__ import annotations

import argparse
import sys
import typing as t
from pathlib import Path

from ci_golden.goldens.discover import discover
from ci_golden.project.config import load_config

if t.TYPE_CHECKING:
    from ci_golden.goldens.discover import Suite
    from ci_golden.plan.select import Filters, Selection
    from ci_golden.project.config import Config


def load_project(args: argparse.Namespace) -> Config:
    """The project config chosen by the global ``--config`` and ``--test-cases`` options."""

    config = getattr(args, "config", None)
    test_cases = getattr(args, "test_cases", None)
    return load_config(
        Path(config) if config else None,
        test_cases=Path(test_cases) if test_cases else None,
    )


def load_suite(args: argparse.Namespace) -> Suite:

    return discover(load_project(args))


def add_selection_arguments(parser: argparse.ArgumentParser, *, scope_default: str) -> None:
    """The options that choose jobs, the same for ``matrix`` and ``list``."""
    parser.add_argument("--scope", help=f"scope to select (default: {scope_default})")
    parser.add_argument("--platform", action="append", default=[], metavar="P")
    parser.add_argument("--environment", action="append", default=[], metavar="E")
    parser.add_argument("--case", action="append", default=[], metavar="GLOB")
    parser.add_argument(
        "--changed-since",
        metavar="GIT_REF",
        help="only the cases whose folder changed; every case when a file outside the "
        "test-case root changed that ignore_paths does not match",
    )
    parser.add_argument(
        "--explain", action="store_true", help="say why each case was selected (stderr)"
    )


def selection_filters(args: argparse.Namespace, config: Config, **more: t.Any) -> Filters:
    """The :class:`~ci_golden.plan.select.Filters` of the selection options."""
    from ci_golden.plan.select import Filters, changed_paths

    return Filters(
        scope=args.scope,
        platforms=tuple(args.platform),
        environments=tuple(args.environment),
        cases=tuple(args.case),
        changed=changed_paths(args.changed_since, config.root) if args.changed_since else None,
        changed_since=args.changed_since,
        **more,
    )


def explain(selection: Selection) -> None:
    """Why each case was selected or left out, on stderr."""
    for case, reason in selection.selected:
        print(f"select {case}: {reason}", file=sys.stderr)
    for case, reason in selection.skipped:
        print(f"skip   {case}: {reason}", file=sys.stderr)


# -- argument types: what argparse refuses, it refuses with exit 2 and one line ---------------


def pr_number(text: str) -> int:
    """A pull/merge request number: a positive integer in ASCII digits (``--pr``)."""
    from ci_golden.forge.checks import NUMBER_MAX, positive_int

    number = positive_int(text, NUMBER_MAX)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer in ASCII digits (at most {NUMBER_MAX}), got {text!r}"
        )
    return number


def forge_id(text: str) -> int:
    """A run, pipeline or job id (or a size in bytes): a positive integer in ASCII digits."""
    from ci_golden.forge.checks import ID_MAX, positive_int

    number = positive_int(text, ID_MAX)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer in ASCII digits (at most {ID_MAX}), got {text!r}"
        )
    return number


def repository(text: str) -> str:
    """A GitHub repository, ``OWNER/NAME``."""
    from ci_golden.forge.context import REPOSITORY_FORM, is_repository

    if not is_repository(text):
        raise argparse.ArgumentTypeError(f"expected {REPOSITORY_FORM}, got {text!r}")
    return text


def gitlab_project(text: str) -> str:
    """A GitLab project id or path."""
    from ci_golden.forge.context import is_gitlab_project

    if not is_gitlab_project(text):
        raise argparse.ArgumentTypeError(
            f"expected a GitLab project id (a positive integer) or path (group/project), "
            f"got {text!r}"
        )
    return text
