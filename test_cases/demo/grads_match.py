"""Checkpoint consistency for the demo cases: the optimizer state (``exp_avg``) of every checkpoint
folder given must match the first one's (Megatron-LM's test_optimizer_grads_match.py compares the
same tensors of torch_dist checkpoints). Exit 0 when all match, 1 otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def state(folder: Path) -> dict[str, np.ndarray]:
    for name in ("fake_state.npz", "mp_rank_00/model_optim_rng.npz"):
        path = folder / name
        if path.is_file():
            with np.load(path) as data:
                return {k: data[k] for k in data.files if k.startswith("exp_avg_") and "sq" not in k}
    sys.exit(f"grads_match: no checkpoint in {folder}")


def main(folders: list[str]) -> int:
    if len(folders) < 2:
        print("grads_match: give at least two checkpoint folders", file=sys.stderr)
        return 2
    first = state(Path(folders[0]))
    if not first:
        print(f"grads_match: {folders[0]} holds no optimizer state", file=sys.stderr)
        return 1
    failed = 0
    for other in folders[1:]:
        theirs = state(Path(other))
        for name, tensor in first.items():
            if name not in theirs or not np.allclose(tensor, theirs[name], rtol=0, atol=0):
                print(f"grads_match: {name} of {other} differs from {folders[0]}")
                failed += 1
    print(f"grads_match: {len(folders)} checkpoints, {len(first)} tensors each, {failed} differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
