from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ci_golden.errors import UsageError
from ci_golden.goldens.model import dumps_golden, write_golden
from ci_golden.run.collect import collect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="event-file folder, .jsonl file or log file"
    )
    parser.add_argument(
        "--from",
        dest="source_format",
        choices=("auto", "tensorboard", "jsonl", "log"),
        default="auto",
    )
    parser.add_argument(
        "--metric", action="append", default=[], help="metric to keep (default: all)"
    )
    parser.add_argument("--start-step", type=int, default=1)
    parser.add_argument("--step-interval", type=int, default=1)
    parser.add_argument(
        "--train-iters",
        type=int,
        help="last step (default: from the log, else the last step logged)",
    )
    parser.add_argument("--out", metavar="FILE", help="golden file to write (default: stdout)")


def run(args: argparse.Namespace) -> int:

    if args.start_step < 0 or args.step_interval < 1:
        raise UsageError("--start-step must be >= 0 and --step-interval >= 1")
    if args.train_iters is not None and args.train_iters < args.start_step:
        raise UsageError(
            f"--train-iters {args.train_iters} is before --start-step {args.start_step}"
        )
    golden, notes = collect(
        [Path(s) for s in args.sources],
        fmt=args.source_format,
        metrics=args.metric or None,
        start_step=args.start_step,
        step_interval=args.step_interval,
        train_iters=args.train_iters,
    )
    for note in notes:
        print(f"ci-golden collect: warning: {note}", file=sys.stderr)
    if args.out:
        write_golden(Path(args.out), golden)
        print(
            f"ci-golden collect: wrote {len(golden.metrics)} metrics to {args.out}", file=sys.stderr
        )
    else:
        sys.stdout.write(dumps_golden(golden))
    return 0
