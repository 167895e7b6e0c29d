from __future__ import annotations

import argparse
import math
import sys
import typing as t
from pathlib import Path

from ci_golden.commands import load_project
from ci_golden.compare.policy import policy_for, resolve_policies
from ci_golden.errors import InputError, UsageError
from ci_golden.goldens.discover import discover
from ci_golden.lifecycle.calibrate import calibrate, load_runsets, render_calibration
from ci_golden.project.files import display_path

if t.TYPE_CHECKING:
    from ci_golden.compare.policy import Policy
    from ci_golden.lifecycle.calibrate import RunSet
    from ci_golden.project.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help=(
            "run output folders (with result.json and run/repeat-K/), result.json files, "
            "or golden-format files (one run each)"
        ),
    )
    parser.add_argument(
        "--safety",
        type=float,
        default=2.0,
        help="safety factor on the observed deviation (default 2)",
    )
    parser.add_argument(
        "--floor", type=float, default=1e-5, help="smallest rtol recommended (default 1e-5)"
    )


def _policies(config: Config, runset: RunSet) -> tuple[t.Callable[[str], Policy], str | None]:
    """The case's current policies (for kinds and windows) and its model_config.yaml, when known."""

    case = None
    if runset.case is not None and config.test_cases.is_dir():
        try:
            case = discover(config).case(runset.case)
        except InputError:
            case = None
    table, _ = resolve_policies(config, case)
    return (lambda name: policy_for(table, name)), (
        display_path(case.config_path) if case else None
    )


def run(args: argparse.Namespace) -> int:
    """Print one YAML document per job; exit 1 when a metric could not be calibrated."""

    if not (1 <= args.safety < math.inf and 0 <= args.floor < math.inf):  # refuses NaN too
        raise UsageError("--safety must be a finite number >= 1 and --floor a finite number >= 0")
    config = load_project(args)
    runsets = load_runsets([Path(p) for p in args.results])
    documents = []
    complete = True
    for runset in runsets:
        policies, target = _policies(config, runset)
        calibration = calibrate(runset, policies, safety=args.safety, floor=args.floor)
        complete = complete and all(m.note is None for m in calibration.metrics)
        documents.append(render_calibration(calibration, target=target))
    sys.stdout.write("---\n".join(documents))
    return 0 if complete else 1
