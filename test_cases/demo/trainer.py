#!/usr/bin/env python3
"""A CPU stand-in for Megatron-LM's training and inference entry points: ci-golden's demo cases.

Pretraining (the default): a small MLP learns a fixed random teacher with Adam. It takes
Megatron-LM's command line (unknown flags are ignored), prints Megatron-LM's ``training_log``
and ``report_memory`` lines, writes TensorBoard scalars with Megatron-LM's tags and gating
flags, and saves and loads checkpoints in Megatron-LM's layout::

    <save>/iter_0000050/{metadata.json, fake_state.npz}          --ckpt-format torch_dist (default)
    <save>/iter_0000050/mp_rank_00/model_optim_rng.npz           --ckpt-format torch
    <save>/latest_checkpointed_iteration.txt                     the iteration, no newline

Determinism: the batch of step k depends only on (--seed, k), and the arithmetic is elementwise
products, fixed-order sums and ``sqrt`` (no BLAS, no vectorised exp/log), so results do not
depend on the machine's BLAS or SIMD kernels, and a resumed run equals the continuous one. The reported
``iteration-time`` is synthetic (``--fake-iteration-seconds``, 0 for the wall clock), the
memory figures are computed from the claimed model size (--num-layers, --hidden-size, ...).

Inference (``--fake-mode inference``, or automatically when --output-path is given without
--train-iters/--train-samples): greedy or top-k generation from a toy byte-level model,
written to --output-path as Megatron-LM's inference tests expect (request id -> result, plus
``throughput``, ``mem-max-allocated-bytes`` and ``lifetime_prefill_token_count``).

Fault injection (each flag also read from the environment variable beside it):

    --fake-regression 'METRIC:FACTOR@STEP'  FAKE_MEGATRON_REGRESSION   reported METRIC times FACTOR
                                            (a number, nan or inf) from STEP on; ';' separates several
    --fake-crash-at-step K                  FAKE_MEGATRON_CRASH_AT_STEP    die during iteration K
    --fake-crash-exit-code N                FAKE_MEGATRON_CRASH_EXIT_CODE  its exit code (default 1)
    --fake-exit-code N                      FAKE_MEGATRON_EXIT_CODE        finish, then exit with N
    --fake-noise SCALE                      FAKE_MEGATRON_NOISE            unseeded gradient noise
    --fake-iteration-seconds S              FAKE_MEGATRON_ITERATION_SECONDS  synthetic step time
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

TRACKER = "latest_checkpointed_iteration.txt"
TOY_SIZES = (16, 32, 32, 4)
TEACHER_SIZES = (16, 8, 4)
TEACHER_GAIN = 2.0
TEACHER_OFFSET = 3.25
TOY_BATCH = 32
VALID_OFFSET = 1_000_000_007
WARMUP_FACTOR = 40.0
MEGABYTE = 1024.0 * 1024.0
Params = list[np.ndarray]


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add = p.add_argument
    add("--train-iters", type=int)
    add("--train-samples", type=int)
    add("--micro-batch-size", type=int, default=1)
    add("--global-batch-size", type=int)
    add("--seed", type=int, default=1234)
    add("--lr", type=float, default=3e-3)
    add("--min-lr", type=float, default=0.0)
    add("--lr-warmup-iters", type=int, default=0)
    add("--lr-decay-iters", type=int)
    add("--lr-decay-style", choices=("constant", "linear", "cosine"), default="linear")
    add("--clip-grad", type=float, default=1.0)
    add("--weight-decay", type=float, default=0.01)
    add("--adam-beta1", type=float, default=0.9)
    add("--adam-beta2", type=float, default=0.999)
    add("--adam-eps", type=float, default=1e-8)
    add("--num-layers", type=int, default=2)
    add("--hidden-size", type=int, default=64)
    add("--seq-length", type=int, default=128)
    add("--padded-vocab-size", type=int, default=50304)
    add("--save")
    add("--load")
    add("--save-interval", type=int)
    add("--ckpt-format", default="torch_dist")
    add("--ckpt-step", type=int)
    add("--finetune", action="store_true")
    add("--no-load-optim", action="store_true")
    add("--no-load-rng", action="store_true")
    add("--no-save-optim", action="store_true")
    add("--exit-interval", type=int)
    add("--exit-duration-in-mins", type=float)
    add("--exit-signal-handler", action="store_true")
    add("--log-interval", type=int, default=100)
    add("--tensorboard-dir")
    add("--tensorboard-log-interval", type=int, default=1)
    add("--tensorboard-queue-size", type=int, default=1000)
    add("--log-jsonl", help="also append every TensorBoard scalar to this JSON-lines file")
    add("--log-num-zeros-in-grad", action="store_true")
    add("--log-params-norm", action="store_true")
    add("--log-memory-to-tensorboard", action="store_true")
    add("--log-timers-to-tensorboard", action="store_true")
    add("--log-throughput", action="store_true")
    add("--log-validation-ppl-to-tensorboard", action="store_true")
    add("--log-memory-interval", type=int)
    add("--eval-interval", type=int, default=1000)
    add("--eval-iters", type=int, default=100)
    add("--output-path")
    add("--prompts", nargs="+")
    add("--prompt-file")
    add("--prompt-file-num-truncate", type=int)
    add("--num-tokens-to-generate", type=int, default=30)
    add("--inference-repeat-n", type=int, default=1)
    add("--output-every-n-results", type=int, default=1)
    add("--return-log-probs", action="store_true")
    add("--top_k", type=int, default=0)
    add("--temperature", type=float, default=1.0)
    add("--fake-mode", choices=("auto", "pretraining", "inference"), default="auto")
    add("--fake-regression", action="append", default=[])
    add("--fake-crash-at-step", type=int)
    add("--fake-crash-exit-code", type=int)
    add("--fake-exit-code", type=int)
    add("--fake-noise", type=float)
    add("--fake-iteration-seconds", type=float)
    return p


@dataclass(frozen=True)
class Regression:
    metric: str
    factor: float
    step: int

    @classmethod
    def parse(cls, spec: str) -> Regression:
        metric, _, rest = spec.rpartition(":")
        factor, _, step = rest.partition("@")
        if not metric or not factor:
            raise ValueError(f"bad regression {spec!r}: expected METRIC:FACTOR@STEP, e.g. 'lm loss:1.08@30'")
        return cls(metric.strip(), float(factor), int(step or 1))


@dataclass(frozen=True)
class Faults:
    regressions: tuple[Regression, ...] = ()
    crash_at: int | None = None
    crash_code: int = 1
    exit_code: int = 0
    noise: float = 0.0
    iteration_seconds: float = 0.05

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: dict[str, str]) -> Faults:
        def pick(value: Any, name: str) -> str | None:
            return str(value) if value is not None else env.get(name) or None

        specs = list(args.fake_regression) + [
            s for s in env.get("FAKE_MEGATRON_REGRESSION", "").split(";") if s.strip()
        ]
        crash = pick(args.fake_crash_at_step, "FAKE_MEGATRON_CRASH_AT_STEP")
        seconds = pick(args.fake_iteration_seconds, "FAKE_MEGATRON_ITERATION_SECONDS")
        return cls(
            regressions=tuple(Regression.parse(s) for s in specs),
            crash_at=int(crash) if crash is not None else None,
            crash_code=int(pick(args.fake_crash_exit_code, "FAKE_MEGATRON_CRASH_EXIT_CODE") or 1),
            exit_code=int(pick(args.fake_exit_code, "FAKE_MEGATRON_EXIT_CODE") or 0),
            noise=float(pick(args.fake_noise, "FAKE_MEGATRON_NOISE") or 0.0),
            iteration_seconds=float(seconds) if seconds is not None else 0.05,
        )

    def apply(self, metric: str, step: int, value: float) -> float:
        for r in self.regressions:
            if r.metric == metric and step >= r.step:
                value *= r.factor
        return value


# ----------------------------------------------------------------------------- toy model


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    product: np.ndarray = (a[:, :, None] * b[None, :, :]).sum(axis=1)
    return product


def init_layers(seed: int, sizes: tuple[int, ...], gain: float = 1.0) -> Params:
    rng = np.random.default_rng(seed)
    params: Params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        params.append((rng.random((fan_in, fan_out)) * 2.0 - 1.0) * (gain / math.sqrt(fan_in)))
        params.append(np.zeros(fan_out))
    return params


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    acts, h = [x], x
    n = len(params) // 2
    for i in range(n):
        h = matmul(h, params[2 * i]) + params[2 * i + 1]
        if i < n - 1:
            h = h * (h > 0.0)
        acts.append(h)
    return h, acts


def backward(params: Params, acts: list[np.ndarray], dy: np.ndarray) -> Params:
    grads: Params = [np.empty(0)] * len(params)
    delta = dy
    for i in reversed(range(len(params) // 2)):
        grads[2 * i] = matmul(acts[i].T.copy(), delta)
        grads[2 * i + 1] = delta.sum(axis=0)
        if i:
            delta = matmul(delta, params[2 * i].T.copy()) * (acts[i] > 0.0)
    return grads


def total(values: np.ndarray) -> float:
    return math.fsum(values.ravel().tolist())


def norm(arrays: Params) -> float:
    return math.sqrt(math.fsum(total(a * a) for a in arrays))


@dataclass
class Teacher:
    params: Params

    @classmethod
    def build(cls, seed: int) -> Teacher:
        params = init_layers(seed + 1, TEACHER_SIZES, TEACHER_GAIN)
        params[-1] += TEACHER_OFFSET
        return cls(params)

    def batch(self, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.random.default_rng([seed, index]).random((TOY_BATCH, TOY_SIZES[0])) * 2.0 - 1.0
        return x, forward(self.params, x)[0]


def mse(params: Params, x: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, list[np.ndarray]]:
    y, acts = forward(params, x)
    diff = y - target
    return total(diff * diff) / diff.size, diff, acts


@dataclass
class State:
    params: Params
    exp_avg: Params
    exp_avg_sq: Params
    iteration: int = 0
    consumed: int = 0
    opt_steps: int = 0

    @classmethod
    def fresh(cls, seed: int) -> State:
        params = init_layers(seed, TOY_SIZES)
        return cls(params, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params])


def learning_rate(args: argparse.Namespace, iteration: int, train_iters: int) -> float:
    peak, low, warmup = float(args.lr), float(args.min_lr), int(args.lr_warmup_iters)
    if warmup and iteration <= warmup:
        return peak * iteration / warmup
    decay = int(args.lr_decay_iters or train_iters)
    if args.lr_decay_style == "constant" or decay <= warmup:
        return peak
    ratio = min(1.0, (iteration - warmup) / (decay - warmup))
    coeff = 1.0 - ratio if args.lr_decay_style == "linear" else 0.5 * (math.cos(math.pi * ratio) + 1.0)
    return low + coeff * (peak - low)


def adam_step(state: State, grads: Params, lr: float, args: argparse.Namespace) -> None:
    state.opt_steps += 1
    b1, b2 = args.adam_beta1, args.adam_beta2
    c1, c2 = 1.0 - b1**state.opt_steps, 1.0 - b2**state.opt_steps
    for p, m, v, g in zip(state.params, state.exp_avg, state.exp_avg_sq, grads):
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        p -= lr * ((m / c1) / (np.sqrt(v / c2) + args.adam_eps) + args.weight_decay * p)


# ----------------------------------------------------------------------------- checkpoints


def state_file(iter_dir: Path, ckpt_format: str) -> Path:
    return iter_dir / "mp_rank_00" / "model_optim_rng.npz" if ckpt_format == "torch" else iter_dir / "fake_state.npz"


def find_state_file(iter_dir: Path, ckpt_format: str) -> Path | None:
    candidates = [state_file(iter_dir, ckpt_format), state_file(iter_dir, "torch"), state_file(iter_dir, "torch_dist")]
    return next((c for c in candidates if c.is_file()), None)


def iter_dir_name(iteration: int) -> str:
    return f"iter_{iteration:07d}"


def save_checkpoint(args: argparse.Namespace, state: State) -> None:
    root = Path(args.save)
    target = root / iter_dir_name(state.iteration)
    print(f"saving checkpoint at iteration {state.iteration:7d} to {root} in {args.ckpt_format} format", flush=True)
    path = state_file(target, args.ckpt_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.ckpt_format != "torch":
        backend = {"sharded_backend": args.ckpt_format, "sharded_backend_version": 1,
                   "common_backend": "torch", "common_backend_version": 1}  # fmt: skip
        (target / "metadata.json").write_text(json.dumps(backend))
    arrays = {f"param_{i}": p for i, p in enumerate(state.params)}
    if not args.no_save_optim:
        arrays |= {f"exp_avg_{i}": m for i, m in enumerate(state.exp_avg)}
        arrays |= {f"exp_avg_sq_{i}": v for i, v in enumerate(state.exp_avg_sq)}
    counters = np.array([state.iteration, state.consumed, state.opt_steps, args.seed])
    arrays["counters"] = counters
    np.savez(path, **cast(dict[str, Any], arrays))
    (root / TRACKER).write_text(str(state.iteration))
    print(f"  successfully saved checkpoint from iteration {state.iteration:7d} to {root} [ t 1/1, p 1/1 ]", flush=True)


class CheckpointError(Exception):
    pass


def read_tracker(load: Path) -> tuple[int, bool] | None:
    tracker = load / TRACKER
    if not tracker.is_file():
        return None
    text = tracker.read_text().strip()
    if text == "release":
        return 0, True
    if not text.isdigit():
        raise CheckpointError(f"ERROR: Invalid metadata file {tracker}. Exiting")
    return int(text), False


def load_checkpoint(args: argparse.Namespace, state: State) -> State:
    load = Path(args.load)
    tracked = read_tracker(load)
    if tracked is None and args.ckpt_step is None:
        print(f"WARNING: could not find the metadata file {load / TRACKER}", flush=True)
        print("    will not load any checkpoints and will start from random", flush=True)
        return state
    iteration, release = tracked or (0, False)
    if args.ckpt_step is not None:
        iteration, release = args.ckpt_step, False
    iter_dir = load / ("release" if release else iter_dir_name(iteration))
    path = find_state_file(iter_dir, args.ckpt_format)
    if path is None:
        raise CheckpointError(f"no checkpoint in {iter_dir} (tracker {load / TRACKER} says iteration {iteration})")
    print(f" loading {args.ckpt_format} checkpoint from {load} at iteration {iteration}", flush=True)
    with np.load(path) as ckpt:
        n = len(state.params)
        params = [ckpt[f"param_{i}"] for i in range(n)]
        saved_iteration, consumed, opt_steps, _ = (int(c) for c in ckpt["counters"])
        with_optim = "exp_avg_0" in ckpt.files and not args.no_load_optim
        exp_avg = [ckpt[f"exp_avg_{i}"] for i in range(n)] if with_optim else state.exp_avg
        exp_avg_sq = [ckpt[f"exp_avg_sq_{i}"] for i in range(n)] if with_optim else state.exp_avg_sq
    if args.finetune or release:
        loaded = State(params, state.exp_avg, state.exp_avg_sq)
    else:
        loaded = State(params, exp_avg, exp_avg_sq, saved_iteration, consumed, opt_steps if with_optim else 0)
    print(f"  successfully loaded checkpoint from {load} [ t 1/1, p 1/1 ] at iteration {loaded.iteration}", flush=True)
    return loaded


# ----------------------------------------------------------------------------- logging


class Writer:
    """TensorBoard scalars under Megatron-LM's exact tags, and the same scalars as JSON lines.

    tensorboardX's ``SummaryWriter`` would rewrite ``lm loss`` as ``lm_loss``; Megatron-LM's
    torch ``SummaryWriter`` keeps the space, so summaries go to a ``FileWriter`` directly.
    Without tensorboardX no event file is written (a note says so) and ``--log-jsonl`` is the
    only record. Each JSON line holds one scalar as Megatron-LM's extraction reads it back from
    TensorBoard: float32, rounded to 5 decimals, so both records give the same golden values.
    """

    def __init__(self, logdir: str | None, max_queue: int, jsonl: str | None) -> None:
        self._file: Any = None
        if logdir:
            try:
                from tensorboardX import FileWriter, summary
                from tensorboardX.proto.summary_pb2 import Summary
            except ImportError:
                print("trainer: tensorboardX is not installed: no TensorBoard events written", flush=True)
            else:
                Path(logdir).mkdir(parents=True, exist_ok=True)
                self._file = FileWriter(logdir, max_queue=max_queue)
                self._summary, self._text = Summary, summary.text
        self._jsonl = None
        if jsonl:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(jsonl, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self._file is not None:
            self._file.add_summary(self._summary(value=[self._summary.Value(tag=tag, simple_value=value)]), step)
        if self._jsonl is not None and not tag.endswith(" vs samples"):
            read_back = float(np.float32(value))
            if math.isfinite(read_back):
                read_back = round(read_back, 5)
            self._jsonl.write(json.dumps({"step": step, tag: read_back if math.isfinite(read_back) else None}) + "\n")

    def add_text(self, tag: str, text: str, step: int) -> None:
        if self._file is not None:
            self._file.add_summary(self._text(tag, text), step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._jsonl is not None:
            self._jsonl.close()


def open_writer(args: argparse.Namespace) -> Writer | None:
    if not (args.tensorboard_dir or args.log_jsonl):
        return None
    return Writer(args.tensorboard_dir, args.tensorboard_queue_size, args.log_jsonl)


def stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")


def print_datetime(label: str) -> None:
    print(f"[{label}] datetime: {stamp()} ", flush=True)


def print_arguments(args: argparse.Namespace) -> None:
    print("------------------------ arguments ------------------------", flush=True)
    for name in sorted(vars(args)):
        print(f"  {name} {'.' * (48 - len(name))} {getattr(args, name)}", flush=True)
    print("-------------------- end of arguments ---------------------", flush=True)


@dataclass(frozen=True)
class Memory:
    """Bytes a GPT of the claimed size would hold: mixed-precision Adam state plus activations."""

    allocated: float
    max_allocated: float

    @classmethod
    def claimed(cls, args: argparse.Namespace) -> Memory:
        h, layers = args.hidden_size, args.num_layers
        n_params = 12 * layers * h * h + args.padded_vocab_size * h
        activations = 34.0 * args.seq_length * args.micro_batch_size * h * layers
        return cls(18.0 * n_params, 18.0 * n_params + activations)

    @property
    def n_params(self) -> float:
        return self.allocated / 18.0

    @property
    def reserved(self) -> float:
        return math.ceil(self.max_allocated / (2 * MEGABYTE)) * 2 * MEGABYTE

    def at(self, faults: Faults, step: int) -> Memory:
        return Memory(faults.apply("mem-allocated-bytes", step, self.allocated),
                      faults.apply("mem-max-allocated-bytes", step, self.max_allocated))  # fmt: skip

    def line(self, iteration: int) -> str:
        a, m, r = self.allocated / MEGABYTE, self.max_allocated / MEGABYTE, self.reserved / MEGABYTE
        return (f"[Rank 0] (after {iteration} iterations) memory (MB) | allocated: {a:.2f}"
                f" | max allocated: {m:.2f} | reserved: {r:.2f} | max reserved: {r:.2f}")  # fmt: skip


@dataclass
class Interval:
    """What ``training_log`` accumulates between two printed lines."""

    losses: float = 0.0
    iterations: int = 0
    seconds: float = 0.0

    def add(self, loss: float, seconds: float) -> None:
        self.losses += loss
        self.iterations += 1
        self.seconds += seconds

    @property
    def per_iteration(self) -> float:
        return self.seconds / self.iterations


@dataclass(frozen=True)
class StepReport:
    """One iteration's reported values, regressions applied."""

    iteration: int
    consumed: int
    batch_size: int
    loss: float
    lr: float
    grad_norm: float
    zeros: float
    params_norm: float
    memory: Memory


def throughput(memory: Memory, args: argparse.Namespace, batch_size: int, seconds: float) -> float:
    return 6.0 * memory.n_params * batch_size * args.seq_length / (seconds * 1e12) if seconds > 0 else 0.0


def log_line(args: argparse.Namespace, r: StepReport, interval: Interval, train_iters: int) -> str:
    per_iter = interval.per_iteration
    avg_loss = interval.losses / interval.iterations
    parts = [f" [{stamp()}] iteration {r.iteration:8d}/{train_iters:8d} |", f" consumed samples: {r.consumed:12d} |",
             f" elapsed time per iteration (ms): {per_iter * 1000.0:.1f} |"]  # fmt: skip
    if args.log_throughput:
        parts.append(f" throughput per GPU (TFLOP/s/GPU): {throughput(r.memory, args, r.batch_size, per_iter):.1f} |")
    parts += [f" learning rate: {r.lr:.6E} |", f" global batch size: {r.batch_size:5d} |"]
    if avg_loss >= 0.0:
        parts.append(f" lm loss: {avg_loss:.6E} |")
    parts += [" loss scale: 1.0 |", f" grad norm: {r.grad_norm:.3f} |"]
    if args.log_num_zeros_in_grad:
        parts.append(f" num zeros: {r.zeros} |")
    if args.log_params_norm:
        parts.append(f" params norm: {r.params_norm:.3f} |")
    parts += [" number of skipped iterations:   0 |", " number of nan iterations:   0 |"]
    return "".join(parts)


def write_scalars(writer: Writer, args: argparse.Namespace, r: StepReport) -> None:
    values = {"learning-rate": r.lr, "batch-size": float(r.batch_size), "lm loss": r.loss, "grad-norm": r.grad_norm}
    if args.log_num_zeros_in_grad:
        values["num-zeros"] = r.zeros
    if args.log_params_norm:
        values["params-norm"] = r.params_norm
    for tag, value in values.items():
        writer.add_scalar(tag, value, r.iteration)
    writer.add_scalar("lm loss vs samples", r.loss, r.consumed)
    if args.log_memory_to_tensorboard:
        writer.add_scalar("mem-reserved-bytes", r.memory.reserved, r.iteration)
        writer.add_scalar("mem-allocated-bytes", r.memory.allocated, r.iteration)
        writer.add_scalar("mem-max-allocated-bytes", r.memory.max_allocated, r.iteration)
        writer.add_scalar("mem-allocated-count", float(2 * (len(TOY_SIZES) - 1)), r.iteration)


# ----------------------------------------------------------------------------- pretraining


@dataclass
class Clock:
    """Synthetic (or wall-clock) time of each iteration, and the time since the start."""

    faults: Faults
    seed: int
    elapsed: float = 0.0
    first: bool = True
    _t0: float = field(default_factory=time.perf_counter)

    def iteration(self, step: int) -> float:
        if self.faults.iteration_seconds > 0:
            jitter = 1.0 + 0.02 * (((self.seed + step) * 2654435761 % 1000) / 500.0 - 1.0)
            seconds = self.faults.iteration_seconds * jitter * (WARMUP_FACTOR if self.first else 1.0)
        else:
            now = time.perf_counter()
            seconds, self._t0 = now - self._t0, now
        self.first = False
        seconds = self.faults.apply("iteration-time", step, seconds)
        self.elapsed += seconds
        return seconds


def total_iterations(args: argparse.Namespace, batch_size: int) -> int:
    if args.train_iters:
        return int(args.train_iters)
    if args.train_samples:
        return -(-int(args.train_samples) // batch_size)
    raise SystemExit("either train-iters or train-samples should be provided.")


def train_step(
    state: State, teacher: Teacher, args: argparse.Namespace, lr: float, noise: Noise
) -> tuple[float, float, float]:
    x, target = teacher.batch(args.seed, state.iteration + 1)
    loss, diff, acts = mse(state.params, x, target)
    grads = noise.add(backward(state.params, acts, diff * (2.0 / diff.size)))
    grad_norm = norm(grads)
    if args.clip_grad and grad_norm > args.clip_grad:
        grads = [g * (args.clip_grad / (grad_norm + 1e-6)) for g in grads]
    adam_step(state, grads, lr, args)
    return loss, grad_norm, float(sum(int((g == 0.0).sum()) for g in grads))


@dataclass(frozen=True)
class Noise:
    scale: float
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def add(self, grads: Params) -> Params:
        if not self.scale:
            return grads
        return [g + (self.rng.random(g.shape) * 2.0 - 1.0) * self.scale for g in grads]


def evaluate(state: State, teacher: Teacher, args: argparse.Namespace) -> float:
    losses = [mse(state.params, *teacher.batch(args.seed, VALID_OFFSET + i))[0] for i in range(args.eval_iters)]
    return math.fsum(losses) / len(losses)


def log_validation(writer: Writer | None, args: argparse.Namespace, step: int, consumed: int, valid: float) -> None:
    ppl = math.exp(min(20.0, valid))
    print("-" * 100, flush=True)
    print(
        f" validation loss at iteration {step} on validation set | lm loss value: {valid:.6E} | lm loss PPL: {ppl:.6E} | ",
        flush=True,
    )
    print("-" * 100, flush=True)
    if writer is not None:
        writer.add_scalar("lm loss validation", valid, step)
        writer.add_scalar("lm loss validation vs samples", valid, consumed)
        if args.log_validation_ppl_to_tensorboard:
            writer.add_scalar("lm loss validation ppl", ppl, step)


def exit_reason(args: argparse.Namespace, step: int, clock: Clock, signalled: bool) -> str | None:
    if signalled:
        return "exiting program after receiving SIGTERM."
    minutes = clock.elapsed / 60.0
    if args.exit_duration_in_mins and minutes > args.exit_duration_in_mins:
        return f"exiting program after {minutes} minutes"
    if args.exit_interval and step % args.exit_interval == 0:
        return f"exiting program at iteration {step}"
    return None


def pretrain(args: argparse.Namespace, faults: Faults) -> int:
    batch_size = args.global_batch_size or args.micro_batch_size
    train_iters = total_iterations(args, batch_size)
    print_arguments(args)
    state = State.fresh(args.seed)
    if args.load:
        try:
            state = load_checkpoint(args, state)
        except CheckpointError as e:
            print(e, file=sys.stderr, flush=True)
            return 1
    teacher = Teacher.build(args.seed)
    memory, noise = Memory.claimed(args), Noise(faults.noise)
    signalled = {"SIGTERM": False}
    if args.exit_signal_handler:
        signal.signal(signal.SIGTERM, lambda *_: signalled.update(SIGTERM=True))
    clock, interval = Clock(faults, args.seed), Interval()
    loaded_iteration, report_memory = state.iteration, True
    writer = open_writer(args)
    try:
        if writer is not None:
            for name in sorted(vars(args)):
                writer.add_text(name, str(getattr(args, name)), state.iteration)
        print_datetime("before the start of training step")
        saved = False
        while state.iteration < train_iters:
            step = state.iteration + 1
            if faults.crash_at is not None and step >= faults.crash_at:
                print(f"RuntimeError: injected failure during iteration {step}", file=sys.stderr, flush=True)
                return faults.crash_code
            first = clock.first
            lr = learning_rate(args, step, train_iters)
            loss, grad_norm, zeros = train_step(state, teacher, args, lr, noise)
            state.iteration, state.consumed = step, state.consumed + batch_size
            seconds = clock.iteration(step)
            report = StepReport(
                step, state.consumed, batch_size, faults.apply("lm loss", step, loss), lr,
                faults.apply("grad-norm", step, grad_norm), faults.apply("num-zeros", step, zeros),
                faults.apply("params-norm", step, norm(state.params) if args.log_params_norm else 0.0), memory.at(faults, step),
            )  # fmt: skip
            interval.add(report.loss, seconds)
            if writer is not None and step % args.tensorboard_log_interval == 0:
                write_scalars(writer, args, report)
            if step % args.log_interval == 0 or first:
                if writer is not None and args.log_timers_to_tensorboard and not first:
                    writer.add_scalar("iteration-time", interval.per_iteration, step)
                    if args.log_throughput:
                        writer.add_scalar(
                            "throughput", throughput(report.memory, args, batch_size, interval.per_iteration), step
                        )
                print(log_line(args, report, interval, train_iters), flush=True)
                if not first:
                    interval = Interval()
                if report_memory:
                    print(report.memory.line(step), flush=True)
                    report_memory = step <= loaded_iteration + 1
                elif args.log_memory_interval and step % args.log_memory_interval == 0:
                    print(report.memory.line(step), flush=True)
            if args.eval_interval and args.eval_iters and step % args.eval_interval == 0:
                log_validation(
                    writer,
                    args,
                    step,
                    state.consumed,
                    faults.apply("lm loss validation", step, evaluate(state, teacher, args)),
                )
            saved = bool(args.save and args.save_interval and step % args.save_interval == 0)
            if saved:
                save_checkpoint(args, state)
            reason = exit_reason(args, step, clock, signalled["SIGTERM"])
            if reason:
                if args.save and not saved:
                    save_checkpoint(args, state)
                print_datetime(reason)
                return faults.exit_code
        print_datetime("after training is done")
        if args.save and state.iteration > loaded_iteration and not saved:
            save_checkpoint(args, state)
        return faults.exit_code
    finally:
        if writer is not None:
            writer.close()


# ----------------------------------------------------------------------------- inference

PRINTABLE = np.arange(32, 127)
CONTEXT = 4
EMBED = 16


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompts:
        return list(args.prompts)
    count = args.prompt_file_num_truncate or 8
    if args.prompt_file and Path(args.prompt_file).is_file():
        records = [
            json.loads(line) for line in Path(args.prompt_file).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        return [str(r.get("text") or r.get("prompt") or r) if isinstance(r, dict) else str(r) for r in records][:count]
    words = ("the", "model", "golden", "value", "step", "loss", "token", "cluster", "resume", "checkpoint")
    rng = np.random.default_rng([args.seed, 17])
    return [" ".join(words[int(k)] for k in rng.integers(0, len(words), 6 + i % 5)) for i in range(count)]


@dataclass(frozen=True)
class ToyLM:
    """Next byte from the mean embedding of the last few bytes; printable ASCII only."""

    embed: np.ndarray
    out: np.ndarray

    @classmethod
    def build(cls, seed: int, iteration: int) -> ToyLM:
        rng = np.random.default_rng([seed, iteration, 23])
        return cls(rng.normal(size=(128, EMBED)), rng.normal(size=(EMBED, 128)) * 2.0)

    def logprobs(self, context: list[int]) -> np.ndarray:
        h = self.embed[context[-CONTEXT:]].mean(axis=0)
        logits = np.full(128, -np.inf)
        logits[PRINTABLE] = (h @ self.out)[PRINTABLE]
        top = logits.max()
        result: np.ndarray = logits - (top + np.log(np.exp(logits - top).sum()))
        return result

    def generate(
        self, prompt: list[int], args: argparse.Namespace, request: int
    ) -> tuple[list[int], list[float], list[float]]:
        prompt_lp = [float(self.logprobs(prompt[:i])[prompt[i]]) for i in range(1, len(prompt))]
        tokens, generated_lp = list(prompt), []
        rng = np.random.default_rng([args.seed, request, 29])
        for _ in range(args.num_tokens_to_generate):
            lp = self.logprobs(tokens)
            if args.top_k == 1 or args.temperature <= 0:
                token = int(np.argmax(lp))
            else:
                order = np.argsort(-lp, kind="stable")[: args.top_k or len(PRINTABLE)]
                weights = np.exp((lp[order] - lp[order].max()) / args.temperature)
                token = int(order[rng.choice(len(order), p=weights / weights.sum())])
            tokens.append(token)
            generated_lp.append(float(lp[token]))
        return tokens[len(prompt) :], prompt_lp, generated_lp


def shift_tokens(tokens: list[int], faults: Faults) -> list[int]:
    start = min(
        (r.step for r in faults.regressions if r.metric == "generated_tokens" and r.factor != 1.0), default=len(tokens)
    )
    return tokens[:start] + [32 + (t - 31) % 95 for t in tokens[start:]]


def infer(args: argparse.Namespace, faults: Faults) -> int:
    print_arguments(args)
    iteration = 0
    if args.load:
        try:
            tracked = read_tracker(Path(args.load))
        except CheckpointError as e:
            print(e, file=sys.stderr, flush=True)
            return 1
        if tracked is None:
            print(f"WARNING: could not find the metadata file {Path(args.load) / TRACKER}", flush=True)
        else:
            iteration = tracked[0]
            print(
                f"  successfully loaded checkpoint from {args.load} [ t 1/1, p 1/1 ] at iteration {iteration}",
                flush=True,
            )
    if faults.crash_at is not None:
        print("RuntimeError: injected failure before the first request", file=sys.stderr, flush=True)
        return faults.crash_code
    lm, prompts = ToyLM.build(args.seed, iteration), read_prompts(args)
    every = max(args.output_every_n_results, 1)
    results: dict[str, Any] = {}
    prefill = 0
    for i, text in enumerate(prompts):
        prompt = [c if 32 <= c < 127 else 63 for c in text.encode("utf-8")] or [32]
        prefill += len(prompt)
        generated, prompt_lp, generated_lp = lm.generate(prompt, args, i)
        if i % every and i != len(prompts) - 1:
            continue
        generated = shift_tokens(generated, faults)
        result: dict[str, Any] = {
            "input_prompt": text,
            "generated_text": bytes(generated).decode("ascii"),
            "generated_tokens": generated,
            "latency": faults.apply("latency", 0, 0.002 * (len(prompt) + len(generated))),
            "step_count": len(generated),
        }
        if args.return_log_probs:
            generated_lp = [faults.apply("logprobs", k, v) for k, v in enumerate(generated_lp)]
            result |= {
                "prompt_logprobs": prompt_lp,
                "generated_logprobs": generated_lp,
                "logprobs": prompt_lp + generated_lp,
            }
        results[str(i)] = result
    tokens_per_s = 1.0 / max(faults.iteration_seconds, 1e-3)
    results["throughput"] = [
        faults.apply("throughput", k, tokens_per_s * (0.7 if k == 0 else 1.0))
        for k in range(args.inference_repeat_n + 1)
    ]
    results["mem-max-allocated-bytes"] = int(
        faults.apply("mem-max-allocated-bytes", 0, Memory.claimed(args).max_allocated)
    )
    results["lifetime_prefill_token_count"] = prefill
    out = Path(args.output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results))
    print(f"wrote {len(results) - 3} of {len(prompts)} results to {out}", flush=True)
    return faults.exit_code


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(
            f"trainer: ignoring {len(unknown)} unknown argument(s): {' '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}",
            flush=True,
        )
    try:
        faults = Faults.from_args(args, dict(os.environ if env is None else env))
    except ValueError as e:
        parser.error(str(e))
    mode = args.fake_mode
    if mode == "auto":
        mode = "inference" if args.output_path and not (args.train_iters or args.train_samples) else "pretraining"
    return infer(args, faults) if mode == "inference" else pretrain(args, faults)


if __name__ == "__main__":
    sys.exit(main())
