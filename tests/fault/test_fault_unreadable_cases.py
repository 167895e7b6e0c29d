"""`list` and `matrix` never leave a case out silently: a case that validate cannot read (an
unusable folder name, a config that is not UTF-8 or not a mapping, a symlink loop) makes them
exit 2 naming it. Before, each of these exited 0 with the case missing from the matrix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import CliResult, run_cli

COMMANDS = {
    "list": ["list"],
    "github": ["matrix", "--ci", "github"],
    "gitlab": ["matrix", "--ci", "gitlab"],
}


@pytest.fixture()
def tree(tmp_path: Path, repo_root: Path) -> Path:
    shutil.copy(repo_root / "ci_golden.yaml", tmp_path / "ci_golden.yaml")
    shutil.copytree(repo_root / "test_cases" / "demo", tmp_path / "test_cases" / "demo")
    return tmp_path


def copy_case(tree: Path, name: str | bytes) -> Path:
    src = tree / "test_cases" / "demo" / "regular"
    dest = os.path.join(os.fsencode(src.parent), os.fsencode(name))
    shutil.copytree(os.fsencode(src), dest)
    return Path(os.fsdecode(dest))


def refused(tree: Path, command: str) -> str:
    res: CliResult = run_cli(*COMMANDS[command], cwd=tree, timeout=60)
    assert (res.returncode, res.stdout) == (2, ""), res
    assert res.stderr.count("\n") == 1, res.stderr
    prefix = "ci-golden list: error: " if command == "list" else "ci-golden matrix: error: "
    assert res.stderr.startswith(prefix)
    return res.stderr[len(prefix) : -1]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("name", "shown", "why"),
    [
        ("my case", "my case", "has whitespace"),
        ("tab\tcase", "tab\tcase", "has whitespace"),
        ("bell\x07case", "bell\x07case", "has a control character"),
        (b"latin\xe9", "latin\\udce9", "is not UTF-8"),
    ],
)
def test_an_unusable_folder_name(
    tree: Path, command: str, name: str | bytes, shown: str, why: str
) -> None:
    path = copy_case(tree, name)
    shown_path = str(path.parent / shown) if isinstance(name, bytes) else str(path)
    assert refused(tree, command) == (
        f"{shown_path}: CG150: case folder name {why}; it cannot be a job name"
    )


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"- a\n- b\n", "::$: model_config.yaml must be a mapping"),
        (b"just text\n", "::$: model_config.yaml must be a mapping"),
        (b"ENV_VARS: {a: 1}\n\xff\xfe\n", ": not UTF-8 (byte 17)"),
        (b"[unclosed\n", "::line 2 column 1: invalid YAML: did not find expected ',' or ']'"),
    ],
)
def test_a_config_that_cannot_be_read(tree: Path, command: str, text: bytes, message: str) -> None:
    case = copy_case(tree, "unreadable")  # its goldens alone would give it jobs
    (case / "model_config.yaml").write_bytes(text)
    assert refused(tree, command) == f"{case / 'model_config.yaml'}{message}"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_symlink_loop(tree: Path, command: str) -> None:
    loop = tree / "test_cases" / "demo" / "regular" / "golden_values_dev_dgx_h100.json"
    loop.symlink_to(loop.name)
    assert refused(tree, command) == f"{loop}: CG151: broken symlink or symlink loop"


def test_every_problem_is_counted_and_validate_lists_them(tree: Path) -> None:
    copy_case(tree, "a b")
    copy_case(tree, "c d")
    assert refused(tree, "list") == (
        f"{tree}/test_cases/demo/a b: CG150: case folder name has whitespace; it cannot be a "
        "job name (and 1 more; `ci-golden validate` lists them)"
    )
    res = run_cli("validate", cwd=tree)
    assert res.returncode == 1
    assert res.stdout.count(": CG150 error: ") == 2


@pytest.mark.parametrize(
    "text",
    [
        b"---\nENV_VARS: {a: 1}\n",  # not plainly a mapping at a glance: parsed in full
        b"# comment\n\nMODEL_ARGS:\n  --train-iters: 50\n",
        b'"quoted key": 1\n',
        b"",
    ],
)
def test_configs_that_are_mappings_still_plan(tree: Path, text: bytes) -> None:
    case = copy_case(tree, "other")
    (case / "model_config.yaml").write_bytes(text)
    res = run_cli("list", cwd=tree, timeout=60)
    assert res.returncode == 0, res
    assert "demo/other\n" in res.stdout


def test_validate_prints_a_name_that_is_not_utf8(tree: Path) -> None:
    copy_case(tree, b"latin\xe9")
    res = run_cli("validate", cwd=tree, timeout=60)
    assert res.returncode == 1
    assert (
        "test_cases/demo/latin\\udce9: CG150 error: case folder name is not UTF-8; it cannot be "
        "a job name"
    ) in res.stdout.splitlines()
