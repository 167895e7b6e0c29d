"""Benchmark: fail-fast with the demo trainer (test_cases/demo/trainer.py).

A project with one case of ``--steps`` steps is made in a temporary folder; a first run gives
its golden. Then, in turns within the same process (machines here are noisy):

- a regression at 10% of the steps (the golden's lm loss moved by 8% from there on): the time
  to the verdict with fail-fast, against the time of the same job trained to the end;
- a passing run: the job's time while its metrics are followed and judged, against the same
  job with nothing following it.

    python benchmarks/fail_fast.py [--steps N] [--rounds N]

The run is long (8,000 steps of about 1.5 ms) so that its fixed costs (starting Python and
numpy, writing the result) weigh in the ratio about as little as they do in a GPU run.

Targets: time to the verdict at most 15% of the full run's; following adds at most 2%.
Each figure is the median of the rounds; the passing runs are also compared by their fastest
round, and by CPU time (the follower's against the trainer's), which other processes on a
busy machine disturb less than wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import textwrap
import time
import typing as t
from pathlib import Path

from ci_golden.goldens.discover import discover
from ci_golden.project.config import load_config
from ci_golden.run.execute import case_job, execute, spec_for

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
test_cases: cases
platforms:
  cpu: {gpu: null, gpus_per_node: 0, opt_in: true}
environments:
  dev: {platforms: [cpu]}
"""


def make_project(root: Path, steps: int) -> None:
    (root / "cases" / "bench").mkdir(parents=True)
    (root / "ci_golden.yaml").write_text(CONFIG)
    (root / "cases" / "bench" / "model_config.yaml").write_text(
        textwrap.dedent(f"""\
            ENV_VARS: {{OMP_NUM_THREADS: 1}}
            MODEL_ARGS:
              --train-iters: {steps}
              --seed: 1234
              --log-interval: 1
              --log-num-zeros-in-grad: true
              --log-jsonl: ${{OUTPUT_PATH}}/metrics.jsonl
            METRICS: [lm loss, num-zeros]
            CI_GOLDEN:
              platforms: [cpu]
              command: [python, {REPO / "test_cases" / "demo" / "trainer.py"}]
              time_limit: 3600
            """)
    )


class Timing(t.NamedTuple):
    wall: float  # seconds the job took
    own_cpu: float  # CPU seconds of this process (ci-golden: pump, follower, comparison)
    trainer_cpu: float  # CPU seconds of the training process


def run_job(root: Path, out: str, *, fail_fast: bool) -> tuple[Timing, str, int | None]:
    """(timing, verdict, step the run was stopped at) of one job."""
    config = load_config(root / "ci_golden.yaml")
    suite = discover(config)
    case = suite.case("bench")
    spec = spec_for(case, case_job(case, config, "dev", "cpu"), config, root / out,
                    fail_fast=fail_fast)  # fmt: skip
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    t0 = time.perf_counter()
    result = execute(spec, config, check_gpu=False)
    wall = time.perf_counter() - t0
    own2, children2 = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    timing = Timing(
        wall,
        own2.ru_utime + own2.ru_stime - own.ru_utime - own.ru_stime,
        children2.ru_utime + children2.ru_stime - children.ru_utime - children.ru_stime,
    )
    stopped = result.fail_fast.aborted_at_step if result.fail_fast else None
    return timing, result.verdict, stopped


def set_golden(root: Path, golden: dict[str, object], regression_from: int | None) -> None:
    data = json.loads(json.dumps(golden))
    if regression_from is not None:
        values = data["lm loss"]["values"]
        for step, value in values.items():
            if int(step) >= regression_from and value != "nan":
                values[step] = value * 1.08
    path = root / "cases" / "bench" / "golden_values_dev_cpu.json"
    path.write_text(json.dumps(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.steps)
        run_job(root, "first", fail_fast=False)
        golden = json.loads((root / "first" / "golden_values_dev_cpu.json").read_text())
        regression = args.steps // 10
        verdict_s: list[Timing] = []
        full_s: list[Timing] = []
        followed_s: list[Timing] = []
        plain_s: list[Timing] = []
        stops = []
        for k in range(args.rounds):
            set_golden(root, golden, regression)
            timing, verdict, stopped = run_job(root, f"early{k}", fail_fast=True)
            assert verdict == "fail" and stopped is not None, (verdict, stopped)
            verdict_s.append(timing)
            stops.append(stopped)
            timing, verdict, _ = run_job(root, f"full{k}", fail_fast=False)
            assert verdict == "fail", verdict
            full_s.append(timing)
            set_golden(root, golden, None)
            order = [(True, followed_s), (False, plain_s)]
            for follow, into in order if k % 2 == 0 else order[::-1]:
                timing, verdict, stopped = run_job(root, f"pass{k}{follow}", fail_fast=follow)
                assert verdict == "pass" and stopped is None, (verdict, stopped)
                into.append(timing)

    def med(runs: list[Timing], field: str = "wall") -> float:
        return statistics.median(getattr(r, field) for r in runs)

    to_verdict = med(verdict_s) / med(full_s)
    overhead = med(followed_s) / med(plain_s) - 1
    # the follower's CPU time against the trainer's: the same comparison, free of the noise
    # other processes add to wall time (a CPU the follower takes is one the trainer may lack)
    cpu = (med(followed_s, "own_cpu") - med(plain_s, "own_cpu")) / med(plain_s, "trainer_cpu")
    print(f"demo trainer, {args.steps} steps, regression from step {regression}, "
          f"{args.rounds} rounds (medians)")  # fmt: skip
    print(f"  stopped at steps {', '.join(map(str, stops))}")
    print(f"  time to verdict {med(verdict_s):.2f} s / full run {med(full_s):.2f} s = "
          f"{to_verdict:.3f} (target <= 0.15)")  # fmt: skip
    print(f"  passing run followed {med(followed_s):.2f} s / not followed {med(plain_s):.2f} s: "
          f"{overhead:+.1%} (target <= +2%)")  # fmt: skip
    fastest = min(r.wall for r in followed_s) / min(r.wall for r in plain_s) - 1
    print(f"  the same with the fastest round of each: {fastest:+.1%}")
    print(f"  following's CPU time / the trainer's: {cpu:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
