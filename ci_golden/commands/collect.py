from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ci_golden.errors import UsageError
from ci_golden.goldens.model import dumps_golden, load_golden, write_golden
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
    parser.add_argument(
        "--step-size",
        type=int,
        default=1,
        help="keep step 1 and every multiple of N (Megatron-LM's grid; default 1)",
    )
    parser.add_argument(
        "--golden", metavar="G", help="put the metrics this golden has on its own steps"
    )
    parser.add_argument(
        "--train-iters",
        type=int,
        help="last step (default: from the log, else the last step logged)",
    )
    parser.add_argument("--out", metavar="FILE", help="golden file to write (default: stdout)")


def run(args: argparse.Namespace) -> int:

    if args.step_size < 1:
        raise UsageError("--step-size must be >= 1")
    if args.train_iters is not None and args.train_iters < 1:
        raise UsageError(f"--train-iters {args.train_iters}: expected at least 1")
    golden, notes = collect(
        [Path(s) for s in args.sources],
        fmt=args.source_format,
        metrics=args.metric or None,
        step_size=args.step_size,
        train_iters=args.train_iters,
        golden=load_golden(Path(args.golden)) if args.golden else None,
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
