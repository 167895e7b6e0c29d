"""What ``--changed-since REF`` means, for ``matrix`` and ``validate`` alike: the files this
branch changed since it left ``REF``, from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ci_golden.errors import InputError

_SHALLOW_HINT = "in CI, fetch the history: fetch-depth: 0 / GIT_DEPTH: 0"


def changed_files(ref: str, cwd: Path) -> tuple[Path, ...]:
    """Files changed between the merge base of ``ref`` and HEAD and the working tree (so not
    those changed only on ``ref`` since the branch left it), plus untracked ones: absolute
    paths, sorted; deleted files included. Raises :class:`InputError` when git cannot tell."""

    def git(*args: str, hint: str = "") -> str:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
            )
        except OSError as e:
            raise InputError("--changed-since", f"cannot run git: {e}") from e
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            detail = lines[-1] if lines else f"git {args[0]} exited with {proc.returncode}"
            raise InputError("--changed-since", f"git cannot compare with {ref!r}: {detail}{hint}")
        return proc.stdout

    top = Path(git("rev-parse", "--show-toplevel").strip()).resolve()
    base = git("merge-base", ref, "HEAD", hint=f" ({_SHALLOW_HINT})").strip()
    names = git("diff", "--name-only", "--no-renames", "-z", base, "--").split("\0")
    names += git(
        "ls-files", "--others", "--exclude-standard", "-z", "--full-name", "--", ":/"
    ).split("\0")
    return tuple(sorted({top / name for name in names if name}))
