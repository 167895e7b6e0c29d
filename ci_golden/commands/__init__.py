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
