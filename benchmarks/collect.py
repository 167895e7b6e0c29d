"""Benchmark: reading TensorBoard scalars, ci_golden's reader against TensorBoard's
EventAccumulator.

One event file with 8 tags x 100,000 steps (800,000 scalar summaries, one per event, as Megatron
writes them) is written, then read in the same process by
``ci_golden.run.tfevents.read_event_folder`` and by ``EventAccumulator`` with size_guidance 0 (keep
everything, as Megatron-LM's golden extraction does). Both results are checked to be equal.

    python benchmarks/collect.py [--steps N] [--tags N] [--repeat N]

Target: ci_golden is not slower than EventAccumulator (ratio >= 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

TAGS = (
    "lm loss",
    "iteration-time",
    "mem-allocated-bytes",
    "mem-max-allocated-bytes",
    "num-zeros",
    "grad-norm",
    "learning-rate",
    "loss-scale",
)


def write_events(folder: Path, steps: int, tags: int) -> Path:
    """An event file as TensorBoard writers lay it out: a version header, then one Event per scalar.

    Framed by hand (tensorboardX takes minutes for this many events); tests check that files
    written by tensorboardX and by tensorboard's own writer read the same.
    """
    import struct

    from tensorboard.compat.proto import event_pb2, summary_pb2

    from ci_golden.run.tfevents import masked_crc32c

    path = folder / "events.out.tfevents.1700000000.bench.1.0"
    names = [TAGS[i % len(TAGS)] + ("" if i < len(TAGS) else f"-{i}") for i in range(tags)]
    records = [event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString()]
    for step in range(1, steps + 1):
        for i, name in enumerate(names):
            value = summary_pb2.Summary.Value(tag=name, simple_value=10.0 / step + i)
            event = event_pb2.Event(
                wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=[value])
            )
            records.append(event.SerializeToString())
    with path.open("wb") as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(
                header
                + struct.pack("<I", masked_crc32c(header))
                + data
                + struct.pack("<I", masked_crc32c(data))
            )
    return path


def read_ours(folder: Path) -> dict[str, dict[int, float]]:
    from ci_golden.run.tfevents import read_event_folder

    scalars, _notes = read_event_folder(folder)
    return scalars


def read_accumulator(folder: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def best_of(fn: object, folder: Path, repeat: int) -> tuple[float, dict[str, dict[int, float]]]:
    best = float("inf")
    result: dict[str, dict[int, float]] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(folder)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    # The summary spans the docstring's first paragraph: joined back into its one line.
    summary = " ".join(__doc__.split("\n\n")[0].split())
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=8)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each reader; the best counts"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        path = write_events(folder, args.steps, args.tags)
        print(
            f"wrote {path.stat().st_size / 1e6:.1f} MB, {args.tags} tags x {args.steps} steps "
            f"in {time.perf_counter() - start:.1f} s"
        )
        scalars = args.tags * args.steps
        ours, ours_values = best_of(read_ours, folder, args.repeat)
        theirs, their_values = best_of(read_accumulator, folder, args.repeat)
        if ours_values != their_values:
            print("MISMATCH: the two readers returned different scalars", file=sys.stderr)
            return 1
        print(f"ci_golden.run.tfevents       {ours:8.2f} s  {scalars / ours:12,.0f} events/s")
        print(f"EventAccumulator (sg=0)  {theirs:8.2f} s  {scalars / theirs:12,.0f} events/s")
        ratio = theirs / ours
        verdict = "target met" if ratio >= 1 else "SLOWER than EventAccumulator"
        print(f"speed-up {ratio:.1f}x ({verdict})")
        return 0 if ratio >= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
