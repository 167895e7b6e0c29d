"""lifecycle.recipes: Megatron-LM's recipe files read as Megatron-LM's own parser reads them."""

from __future__ import annotations

import importlib.util
import typing as t
from pathlib import Path

import pytest

from ci_golden.goldens.discover import discover
from ci_golden.lifecycle.recipes import JobEntry, plan_import, read_recipes
from ci_golden.project.config import load_config

Row = tuple[str, str, str, str, int, int]  # case, scope, environment, platform, nodes, gpus


@pytest.fixture(scope="module")
def recipe_parser(megatron_reference: Path) -> t.Any:
    pytest.importorskip("click", reason="Megatron-LM's recipe parser needs click")
    path = megatron_reference / "tests/test_utils/python_scripts/recipe_parser.py"
    spec = importlib.util.spec_from_file_location("megatron_recipe_parser_unit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_real_recipe_expands_to_the_rows_megatron_lms_parser_gives(
    recipe_parser: t.Any, megatron_reference: Path
) -> None:
    folder = megatron_reference / "tests/test_utils/recipes"
    n_files, rows, _ = read_recipes(folder)
    ours: dict[str, list[Row]] = {}
    for r in rows:
        ours.setdefault(r.recipe, []).append(
            (r.case, r.scope, r.environment, r.platform, r.nodes, r.gpus)
        )
    theirs: dict[str, list[Row]] = {}
    for path in sorted(folder.rglob("*.yaml")):
        for w in recipe_parser.load_and_flatten(config_path=str(path)):
            if w.get("type") == "build":
                continue
            s = w["spec"]
            theirs.setdefault(path.relative_to(folder).as_posix(), []).append(
                (f"{s['model']}/{s['test_case']}", s["scope"], s["environment"],
                 s["platforms"], s["nodes"], s["gpus"])
            )  # fmt: skip
    assert n_files == 49 and sum(map(len, theirs.values())) == 623
    assert ours == theirs  # the same rows, in the same order, file by file


RECIPE = """\
spec:
  model: gpt
  nodes: 1
  gpus: 8
  platforms: dgx_a100
  scope: spec-scope
products:
  - test_case: [first, second]
    cadence: [nightly]
    products:
      - environment: [dev, lts]
        scope: [mr, weekly]
        cadence: [pr, nightly]
  - test_case: [other]
    products:
      - environment: [dev]
        platforms: [dgx_gb200]
        nodes: [2]
        gpus: [4]
  - test_case: [ignored]
"""


def test_the_product_rules(tmp_path: Path) -> None:
    """The Cartesian product of a block's lists (cadence is not a dimension), the spec as the
    default of each key, the legacy aliases on a row's own scope only, and only the first name
    of a test_case list."""
    (tmp_path / "r.yaml").write_text(RECIPE)
    n_files, rows, notes = read_recipes(tmp_path)
    assert n_files == 1
    assert [(r.case, r.scope, r.environment, r.platform, r.nodes, r.gpus) for r in rows] == [
        ("gpt/first", "mr", "dev", "dgx_a100", 1, 8),
        ("gpt/first", "L3", "dev", "dgx_a100", 1, 8),
        ("gpt/first", "mr", "lts", "dgx_a100", 1, 8),
        ("gpt/first", "L3", "lts", "dgx_a100", 1, 8),
        ("gpt/other", "spec-scope", "dev", "dgx_gb200", 2, 4),
    ]
    assert notes == [
        "r.yaml::$.products[0].test_case: Megatron-LM's recipe parser reads only the first "
        "name, 'first'; 'second' runs nowhere"
    ]


def test_the_plan_groups_scopes_per_job_in_config_order(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes/r.yaml").write_text(RECIPE.replace("  scope: spec-scope\n", ""))
    for case in ("gpt/first", "gpt/unnamed"):
        (tmp_path / "cases" / case).mkdir(parents=True)
        (tmp_path / "cases" / case / "model_config.yaml").write_text("{}\n")
    suite = discover(load_config(cwd=tmp_path, test_cases=tmp_path / "cases"))
    plan = plan_import(suite, tmp_path / "recipes")
    assert plan.jobs == {
        "gpt/first": (
            JobEntry("dev", "dgx_a100", ("mr", "L3"), 1, 8),
            JobEntry("lts", "dgx_a100", ("mr", "L3"), 1, 8),
        )
    }
    assert plan.missing == {} and plan.unnamed == ("gpt/unnamed",)  # other: a row without scope
    assert plan.notes[-1] == (
        "r.yaml::$.products[1].products[0]: a row of 'other' has no scope: no scope runs it, so "
        "it is not imported"
    )
    assert plan.scopes == ("mr", "nightly", "L3", "unscheduled")
    assert plan.aliases == {"weekly": "L3"} and plan.default_scope == "unscheduled"
