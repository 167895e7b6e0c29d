"""Shared fixtures: the repository, the real Megatron-LM corpus, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the corpus beside the checkout; MEGATRON_CORPUS names another copy (a checkout elsewhere)
CORPUS = Path(os.environ.get("MEGATRON_CORPUS", REPO.parent / "shared" / "megatron_corpus"))
CORPUS = CORPUS / "test_cases"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real golden-value corpus beside the checkout; tests using it skip when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"Megatron-LM corpus not found at {CORPUS}")
    return CORPUS


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
