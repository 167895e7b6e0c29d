"""One module per subcommand; shared helpers for loading the project context."""

from __future__ import annotations

import argparse
import typing as t
from pathlib import Path

from ci_golden.goldens.discover import discover
from ci_golden.project.config import load_config

if t.TYPE_CHECKING:
    from ci_golden.goldens.discover import Suite
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
