"""Discovery: cases, golden names, jobs and unreferenced goldens, on real trees."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest

from ci_golden.goldens.discover import (
    GoldenName,
    case_jobs,
    discover,
    golden_name,
    is_golden_name,
    unreferenced_goldens,
)
from ci_golden.project.config import load_config

GOLDEN = '{"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": 1.0}}}'


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cases_are_folders_with_a_config_or_goldens(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "cases",
        {
            "gpt/a/model_config.yaml": "",
            "gpt/b/golden_values_dev_dgx_h100.json": GOLDEN,
            "gpt/b/notes.txt": "",
            "moe/deep/er/c/model_config.yaml": "",
            "moe/deep/er/c/golden_values_lts.json": GOLDEN,
            "moe/deep/er/c/golden_values.json": GOLDEN,
            "empty/readme.md": "",
            ".hidden/model_config.yaml": "",
        },
    )
    suite = discover(load_config(cwd=tmp_path, test_cases=root))
    assert [(c.id, c.has_config, c.golden_files) for c in suite.cases] == [
        ("gpt/a", True, ()),
        ("gpt/b", False, ("golden_values_dev_dgx_h100.json",)),
        ("moe/deep/er/c", True, ("golden_values.json", "golden_values_lts.json")),
    ]
    assert suite.problems == ()
    assert suite.case("gpt/a").path == root / "gpt/a"


def test_golden_names() -> None:
    assert golden_name() == "golden_values.json"
    assert golden_name("dev") == "golden_values_dev.json"
    assert golden_name("dev", "dgx_h100") == "golden_values_dev_dgx_h100.json"
    assert GoldenName.parse("golden_values_lts_dgxa100_dracooci.json") == GoldenName(
        "golden_values_lts_dgxa100_dracooci.json", "lts", "dgxa100_dracooci"
    )
    assert GoldenName.parse("golden_values.json") == GoldenName("golden_values.json", None, None)
    assert GoldenName.parse("golden_values-dev.json") is None
    assert not is_golden_name("golden_values_dev.json.bak")


def test_jobs_resolve_exact_then_environment_then_generic(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "cases",
        {
            "c/model_config.yaml": "",
            "c/golden_values_dev_dgx_h100.json": GOLDEN,
            "c/golden_values_dev.json": GOLDEN,
            "c/golden_values.json": GOLDEN,
        },
    )
    config = load_config(cwd=tmp_path, test_cases=root)
    case = discover(config).case("c")
    jobs = [
        (j.environment, j.platform, j.golden.name if j.golden else None)
        for j in case_jobs(case, config)
    ]
    assert jobs == [
        ("dev", "dgx_h100", "golden_values_dev_dgx_h100.json"),
        ("dev", "dgx_a100", "golden_values_dev.json"),
        ("dev", "dgx_gb200", "golden_values_dev.json"),
        ("lts", "dgx_a100", "golden_values.json"),
    ]
    assert unreferenced_goldens(case, config) == []


def test_unreferenced_goldens_say_why(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "cases",
        {
            "c/model_config.yaml": "",
            "c/golden_values_lts_dgx_a100.json": GOLDEN,
            "c/golden_values_lts.json": GOLDEN,
            "c/golden_values_lts_dgx_a100_2nd.json": GOLDEN,
            "c/golden_values_lts_dgxa100_dracooci.json": GOLDEN,
            "c/golden_values_lts_dgx_h100.json": GOLDEN,
        },
    )
    config = load_config(cwd=tmp_path, test_cases=root)
    case = discover(config).case("c")
    assert [(u.path.name, u.kind) for u in unreferenced_goldens(case, config)] == [
        ("golden_values_lts.json", "shadowed"),
        ("golden_values_lts_dgx_a100_2nd.json", "second-phase"),
        ("golden_values_lts_dgx_h100.json", "not-in-environment"),
        ("golden_values_lts_dgxa100_dracooci.json", "unknown-platform"),
    ]


def test_with_ci_golden_jobs_a_case_has_exactly_the_jobs_listed(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = tree(
        tmp_path / "cases",
        {
            "c/model_config.yaml": (
                "CI_GOLDEN:\n  jobs:\n"
                "    - {environment: dev, platform: dgx_h100, scope: [mr]}\n"
                "    - {environment: dev, platform: dgx_gb200, scope: [nightly]}\n"
            ),
            "c/golden_values_dev_dgx_h100.json": GOLDEN,
            "c/golden_values_dev_dgx_a100.json": GOLDEN,
            "c/golden_values_lts.json": GOLDEN,
            "c/golden_values.json": GOLDEN,
            "c/golden_values_dev_dgx_h100_2nd.json": GOLDEN,
        },
    )
    config = load_config(cwd=tmp_path, test_cases=root)
    case = discover(config).case("c")
    assert [
        (j.environment, j.platform, j.golden and j.golden.name) for j in case_jobs(case, config)
    ] == [
        ("dev", "dgx_h100", "golden_values_dev_dgx_h100.json"),
        ("dev", "dgx_gb200", "golden_values.json"),
    ]
    assert [(u.path.name, u.kind, u.reason) for u in unreferenced_goldens(case, config)] == [
        (
            "golden_values_dev_dgx_a100.json",
            "not-listed",
            "CI_GOLDEN.jobs has no job in environment 'dev' on platform 'dgx_a100'",
        ),
        ("golden_values_dev_dgx_h100_2nd.json", "second-phase",
         "second-phase golden of a resume run; no job reads it"),
        ("golden_values_lts.json", "not-listed", "CI_GOLDEN.jobs has no job in environment 'lts'"),
    ]  # fmt: skip
    r = cli("--test-cases", "cases", "validate", cwd=tmp_path)
    assert (r.returncode, r.stdout.splitlines()[0]) == (
        0,
        "cases/c/golden_values_dev_dgx_a100.json: CG136 warning: unreferenced: CI_GOLDEN.jobs "
        "has no job in environment 'dev' on platform 'dgx_a100'",
    )


def test_opt_in_platform_only_for_cases_that_ask(tmp_path: Path) -> None:
    (tmp_path / "ci_golden.yaml").write_text(
        "test_cases: cases\nplatforms:\n  dgx_h100: {gpu: H100}\n  cpu: {gpu: null, opt_in: true}\n"
        "environments:\n  dev: {platforms: [dgx_h100, cpu]}\n"
    )
    root = tree(
        tmp_path / "cases",
        {
            "plain/model_config.yaml": "",
            "plain/golden_values_dev.json": GOLDEN,
            "cpu/model_config.yaml": "CI_GOLDEN:\n  platforms: [cpu]\n",
        },
    )
    config = load_config(cwd=tmp_path)
    suite = discover(config)
    assert [(j.platform, j.golden) for j in case_jobs(suite.case("plain"), config)] == [
        ("dgx_h100", root / "plain" / "golden_values_dev.json")
    ]
    assert [(j.platform, j.golden) for j in case_jobs(suite.case("cpu"), config)] == [("cpu", None)]


def test_tree_problems(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "cases",
        {"my case/model_config.yaml": "", "ok/model_config.yaml": "", "elsewhere/x.txt": ""},
    )
    os.symlink(root / "ok", root / "linked")
    os.symlink("nowhere", root / "ok" / "golden_values_dev.json")
    suite = discover(load_config(cwd=tmp_path, test_cases=root))
    assert [c.id for c in suite.cases] == ["ok"]
    assert [(p.path.relative_to(root).as_posix(), p.code, p.message) for p in suite.problems] == [
        ("linked", "CG151", "folder symlink not followed; move the case into the tree"),
        ("my case", "CG150", "case folder name has whitespace; it cannot be a job name"),
        ("ok/golden_values_dev.json", "CG151", "broken symlink or symlink loop"),
    ]


def test_missing_root_names_the_fix(tmp_path: Path) -> None:
    from ci_golden.errors import InputError

    with pytest.raises(InputError, match=r"test-case folder not found \(set test_cases"):
        discover(load_config(cwd=tmp_path, test_cases=tmp_path / "absent"))


def test_list_command(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    tree(tmp_path / "cases", {"m/c/model_config.yaml": "", "m/c/golden_values_lts.json": GOLDEN})
    res = cli("--test-cases", "cases", "list", cwd=tmp_path)
    assert res.returncode == 0
    assert res.stdout.splitlines() == [
        "m/c",
        "  lts      dgx_a100     golden_values_lts.json",
        "1 cases, 1 jobs",
    ]
