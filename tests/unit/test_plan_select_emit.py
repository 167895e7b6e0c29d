"""ci-golden matrix: expansion, selection, emitters and limits, on real trees and the real
corpus."""

from __future__ import annotations

import json
import os
import re
import subprocess
import typing as t
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_golden.errors import ConfigError, UsageError
from ci_golden.goldens.discover import discover, unreferenced_goldens
from ci_golden.plan import emit
from ci_golden.plan.select import (
    ENTRY_KEYS,
    CaseJobs,
    Filters,
    JobList,
    JobRow,
    MatrixJob,
    Selection,
    glob_match,
    job_id,
    select,
)
from ci_golden.project.config import load_config

CONFIG = """\
test_cases: test_cases
platforms:
  h100: {gpu: H100, gpus_per_node: 8, github: {runs-on: [self-hosted, linux, h100]}, \
gitlab: {tags: [h100]}}
  a100: {gpu: A100, gpus_per_node: 4, github: {runs-on: [self-hosted, linux, a100]}, \
gitlab: {tags: [a100]}}
  cpu: {gpu: null, gpus_per_node: 0, opt_in: true, github: {runs-on: ubuntu-latest}, \
gitlab: {tags: []}}
environments:
  dev: {platforms: [h100, a100, cpu]}
  lts: {platforms: [a100]}
scopes: [mr, nightly]
default_scope: mr
global_paths: [src/**]
defaults: {n_repeat: 1, time_limit: 1200, nodes: 1}
"""

CASES: dict[str, dict[str, str]] = {
    "model/alpha": {
        "golden_values_dev_h100.json": "{}",
        "golden_values_lts.json": "{}",
        "model_config.yaml": "TEST_TYPE: regular\n",
    },
    "model/beta": {
        "golden_values.json": "{}",
        "model_config.yaml": (
            "CI_GOLDEN:\n  scope: nightly\n  n_repeat: 3\n  time_limit: 600\n  nodes: 2\n"
        ),
    },
    "other/alpha": {"golden_values_dev_a100.json": "{}"},
    "demo/cpu_case": {
        "golden_values_dev_cpu.json": "{}",
        "model_config.yaml": "CI_GOLDEN:\n  platforms: [cpu]\n",
    },
    "empty": {"model_config.yaml": "TEST_TYPE: regular\n"},
}


def make_project(
    root: Path, config: str = CONFIG, cases: dict[str, dict[str, str]] = CASES
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ci_golden.yaml").write_text(config)
    for case, files in cases.items():
        folder = root / "test_cases" / case
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "train.py").write_text("print('train')\n")
    (root / "README.md").write_text("# demo\n")
    return root


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def _select(project: Path, **kw: t.Any) -> Selection:
    config = load_config(cwd=project)
    return select(discover(config), Filters(**kw))


def _keys(sel: Selection) -> list[tuple[str, str, str]]:
    return [(j.case, j.environment, j.platform) for j in sel.jobs]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "init.defaultBranch=main", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


# ---- expansion -----------------------------------------------------------------------------


def test_expand_gives_every_job_with_settings_from_case_then_config(project: Path) -> None:
    suite = discover(load_config(cwd=project))
    by_scope = [j for scope in ("mr", "nightly") for j in select(suite, Filters(scope=scope)).jobs]
    jobs = sorted(by_scope, key=lambda j: j.case)  # stable: config order within a case
    assert [(j.case, j.environment, j.platform, j.golden) for j in jobs] == [
        ("demo/cpu_case", "dev", "cpu", "test_cases/demo/cpu_case/golden_values_dev_cpu.json"),
        ("model/alpha", "dev", "h100", "test_cases/model/alpha/golden_values_dev_h100.json"),
        ("model/alpha", "lts", "a100", "test_cases/model/alpha/golden_values_lts.json"),
        ("model/beta", "dev", "h100", "test_cases/model/beta/golden_values.json"),
        ("model/beta", "dev", "a100", "test_cases/model/beta/golden_values.json"),
        ("model/beta", "lts", "a100", "test_cases/model/beta/golden_values.json"),
        ("other/alpha", "dev", "a100", "test_cases/other/alpha/golden_values_dev_a100.json"),
    ]
    beta = next(j for j in jobs if j.case == "model/beta" and j.platform == "h100")
    assert beta.entry() == {
        "id": "model__beta__dev__h100",
        "name": "beta dev h100",
        "case": "model/beta",
        "environment": "dev",
        "platform": "h100",
        "runs-on": ["self-hosted", "linux", "h100"],
        "golden": "test_cases/model/beta/golden_values.json",
        "n_repeat": 3,
        "time_limit": 600,
        "nodes": 2,
        "gpus": 8,
    }
    alpha = next(j for j in jobs if j.case == "model/alpha" and j.platform == "a100")
    assert (alpha.name, alpha.n_repeat, alpha.time_limit, alpha.nodes, alpha.gpus) == (
        "model/alpha lts a100", 1, 1200, 1, 4,
    )  # fmt: skip
    assert (
        list(alpha.entry())
        == list(ENTRY_KEYS)
        == list(emit.json.loads(emit.render_github(Selection((alpha,))))["include"][0])
    )


def test_a_selected_job_is_a_plain_immutable_matrix_job(project: Path) -> None:
    job = _select(project).jobs[0]
    assert type(job) is MatrixJob
    assert MatrixJob(*job) == job and hash(MatrixJob(*job)) == hash(job)
    assert job._replace(n_repeat=2) == MatrixJob(**{**job._asdict(), "n_repeat": 2})
    with pytest.raises(AttributeError):
        job.n_repeat = 2  # type: ignore[misc]


def test_opt_in_platform_only_for_cases_that_ask_and_a_job_may_have_no_golden_yet(
    project: Path,
) -> None:
    (project / "test_cases/demo/cpu_case/model_config.yaml").write_text(
        "CI_GOLDEN:\n  platforms: [cpu, a100]\n"
    )
    sel = _select(project, cases=("demo/*",))
    assert [(j.environment, j.platform, j.golden) for j in sel.jobs] == [
        ("dev", "a100", None),
        ("dev", "cpu", "test_cases/demo/cpu_case/golden_values_dev_cpu.json"),
        ("lts", "a100", None),
    ]
    cpu = sel.jobs[1]
    assert cpu.runs_on == ("ubuntu-latest",) and cpu.tags == () and cpu.gpus == 0


def test_ids_and_names_are_stable_unique_and_short() -> None:
    assert job_id("gpt/x", "dev", "dgx_h100") == "gpt__x__dev__dgx_h100"
    odd = job_id("gpt/a b:c", "dev", "h100")
    assert (
        odd.startswith("gpt__a_b_c__dev__h100-") and len(odd) == len("gpt__a_b_c__dev__h100-") + 8
    )
    assert job_id("gpt/a b:c", "dev", "h100") == odd and job_id("gpt/a_b_c", "dev", "h100") != odd
    from ci_golden.plan.select import MAX_ID, job_name

    long_case = "m/" + "x" * 400
    assert len(job_id(long_case, "dev", "h100")) == MAX_ID
    name = job_name("x" * 400, long_case, "dev", "h100")
    assert len(name) == 255 and name.endswith(" dev h100")
    assert name != job_name("x" * 400, long_case + "y", "dev", "h100")


# ---- selection -----------------------------------------------------------------------------


def test_scope_default_and_explicit(project: Path) -> None:
    assert _keys(_select(project)) == [
        ("demo/cpu_case", "dev", "cpu"),
        ("model/alpha", "dev", "h100"),
        ("model/alpha", "lts", "a100"),
        ("other/alpha", "dev", "a100"),
    ]
    nightly = _select(project, scope="nightly")
    assert [c for c, _ in nightly.selected] == ["model/beta"]
    assert dict(nightly.skipped)["model/alpha"] == "not in scope nightly: its scopes are mr"


def test_platform_environment_case_filters_and_reasons(project: Path) -> None:
    sel = _select(project, platforms=("a100",), environments=("lts",))
    assert _keys(sel) == [("model/alpha", "lts", "a100")]
    assert dict(sel.skipped)["other/alpha"] == (
        "has no job on the selected platforms and environments: it has dev/a100"
    )
    assert (
        dict(sel.skipped)["empty"]
        == "has no job: no golden resolves for any environment and platform"
    )
    sel = _select(project, cases=("model/*", "other/*"), platforms=("h100",))
    assert _keys(sel) == [("model/alpha", "dev", "h100")]
    assert sel.selected == (("model/alpha", "--case model/*; scope mr"),)
    assert dict(sel.skipped)["demo/cpu_case"] == "not matching --case: model/* other/*"


def test_n_repeat_override_and_shards_partition_the_selection(project: Path) -> None:
    full = _select(project, n_repeat=5)
    assert {j.n_repeat for j in full.jobs} == {5}
    shards = [_select(project, n_repeat=5, shard=(k, 3)).jobs for k in (1, 2, 3)]
    assert sorted(j.id for s in shards for j in s) == sorted(j.id for j in full.jobs)
    assert [len(s) for s in shards] == [2, 1, 1]
    empty = _select(project, shard=(5, 5))
    assert empty.jobs == () and empty.why_empty == "shard 5/5 is empty: the selection has 4 jobs"


def _rows(n: int) -> tuple[JobRow, ...]:
    return tuple(
        JobRow("dev", f"p{i}", f"__dev__p{i}", f" dev p{i}", ("self-hosted",), ("p",), 8,
               "golden_values.json")
        for i in range(n)
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), max_size=12),
    start=st.none() | st.integers(-30, 40),
    stop=st.none() | st.integers(-30, 40),
    step=st.none() | st.integers(1, 7),
)
def test_a_job_list_indexes_and_slices_as_the_tuple_of_its_jobs(
    sizes: list[int], start: int | None, stop: int | None, step: int | None
) -> None:
    jobs = JobList(
        CaseJobs(f"m/c{g}", f"c{g}", f"test_cases/m/c{g}", _rows(n), 1, 60, 1, True)
        for g, n in enumerate(sizes)
    )
    every = tuple(jobs)
    assert len(jobs) == len(every) == sum(sizes) and jobs == every
    assert [jobs[i] for i in range(-len(every), len(every))] == [*every, *every]
    for bad in (len(every), -len(every) - 1):
        with pytest.raises(IndexError):
            jobs[bad]
    part = jobs[start:stop:step]
    assert type(part) is JobList and tuple(part) == every[start:stop:step]
    assert all(g.rows for g in part.groups)  # no case without a job


def test_a_job_list_renders_as_its_jobs_one_by_one(tmp_path: Path) -> None:
    """The per-case templates write what each job's own entry gives, also for names that are
    escaped or hashed, a folder that needs JSON escaping, a job without a golden and shards."""
    cases = {
        **CASES,
        "model/a b": {"golden_values_dev_h100.json": "{}"},  # an id that needs a hash
        "model/" + "l" * 250: {"golden_values.json": "{}"},  # a name that needs a hash
        "model/h%s\\é": {"golden_values.json": "{}"},
        "new/case": {"model_config.yaml": "CI_GOLDEN:\n  platforms: [h100]\n"},  # no golden yet
    }
    config = CONFIG.replace("test_cases: test_cases", "test_cases: 'te\"st %s é'")
    project = make_project(tmp_path / "proj", config, cases)
    (project / "test_cases").rename(project / 'te"st %s é')
    for kw in (
        {},
        {"scope": "nightly"},
        {"n_repeat": 3},
        {"shard": (2, 3)},
        {"platforms": ("a100",)},
    ):
        jobs = _select(project, **kw).jobs
        assert type(jobs) is JobList and jobs, kw
        plain = [g.plain for g in jobs.groups]
        for chunk in (jobs, jobs[1:], jobs[:3], jobs[::2]):
            assert emit.render_github(Selection(chunk)) == emit.render_github(
                Selection(tuple(chunk))
            )
    assert True in plain and False in plain
    entries = json.loads(emit.render_github(_select(project)))["include"]
    assert {e["golden"] for e in entries} >= {None, 'te"st %s é/model/h%s\\é/golden_values.json'}


def test_glob_semantics() -> None:
    assert glob_match("src/a/b.py", "src/**")
    assert glob_match("src/b.py", "src/*.py") and not glob_match("src/a/b.py", "src/*.py")
    assert glob_match("a/x/y/z.py", "a/**/z.py") and glob_match("a/z.py", "a/**/z.py")
    assert not glob_match("srcx/b.py", "src/**")


@pytest.fixture()
def repo(project: Path) -> Path:
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "base")
    git(project, "checkout", "-q", "-b", "topic")
    return project


def test_changed_since_selects_changed_cases_only(repo: Path, cli: t.Callable[..., t.Any]) -> None:
    (repo / "test_cases/model/alpha/model_config.yaml").write_text("TEST_TYPE: ckpt-resume\n")
    git(repo, "commit", "-qam", "change alpha")
    (repo / "test_cases/other/alpha/notes.txt").write_text("untracked\n")
    r = cli("matrix", "--ci", "github", "--changed-since", "main", "--explain", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert [e["case"] for e in json.loads(r.stdout)["include"]] == [
        "model/alpha",
        "model/alpha",
        "other/alpha",
    ]
    assert r.stderr.splitlines() == [
        "select model/alpha: scope mr; changed since main:"
        " test_cases/model/alpha/model_config.yaml",
        "select other/alpha: scope mr; changed since main: test_cases/other/alpha/notes.txt",
        "skip   demo/cpu_case: unchanged: no file in its folder changed since main",
        "skip   empty: unchanged: no file in its folder changed since main",
        "skip   model/beta: not in scope mr: its scopes are nightly",
        "ci-golden matrix: 3 jobs from 2 of 5 test cases",
    ]


def test_changed_since_global_path_selects_all_and_documentation_selects_none(
    repo: Path,
) -> None:
    config = load_config(cwd=repo)
    from ci_golden.plan.select import changed_paths

    (repo / "README.md").write_text("# changed\n")
    git(repo, "commit", "-qam", "docs")
    changed = changed_paths("main", repo)
    assert changed == ("README.md",)
    none = select(discover(config), Filters(changed=changed, changed_since="main"))
    assert none.jobs == ()
    assert none.why_empty == (
        "none of the 5 test cases has a selected job: 4 unchanged; 1 not in scope mr"
    )
    (repo / "src/train.py").write_text("print('changed')\n")
    changed = changed_paths("main", repo)
    assert changed == ("README.md", "src/train.py")
    every = select(discover(config), Filters(changed=changed, changed_since="main"))
    assert len(every.jobs) == 4
    assert (
        dict(every.selected)["other/alpha"]
        == "scope mr; global path 'src/**' changed since main (src/train.py)"
    )


def test_a_change_outside_the_test_case_root_selects_every_case_unless_ignored(
    repo: Path, cli: t.Callable[..., t.Any]
) -> None:
    """A regression tool's default must never be "test nothing": code the cases run lives
    outside the test-case root. Documentation (ignore_paths) selects nothing."""
    (repo / "docs").mkdir()
    (repo / "docs/guide.txt").write_text("how to\n")
    (repo / "test_cases/NOTES.md").write_text("inside the root, in no case folder\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "docs")
    r = cli("matrix", "--ci", "github", "--changed-since", "main", "--explain", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"include": []}
    assert r.stderr.splitlines()[-1] == (
        "ci-golden matrix: 0 jobs from 0 of 5 test cases "
        "(none of the 5 test cases has a selected job: 4 unchanged; 1 not in scope mr)"
    )
    (repo / "tools").mkdir()
    (repo / "tools/launch.sh").write_text("torchrun\n")
    (repo / "model.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "code")
    r = cli("matrix", "--ci", "github", "--changed-since", "main", "--explain", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["include"]) == 4
    reason = (
        "model.py and 1 more changed since main: outside the test-case root and not in ignore_paths"
    )
    assert r.stderr.splitlines()[:3] == [
        f"select demo/cpu_case: scope mr; {reason}",
        f"select model/alpha: scope mr; {reason}",
        f"select other/alpha: scope mr; {reason}",
    ]
    config = (repo / "ci_golden.yaml").read_text() + "ignore_paths: ['tools/**', '*.py']\n"
    (repo / "ci_golden.yaml").write_text(config)
    git(repo, "commit", "-qam", "ignore tools")
    git(repo, "checkout", "-qb", "later")
    (repo / "tools/launch.sh").write_text("srun\n")
    git(repo, "commit", "-qam", "tools again")
    r = cli("matrix", "--ci", "github", "--changed-since", "topic", cwd=repo)
    assert (r.returncode, json.loads(r.stdout)) == (0, {"include": []})


def test_list_takes_the_selection_options_of_matrix(
    repo: Path, cli: t.Callable[..., t.Any]
) -> None:
    """`list --format json --scope S` shows exactly the jobs `matrix --scope S` plans; without
    --scope it lists every scope, and cases without a job too."""
    for args in (
        ["--scope", "mr"],
        ["--scope", "nightly"],
        ["--scope", "mr", "--platform", "a100"],
        ["--scope", "nightly", "--case", "model/*", "--environment", "dev"],
    ):
        listed = cli("list", "--format", "json", *args, cwd=repo)
        planned = cli("matrix", "--ci", "github", *args, cwd=repo)
        assert listed.returncode == planned.returncode == 0, listed.stderr + planned.stderr
        jobs = [
            (c["case"], j["environment"], j["platform"], j["golden"])
            for c in json.loads(listed.stdout)["cases"]
            for j in c["jobs"]
        ]
        entries = json.loads(planned.stdout)["include"]
        assert jobs == [
            (
                e["case"],
                e["environment"],
                e["platform"],
                e["golden"].removeprefix("test_cases/"),
            )
            for e in entries
        ], args
    everything = cli("list", cwd=repo)
    assert everything.stdout.splitlines() == [
        "demo/cpu_case",
        "  dev      cpu          golden_values_dev_cpu.json",
        "empty",
        "  (no job: no golden resolves for any environment and platform)",
        "model/alpha",
        "  dev      h100         golden_values_dev_h100.json",
        "  lts      a100         golden_values_lts.json",
        "model/beta",
        "  dev      h100         golden_values.json",
        "  dev      a100         golden_values.json",
        "  lts      a100         golden_values.json",
        "other/alpha",
        "  dev      a100         golden_values_dev_a100.json",
        "5 cases, 7 jobs",
    ]
    (repo / "test_cases/other/alpha/golden_values_dev_a100.json").write_text("{ }")
    changed = cli("list", "--changed-since", "main", "--explain", cwd=repo)
    assert changed.stdout.splitlines() == [
        "other/alpha",
        "  dev      a100         golden_values_dev_a100.json",
        "1 cases, 1 jobs; 4 not selected (--explain says why)",
    ]
    assert changed.stderr.splitlines()[0] == (
        "select other/alpha: every scope; changed since main: "
        "test_cases/other/alpha/golden_values_dev_a100.json"
    )


JOBS_CASE = """\
CI_GOLDEN:
  scope: mr
  jobs:
    - {environment: dev, platform: h100, scope: [mr, L2]}
    - {environment: dev, platform: a100, scope: nightly, nodes: 2, gpus: 2}
    - {environment: lts, platform: a100}
"""


def test_jobs_listed_in_ci_golden_run_in_their_own_scopes_with_their_own_sizes(
    tmp_path: Path,
) -> None:
    config = CONFIG.replace(
        "scopes: [mr, nightly]", "scopes: [mr, L2]\nscope_aliases: {nightly: L2}"
    )
    cases = {
        "m/listed": {
            "golden_values_dev_h100.json": "{}",
            "golden_values_dev_a100.json": "{}",
            "golden_values.json": "{}",
            "model_config.yaml": JOBS_CASE,
        },
        "m/plain": {"golden_values_dev_h100.json": "{}", "model_config.yaml": "{}\n"},
    }
    project = make_project(tmp_path / "p", config, cases)
    mr = _select(project, scope="mr")
    assert [(j.case, j.environment, j.platform, j.nodes, j.gpus) for j in mr.jobs] == [
        ("m/listed", "dev", "h100", 1, 8),
        ("m/listed", "lts", "a100", 1, 4),
        ("m/plain", "dev", "h100", 1, 8),
    ]
    for scope in ("L2", "nightly"):
        sel = _select(project, scope=scope)
        assert [(j.environment, j.platform, j.nodes, j.gpus) for j in sel.jobs] == [
            ("dev", "h100", 1, 8),
            ("dev", "a100", 2, 2),
        ]
        assert dict(sel.skipped)["m/plain"] == "not in scope L2: its scopes are mr"
    assert dict(_select(project, scope="nightly").selected)["m/listed"] == "scope L2 (nightly)"
    entries = json.loads(emit.render_github(_select(project, scope="L2")))["include"]
    assert [(e["nodes"], e["gpus"]) for e in entries] == [(1, 8), (2, 2)]
    every = _select(project, any_scope=True)
    assert len(every.jobs) == 4


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "  jobs: [{environment: lts, platform: h100}]\n",
            "CI_GOLDEN.jobs[0]: environment 'lts' does not run on platform 'h100' (its "
            "platforms: a100); add the platform to the environment in the project config",
        ),
        (
            "  jobs: [{environment: dev, platform: h100}, {environment: dev, platform: h100}]\n",
            "CI_GOLDEN.jobs[1]: dev/h100 is listed again (first as jobs[0]); give each "
            "environment and platform once, with all its scopes",
        ),
        (
            "  jobs: [{environment: dev, platform: h100, scope: nighly}]\n",
            "CI_GOLDEN.jobs[0]: unknown scope 'nighly' (did you mean 'nightly'?)",
        ),
        (
            "  platforms: [h100]\n  jobs: [{environment: dev, platform: h100}]\n",
            "CI_GOLDEN gives jobs and platforms or environments: keep jobs alone",
        ),
    ],
)
def test_bad_ci_golden_jobs_exit_2_naming_the_entry(
    tmp_path: Path, cli: t.Callable[..., t.Any], block: str, message: str
) -> None:
    cases = {"m/c": {"golden_values.json": "{}", "model_config.yaml": "CI_GOLDEN:\n" + block}}
    project = make_project(tmp_path / "p", CONFIG, cases)
    r = cli("matrix", "--ci", "github", cwd=project)
    where = project / "test_cases/m/c/model_config.yaml"
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        f"ci-golden matrix: error: {where}: {message}\n",
    )


def test_chunked_github_output_and_a_run_reading_its_job_from_the_plan(
    project: Path, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    out = tmp_path / "github_output"
    plan = tmp_path / "plan" / "matrix.json"
    r = cli("matrix", "--ci", "github", "--github-output", "matrix", "--chunks", "3",
            "--output", plan, cwd=project, env={"GITHUB_OUTPUT": str(out)})  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == "ci-golden matrix: 4 jobs from 3 of 5 test cases in 1 of 3 matrices\n"
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    entries = json.loads(plan.read_text())["include"]
    assert json.loads(outputs["matrix_1"])["include"] == [
        {"id": e["id"], "name": e["name"], "runs-on": e["runs-on"]} for e in entries
    ]
    assert (outputs["matrix_2"], outputs["matrix_3"]) == ('{"include":[]}', '{"include":[]}')
    assert [outputs[f"matrix_{k}_count"] for k in (1, 2, 3)] == ["4", "0", "0"]
    assert outputs["matrix_count"] == "4"
    cpu = next(e for e in entries if e["platform"] == "cpu")
    (project / "test_cases/demo/cpu_case/model_config.yaml").write_text(
        "CI_GOLDEN:\n  platforms: [cpu]\n  command: [python, src/train.py]\n"
    )
    r = cli("run", "--job", plan, "--job-id", cpu["id"], "--dry-run", cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# demo/cpu_case (dev, cpu): ")
    r = cli("run", "--job", plan, "--job-id", "demo__cpu_case__dev__cpx", "--dry-run",
            cwd=project)  # fmt: skip
    assert (r.returncode, r.stderr) == (
        2,
        f"ci-golden run: error: {plan}::$: no job 'demo__cpu_case__dev__cpx' in the matrix "
        "(did you mean 'demo__cpu_case__dev__cpu'?)\n",
    )
    r = cli("matrix", "--ci", "github", "--github-output", "m", "--chunks", "2", cwd=project,
            env={"GITHUB_OUTPUT": str(out)})  # fmt: skip
    assert (r.returncode, r.stderr) == (
        2,
        "ci-golden matrix: error: --chunks needs --github-output NAME and --output FILE "
        "(the run jobs read the whole entry of their job from that file)\n",
    )


def test_changed_project_config_selects_all(repo: Path) -> None:
    from ci_golden.plan.select import changed_paths

    (repo / "ci_golden.yaml").write_text(CONFIG + "# touched\n")
    changed = changed_paths("main", repo)
    sel = select(discover(load_config(cwd=repo)), Filters(changed=changed, changed_since="main"))
    assert len(sel.jobs) == 4
    assert (
        dict(sel.selected)["model/alpha"]
        == "scope mr; the project config ci_golden.yaml changed since main"
    )


def test_changed_since_bad_ref_is_exit_2(repo: Path, cli: t.Callable[..., t.Any]) -> None:
    r = cli("matrix", "--ci", "github", "--changed-since", "no-such-ref", cwd=repo)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(
        "ci-golden matrix: error: --changed-since: git cannot compare with 'no-such-ref': "
    )
    assert r.stderr.rstrip().endswith("(in CI, fetch the history: fetch-depth: 0 / GIT_DEPTH: 0)")


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--platform", "h10"], "--platform: unknown platform 'h10' (did you mean 'h100'?)"),
        (
            ["--environment", "lst"],
            "--environment: unknown environment 'lst' (did you mean 'lts'?)",
        ),
        (["--scope", "nighty"], "--scope: unknown scope 'nighty' (did you mean 'nightly'?)"),
        (
            ["--case", "model/alpah"],
            "--case 'model/alpah' matches no test case (did you mean 'model/alpha'?)",
        ),
        (
            ["--platform", "h100", "--environment", "lts"],
            "no --environment lts runs on --platform h100; the config gives them a100",
        ),
        (["--shard", "3/2"], "--shard '3/2': expected K/N with 1 <= K <= N, e.g. --shard 1/2"),
        (["--n-repeat", "0"], "--n-repeat 0: expected 1 to 100"),
        (
            ["--github-output", "m"],
            "--github-output: $GITHUB_OUTPUT is not set (it is inside GitHub Actions)",
        ),
    ],
)
def test_bad_flags_exit_2_with_suggestion(
    project: Path, cli: t.Callable[..., t.Any], args: list[str], message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    env["GITHUB_OUTPUT"] = ""
    r = cli("matrix", "--ci", "github", *args, cwd=project, env=env)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"ci-golden matrix: error: {message}\n")


def test_unknown_names_in_configs_exit_2(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    bad_env = make_project(
        tmp_path / "a", CONFIG.replace("lts: {platforms: [a100]}", "lts: {platforms: [a10]}")
    )
    r = cli("matrix", "--ci", "gitlab", cwd=bad_env)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"ci-golden matrix: error: {bad_env / 'ci_golden.yaml'}::$.environments.lts.platforms: "
        "unknown platform 'a10' (did you mean 'a100'?)\n"
    )
    cases = dict(CASES)
    cases["model/beta"] = {
        "golden_values.json": "{}",
        "model_config.yaml": "CI_GOLDEN:\n  scope: nighlty\n",
    }
    bad_scope = make_project(tmp_path / "b", CONFIG, cases)
    r = cli("matrix", "--ci", "github", cwd=bad_scope)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"ci-golden matrix: error: {bad_scope / 'test_cases/model/beta/model_config.yaml'}: "
        "unknown scope 'nighlty' (did you mean 'nightly'?)\n"
    )
    cases["model/beta"] = {
        "golden_values.json": "{}",
        "model_config.yaml": "CI_GOLDEN:\n  platforms: [h200]\n",
    }
    bad_platform = make_project(tmp_path / "c", CONFIG, cases)
    r = cli("matrix", "--ci", "github", "--scope", "nightly", cwd=bad_platform)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.endswith("model_config.yaml: unknown platform 'h200' (did you mean 'h100'?)\n")


# ---- emitters ------------------------------------------------------------------------------


def test_github_output_and_empty_matrix(
    project: Path, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    out = tmp_path / "github_output"
    out.write_text("earlier=1\n")
    r = cli(
        "matrix",
        "--ci",
        "github",
        "--github-output",
        "matrix",
        cwd=project,
        env={"GITHUB_OUTPUT": str(out)},
    )
    assert (r.returncode, r.stdout) == (0, "")
    lines = out.read_text().splitlines()
    assert lines[0] == "earlier=1" and lines[2] == "matrix_count=4" and len(lines) == 3
    assert lines[1].startswith('matrix={"include":[{"id":"demo__cpu_case__dev__cpu",')
    r = cli("matrix", "--ci", "github", "--github-output", "matrix", "--case", "empty", cwd=project,
            env={"GITHUB_OUTPUT": str(out)})  # fmt: skip
    assert r.returncode == 0
    assert out.read_text().splitlines()[3:] == ['matrix={"include":[]}', "matrix_count=0"]
    assert r.stderr == (
        "ci-golden matrix: 0 jobs from 0 of 5 test cases "
        "(none of the 5 test cases has a selected job: 4 not matching --case; 1 has no job)\n"
    )


def test_gitlab_child_pipeline_jobs(project: Path, cli: t.Callable[..., t.Any]) -> None:
    r = cli("matrix", "--ci", "gitlab", "--gitlab-image", "python:3.12",
            "--gitlab-before-script", "pip install x", cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert r.stdout.startswith("# ci-golden child pipeline: 4 jobs.\n")
    assert doc["stages"] == ["golden", "report"]
    assert doc["default"] == {
        "image": "python:3.12",
        "before_script": ["pip install x"],
        "interruptible": True,
    }
    job = doc["alpha dev h100"] if "alpha dev h100" in doc else doc["model/alpha dev h100"]
    entry = next(j for j in _select(project).jobs if j.name == "model/alpha dev h100").entry()
    assert job == {
        "stage": "golden",
        "tags": ["h100"],
        "timeout": "35m",
        "interruptible": True,
        "retry": {
            "max": 2,
            "when": ["runner_system_failure", "stuck_or_timeout_failure", "scheduler_failure"],
        },
        "variables": {"CI_GOLDEN_JOB_ID": "model__alpha__dev__h100"},
        "script": job["script"],
        "artifacts": {
            "name": "ci-golden-model__alpha__dev__h100",
            "when": "always",
            "expire_in": "30 days",
            "paths": ["ci-golden-out/model__alpha__dev__h100/"],
        },
    }
    assert job["script"] == [
        "ci-golden run model/alpha --environment dev --platform h100 --n-repeat 1"
        " --out ci-golden-out/model__alpha__dev__h100"
    ]
    assert entry["id"] == "model__alpha__dev__h100"
    assert "tags" not in doc["cpu_case dev cpu"]
    report = doc["ci-golden report"]
    assert report["when"] == "always" and report["stage"] == "report"
    link = '${CI_JOB_URL:+--html-url "$CI_JOB_URL/artifacts/file/report.html"}'
    assert report["script"][1:5] == [
        "status=0",
        "ci-golden report ci-golden-out --expect ci-golden-expect.json --format html"
        " --out report.html || true",
        "ci-golden report ci-golden-out --expect ci-golden-expect.json --format markdown"
        f" --out report.md {link} || status=$?",
        "ci-golden report ci-golden-out --expect ci-golden-expect.json --format json"
        f" --out report.json {link} || true",
    ]
    assert report["artifacts"]["expose_as"] == "ci-golden report"
    assert report["artifacts"]["paths"] == ["report.html", "report.md", "report.json", "report.xml"]


def test_gitlab_empty_pipeline_says_why(project: Path, cli: t.Callable[..., t.Any]) -> None:
    r = cli("matrix", "--ci", "gitlab", "--scope", "nightly", "--platform", "cpu", cwd=project)
    assert r.returncode == 0
    doc = yaml.safe_load(r.stdout)
    assert doc == {
        "stages": ["golden"],
        "ci-golden no jobs": {
            "stage": "golden",
            "interruptible": True,
            "script": [
                "echo 'ci-golden: no job to run: none of the 5 test cases has a selected job: "
                "4 not in scope nightly; 1 has no job on the selected platforms and environments'"
            ],
        },
    }


def _job(i: int, **kw: t.Any) -> MatrixJob:
    base: dict[str, t.Any] = dict(
        id=f"c{i}__dev__h100", name=f"c{i} dev h100", case=f"c{i}", environment="dev",
        platform="h100", runs_on=("self-hosted", "h100"), tags=("h100",),
        golden=f"test_cases/c{i}/golden_values.json",
        n_repeat=1, time_limit=3600, nodes=1, gpus=8,
    )  # fmt: skip
    base.update(kw)
    return MatrixJob(**base)


def test_limits_fail_with_the_fix_never_a_truncated_list() -> None:
    with pytest.raises(UsageError) as e:
        emit.render_github(
            Selection(tuple(_job(i, platform="h100" if i % 2 else "a100") for i in range(300)))
        )
    assert str(e.value) == (
        "300 jobs exceed GitHub's limit of 256 jobs per matrix; run them in parts: --shard K/2 "
        "for K = 1..2 (at most 150 jobs each), or one --platform at a time (a100: 150, h100: 150)"
    )
    assert len(emit.render_github(Selection(tuple(_job(i) for i in range(256))))) > 0
    with pytest.raises(UsageError) as e:
        emit.render_github(Selection(tuple(_job(i, golden="g" * 3000) for i in range(180))))
    assert re.fullmatch(
        r"the matrix takes 1\d{6} bytes \(as UTF-16\), over GitHub's job-output limit of "
        r"1048576 bytes; write it with --chunks N \(the outputs then hold only id, name, "
        r"runs-on of each job\) or run them in parts: --shard K/2 for K = 1\.\.2 \(at most 90 "
        r"jobs each\), or one --platform at a time \(h100: 180\)",
        str(e.value),
    )
    with pytest.raises(
        UsageError,
        match=r"^platform 'h100' has no GitHub runner labels; "
        r"set platforms\.h100\.github\.runs-on in the project config$",
    ):
        emit.render_github(Selection((_job(1, runs_on=()),)))
    with pytest.raises(
        UsageError,
        match=r"^job name of c1 is 300 characters, over GitLab's limit of 255: x{60}\.\.\.$",
    ):
        emit.render_gitlab(Selection((_job(1, name="x" * 300),)))
    with pytest.raises(UsageError, match=r"^platform 'h100' has GPUs but no GitLab runner tags"):
        emit.render_gitlab(Selection((_job(1, tags=()),)))
    with pytest.raises(
        UsageError,
        match=r"^the child pipeline is \d+ bytes, over GitLab's limit of 5242880; "
        r"run them in parts: --shard K/2 for K = 1\.\.2 \(at most 750 jobs each\), "
        r"or one --platform at a time \(h100: 1500\)$",
    ):
        emit.render_gitlab(Selection(tuple(_job(i, id=f"{i}" + "x" * 1000) for i in range(1500))))


def test_the_shard_hint_counts_the_whole_selection_so_the_parts_it_names_fit() -> None:
    """The corpus's 521 jobs with --shard 1/2 leave 261 in the shard: the hint must not say
    --shard K/2 again, since it is the shard count that is too small."""
    shard = Selection(tuple(_job(i) for i in range(261)), total=521, shard=(1, 2))
    with pytest.raises(UsageError) as e:
        emit.render_github(shard)
    assert str(e.value) == (
        "261 jobs exceed GitHub's limit of 256 jobs per matrix; run them in parts: --shard K/3 "
        "for K = 1..3 (at most 174 jobs each) instead of --shard 1/2"
    )
    whole = Selection(tuple(_job(i) for i in range(521)))
    parts = [Selection(whole.jobs[k - 1 :: 3], total=521, shard=(k, 3)) for k in (1, 2, 3)]
    assert [len(json.loads(emit.render_github(p))["include"]) for p in parts] == [174, 174, 173]


def test_chunks_hold_every_job_in_matrices_of_at_most_256() -> None:
    jobs = tuple(_job(i, platform="h100" if i % 3 else "a100") for i in range(600))
    chunks = emit.matrix_chunks(Selection(jobs), 4)
    assert [n for _, n in chunks] == [256, 256, 88, 0]
    entries = [e for text, _ in chunks for e in json.loads(text)["include"]]
    assert entries == [{"id": j.id, "name": j.name, "runs-on": list(j.runs_on)} for j in jobs]
    assert chunks[3][0] == '{"include":[]}'
    lines = emit.github_chunk_lines("matrix", chunks).splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "matrix_1", "matrix_1_count", "matrix_2", "matrix_2_count", "matrix_3", "matrix_3_count",
        "matrix_4", "matrix_4_count", "matrix_count",
    ]  # fmt: skip
    assert [*lines[1::2], lines[-1]] == [
        "matrix_1_count=256", "matrix_2_count=256", "matrix_3_count=88", "matrix_4_count=0",
        "matrix_count=600",
    ]  # fmt: skip
    full = json.loads(emit.render_github(Selection(jobs), chunks=4))["include"]
    assert full == [j.entry() for j in jobs]
    full_house = Selection(tuple(_job(i) for i in range(1024)))
    assert [n for _, n in emit.matrix_chunks(full_house, 4)] == [256, 256, 256, 256]
    with pytest.raises(UsageError) as e:
        emit.matrix_chunks(Selection(jobs * 2), 4)
    assert str(e.value) == (
        "1200 jobs exceed 4 matrices of 256 jobs (--chunks 4); run them in parts: --shard K/2 "
        "for K = 1..2 (at most 600 jobs each), or one --platform at a time (a100: 400, h100: 800)"
    )
    with pytest.raises(UsageError, match=r"^the 4 matrices take 1\d{6} bytes \(as UTF-16\)"):
        emit.matrix_chunks(Selection(tuple(_job(i, name="n" * 1200) for i in range(600))), 4)


def test_output_is_byte_identical_across_processes(
    project: Path, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    for ci in ("github", "gitlab"):
        outs = []
        for seed in ("1", "2"):
            target = tmp_path / f"{ci}-{seed}.out"
            r = cli(
                "matrix", "--ci", ci, "--output", target, cwd=project, env={"PYTHONHASHSEED": seed}
            )
            assert r.returncode == 0, r.stderr
            outs.append(target.read_bytes())
        assert outs[0] == outs[1] and outs[0].endswith(b"\n")


# ---- the real corpus -----------------------------------------------------------------------


def _independent_jobs(corpus: Path) -> Counter[tuple[str, str, str]]:
    """(case, env, platform) combinations whose golden resolves, computed without ci_golden."""
    envs = {"dev": ["dgx_h100", "dgx_a100", "dgx_gb200"], "lts": ["dgx_a100"]}
    out: Counter[tuple[str, str, str]] = Counter()
    for folder, dirs, files in os.walk(corpus):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        names = set(files)
        if "model_config.yaml" not in names and not any(
            n.startswith("golden_values") and n.endswith(".json") for n in names
        ):
            continue
        case = Path(folder).relative_to(corpus).as_posix()
        for env, platforms in envs.items():
            for p in platforms:
                if {
                    f"golden_values_{env}_{p}.json",
                    f"golden_values_{env}.json",
                    "golden_values.json",
                } & names:
                    out[(case, env, p)] += 1
    return out


def test_corpus_matrix_has_exactly_the_resolvable_jobs(
    corpus: Path, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    expected = _independent_jobs(corpus)
    assert sum(expected.values()) > 256  # the corpus needs splitting on GitHub
    r = cli("--test-cases", corpus, "matrix", "--ci", "github", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert "exceed GitHub's limit of 256 jobs per matrix" in r.stderr and "--shard K/3" in r.stderr
    entries = []
    for k in (1, 2, 3):
        r = cli(
            "--test-cases", corpus, "matrix", "--ci", "github", "--shard", f"{k}/3", cwd=tmp_path
        )
        assert r.returncode == 0, r.stderr
        entries += json.loads(r.stdout)["include"]
    got = Counter((e["case"], e["environment"], e["platform"]) for e in entries)
    assert got == expected
    assert all(e["runs-on"] and "self-hosted" in e["runs-on"] for e in entries)
    assert len({e["id"] for e in entries}) == len({e["name"] for e in entries}) == len(entries)
    assert max(len(e["name"]) for e in entries) <= 255
    config = load_config(cwd=tmp_path, test_cases=corpus)
    suite = discover(config)
    unreferenced = {u.path.resolve() for c in suite.cases for u in unreferenced_goldens(c, config)}
    assert unreferenced  # the corpus has some (e.g. *_2nd.json, old cluster names)
    goldens = {(tmp_path / e["golden"]).resolve() for e in entries}
    assert not goldens & unreferenced
    all_goldens = {(c.path / g).resolve() for c in suite.cases for g in c.golden_files}
    assert goldens <= all_goldens


@pytest.mark.parametrize(
    ("line", "key", "value", "known"),
    [
        ("TEST_TYPE: frozen-reload  # a typo", "TEST_TYPE", "frozen-reload",
         "regular, ckpt-resume, frozen-resume, frozen-start, checkpoint-consistency, release"),
        ('MODE: "serving"', "MODE", "serving", "pretraining, inference, rl"),
        ("TEST_EVALUATION: xfail", "TEST_EVALUATION", "xfail", "pass, xpass"),
    ],
)  # fmt: skip
def test_a_test_kind_run_ci_test_sh_does_not_know_is_never_planned(
    tmp_path: Path, line: str, key: str, value: str, known: str
) -> None:
    cases = {**CASES, "model/alpha": {**CASES["model/alpha"], "model_config.yaml": line + "\n"}}
    project = make_project(tmp_path / "proj", cases=cases)
    with pytest.raises(ConfigError) as e:
        _select(project)
    config = project / "test_cases" / "model" / "alpha" / "model_config.yaml"
    assert str(e.value) == (
        f"{config}::$.{key}: {key} {value!r} is not one Megatron-LM's run_ci_test.sh knows "
        f"(known: {known}); refusing to plan a job that cannot run"
    )
    assert _keys(_select(project, cases=("other/*",)))  # a selection without it plans
