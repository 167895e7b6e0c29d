"""`ci-golden prune` on a copy of real corpus cases (built-in Megatron-LM config)."""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

import pytest

GPT = "gpt/gpt3_mcore_te_tp1_pp1_resume_torch_dist_dist_optimizer"
MOE = "moe/gpt3_moe_mcore_te_tp4_ep2_etp2_pp2_resume_torch_dist_dist_optimizer"
CLEAN = "gpt/gpt3_mcore_tp1_pp2_fp16"

EXPECTED = [
    (
        f"{GPT}/golden_values_dev_dgx_gb200_2nd.json",
        "second-phase golden of a resume run; no job reads it",
    ),
    (
        f"{GPT}/golden_values_dev_dgx_h100_2nd.json",
        "second-phase golden of a resume run; no job reads it",
    ),
    (f"{GPT}/golden_values_lts.json", "shadowed: every lts job has a more specific golden"),
    (
        f"{GPT}/golden_values_lts_dgx_a100_2nd.json",
        "second-phase golden of a resume run; no job reads it",
    ),
    (
        f"{GPT}/golden_values_lts_dgxa100_dracooci-ord.json",
        "unknown platform 'dgxa100_dracooci-ord' (an old cluster name?)",
    ),
    (
        f"{GPT}/golden_values_lts_dgxa100_dracooci.json",
        "unknown platform 'dgxa100_dracooci' (an old cluster name?)",
    ),
    (
        f"{MOE}/golden_values_dev_dgx_h100_2nd.json",
        "second-phase golden of a resume run; no job reads it",
    ),
    (
        f"{MOE}/golden_values_dev_dgxh100_dgxc.json",
        "unknown platform 'dgxh100_dgxc' (an old cluster name?)",
    ),
]


@pytest.fixture()
def tree(corpus: Path, tmp_path: Path) -> Path:
    """tmp/cases/<three real cases>, no ci_golden.yaml: the built-in config applies."""
    for case in (GPT, MOE, CLEAN):
        shutil.copytree(corpus / case, tmp_path / "cases" / case)
    shutil.copy(corpus.parent / "LICENSE.Megatron-LM.txt", tmp_path / "cases")
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_lists_each_unreferenced_golden_with_its_reason_and_deletes_nothing(
    tree: Path, cli: t.Any
) -> None:
    before = snapshot(tree)
    result = cli("prune", "--test-cases", "cases", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        *(f"would delete cases/{path}: {reason}" for path, reason in EXPECTED),
        "8 unreferenced golden file(s); run with --apply to delete them",
    ]
    assert snapshot(tree) == before


def test_apply_deletes_exactly_the_listed_files(tree: Path, cli: t.Any) -> None:
    before = snapshot(tree)
    result = cli("prune", "--test-cases", "cases", "--apply", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        *(f"deleted cases/{path}: {reason}" for path, reason in EXPECTED),
        "8 unreferenced golden file(s) deleted",
    ]
    gone = {f"cases/{path}" for path, _ in EXPECTED}
    assert snapshot(tree) == {k: v for k, v in before.items() if k not in gone}

    again = cli("prune", "--test-cases", "cases", "--apply", cwd=tree)
    assert (again.returncode, again.stdout) == (0, "no unreferenced golden files\n")


def test_a_case_that_cannot_be_judged_blocks_every_deletion(tree: Path, cli: t.Any) -> None:
    config = tree / "cases" / CLEAN / "model_config.yaml"
    config.write_text(config.read_text() + "CI_GOLDEN:\n  platforms: [dgx_h10]\n")
    before = snapshot(tree)
    result = cli("prune", "--test-cases", "cases", "--apply", cwd=tree)
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"would delete cases/{EXPECTED[0][0]}: {EXPECTED[0][1]}"
    assert lines[-2:] == [
        f"cannot judge: cases/{CLEAN}/model_config.yaml: unknown platform 'dgx_h10'"
        " (did you mean 'dgx_h100'?)",
        "8 unreferenced golden file(s) found; fix the errors above before pruning",
    ]
    assert snapshot(tree) == before
