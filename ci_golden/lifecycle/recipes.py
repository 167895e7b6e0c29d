"""Megatron-LM's recipes as ci-golden's jobs: ``ci-golden import-recipes DIR``.

Megatron-LM schedules its functional tests in recipe files (``tests/test_utils/recipes/``):
each file has a ``spec`` (model, nodes, gpus, a default platform ...) and ``products``: per
test case, blocks whose keys (environment, scope, platforms, ...) each list values, expanded
as a Cartesian product into rows; a row's keys replace the spec's. A row's scope goes through
Megatron-LM's legacy aliases (``nightly`` is ``L2``, ...), and so does the ``--scope`` asked
for. Only the first name of a ``test_case`` list is read (as Megatron-LM's parser does); a
``cadence`` is not a dimension. This module reads them the same way (the import's tests compare
with Megatron-LM's own parser, scope by scope) and plans each case's ``CI_GOLDEN.jobs`` (its
folder is ``<model>/<test_case>`` below the test-case root) and the project config's scopes,
aliases and environments. Folders no recipe names get the scope ``unscheduled``, the default
scope, so that no recipe scope runs a case Megatron-LM does not run.
"""

from __future__ import annotations

import difflib
import itertools
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.goldens.discover import CASE_KEY, MODEL_CONFIG, Suite
from ci_golden.project.schema import did_you_mean
from ci_golden.project.yamledit import edit_block
from ci_golden.project.yamlio import load_yaml, read_yaml_text

# Megatron-LM's legacy scope names and the scopes they stand for
# (LEGACY_SCOPE_ALIASES in tests/test_utils/python_scripts/recipe_parser.py)
MEGATRON_SCOPE_ALIASES = {
    "mr-github-slim": "L0",
    "mr-github": "L1",
    "nightly": "L2",
    "weekly": "L3",
}
UNSCHEDULED = "unscheduled"


@dataclass(frozen=True)
class RecipeRow:
    """One row of the expansion: a job of a case in one scope. ``where`` is the place of the
    products block in its recipe file (relative to the recipes folder)."""

    recipe: str
    where: str
    case: str
    scope: str
    environment: str
    platform: str
    nodes: int
    gpus: int


@dataclass(frozen=True)
class JobEntry:
    """One entry of a case's ``CI_GOLDEN.jobs``."""

    environment: str
    platform: str
    scopes: tuple[str, ...]
    nodes: int
    gpus: int


@dataclass(frozen=True)
class ImportPlan:
    """What the recipes give: per case with a folder its jobs, the recipe cases without one
    (with the first recipe naming each), the folders no recipe names, and the project
    config's scopes, aliases, default scope and environments."""

    recipes: int
    rows: int
    jobs: dict[str, tuple[JobEntry, ...]]
    missing: dict[str, str]
    unnamed: tuple[str, ...]
    scopes: tuple[str, ...]
    aliases: dict[str, str]
    default_scope: str
    environments: dict[str, tuple[str, ...]]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileChange:
    path: Path
    old: str | None  # None: a new file
    new: str


@dataclass
class _Reader:
    folder: Path
    rows: list[RecipeRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, recipe: str, message: str, where: str) -> InputError:
        return InputError(str(self.folder / recipe), message, where)

    def read(self, path: Path) -> None:
        recipe = path.relative_to(self.folder).as_posix()
        doc = load_yaml(path)
        if not isinstance(doc, dict):
            raise self.error(recipe, "a recipe must be a mapping", "$")
        spec = doc.get("spec") or {}
        products = doc.get("products") or []
        if not isinstance(spec, dict):
            raise self.error(recipe, "spec must be a mapping", "$.spec")
        if not isinstance(products, list):
            raise self.error(recipe, "products must be a list", "$.products")
        for i, product in enumerate(products):
            if isinstance(product, dict) and "products" in product:
                self.product(recipe, spec, product, f"$.products[{i}]")

    def product(
        self, recipe: str, spec: dict[str, t.Any], product: dict[str, t.Any], where: str
    ) -> None:
        names = product.get("test_case")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise self.error(recipe, "test_case must be a list of names", f"{where}.test_case")
        if len(names) > 1:
            self.notes.append(
                f"{recipe}::{where}.test_case: Megatron-LM's recipe parser reads only the first "
                f"name, {names[0]!r}; {', '.join(map(repr, names[1:]))} runs nowhere"
            )
        blocks = product["products"]
        if not isinstance(blocks, list):
            raise self.error(recipe, "products must be a list", f"{where}.products")
        for j, block in enumerate(blocks):
            place = f"{where}.products[{j}]"
            if not isinstance(block, dict):
                raise self.error(recipe, "expected a mapping of lists", place)
            keys = [k for k in block if k != "cadence"]  # a list of triggers, not a dimension
            for k in keys:
                if not isinstance(block[k], list):
                    raise self.error(
                        recipe, "expected a list (each key is a dimension of the product)",
                        f"{place}.{k}",
                    )  # fmt: skip
            for values in itertools.product(*(block[k] for k in keys)):
                self.row(recipe, place, names[0], spec, dict(zip(keys, values, strict=True)))

    def row(
        self,
        recipe: str,
        where: str,
        test_case: str,
        spec: dict[str, t.Any],
        values: dict[str, t.Any],
    ) -> None:
        merged = {**spec, **values}
        scope = merged.get("scope")
        if "scope" in values and isinstance(scope, str):
            scope = MEGATRON_SCOPE_ALIASES.get(scope, scope)
        if not isinstance(scope, str):
            self.notes.append(
                f"{recipe}::{where}: a row of {test_case!r} has no scope: "
                "no scope runs it, so it is not imported"
            )
            return
        for key, kind in (("model", str), ("environment", str), ("platforms", str)):
            if not isinstance(merged.get(key), kind):
                raise self.error(recipe, f"{key} must be a name, got {merged.get(key)!r}", where)
        for key, least in (("nodes", 1), ("gpus", 0)):
            value = merged.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise self.error(
                    recipe,
                    f"{key} must be a whole number of at least {least}, got {value!r}",
                    where,
                )
        row = RecipeRow(
            recipe, where, f"{merged['model']}/{test_case}", scope, merged["environment"],
            merged["platforms"], merged["nodes"], merged["gpus"],
        )  # fmt: skip
        self.rows.append(row)


def read_recipes(folder: Path) -> tuple[int, list[RecipeRow], list[str]]:
    """The rows of every ``*.yaml`` recipe below ``folder`` (sorted by path), and notes on what
    Megatron-LM never runs. :class:`InputError` names the file and place of a malformed one."""
    if not folder.is_dir():
        raise InputError(
            str(folder), "no such folder (give Megatron-LM's tests/test_utils/recipes)"
        )
    reader = _Reader(folder)
    files = sorted(folder.rglob("*.yaml"))
    if not files:
        raise InputError(str(folder), "holds no *.yaml recipe")
    for path in files:
        reader.read(path)
    return len(files), reader.rows, reader.notes


def _jobs_of(rows: list[RecipeRow], folder: Path) -> dict[tuple[str, str], JobEntry]:
    """A case's rows as one job per (environment, platform) with all its scopes."""
    out: dict[tuple[str, str], JobEntry] = {}
    first: dict[tuple[str, str], RecipeRow] = {}
    for row in rows:
        key = (row.environment, row.platform)
        job = out.get(key)
        if job is None:
            out[key] = JobEntry(row.environment, row.platform, (row.scope,), row.nodes, row.gpus)
            first[key] = row
            continue
        if (job.nodes, job.gpus) != (row.nodes, row.gpus):
            other = first[key]
            raise InputError(
                str(folder / row.recipe),
                f"{row.case} runs {row.environment}/{row.platform} on {row.nodes} nodes of "
                f"{row.gpus} GPUs here and on {job.nodes} of {job.gpus} in "
                f"{other.recipe}::{other.where}; ci-golden keeps one job per environment and "
                "platform: make them agree",
                row.where,
            )
        if row.scope not in job.scopes:
            out[key] = JobEntry(
                job.environment, job.platform, (*job.scopes, row.scope), job.nodes, job.gpus
            )
    return out


def plan_import(suite: Suite, folder: Path) -> ImportPlan:
    """Read the recipes in ``folder`` and plan the jobs of every case of ``suite`` they name.

    :class:`InputError` for a recipe row of a case with a folder whose platform the project
    config does not have (with a hint), or a case whose rows disagree on nodes or GPUs.
    """
    config = suite.config
    n_recipes, rows, notes = read_recipes(folder)
    folders = {case.id for case in suite.cases}
    by_case: dict[str, list[RecipeRow]] = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    environments = {env: list(platforms) for env, platforms in config.environments.items()}
    for row in rows:
        if row.case not in folders:
            continue
        if row.platform not in config.platforms:
            raise InputError(
                str(folder / row.recipe),
                f"unknown platform {row.platform!r}"
                f"{did_you_mean(row.platform, config.platforms)} for {row.case}; fix the "
                "recipe, or add the platform to the project config",
                row.where,
            )
        platforms = environments.setdefault(row.environment, [])
        if row.platform not in platforms:
            platforms.append(row.platform)
    order = [(env, p) for env, platforms in environments.items() for p in platforms]
    jobs = {}
    missing = {}
    for case, case_rows in sorted(by_case.items()):
        if case in folders:
            listed = _jobs_of(case_rows, folder)
            jobs[case] = tuple(listed[slot] for slot in order if slot in listed)
            continue
        missing[case] = case_rows[0].recipe
        notes += [
            f"{row.recipe}::{row.where}: unknown platform {row.platform!r}"
            f"{did_you_mean(row.platform, config.platforms)} (for {case}, which has no folder)"
            for row in case_rows
            if row.platform not in config.platforms
        ]
    recipe_scopes = sorted({row.scope for row in rows})
    aliases = {
        **config.scope_aliases,
        **{
            alias: scope
            for alias, scope in MEGATRON_SCOPE_ALIASES.items()
            if scope in recipe_scopes and alias not in recipe_scopes
        },
    }
    scopes = [s for s in config.scopes if s not in aliases]
    scopes += [s for s in [*recipe_scopes, UNSCHEDULED] if s not in scopes]
    return ImportPlan(
        recipes=n_recipes,
        rows=len(rows),
        jobs=jobs,
        missing=missing,
        unnamed=tuple(sorted(folders - by_case.keys())),
        scopes=tuple(scopes),
        aliases=aliases,
        default_scope=UNSCHEDULED,
        environments={env: tuple(platforms) for env, platforms in environments.items()},
        notes=tuple(notes),
    )


def _flow(value: t.Any) -> t.Any:
    """A ruamel.yaml sequence or mapping written on one line."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = CommentedMap(value) if isinstance(value, dict) else CommentedSeq(value)
    node.fa.set_flow_style()
    return node


def _set_jobs(name: str, entries: tuple[JobEntry, ...]) -> t.Callable[[t.Any], t.Any]:
    def change(block: t.Any) -> t.Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        if block is None:
            block = CommentedMap()
        if not isinstance(block, dict):
            raise InputError(name, f"{CASE_KEY} must be a mapping", f"$.{CASE_KEY}")
        for key in ("platforms", "environments"):  # jobs says all of it
            block.pop(key, None)
        jobs = CommentedSeq(
            _flow(
                {
                    "environment": e.environment,
                    "platform": e.platform,
                    "scope": _flow(e.scopes),
                    "nodes": e.nodes,
                    "gpus": e.gpus,
                }
            )
            for e in entries
        )
        block["jobs"] = jobs
        return block

    return change


def _merge_environments(wanted: dict[str, tuple[str, ...]]) -> t.Callable[[t.Any], t.Any]:
    def change(block: t.Any) -> t.Any:
        from ruamel.yaml.comments import CommentedMap

        if not isinstance(block, dict):
            block = CommentedMap()
        for env, platforms in wanted.items():
            current = block.get(env)
            listed = current.get("platforms") if isinstance(current, dict) else None
            if isinstance(listed, list):
                listed.extend(p for p in platforms if p not in listed)
            else:
                block[env] = _flow({"platforms": _flow(platforms)})
        return block

    return change


def _replace(value: t.Any) -> t.Callable[[t.Any], t.Any]:
    return lambda old: value


def changes(plan: ImportPlan, suite: Suite) -> list[FileChange]:
    """The files the plan changes: each case's model_config.yaml (created for a folder without
    one) and the project config (``ci_golden.yaml``, created when there is none)."""
    out = []
    folders = {case.id: case for case in suite.cases}
    for case_id, entries in plan.jobs.items():
        path = folders[case_id].path / MODEL_CONFIG
        old = read_yaml_text(path) if path.exists() else None
        new = edit_block(old or "", str(path), CASE_KEY, _set_jobs(str(path), entries))
        if new != old:
            out.append(FileChange(path, old, new))
    out.extend(_config_change(plan, suite))
    return out


def _config_change(plan: ImportPlan, suite: Suite) -> list[FileChange]:
    config = suite.config
    if config.source is not None and not config.source.endswith((".yaml", ".yml")):
        raise InputError(
            config.source,
            "import-recipes writes ci_golden.yaml, and one beside this file would replace it: "
            "move [tool.ci_golden] into ci_golden.yaml first",
        )
    path = Path(config.source) if config.source else config.root / "ci_golden.yaml"
    old = read_yaml_text(path) if config.source else None
    text = old if old is not None else (
        "# ci-golden's project config; scopes, aliases and environments from Megatron-LM's\n"
        "# recipes (ci-golden import-recipes).\n"
    )  # fmt: skip
    name = str(path)
    default_root = config.root / "tests/functional_tests/test_cases"
    if old is None and config.test_cases.resolve() != default_root.resolve():
        rel = Path(_relative(config.test_cases, config.root))
        text = edit_block(text, name, "test_cases", _replace(rel.as_posix()))
    if tuple(config.scopes) != plan.scopes:
        text = edit_block(text, name, "scopes", _replace(_flow(plan.scopes)))
    if dict(config.scope_aliases) != plan.aliases:
        text = edit_block(text, name, "scope_aliases", _replace(_flow(plan.aliases)))
    if config.default_scope != plan.default_scope:
        text = edit_block(text, name, "default_scope", _replace(plan.default_scope))
    if config.environments != plan.environments:
        text = edit_block(text, name, "environments", _merge_environments(plan.environments))
    return [FileChange(path, old, text)] if text != old else []


def _relative(path: Path, root: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), root.resolve())


def render_diff(change_list: t.Sequence[FileChange], base: Path) -> str:
    """A unified diff of the changes (``git apply`` takes it), paths relative to ``base``."""
    out: list[str] = []
    for c in change_list:
        rel = Path(_relative(c.path, base)).as_posix()
        old = (c.old or "").splitlines(keepends=True)
        out += difflib.unified_diff(
            old,
            c.new.splitlines(keepends=True),
            "/dev/null" if c.old is None else f"a/{rel}",
            f"b/{rel}",
        )
    return "".join(out)


def render_summary(plan: ImportPlan, change_list: t.Sequence[FileChange], *, written: bool) -> str:
    """What the import found and did, for people: counts, the recipe cases without a folder,
    the folders no recipe names, and notes on rows Megatron-LM never runs."""
    cases = len(plan.jobs) + len(plan.missing)
    lines = [
        f"{plan.recipes} recipe files, {plan.rows} rows, {cases} cases: {len(plan.jobs)} with a "
        f"folder, {len(plan.missing)} without",
    ]
    if plan.missing:
        lines.append(f"recipe cases without a folder ({len(plan.missing)}), not imported:")
        lines += [f"  {case} ({recipe})" for case, recipe in plan.missing.items()]
    if plan.unnamed:
        lines.append(
            f"folders no recipe names ({len(plan.unnamed)}), in scope {UNSCHEDULED} "
            f"(ci-golden list --scope {UNSCHEDULED}):"
        )
        lines += [f"  {case}" for case in plan.unnamed]
    if plan.notes:
        lines.append(f"notes ({len(plan.notes)}):")
        lines += [f"  {note}" for note in plan.notes]
    n = len(change_list)
    if not n:
        lines.append("nothing to change: the tree already has what the recipes say")
    elif written:
        lines.append(f"wrote {n} files")
    else:
        lines.append(f"{n} files to change (the diff above); nothing written: --write applies it")
    return "".join(
        f"ci-golden import-recipes: {line}\n" if not line.startswith("  ") else line + "\n"
        for line in lines
    )
