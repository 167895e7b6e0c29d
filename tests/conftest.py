"""Shared fixtures: the repository, the real Megatron-LM corpus, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared() -> Path:
    """``shared/`` beside the checkout; for a git worktree elsewhere, beside the main checkout."""
    here = REPO.parent / "shared"
    if here.is_dir():
        return here
    proc = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    common = Path(proc.stdout.strip())
    return common.parent.parent / "shared" if proc.returncode == 0 and common.name else here


SHARED = _shared()
CORPUS = SHARED / "megatron_corpus" / "test_cases"
MEGATRON_REFERENCE = SHARED / "megatron_reference"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real golden-value corpus beside the checkout; tests using it skip when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"Megatron-LM corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def megatron_reference() -> Path:
    """Megatron-LM's own CI code beside the checkout (read-only, used as an oracle); tests using
    it skip when it is absent."""
    if not (MEGATRON_REFERENCE / "tests" / "test_utils" / "recipes").is_dir():
        pytest.skip(f"Megatron-LM reference not found at {MEGATRON_REFERENCE}")
    return MEGATRON_REFERENCE


class CliResult(t.NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: t.Mapping[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> CliResult:
    """Run ``python -m ci_golden ARGS`` as a real subprocess."""
    full_env = dict(os.environ)
    if env is not None:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "ci_golden", *map(str, args)],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture()
def cli() -> t.Callable[..., CliResult]:
    return run_cli
