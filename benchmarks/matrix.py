"""Benchmark: discover + expand + emit of a generated suite, against walking the same tree.

A suite of 10,000 cases (3 platforms each, about one in ten with a ``CI_GOLDEN`` block) is
written to a temporary folder. The baseline walks that tree with ``os.scandir`` only; a second
reference also reads every model_config.yaml, as planning must. The measured work is
``discover`` + ``select`` (expansion) + rendering every job as GitHub matrices of at most 256
jobs (or, with ``--ci gitlab``, child pipelines of 2,000 jobs). All run in the same process; the
best of a few rounds (taking turns) is printed, with the ratio (target: at most 3x the walk).

    .venv/bin/python benchmarks/matrix.py [--cases N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import typing as t
from pathlib import Path

from ci_golden.goldens.discover import discover
from ci_golden.plan import emit
from ci_golden.plan.select import Selection, select
from ci_golden.project.config import load_config

PLATFORMS = ("dgx_h100", "dgx_a100", "dgx_gb200")
MODELS = ("gpt", "moe", "bert", "t5", "mamba", "multimodal", "retro", "hybrid")

MODEL_CONFIG = """\
ENV_VARS:
  CUDA_DEVICE_MAX_CONNECTIONS: 1
  NVTE_ALLOW_NONDETERMINISTIC_ALGO: 0
  NCCL_ALGO: Ring
  CUBLAS_WORKSPACE_CONFIG: :4096:8
MODEL_ARGS:
  --num-layers: {layers}
  --hidden-size: 512
  --num-attention-heads: 8
  --log-params-norm: true
  --log-num-zeros-in-grad: true
  --log-validation-ppl-to-tensorboard: true
  --log-timers-to-tensorboard: true
  --tensorboard-dir: ${{TENSORBOARD_PATH}}
  --micro-batch-size: 4
  --global-batch-size: 32
  --seq-length: 1024
  --max-position-embeddings: 1024
  --train-iters: 100
  --timing-log-level: 0
  --lr-decay-iters: 320000
  --save: ${{CHECKPOINT_SAVE_PATH}}
  --load: ${{CHECKPOINT_LOAD_PATH}}
  --data-path: ${{DATA_PATH}}/text/the_pile/shard00/my-gpt3_00_text_document
  --split: 949,50,1
  --distributed-backend: nccl
  --lr: 0.00015
  --lr-decay-style: cosine
  --min-lr: 1.0e-5
  --weight-decay: 1e-2
  --clip-grad: 1.0
  --lr-warmup-fraction: .01
  --log-interval: 1
  --save-interval: 10000
  --eval-interval: 1000
  --eval-iters: 10
  --transformer-impl: transformer_engine
  --tensor-model-parallel-size: {tp}
  --pipeline-model-parallel-size: {pp}
  --deterministic-mode: true
  --no-gradient-accumulation-fusion: true
  --attention-softmax-in-fp32: true
  --use-mcore-models: true
  --ckpt-format: torch_dist
  --data-cache-path: ${{DATA_CACHE_PATH}}
  --bf16: true
  --log-memory-to-tensorboard: true
TEST_TYPE: regular
METRICS:
  - "lm loss"
  - "num-zeros"
"""

CI_GOLDEN = """\
CI_GOLDEN:
  scope: [mr, nightly]
  n_repeat: 2
  time_limit: 2700
"""

GOLDEN = (
    '{"lm loss": {"start_step": 1, "end_step": 100, "step_interval": 5, '
    '"values": {"1": 10.85, "5": 10.82}}}\n'
)


def generate(root: Path, n_cases: int, ci_golden_every: int = 10) -> None:
    for i in range(n_cases):
        case = (
            root
            / MODELS[i % len(MODELS)]
            / f"{MODELS[i % len(MODELS)]}_tp{1 + i % 4}_pp{1 + i % 2}_case{i:05d}"
        )
        case.mkdir(parents=True)
        text = MODEL_CONFIG.format(layers=4 + i % 8, tp=1 + i % 4, pp=1 + i % 2)
        if ci_golden_every and i % ci_golden_every == 0:
            text += CI_GOLDEN
        (case / "model_config.yaml").write_text(text)
        for platform in PLATFORMS:
            (case / f"golden_values_dev_{platform}.json").write_text(GOLDEN)


def walk(root: Path) -> int:
    """The baseline: visit every entry of the tree, as discovery must."""
    n = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                n += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return n


def walk_and_read(root: Path) -> int:
    """For reference: the walk, also reading every model_config.yaml to its end, which any
    planner that honours the ``CI_GOLDEN`` blocks must do; returns the bytes read."""
    n = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name == "model_config.yaml":
                    fd = os.open(entry.path, os.O_RDONLY)
                    try:
                        while chunk := os.read(fd, 1 << 16):
                            n += len(chunk)
                    finally:
                        os.close(fd)
    return n


def plan(root: Path, workdir: Path, ci: str) -> tuple[int, int]:
    """discover + expand/select + emit every job (in matrices/pipelines within the forge's
    limits, as --shard would); returns (jobs, bytes emitted)."""
    config = load_config(cwd=workdir, test_cases=root)
    jobs = select(discover(config)).jobs
    chunk = emit.GITHUB_MAX_JOBS if ci == "github" else 2000
    render = emit.RENDERERS_BY_NAME[ci]
    return len(jobs), sum(
        len(render(Selection(jobs[i : i + chunk]))) for i in range(0, len(jobs), chunk)
    )


def best(fns: t.Sequence[t.Callable[[], t.Any]], rounds: int) -> list[tuple[float, t.Any]]:
    """The best time of each function and its result; the rounds take turns, so that a slow
    spell of the machine falls on both sides alike."""
    times: list[list[float]] = [[] for _ in fns]
    results: list[t.Any] = [None] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(min(ts), result) for ts, result in zip(times, results, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ci", choices=("github", "gitlab"), default="github")
    parser.add_argument(
        "--ci-golden-every",
        type=int,
        default=10,
        metavar="N",
        help="one case in N has a CI_GOLDEN block (0: none)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "test_cases"
        generate(root, args.cases, args.ci_golden_every)
        walk(root)  # warm the page cache for both sides
        (t_walk, entries), (t_read, _), (t_plan, (n_jobs, size)) = best(
            [
                lambda: walk(root),
                lambda: walk_and_read(root),
                lambda: plan(root, Path(tmp), args.ci),
            ],
            args.rounds,
        )
    share = f"1 in {args.ci_golden_every}" if args.ci_golden_every else "none"
    print(
        f"suite: {args.cases} cases ({share} with CI_GOLDEN), {entries} entries, "
        f"{n_jobs} jobs, {size / 1e6:.1f} MB of {args.ci} output"
    )
    print(f"walk (os.scandir)        {t_walk * 1000:9.1f} ms")
    print(f"walk + read the configs  {t_read * 1000:9.1f} ms  ({t_read / t_walk:.2f}x the walk)")
    print(f"discover + expand + emit {t_plan * 1000:9.1f} ms")
    print(f"ratio                    {t_plan / t_walk:9.2f}x  (target <= 3x)")


if __name__ == "__main__":
    main()
