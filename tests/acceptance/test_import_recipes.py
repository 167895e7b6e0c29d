"""``ci-golden import-recipes`` end to end on the real Megatron-LM corpus and recipes, with
Megatron-LM's own recipe parser as the oracle of which jobs each scope has."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from ci_golden.lifecycle.recipes import MEGATRON_SCOPE_ALIASES

CASES = Path("tests/functional_tests/test_cases")
RECIPES = Path("tests/test_utils/recipes")
Job = tuple[str, str, str]  # (case, environment, platform)


def megatron_tree(root: Path, corpus: Path, reference: Path) -> Path:
    """A folder laid out like Megatron-LM: the corpus and the recipes where Megatron-LM has them."""
    shutil.copytree(corpus, root / CASES)
    shutil.copytree(reference / RECIPES, root / RECIPES)
    for path in [root, *root.rglob("*")]:  # the shared copies are read-only
        path.chmod(path.stat().st_mode | 0o200)
    return root


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, corpus: Path, megatron_reference: Path
) -> tuple[Path, str, str]:
    """A Megatron-LM-like tree after `import-recipes --write`, with the dry run's diff and the
    summary that the write printed."""
    from conftest import run_cli

    root = megatron_tree(tmp_path_factory.mktemp("megatron"), corpus, megatron_reference)
    dry = run_cli("import-recipes", RECIPES, cwd=root)
    assert dry.returncode == 0, dry.stderr
    wrote = run_cli("import-recipes", RECIPES, "--write", cwd=root)
    assert wrote.returncode == 0, wrote.stderr
    return root, dry.stdout, wrote.stderr


@pytest.fixture(scope="module")
def recipe_parser(megatron_reference: Path) -> t.Any:
    """Megatron-LM's recipe_parser module, imported in process from the reference checkout."""
    pytest.importorskip("click", reason="Megatron-LM's recipe parser needs click")
    path = megatron_reference / "tests/test_utils/python_scripts/recipe_parser.py"
    spec = importlib.util.spec_from_file_location("megatron_recipe_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _oracle(recipe_parser: t.Any, reference: Path, scope: str) -> set[Job]:
    workloads = recipe_parser.load_workloads(container_tag="main", scope=scope)
    return {
        (f"{w.spec['model']}/{w.spec['test_case']}", w.spec["environment"], w.spec["platforms"])
        for w in workloads
        if w.get("type") != "build"
    }


def _listed(root: Path, scope: str) -> set[Job]:
    from conftest import run_cli

    r = run_cli("list", "--format", "json", "--scope", scope, cwd=root)
    assert r.returncode == 0, r.stderr
    return {
        (c["case"], j["environment"], j["platform"])
        for c in json.loads(r.stdout)["cases"]
        for j in c["jobs"]
    }


def _recipe_scopes(reference: Path) -> set[str]:
    """Every scope value written in the recipes, and what the aliases make of them."""
    found: set[str] = set()
    for path in (reference / RECIPES).rglob("*.yaml"):
        for product in yaml.safe_load(path.read_text()).get("products") or []:
            for block in product.get("products", []):
                found.update(s for s in block.get("scope", []) if isinstance(s, str))
    return found | {MEGATRON_SCOPE_ALIASES.get(s, s) for s in found} | set(MEGATRON_SCOPE_ALIASES)


def test_every_scope_plans_exactly_what_megatron_lms_recipe_parser_gives(
    imported: tuple[Path, str, str],
    recipe_parser: t.Any,
    megatron_reference: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _, summary = imported
    folders = {
        p.parent.relative_to(root / CASES).as_posix() for p in (root / CASES).rglob("*.json")
    }
    folders |= {
        p.parent.relative_to(root / CASES).as_posix() for p in (root / CASES).rglob("*.yaml")
    }
    reported_missing = {
        line.split()[0]
        for line in summary.split("recipe cases without a folder", 1)[1]
        .split("folders no recipe names", 1)[0]
        .splitlines()[1:]
        if line.startswith("  ")
    }
    monkeypatch.chdir(megatron_reference)  # run from Megatron-LM's checkout, as its CI does
    scopes = sorted(_recipe_scopes(megatron_reference))
    assert {"mr", "L0", "L1", "L2", "L3", "nightly", "weekly", "mr-github"} <= set(scopes)
    differences = []
    planned = 0
    for scope in scopes:
        oracle = _oracle(recipe_parser, megatron_reference, scope)
        expected = {job for job in oracle if job[0] in folders}
        assert {job[0] for job in oracle - expected} <= reported_missing, scope
        got = _listed(root, scope)
        planned += len(got)
        for case in sorted({j[0] for j in expected ^ got}):
            only_megatron = sorted(j[1:] for j in expected - got if j[0] == case)
            only_ours = sorted(j[1:] for j in got - expected if j[0] == case)
            differences.append(
                f"--scope {scope}: {case}: Megatron-LM only {only_megatron}, ci-golden only "
                f"{only_ours}"
            )
    with capsys.disabled():
        print("\n".join(differences), file=sys.stderr)
    assert differences == []
    assert planned > 500  # the comparison compared something


def test_the_import_keeps_every_byte_it_does_not_own_and_a_second_run_changes_nothing(
    imported: tuple[Path, str, str], corpus: Path, cli: t.Callable[..., t.Any]
) -> None:
    root, diff, summary = imported
    changed = 0
    for path in sorted((root / CASES).rglob("model_config.yaml")):
        before = (corpus / path.relative_to(root / CASES)).read_text()
        after = path.read_text()
        if after != before:
            changed += 1
            assert after.startswith(before), path  # comments, order, quoting: all kept
            block = yaml.safe_load(after[len(before) :])
            assert list(block) == ["CI_GOLDEN"] and list(block["CI_GOLDEN"]) == ["jobs"]
    assert changed == 210
    # the real files whose keys are given twice keep both (a round trip would drop one)
    twice = root / CASES / "gpt/gpt_grpo_tp1tp2_pp1_dp8_583m_throughputtest/model_config.yaml"
    assert twice.read_text().count("--timing-log-level:") == 2
    assert "wrote 211 files" in summary
    again = cli("import-recipes", RECIPES, cwd=root)
    assert (again.returncode, again.stdout) == (0, "")
    assert again.stderr.endswith(
        "ci-golden import-recipes: nothing to change: the tree already has what the recipes say\n"
    )
    config = yaml.safe_load((root / "ci_golden.yaml").read_text())
    assert config["scope_aliases"] == {
        "mr-github-slim": "L0", "mr-github": "L1", "nightly": "L2", "weekly": "L3",
    }  # fmt: skip
    assert config["default_scope"] == "unscheduled" and "unscheduled" in config["scopes"]
    assert diff.count("\n+++ b/") == 211


def test_the_dry_run_is_a_diff_git_applies_and_names_what_does_not_match(
    imported: tuple[Path, str, str],
    tmp_path: Path,
    corpus: Path,
    megatron_reference: Path,
    cli: t.Callable[..., t.Any],
) -> None:
    root, diff, summary = imported
    fresh = megatron_tree(tmp_path / "fresh", corpus, megatron_reference)
    subprocess.run(["git", "init", "-q"], cwd=fresh, check=True)
    subprocess.run(["git", "apply"], cwd=fresh, input=diff, text=True, check=True)
    for path in (root / CASES).rglob("model_config.yaml"):
        assert (fresh / path.relative_to(root)).read_text() == path.read_text()
    assert (fresh / "ci_golden.yaml").read_text() == (root / "ci_golden.yaml").read_text()
    lines = summary.splitlines()
    assert lines[0] == (
        "ci-golden import-recipes: 49 recipe files, 623 rows, 292 cases: 210 with a folder, "
        "82 without"
    )
    assert "ci-golden import-recipes: recipe cases without a folder (82), not imported:" in lines
    assert "  bert/bert_mcore_tp2_pp2 (h100/bert.yaml)" in lines
    assert (
        "ci-golden import-recipes: folders no recipe names (62), in scope unscheduled "
        "(ci-golden list --scope unscheduled):"
    ) in lines
    assert "  gpt/gpt3_15b_8t_release" in lines
    assert (
        "  h100/mamba-static-inference.yaml::$.products[1].products[0]: unknown platform "
        "'dg  x_h100' (did you mean 'dgx_h100'?) (for "
        "hybrid/hybrid_static_inference_tp1_pp1_2B_cudagraphs, which has no folder)"
    ) in lines


def _small_tree(tmp_path: Path, recipe: str, config: str | None = None) -> Path:
    root = tmp_path / "repo"
    case = root / CASES / "gpt" / "case_a"
    case.mkdir(parents=True)
    (case / "model_config.yaml").write_text("# the case\nTEST_TYPE: regular  # kept\n")
    (case / "golden_values_dev_dgx_h100.json").write_text("{}")
    (root / RECIPES).mkdir(parents=True)
    (root / RECIPES / "gpt.yaml").write_text(recipe)
    if config is not None:
        (root / "ci_golden.yaml").write_text(config)
    return root


RECIPE = """\
type: basic
spec:
  model: gpt
  nodes: 1
  gpus: 8
  platforms: dgx_a100
products:
  - test_case: [case_a]
    products:
      - environment: [dev]
        scope: [mr, nightly]
        platforms: [dgx_h100]
      - environment: [lts]
        scope: [weekly]
"""


def test_a_small_tree_gets_jobs_per_scope_and_the_config_its_scopes(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = _small_tree(
        tmp_path, RECIPE, "# ours\nscopes: [mr, nightly]  # two\ndefault_scope: mr\n"
    )
    r = cli("import-recipes", RECIPES, "--write", cwd=root)
    assert r.returncode == 0, r.stderr
    assert (root / CASES / "gpt/case_a/model_config.yaml").read_text() == (
        "# the case\n"
        "TEST_TYPE: regular  # kept\n"
        "CI_GOLDEN:\n"
        "  jobs:\n"
        "    - {environment: dev, platform: dgx_h100, scope: [mr, L2], nodes: 1, gpus: 8}\n"
        "    - {environment: lts, platform: dgx_a100, scope: [L3], nodes: 1, gpus: 8}\n"
    )
    assert (root / "ci_golden.yaml").read_text() == (
        "# ours\n"
        "scopes: [mr, L2, L3, unscheduled] # two\n"
        "default_scope: unscheduled\n"
        "scope_aliases: {nightly: L2, weekly: L3}\n"
    )
    for scope, jobs in (("mr", ["dev"]), ("nightly", ["dev"]), ("L3", ["lts"]), ("L2", ["dev"])):
        listed = json.loads(cli("list", "--format", "json", "--scope", scope, cwd=root).stdout)
        assert [j["environment"] for c in listed["cases"] for j in c["jobs"]] == jobs, scope


@pytest.mark.parametrize(
    ("recipe", "where", "message"),
    [
        (
            RECIPE.replace("platforms: [dgx_h100]", "platforms: [dgx_h10]"),
            "$.products[0].products[0]",
            "unknown platform 'dgx_h10' (did you mean 'dgx_h100'?) for gpt/case_a; fix the "
            "recipe, or add the platform to the project config",
        ),
        (
            RECIPE.replace("scope: [weekly]", "scope: weekly"),
            "$.products[0].products[1].scope",
            "expected a list (each key is a dimension of the product)",
        ),
        (
            RECIPE.replace("      - environment: [lts]\n        scope: [weekly]\n", "")
            + "  - test_case: [case_a]\n    products:\n      - environment: [dev]\n"
            "        scope: [L1]\n        platforms: [dgx_h100]\n        nodes: [2]\n",
            "$.products[1].products[0]",
            "gpt/case_a runs dev/dgx_h100 on 2 nodes of 8 GPUs here and on 1 of 8 in "
            "gpt.yaml::$.products[0].products[0]; ci-golden keeps one job per environment and "
            "platform: make them agree",
        ),
        (
            RECIPE.replace("  gpus: 8\n", ""),
            "$.products[0].products[0]",
            "gpus must be a whole number of at least 0, got None",
        ),
    ],
)
def test_a_recipe_ci_golden_cannot_import_is_exit_2_and_nothing_is_written(
    tmp_path: Path, cli: t.Callable[..., t.Any], recipe: str, where: str, message: str
) -> None:
    root = _small_tree(tmp_path, recipe)
    before = (root / CASES / "gpt/case_a/model_config.yaml").read_text()
    r = cli("import-recipes", RECIPES, "--write", cwd=root)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"ci-golden import-recipes: error: {RECIPES / 'gpt.yaml'}::{where}: {message}\n"
    )
    assert (root / CASES / "gpt/case_a/model_config.yaml").read_text() == before
    assert not (root / "ci_golden.yaml").exists()


def test_a_config_in_pyproject_or_a_missing_folder_is_exit_2(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = _small_tree(tmp_path, RECIPE)
    r = cli("import-recipes", "nowhere", cwd=root)
    assert (r.returncode, r.stderr) == (
        2,
        "ci-golden import-recipes: error: nowhere: no such folder (give Megatron-LM's "
        "tests/test_utils/recipes)\n",
    )
    if sys.version_info < (3, 11):
        return  # reading [tool.ci_golden] needs tomllib
    (root / "pyproject.toml").write_text('[tool.ci_golden]\nscopes = ["mr"]\n')
    r = cli("import-recipes", RECIPES, cwd=root)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"ci-golden import-recipes: error: {root / 'pyproject.toml'}: import-recipes writes "
        "ci_golden.yaml, and one beside this file would replace it: move [tool.ci_golden] into "
        "ci_golden.yaml first\n"
    )
