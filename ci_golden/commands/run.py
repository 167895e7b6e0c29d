from __future__ import annotations

import argparse
import json
import math
import os
import sys
import typing as t
from pathlib import Path

from ci_golden.commands import load_suite
from ci_golden.compare.result import RESULT_FILE, exit_code
from ci_golden.errors import CiGoldenError, InputError, UsageError
from ci_golden.goldens.model import loads_strict, read_json
from ci_golden.plan.select import ENTRY_KEYS, job_id
from ci_golden.project.schema import did_you_mean
from ci_golden.report.render import render_text
from ci_golden.run.execute import case_job, spec_for
from ci_golden.run.executor import EXECUTORS, RunOptions, executor_for
from ci_golden.run.progress import Display
from ci_golden.run.runner import sigterm_as_interrupt

if t.TYPE_CHECKING:
    from ci_golden.goldens.discover import Suite
    from ci_golden.project.config import Config
    from ci_golden.run.spec import JobSpec

MAX_JOB_BYTES = 1024 * 1024  # a matrix entry is a few hundred bytes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", nargs="?", help="case id (its folder below the test-case root)")
    parser.add_argument(
        "--job",
        metavar="JSON",
        help="one matrix entry, as JSON (or a file holding it); with --job-id, a matrix file "
        '({"include": [...]}, as matrix --output writes it)',
    )
    parser.add_argument("--job-id", metavar="ID", help="the entry of the --job matrix to run")
    parser.add_argument("--environment", metavar="E")
    parser.add_argument("--platform", metavar="P")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: ci-golden-out/<job>)")
    parser.add_argument("--n-repeat", type=int, metavar="N")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the commands and environment (and the sbatch command on Slurm), run nothing",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="run here (local) or submit to Slurm (default: the platform's executor)",
    )
    parser.add_argument("--skip-gpu-check", action="store_true")
    parser.add_argument("--allow-drift", action="store_true")
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the run's checkpoints (deleted by default)",
    )
    parser.add_argument(
        "--no-fail-fast",
        dest="fail_fast",
        action="store_false",
        default=None,
        help="train to the end even when the verdict can no longer be pass "
        "(default: stop at the first certain failure; also CI_GOLDEN_FAIL_FAST=false; "
        "config: defaults.fail_fast, CI_GOLDEN.fail_fast)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between SIGTERM and SIGKILL (default 10)",
    )


def _job_entry(text: str, wanted: str | None = None) -> tuple[str, dict[str, t.Any]]:
    """The matrix entry of ``--job`` (with ``wanted``, the entry of that id in the matrix of
    ``--job``) and the name errors give (``--job``, or the file holding it)."""

    if text.lstrip().startswith("{"):
        name, entry = "--job", loads_strict(text, "--job")
    else:
        name, entry = text, read_json(Path(text), max_bytes=MAX_JOB_BYTES)
    if not isinstance(entry, dict):
        raise InputError(name, "expected a JSON object (one matrix entry)", "$")
    if wanted is not None:
        entry = _entry_of(name, entry, wanted)
    for key in ("case", "environment", "platform"):
        if not isinstance(entry.get(key), str):
            raise InputError(name, f"missing or non-string {key!r}", f"$.{key}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise InputError(
            name, f"unknown key {unknown[0]!r} (known: {', '.join(ENTRY_KEYS)})", f"$.{unknown[0]}"
        )
    for key, low, high in (
        ("n_repeat", 1, 100),
        ("time_limit", 1, None),
        ("nodes", 1, None),
        ("gpus", 0, None),
    ):
        value = entry.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            expected = (
                f"an integer from {low} to {high}"
                if high is not None
                else f"an integer of at least {low}"
            )
            raise InputError(name, f"{key} must be {expected}, got {json.dumps(value)}", f"$.{key}")
    return name, entry


def _entry_of(name: str, matrix: dict[str, t.Any], wanted: str) -> dict[str, t.Any]:
    """The entry whose id is ``wanted`` in a matrix ``{"include": [...]}``."""
    entries = matrix.get("include")
    if not isinstance(entries, list):
        raise InputError(name, '--job-id needs a matrix: {"include": [...]}', "$.include")
    ids = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError(name, "expected a JSON object (one matrix entry)", f"$.include[{i}]")
        if entry.get("id") == wanted:
            return entry
        ids.append(str(entry.get("id")))
    raise InputError(name, f"no job {wanted!r} in the matrix{did_you_mean(wanted, ids)}", "$")


def job_spec(args: argparse.Namespace, suite: Suite) -> JobSpec:
    """The job to run, from ``--job`` or from CASE ``--environment --platform``."""

    config = suite.config
    if args.n_repeat is not None and not 1 <= args.n_repeat <= 100:
        raise UsageError(f"--n-repeat {args.n_repeat}: expected 1 to 100")
    name: str | None = None
    entry: dict[str, t.Any] = {}
    if args.job_id is not None and not args.job:
        raise UsageError("--job-id needs --job MATRIX_FILE")
    if args.job:
        if args.case or args.environment or args.platform:
            raise UsageError("give either --job or CASE --environment E --platform P, not both")
        name, entry = _job_entry(args.job, args.job_id)
        case_id, environment, platform = entry["case"], entry["environment"], entry["platform"]
    else:
        if not (args.case and args.environment and args.platform):
            raise UsageError("give CASE --environment E --platform P, or --job JSON")
        case_id, environment, platform = args.case, args.environment, args.platform
    try:
        case = suite.case(case_id)
        job = case_job(case, config, environment, platform)
    except CiGoldenError as e:
        if name is None:
            raise
        raise InputError(name, e.detail if isinstance(e, InputError) else str(e), "$") from None
    out = (
        Path(args.out)
        if args.out
        else Path("ci-golden-out") / job_id(case.id, environment, platform)
    )
    return spec_for(
        case, job, config, out,
        n_repeat=args.n_repeat if args.n_repeat is not None else entry.get("n_repeat"),
        time_limit=entry.get("time_limit"), nodes=entry.get("nodes"), gpus=entry.get("gpus"),
        fail_fast=False if args.fail_fast is False else _fail_fast_from_env(),
    )  # fmt: skip


def _fail_fast_from_env() -> bool | None:
    """``CI_GOLDEN_FAIL_FAST=false`` (or 0) is ``--no-fail-fast``, so a CI pipeline run to
    refresh goldens can train every job to the end; ``true``, 1 or unset leave it to the config."""
    raw = os.environ.get("CI_GOLDEN_FAIL_FAST", "").strip().lower()
    if raw in ("", "true", "1"):
        return None
    if raw in ("false", "0"):
        return False
    raise UsageError("CI_GOLDEN_FAIL_FAST must be true or false (or 1, 0)")


def _print(line: str) -> None:
    print(line, flush=True)


def _label(spec: JobSpec) -> str:
    return f"{spec.case.id} [{spec.environment}, {spec.platform}]"


def _notify(line: str) -> None:
    print(f"ci-golden run: {line}", file=sys.stderr, flush=True)


def _options(args: argparse.Namespace, progress: Display | None = None) -> RunOptions:
    return RunOptions(
        check_gpu=not args.skip_gpu_check, grace=args.grace, keep_checkpoints=args.keep_checkpoints,
        progress=progress.update if progress is not None else None,
    )  # fmt: skip


def run_spec(spec: JobSpec, config: Config, args: argparse.Namespace) -> int:

    sigterm_as_interrupt()
    executor = executor_for(spec, config, args.executor, notify=_notify)
    display = Display(
        sys.stderr, live=sys.stderr.isatty(), prefix=f"ci-golden run: {_label(spec)} "
    )
    try:
        result = executor.run(spec, config, _options(args, display), display.wrap(_print))
    finally:
        display.close()
    summary = f"ci-golden run: {result.job_id}: {result.verdict}"
    if result.message:
        summary += f": {result.message}"
    print(summary, file=sys.stderr)
    sys.stdout.write(render_text(result, allow_drift=args.allow_drift))
    print(f"ci-golden run: result written to {spec.out / RESULT_FILE}", file=sys.stderr)
    return exit_code([result], allow_drift=args.allow_drift)


def run(args: argparse.Namespace) -> int:

    if not 0 <= args.grace < math.inf:  # NaN fails both comparisons
        raise UsageError(f"--grace {args.grace}: expected a finite number of seconds >= 0")
    suite = load_suite(args)
    spec = job_spec(args, suite)
    if args.dry_run:
        executor = executor_for(spec, suite.config, args.executor)
        sys.stdout.write(executor.render(spec, suite.config, _options(args)))
        return 0
    return run_spec(spec, suite.config, args)
