"""The command-line front end: dispatch, global options and the one error boundary."""

from __future__ import annotations

import typing as t
from pathlib import Path

from ci_golden.cli import COMMANDS


def test_every_command_has_help(cli: t.Callable[..., t.Any]) -> None:
    res = cli("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert f"    {name} " in res.stdout
        sub = cli(name, "--help")
        assert (sub.returncode, sub.stderr) == (0, ""), name
        assert sub.stdout.startswith(f"usage: ci-golden {name} ")


def test_an_unwritable_output_path_is_a_usage_error_not_a_traceback(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    (tmp_path / "file").write_text("x")
    res = cli("matrix", "--ci", "github", "--output", tmp_path / "file" / "matrix.json")
    assert (res.returncode, res.stdout) == (2, "")
    assert (
        res.stderr
        == f"ci-golden matrix: error: {tmp_path / 'file' / 'matrix.json'}: Not a directory\n"
    )
