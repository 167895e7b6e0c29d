from __future__ import annotations

import argparse

HELP = "turn TensorBoard events, JSONL logs or Megatron log lines into golden values"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="event-file folder, .jsonl file or log file")
    parser.add_argument("--from", dest="source_format", choices=("auto", "tensorboard", "jsonl", "log"), default="auto")
    parser.add_argument("--metric", action="append", default=[], help="metric to keep (default: all)")
    parser.add_argument("--start-step", type=int, default=1)
    parser.add_argument("--step-interval", type=int, default=1)
    parser.add_argument("--train-iters", type=int)
    parser.add_argument("--out", metavar="FILE", help="golden file to write (default: stdout)")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden collect")
