"""Adopting ci-golden on a real tree, as the README's "Adopting ci-golden on an existing tree"
says: a git repository laid out like Megatron-LM (the real corpus and recipes, and a file of
library code), taken through every step from the recipes to the first pull requests."""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import yaml
from test_import_recipes import CASES, RECIPES, megatron_tree
from test_workflows import RUN_JOBS, _github_plan_step

THROUGHPUT = "gpt/gpt_grpo_tp1tp2_pp1_dp8_583m_throughputtest"  # its config gives a key twice


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "init.defaultBranch=main", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def _jobs(cli: t.Callable[..., t.Any], root: Path, *args: str) -> set[tuple[str, str, str]]:
    r = cli("list", "--format", "json", *args, cwd=root)
    assert r.returncode == 0, r.stderr
    return {
        (c["case"], j["environment"], j["platform"])
        for c in json.loads(r.stdout)["cases"]
        for j in c["jobs"]
    }


def test_a_megatron_tree_adopted_in_one_afternoon(
    tmp_path: Path, corpus: Path, megatron_reference: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = megatron_tree(tmp_path / "Megatron-LM", corpus, megatron_reference)
    (root / "megatron/core").mkdir(parents=True)
    (root / "megatron/core/x.py").write_text("LAYERS = 24\n")
    (root / "README.md").write_text("# Megatron-LM\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "the tree as it is")

    # 1. the recipes say which case runs in which scope, where, on how many nodes
    r = cli("import-recipes", RECIPES, "--write", cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == "ci-golden import-recipes: wrote 211 files"

    # 2. today's findings are accepted; the two configs that give a key twice among them
    assert cli("validate", cwd=root).returncode == 1
    r = cli("validate", "--write-baseline", cwd=root)
    assert r.returncode == 0, r.stderr
    baseline = json.loads((root / ".ci-golden-baseline.json").read_text())["findings"]
    assert {e["file"] for e in baseline if e["code"] == "CG146"} == {
        f"{CASES}/{THROUGHPUT}/model_config.yaml",
        f"{CASES}/{THROUGHPUT}_github/model_config.yaml",
    }
    r = cli("validate", cwd=root)
    assert r.returncode == 0, r.stdout
    assert r.stdout.splitlines()[-1].startswith(
        "ok: 1048 files in 272 cases checked, no new problem found; "
    )
    git(root, "add", ".")
    git(root, "commit", "-qm", "adopt ci-golden")

    # such a case is planned in its scope, and its run names the key to fix (never a silent
    # drop from the matrix, never a run with a value picked by chance)
    assert (THROUGHPUT, "dev", "dgx_h100") in _jobs(cli, root, "--scope", "mr-broken")
    r = cli("run", THROUGHPUT, "--environment", "dev", "--platform", "dgx_h100", "--dry-run",
            cwd=root)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.endswith(
        "line 51 column 3: invalid YAML: duplicate key '--timing-log-level' on lines 22 and 51 "
        "with different values (0 and 1): keep the one meant\n"
    )

    # 3. a pull request changing library code runs every case of the scope
    mr = _jobs(cli, root, "--scope", "mr")
    assert len(mr) > 100
    git(root, "checkout", "-qb", "core-change")
    (root / "megatron/core/x.py").write_text("LAYERS = 32\n")
    git(root, "commit", "-qam", "more layers")
    r = cli("list", "--format", "json", "--scope", "mr", "--changed-since", "main", "--explain",
            cwd=root)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _jobs(cli, root, "--scope", "mr", "--changed-since", "main") == mr
    assert r.stderr.splitlines()[0].endswith(
        "scope mr; megatron/core/x.py changed since main: outside the test-case root and not in "
        "ignore_paths"
    )

    # 4. a pull request changing one golden runs that case alone
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-qb", "golden-change")
    case = "gpt/gpt3_mcore_te_tp1_pp1_dist_optimizer_fim_dataset"
    golden = root / CASES / case / "golden_values_dev_dgx_h100.json"
    values = json.loads(golden.read_text())
    golden.write_text(json.dumps(values, indent=4) + "\n")
    git(root, "commit", "-qam", "refresh one golden")
    changed = _jobs(cli, root, "--scope", "mr", "--changed-since", "main")
    assert changed == {job for job in mr if job[0] == case} and changed

    # 5. a pull request changing the documentation runs nothing
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-qb", "docs")
    (root / "README.md").write_text("# Megatron-LM\n\nBetter words.\n")
    git(root, "commit", "-qam", "docs")
    assert _jobs(cli, root, "--scope", "mr", "--changed-since", "main") == set()

    # 6. the nightly plan runs in the shipped workflow as it is
    git(root, "checkout", "-q", "main")
    proc, outputs = _github_plan_step(tmp_path, root, scope="nightly")
    assert proc.returncode == 0, proc.stderr
    nightly = _jobs(cli, root, "--scope", "nightly")
    counts = [int(outputs[f"matrix_{k}_count"]) for k in range(1, len(RUN_JOBS) + 1)]
    assert sum(counts) == int(outputs["matrix_count"]) == len(nightly) > 100
    assert all(n <= 256 for n in counts)
    planned = json.loads((root / "ci-golden-plan/matrix.json").read_text())["include"]
    assert {(e["case"], e["environment"], e["platform"]) for e in planned} == nightly
    gb200 = [e for e in planned if e["platform"] == "dgx_gb200" and e["case"].startswith("gpt/")]
    assert gb200 and all((e["nodes"], e["gpus"]) == (2, 4) for e in gb200)
    wf = yaml.safe_load(
        (Path(__file__).parents[2] / ".github/workflows/golden-tests.yml").read_text()
    )
    assert wf[True]["schedule"] and "nightly" in wf["jobs"]["plan"]["steps"][2]["env"]["SCOPE"]
