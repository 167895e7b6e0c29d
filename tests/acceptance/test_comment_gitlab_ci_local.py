"""gitlab-ci-local runs the shipped GitLab report job, as a merge-request pipeline, against the
test GitLab server: the note it stores is asserted.

The report job is the one `ci-golden matrix --ci gitlab` writes into the child pipeline (the
parent .gitlab-ci.yml triggers it and passes CI_GOLDEN_MR_IID); its results come from a real
result.json written by ci_golden.compare.engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from servers.fixtures import gitlab_api_fixture  # noqa: F401
from servers.gitlab_api import GitLabAPIServer

from ci_golden.compare.engine import compare_job, write_result
from ci_golden.goldens.discover import Job

GITLAB_CI_LOCAL = REPO / "node_modules" / ".bin" / "gitlab-ci-local"
MARKER = "<!-- ci-golden:report key=default -->"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_gitlab_ci_local_report_job_posts_the_note(
    gitlab_api: GitLabAPIServer, tmp_path: Path
) -> None:
    if shutil.which("node") is None or not GITLAB_CI_LOCAL.exists():
        pytest.skip("node and node_modules/gitlab-ci-local are needed (npm ci)")
    child = tmp_path / ".gitlab-ci.yml"
    made = run_cli("matrix", "--ci", "gitlab", "--output", child, cwd=REPO)
    assert made.returncode == 0, made.stderr
    result = compare_job(
        Job("demo/smoke", "dev", "cpu", Path("golden_values_dev_cpu.json")),
        None,
        None,
        policies={},
        gated=(),
        nondeterministic=False,
        error="CUDA error: device-side assert",
    )
    write_result(tmp_path / "ci-golden-out" / "demo__smoke__dev__cpu" / "result.json", result)
    gitlab_api.add_note("42", 5, "a reviewer's note")
    gitlab_api.add_note("42", 5, f"{MARKER}\nthe report of the previous pipeline")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "pipeline")
    variables = {
        "CI_API_V4_URL": gitlab_api.url,
        "CI_PROJECT_ID": "42",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_GOLDEN_MR_IID": "5",  # what the parent's trigger job hands to the child
        "CI_PIPELINE_URL": "https://gitlab.example.com/g/p/-/pipelines/9",
        "CI_GOLDEN_GITLAB_TOKEN": gitlab_api.token,
    }
    args = [
        str(GITLAB_CI_LOCAL),
        "--file",
        ".gitlab-ci.yml",
        "--ignore-predefined-vars",
        ",".join(k for k in variables if not k.startswith("CI_GOLDEN")),
    ]
    for name, value in variables.items():
        args += ["--variable", f"{name}={value}"]
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [*args, "ci-golden report"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    # the job fails (the run crashed: verdict error) after it posted the note
    assert proc.returncode == 1, output
    note_id = gitlab_api.notes("42", 5)[1].id
    assert f"ci-golden comment: updated comment {note_id} on merge request 42!5" in output
    bodies = [n.body for n in gitlab_api.notes("42", 5)]
    assert bodies[0] == "a reviewer's note" and len(bodies) == 2
    assert bodies[1].startswith(f"{MARKER}\n<!-- ci-golden:verdict=error -->\n")
    assert "demo/smoke" in bodies[1]
    assert gitlab_api.token not in output
