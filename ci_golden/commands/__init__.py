"""One module per subcommand; shared helpers for loading the project context."""

from __future__ import annotations

import argparse
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from ci_golden.config import Config
    from ci_golden.discover import Suite


def load_project(args: argparse.Namespace) -> Config:
    """The project config chosen by the global ``--config`` and ``--test-cases`` options."""
    from ci_golden.config import load_config

    config = getattr(args, "config", None)
    test_cases = getattr(args, "test_cases", None)
    return load_config(
        Path(config) if config else None,
        test_cases=Path(test_cases) if test_cases else None,
    )


def load_suite(args: argparse.Namespace) -> Suite:
    from ci_golden.discover import discover

    return discover(load_project(args))
