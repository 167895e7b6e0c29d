"""A tiny deterministic trainer standing in for Megatron-LM in ci-golden's own CPU test cases.

An MLP learns a fixed random "teacher" MLP on seeded synthetic data, with SGD and momentum.
It takes Megatron-like flags, logs Megatron-style ``iteration N/ M | lm loss: ... |`` lines on
stdout and the same metrics as JSONL (``--log-jsonl``), and saves and resumes checkpoints in
Megatron-LM's layout (``<save>/iter_0000025/``, ``latest_checkpointed_iteration.txt``).

Bit-for-bit reproducible on any machine: only IEEE-exact operations (+, -, *, /, sqrt,
comparisons) in a fixed order, no BLAS (whose kernels differ by CPU) and no exp/log (whose
SIMD versions differ by CPU); the batch of step k depends only on (seed, k), so a resumed run
equals the continuous one. ``--noise`` adds unseeded noise to the gradients (a nondeterministic
case). Memory is what tracemalloc sees; iteration time is wall-clock.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import numpy as np

IN, OUT = 16, 4


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` summed in a fixed order (no BLAS)."""
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)


def init_layers(seed: int, sizes: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        scale = 1.0 / math.sqrt(fan_in)
        params.append((rng.random((fan_in, fan_out)) * 2.0 - 1.0) * scale)
        params.append(np.zeros(fan_out))
    return params


def forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    acts, h = [x], x
    n = len(params) // 2
    for i in range(n):
        h = matmul(h, params[2 * i]) + params[2 * i + 1]
        if i < n - 1:
            h = h * (h > 0.0)
        acts.append(h)
    return h, acts


def backward(params: list[np.ndarray], acts: list[np.ndarray], dy: np.ndarray) -> list[np.ndarray]:
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    delta = dy
    for i in reversed(range(len(params) // 2)):
        grads[2 * i] = matmul(acts[i].T.copy(), delta)
        grads[2 * i + 1] = delta.sum(axis=0)
        if i:
            delta = matmul(delta, params[2 * i].T.copy()) * (acts[i] > 0.0)
    return grads


def batch(seed: int, step: int, size: int, teacher: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, step])
    x = rng.random((size, IN)) * 2.0 - 1.0
    return x, forward(teacher, x)[0]


def save(folder: Path, iteration: int, params: list[np.ndarray], momentum: list[np.ndarray], consumed: int) -> None:
    target = folder / f"iter_{iteration:07d}"
    target.mkdir(parents=True, exist_ok=True)
    arrays = {f"p{i}": p for i, p in enumerate(params)} | {f"m{i}": m for i, m in enumerate(momentum)}
    np.savez(target / "state.npz", iteration=iteration, consumed=consumed, **arrays)
    (folder / "latest_checkpointed_iteration.txt").write_text(f"{iteration}\n")
    print(f"  successfully saved checkpoint from iteration {iteration:7d} to {folder}", flush=True)


def load(folder: Path, n: int) -> tuple[int, int, list[np.ndarray], list[np.ndarray]] | None:
    latest = folder / "latest_checkpointed_iteration.txt"
    if not latest.is_file():
        print(f"WARNING: could not find the metadata file {latest}", flush=True)
        print("    will not load any checkpoints and will start from random", flush=True)
        return None
    iteration = int(latest.read_text().strip())
    with np.load(folder / f"iter_{iteration:07d}" / "state.npz") as state:
        params = [state[f"p{i}"] for i in range(n)]
        momentum = [state[f"m{i}"] for i in range(n)]
        consumed = int(state["consumed"])
    print(f"  successfully loaded checkpoint from {folder} at iteration {iteration}", flush=True)
    return iteration, consumed, params, momentum


def log_line(step: int, iters: int, consumed: int, m: dict[str, float], lr: float, batch_size: int) -> str:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return (
        f" [{stamp}] iteration {step:8d}/{iters:8d} | consumed samples: {consumed:12d} |"
        f" elapsed time per iteration (ms): {m['iteration-time'] * 1000.0:.1f} |"
        f" learning rate: {lr:.6E} | global batch size: {batch_size:5d} |"
        f" lm loss: {m['lm loss']:.6E} | loss scale: 1.0 | grad norm: {m['grad-norm']:.6f} |"
        f" num zeros: {int(m['num-zeros'])} |"
        f" mem-allocated-bytes-avg(MB): {m['mem-allocated-bytes'] / 1048576:.2f} |"
        f" mem-max-allocated-bytes-avg(MB): {m['mem-max-allocated-bytes'] / 1048576:.2f} |"
        f" number of skipped iterations:   0 | number of nan iterations:   0 |"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="tiny deterministic MLP trainer with Megatron-like flags")
    p.add_argument("--train-iters", type=int, required=True)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--micro-batch-size", type=int, default=16)
    p.add_argument("--global-batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--lr-warmup-iters", type=int, default=0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--save", type=Path)
    p.add_argument("--load", type=Path)
    p.add_argument("--save-interval", type=int)
    p.add_argument("--log-interval", type=int, default=1)
    p.add_argument("--log-jsonl", type=Path, help="append one JSON object of metrics per logged step")
    p.add_argument("--tensorboard-dir", type=Path, help="accepted for Megatron compatibility; not written")
    p.add_argument("--log-num-zeros-in-grad", action="store_true")
    p.add_argument("--noise", type=float, default=0.0, help="scale of unseeded gradient noise")
    p.add_argument("--exit-with", type=int, default=None, help="fail with this exit code after the first step")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tracemalloc.start()
    batch_size = args.global_batch_size or args.micro_batch_size
    sizes = [IN] + [args.hidden_size] * args.num_layers + [OUT]
    teacher = init_layers(args.seed + 1, [IN, 8, OUT])
    params = init_layers(args.seed, sizes)
    momentum = [np.zeros_like(p) for p in params]
    start, consumed = 0, 0
    if args.load is not None:
        loaded = load(args.load, len(params))
        if loaded is not None:
            start, consumed, params, momentum = loaded
    noise = np.random.default_rng() if args.noise else None
    jsonl = args.log_jsonl.open("a", encoding="utf-8") if args.log_jsonl else None
    for step in range(start + 1, args.train_iters + 1):
        t0 = time.perf_counter()
        x, target = batch(args.seed, step, batch_size, teacher)
        y, acts = forward(params, x)
        diff = y - target
        loss = math.fsum((diff * diff).ravel().tolist()) / diff.size
        grads = backward(params, acts, diff * (2.0 / diff.size))
        if noise is not None:
            grads = [g + (noise.random(g.shape) * 2.0 - 1.0) * args.noise for g in grads]
        lr = args.lr * min(1.0, step / args.lr_warmup_iters) if args.lr_warmup_iters else args.lr
        for p, m, g in zip(params, momentum, grads, strict=True):
            m *= args.momentum
            m += g
            p -= lr * m
        consumed += batch_size
        zeros = sum(int((g == 0.0).sum()) for g in grads)
        norm = math.sqrt(math.fsum(float(v) for g in grads for v in (g * g).ravel().tolist()))
        current, peak = tracemalloc.get_traced_memory()
        metrics = {
            "lm loss": loss,
            "iteration-time": time.perf_counter() - t0,
            "mem-allocated-bytes": float(current),
            "mem-max-allocated-bytes": float(peak),
            "num-zeros": float(zeros),
            "grad-norm": norm,
            "learning-rate": lr,
        }
        if step % args.log_interval == 0:
            print(log_line(step, args.train_iters, consumed, metrics, lr, batch_size), flush=True)
            if jsonl is not None:
                jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
                jsonl.flush()
        if args.exit_with is not None:
            print(f"exiting with code {args.exit_with} as asked", flush=True)
            return args.exit_with
        if args.save is not None and args.save_interval and step % args.save_interval == 0:
            save(args.save, step, params, momentum, consumed)
    if args.save is not None and args.train_iters > start and not (args.save_interval and args.train_iters % args.save_interval == 0):
        save(args.save, args.train_iters, params, momentum, consumed)
    if jsonl is not None:
        jsonl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
