"""Benchmark ``ci-golden validate`` against plain ``json.load`` of the same files.

Run: ``python benchmarks/validate.py [TEST_CASES_DIR]`` (default: ../shared/megatron_corpus).
Prints the best of several rounds of (a) plain ``json.load`` of every golden file, (b) the full
validation of the tree (discovery, every golden and model_config.yaml, all checks), and their
ratio (target: at most 3x, every YAML file read by libyaml); then the start time of
``ci-golden --help`` in a subprocess against ``python -c pass`` (target: under 150 ms).
Both baselines are measured in the same run, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "megatron_corpus" / "test_cases"


def best_of(rounds: int, fn: t.Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def plain_load(files: list[Path]) -> None:
    for path in files:
        try:
            with path.open(encoding="utf-8") as f:
                json.load(f)
        except ValueError:
            pass


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else DEFAULT_CORPUS
    if not root.is_dir():
        print(f"test-case tree not found: {root}", file=sys.stderr)
        return 2
    from ci_golden.goldens.discover import discover
    from ci_golden.project.config import load_config
    from ci_golden.validate.engine import validate

    with tempfile.TemporaryDirectory() as empty:  # no ci_golden.yaml there: built-in defaults
        config = load_config(cwd=Path(empty), test_cases=root)
    files = sorted(p for p in root.rglob("golden_values*.json") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    result = validate(discover(config))  # warm the validators and the file cache
    rounds = 7
    baseline = best_of(rounds, lambda: plain_load(files))
    from ci_golden.goldens.discover import _settings_from_block

    def cold_validate() -> None:
        _settings_from_block.cache_clear()  # every round reads the configs as a first run would
        validate(discover(config))

    full = best_of(rounds, cold_validate)
    print(f"tree: {root} ({len(files)} golden files, {size / 1e6:.1f} MB, {result.cases} cases)")
    print(f"findings: {result.errors} errors, {result.warnings} warnings")
    print(f"json.load baseline : {baseline * 1000:8.1f} ms")
    print(f"ci-golden validate : {full * 1000:8.1f} ms")
    print(f"ratio              : {full / baseline:8.2f}x   (target <= 3.00x)")

    env = dict(os.environ)

    def start(*args: str) -> None:
        subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env)

    python = best_of(15, lambda: start("-c", "pass"))
    cli_help = best_of(15, lambda: start("-m", "ci_golden", "--help"))
    print(f"python -c pass     : {python * 1000:8.1f} ms")
    print(
        f"ci-golden --help   : {cli_help * 1000:8.1f} ms   "
        f"(target < 150 ms; {cli_help - python:.3f} s over bare Python)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
