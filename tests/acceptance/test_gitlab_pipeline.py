"""The shipped .gitlab-ci.yml, run by gitlab-ci-local 4.73.0 (shell executor, no docker) in a
temporary git copy of the project: validate and generate, then the generated child pipeline.

gitlab-ci-local runs ``trigger:`` child pipelines only experimentally and reports the trigger
job as passed even when child jobs fail (``strategy: depend`` is not honoured), so the test runs
the parent's jobs, then the child-pipeline file the generate job wrote as its own pipeline
(``--file``), whose exit status is that of its jobs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = REPO / "node_modules" / ".bin" / "gitlab-ci-local"
CPU_JOBS = [
    "checkpoint_consistency dev cpu",
    "ckpt_resume dev cpu",
    "ckpt_resume lts cpu",
    "frozen_resume dev cpu",
    "frozen_start dev cpu",
    "inference dev cpu",
    "nondeterministic dev cpu",
    "nondeterministic lts cpu",
    "regular dev cpu",
    "regular lts cpu",
    "release dev cpu",
    "xpass dev cpu",
]
VERDICTS = {
    f"demo__{job.replace(' ', '__')}": "skipped" if job.startswith("xpass") else "pass"
    for job in CPU_JOBS
}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _copy_project(dest: Path) -> None:
    """Tracked and untracked (not ignored) files, with symlinks kept as symlinks."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, names):
        rel = os.fsdecode(raw)
        src, dst = REPO / rel, dest / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GITLAB_CI_LOCAL.exists():
        pytest.skip("node_modules/.bin/gitlab-ci-local is missing (npm ci)")
    if shutil.which("rsync") is None:
        pytest.skip("gitlab-ci-local's shell executor needs rsync")
    root = tmp_path_factory.mktemp("gitlab") / "project"
    _copy_project(root)
    if not (root / "test_cases" / "demo").is_dir():
        pytest.skip("the bundled cpu cases (test_cases/demo) are not in the tree")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "copy")
    return root


def gitlab_ci_local(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        # ci-golden from this interpreter's environment, importing the copy's code
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(project),
        "HOME": str(project.parent / "home"),
        "GCL_IGNORE_PREDEFINED_VARS": "CI_PIPELINE_SOURCE",
    }
    return subprocess.run(
        [
            str(GITLAB_CI_LOCAL),
            "--force-shell-executor",
            "--no-color",
            "--home",
            str(project.parent / "home"),
            *args,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _verdicts(project: Path) -> dict[str, str]:
    return {
        p.parent.name: json.loads(p.read_text())["verdict"]
        for p in sorted((project / "ci-golden-out").glob("*/result.json"))
    }


def _summary(output: str) -> dict[str, str]:
    """gitlab-ci-local's final ` PASS  job` / ` FAIL  job` lines."""
    out = {}
    for line in output.splitlines():
        for word in ("PASS", "FAIL"):
            if line.startswith(f" {word}  "):
                out[line[len(word) + 3 :].strip()] = word
    return out


def test_generate_then_child_pipeline_passes_and_fails_on_a_broken_golden(project: Path) -> None:
    parent = gitlab_ci_local(
        project, "--variable", "CI_GOLDEN_MATRIX_ARGS=--platform cpu", "validate", "generate"
    )
    assert parent.returncode == 0, parent.stdout + parent.stderr
    assert _summary(parent.stdout) == {"validate": "PASS", "generate": "PASS"}
    assert "generate > ci-golden matrix: 12 jobs from 9 of 10 test cases\n" in parent.stderr
    child_file = project / "child-pipeline.yml"
    child = yaml.safe_load(child_file.read_text())
    assert [k for k in child if k not in ("stages", "default")] == [*CPU_JOBS, "ci-golden report"]
    assert all("tags" not in child[name] for name in CPU_JOBS)

    run = gitlab_ci_local(project, "--file", "child-pipeline.yml")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    assert _summary(run.stdout) == {name: "PASS" for name in [*CPU_JOBS, "ci-golden report"]}
    assert _verdicts(project) == VERDICTS
    markdown = (project / "report.md").read_text().splitlines()
    assert markdown[0] == "<!-- ci-golden:verdict=pass -->"
    # the comment links the HTML report where GitLab will serve it from the job's artifacts
    assert re.fullmatch(
        r"\*\*12 jobs\*\*: 11 pass · 1 skipped · \[CI run\]\(\S+\) · \[HTML report with every "
        r"curve\]\(https?://\S+/-/jobs/\d+/artifacts/file/report\.html\)",
        markdown[3],
    ), markdown[3]
    assert "<title>ci-golden: pass (12 jobs)</title>" in (project / "report.html").read_text()

    golden = project / "test_cases/demo/regular/golden_values_dev_cpu.json"
    data = json.loads(golden.read_text())
    data["lm loss"]["values"] = {k: v * 1.5 for k, v in data["lm loss"]["values"].items()}
    golden.write_text(json.dumps(data, indent=4))
    _git(project, "commit", "-qam", "break one golden")
    shutil.rmtree(project / "ci-golden-out")
    broken = gitlab_ci_local(project, "--file", "child-pipeline.yml")
    assert broken.returncode != 0
    summary = _summary(broken.stdout)
    assert summary.pop("regular dev cpu") == "FAIL"
    assert summary.pop("ci-golden report") == "FAIL"
    assert set(summary.values()) == {"PASS"} and len(summary) == 11
    verdicts = _verdicts(project)
    assert verdicts.pop("demo__regular__dev__cpu") == "fail"
    assert verdicts == {k: v for k, v in VERDICTS.items() if k != "demo__regular__dev__cpu"}
    assert (project / "report.md").read_text().splitlines()[0] == "<!-- ci-golden:verdict=fail -->"

    # a job that ends without leaving a result (here: "passes" doing nothing) must not pass silently
    child["regular lts cpu"]["script"] = [
        "echo the runner check failed before any result was written"
    ]
    (project / "child-missing.yml").write_text(yaml.safe_dump(child, sort_keys=False))
    shutil.rmtree(project / "ci-golden-out")
    missing = gitlab_ci_local(project, "--file", "child-missing.yml")
    assert missing.returncode != 0
    summary = _summary(missing.stdout)
    assert (
        summary.pop("regular lts cpu"),
        summary.pop("regular dev cpu"),
        summary.pop("ci-golden report"),
    ) == ("PASS", "FAIL", "FAIL")
    assert set(summary.values()) == {"PASS"} and len(summary) == 10
    assert "demo__regular__lts__cpu" not in _verdicts(project)
    report = json.loads((project / "report.json").read_text())
    assert (report["verdict"], report["counts"]) == (
        "error", {"error": 1, "fail": 1, "pass": 9, "skipped": 1}
    )  # fmt: skip
    lost = report["results"][0]
    assert (lost["case"], lost["environment"], lost["platform"], lost["message"]) == (
        "demo/regular", "lts", "cpu", "no result: the job did not run or its artifact is missing"
    )  # fmt: skip
    assert "| demo/regular | lts | cpu | 💥 error |" in (project / "report.md").read_text()


def test_schema_validation_of_the_shipped_pipeline_by_gitlab_ci_local(project: Path) -> None:
    listed = gitlab_ci_local(project, "--list-json")
    assert listed.returncode == 0, listed.stderr
    jobs: list[dict[str, t.Any]] = json.loads(listed.stdout)
    assert [j["name"] for j in jobs] == ["validate", "generate", "golden-tests"]
