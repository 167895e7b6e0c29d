"""Benchmark: compare + report against only loading the files, measured in the same run.

8 metrics x 100,000 steps x 5 repeats. The baseline loads the golden and the five actual
files; the measured part compares them (repeat 1 plus repeats 2-5, with mean/std per step)
and renders the Markdown, JUnit and JSON reports. Target: compare + report add at most 50%
to the load time. Run: ``python benchmarks/compare.py [--steps N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import typing as t
from pathlib import Path

import numpy as np

from ci_golden.compare.engine import compare_job, dumps_result
from ci_golden.compare.policy import resolve_policies
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import load_golden
from ci_golden.project.config import load_config
from ci_golden.report.aggregate import build_report
from ci_golden.report.render import render_json, render_junit, render_markdown

METRICS = (
    "lm loss",
    "num-zeros",
    "mem-allocated-bytes",
    "mem-max-allocated-bytes",
    "iteration-time",
    "grad-norm",
    "params-norm",
    "mtp_1 loss",
)


def write_files(folder: Path, steps: int, repeats: int) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(0)
    base = {
        m: rng.uniform(1, 10) * (1 + 0.1 * np.sin(np.arange(1, steps + 1) / 500)) for m in METRICS
    }

    def doc(noise: float) -> dict[str, t.Any]:
        out = {}
        for m, v in base.items():
            vals = v * (1 + noise * rng.standard_normal(steps))
            out[m] = {
                "start_step": 1,
                "end_step": steps,
                "step_interval": 1,
                "values": {str(s): round(float(x), 5) for s, x in enumerate(vals, start=1)},
            }
        return out

    golden = folder / "golden_values_dev_dgx_h100.json"
    golden.write_text(json.dumps(doc(0.0), indent=4))
    actuals = []
    for k in range(repeats):
        path = folder / f"actual_{k + 1}.json"
        path.write_text(json.dumps(doc(1e-3), indent=4))
        actuals.append(path)
    return golden, actuals


def best_of(rounds: int, fn: t.Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        golden_path, actual_paths = write_files(Path(tmp), args.steps, args.repeats)
        policies, _ = resolve_policies(load_config(cwd=Path(tmp)), None)
        gated = METRICS[:4]
        job = Job("bench/case", "dev", "dgx_h100", golden_path)

        def load() -> tuple[t.Any, list[t.Any]]:
            return load_golden(golden_path), [load_golden(p) for p in actual_paths]

        golden, actuals = load()

        def compare_and_report() -> None:
            result = compare_job(
                job,
                golden,
                actuals[0],
                policies=policies,
                gated=gated,
                nondeterministic=True,
                repeats=actuals[1:],
            )
            dumps_result(result)
            report = build_report([result])
            render_markdown(report)
            render_junit(report)
            render_json(report)

        t_load = best_of(args.rounds, load)
        t_work = best_of(args.rounds, compare_and_report)
    print(
        f"{len(METRICS)} metrics x {args.steps} steps x {args.repeats} repeats "
        f"(best of {args.rounds})"
    )
    print(f"load golden + actual files: {t_load:8.3f} s")
    print(f"compare + report:           {t_work:8.3f} s")
    print(f"ratio compare+report / load: {t_work / t_load:.3f} (target <= 0.5)")


if __name__ == "__main__":
    main()
