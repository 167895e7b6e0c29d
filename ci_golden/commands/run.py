from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from ci_golden.config import Config
    from ci_golden.discover import Suite
    from ci_golden.execute import JobSpec
    from ci_golden.launch import RunPlan

HELP = "run one job of a test case on this runner, collect and compare its metrics"
JOB_KEYS = ("id", "name", "case", "environment", "platform", "runs-on", "golden", "n_repeat", "time_limit", "nodes", "gpus")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", nargs="?", help="case id (its folder below the test-case root)")
    parser.add_argument("--job", metavar="JSON", help="one matrix entry, as JSON (or a file holding it)")
    parser.add_argument("--environment", metavar="E")
    parser.add_argument("--platform", metavar="P")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: ci-golden-out/<job>)")
    parser.add_argument("--n-repeat", type=int, metavar="N")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and environment, run nothing")
    parser.add_argument("--skip-gpu-check", action="store_true")
    parser.add_argument("--allow-drift", action="store_true")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep the run's checkpoints (deleted by default)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="S", help="seconds between SIGTERM and SIGKILL (default 10)")


def _job_entry(text: str) -> dict[str, t.Any]:
    from ci_golden.errors import InputError

    name = "--job"
    if not text.lstrip().startswith("{"):
        name = text
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(name, f"cannot read job file: {e.strerror or e}") from e
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(name, f"not JSON: {e.msg}", f"line {e.lineno} column {e.colno}") from e
    if not isinstance(entry, dict):
        raise InputError(name, "expected a JSON object (one matrix entry)", "$")
    for key in ("case", "environment", "platform"):
        if not isinstance(entry.get(key), str):
            raise InputError(name, f"missing or non-string {key!r}", f"$.{key}")
    unknown = sorted(set(entry) - set(JOB_KEYS))
    if unknown:
        raise InputError(name, f"unknown key {unknown[0]!r} (known: {', '.join(JOB_KEYS)})", f"$.{unknown[0]}")
    for key in ("n_repeat", "time_limit", "nodes", "gpus"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(name, f"{key} must be a non-negative integer, got {json.dumps(value)}", f"$.{key}")
    return entry


def job_spec(args: argparse.Namespace, suite: Suite) -> JobSpec:
    """The job to run, from ``--job`` or from CASE ``--environment --platform``."""
    from ci_golden.errors import UsageError
    from ci_golden.execute import JobSpec, default_n_repeat
    from ci_golden.matrix import job_id

    config = suite.config
    entry: dict[str, t.Any] = {}
    if args.job:
        if args.case or args.environment or args.platform:
            raise UsageError("give either --job or CASE --environment E --platform P, not both")
        entry = _job_entry(args.job)
        case_id, environment, platform = entry["case"], entry["environment"], entry["platform"]
    else:
        if not (args.case and args.environment and args.platform):
            raise UsageError("give CASE --environment E --platform P, or --job JSON")
        case_id, environment, platform = args.case, args.environment, args.platform
    where = config.source or "<built-in config>"
    config.check_names("environment", [environment], where)
    config.check_names("platform", [platform], where)
    case = suite.case(case_id)
    settings, defaults = case.settings, config.defaults
    n_repeat = args.n_repeat or entry.get("n_repeat") or default_n_repeat(case, config)
    if not 1 <= n_repeat <= 100:
        raise UsageError(f"--n-repeat {n_repeat}: expected 1 to 100")
    out = Path(args.out) if args.out else Path("ci-golden-out") / job_id(case.id, environment, platform)
    return JobSpec(
        case=case,
        environment=environment,
        platform=platform,
        golden=case.golden_for(environment, platform),
        out=out,
        n_repeat=n_repeat,
        time_limit=entry.get("time_limit") or settings.time_limit or defaults.time_limit,
        nodes=entry.get("nodes") or settings.nodes or defaults.nodes,
        gpus=int(entry["gpus"]) if entry.get("gpus") is not None else config.platforms[platform].gpus_per_node,
    )


def render_plan(spec: JobSpec, plan: RunPlan) -> str:
    """The exact commands and environment of every phase, as shell lines (secrets redacted)."""
    from ci_golden.launch import redact

    lines = [
        f"# {spec.case.id} ({spec.environment}, {spec.platform}): TEST_TYPE {plan.test_type}, "
        f"{plan.n_repeat} repeat(s), time limit {spec.time_limit} s, output {spec.out}"
    ]
    if plan.unsupported:
        return "\n".join([*lines, f"# not run: {plan.unsupported}"]) + "\n"
    for phase in plan.phases:
        if phase.number == 2:
            lines.append("# keep the checkpoint nearest the middle of the run, drop later ones, resume from it")
        lines.append(f"# {phase.label}: log {phase.log}")
        lines.append(f"cd {shlex.quote(str(phase.cwd))}")
        lines.extend(f"export {k}={shlex.quote(v)}" for k, v in redact(phase.env).items())
        lines.append(shlex.join(phase.argv))
    return "\n".join(lines) + "\n"


def _sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _print(line: str) -> None:
    print(line, flush=True)


def run_spec(spec: JobSpec, config: Config, args: argparse.Namespace) -> int:
    from ci_golden.execute import execute
    from ci_golden.result import exit_code

    _sigterm_as_interrupt()
    result = execute(
        spec, config, check_gpu=not args.skip_gpu_check, sink=_print, grace=args.grace,
        keep_checkpoints=args.keep_checkpoints,
    )  # fmt: skip
    summary = f"ci-golden run: {result.job_id}: {result.verdict}"
    if result.message:
        summary += f": {result.message}"
    print(summary, file=sys.stderr)
    print(f"ci-golden run: result written to {spec.out / 'result.json'}", file=sys.stderr)
    return exit_code([result], allow_drift=args.allow_drift)


def run(args: argparse.Namespace) -> int:
    from ci_golden.commands import load_suite
    from ci_golden.execute import plan

    suite = load_suite(args)
    spec = job_spec(args, suite)
    if args.dry_run:
        sys.stdout.write(render_plan(spec, plan(spec, suite.config)))
        return 0
    return run_spec(spec, suite.config, args)
