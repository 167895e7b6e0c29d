from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ci_golden.commands import load_project
from ci_golden.compare.engine import (
    case_from_folder,
    compare_job,
    dumps_result,
    exit_code,
    write_result,
)
from ci_golden.compare.policy import is_nondeterministic, load_policy_file, resolve_policies
from ci_golden.errors import InputError
from ci_golden.goldens.discover import GoldenName, Job
from ci_golden.goldens.migrate import legacy_step_scale
from ci_golden.goldens.model import load_golden, write_golden
from ci_golden.report.aggregate import check_out_path
from ci_golden.report.render import render_text
from ci_golden.run.collect import load_actual


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--golden", required=True, metavar="G")
    parser.add_argument(
        "--actual",
        required=True,
        metavar="A",
        help="the run's values: golden-format JSON, a TensorBoard event folder or file, "
        "a JSONL file or a training log",
    )
    parser.add_argument(
        "--actual-format",
        choices=("auto", "golden", "tensorboard", "jsonl", "log"),
        default="auto",
        help="how to read --actual (default: from its name: .json, a folder or *tfevents*, "
        ".jsonl, anything else a log)",
    )
    parser.add_argument(
        "--case",
        metavar="DIR",
        help="case folder (its model_config.yaml sets METRICS and policies)",
    )
    parser.add_argument("--environment", metavar="E")
    parser.add_argument("--platform", metavar="P")
    parser.add_argument(
        "--policy", metavar="FILE", help="YAML or JSON metric policies overriding all others"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--out", metavar="FILE", help="write the result JSON here")
    parser.add_argument("--allow-drift", action="store_true", help="drift is a warning, exit 0")


def run(args: argparse.Namespace) -> int:

    config = load_project(args)
    if args.environment:
        config.check_names("environment", [args.environment], "--environment")
    if args.platform:
        config.check_names("platform", [args.platform], "--platform")
    out = Path(args.out) if args.out else None
    if out is not None:
        check_out_path(out)
    case = case_from_folder(args.case, config) if args.case else None
    override = load_policy_file(Path(args.policy)) if args.policy else None
    policies, gated = resolve_policies(config, case, override)
    golden_path, actual_path = Path(args.golden), Path(args.actual)
    interval = legacy_step_scale(case.model_config if case else {})
    golden = load_golden(golden_path, log_interval=interval)
    if not actual_path.exists():
        raise InputError(str(actual_path), "not found")
    actual, notes = load_actual(actual_path, golden, args.actual_format, log_interval=interval)
    for note in notes:
        print(f"ci-golden compare: warning: {note}", file=sys.stderr)
    parsed = GoldenName.parse(golden_path.name)
    environment = args.environment or (parsed.environment if parsed else None) or "unknown"
    platform = args.platform or (parsed.platform if parsed else None) or "any"
    job = Job(
        case.id if case else golden_path.resolve().parent.name, environment, platform, golden_path
    )
    collected = args.actual_format not in ("golden", "auto") or not (
        actual_path.suffix == ".json" and actual_path.is_file()
    )
    if collected and out is not None:
        # what update refreshes from: the collected values, beside the result
        actual_path = out.with_name(out.stem + ".actual.json")
        write_golden(actual_path, actual)
    relative_actual = os.path.relpath(
        actual_path.resolve(), (out.parent if out else Path.cwd()).resolve()
    )
    result = compare_job(
        job,
        golden,
        actual,
        policies=policies,
        gated=gated,
        nondeterministic=is_nondeterministic(case.model_config) if case else False,
        actual_path=Path(relative_actual).as_posix(),
    )
    if out is not None:
        write_result(out, result)
    print(
        dumps_result(result)
        if args.format == "json"
        else render_text(result, allow_drift=args.allow_drift),
        end="",
    )
    return exit_code([result], allow_drift=args.allow_drift)
