"""``ci-golden comment`` as a subprocess with a GitHub runner's (or GitLab job's) environment,
real event payloads, and the test API servers, including their faults.

Every case ends with exactly one comment of ours holding the latest report. Time is bounded by
the client's own limits (CI_GOLDEN_HTTP_*) and the subprocess timeout, never by a clock assert.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from conftest import REPO, CliResult, run_cli
from servers.fixtures import github_api_fixture, gitlab_api_fixture  # noqa: F401
from servers.github_api import GitHubAPIServer
from servers.gitlab_api import GitLabAPIServer

EVENTS = Path(__file__).parents[1] / "data" / "webhook_payloads"
OWNER, NAME, PR = "Codertocat", "Hello-World", 2
MARKER = "<!-- ci-golden:report key=default -->"
READ_ONLY = "read-only-token-0123456789"
FAST = {
    "CI_GOLDEN_HTTP_TIMEOUT": "1.5",
    "CI_GOLDEN_HTTP_BACKOFF": "0.05",
    "CI_GOLDEN_HTTP_DEADLINE": "30",
    "CI_GOLDEN_HTTP_ATTEMPTS": "5",
}
# variables a CI machine running this suite may have, cleared so that the test sets the scene
CLEARED = {
    name: ""
    for name in (
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "GITHUB_TOKEN",
        "CI_GOLDEN_GITHUB_TOKEN",
        "CI_GOLDEN_GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "CI_MERGE_REQUEST_IID",
        "GITHUB_EVENT_PATH",
        "GITHUB_EVENT_NAME",
        "GITHUB_STEP_SUMMARY",
    )
}

pytestmark = pytest.mark.timeout(120)


def report(
    tmp_path: Path, verdict: str = "fail", text: str = "lm loss moved", name: str = "report.md"
) -> Path:
    path = tmp_path / name
    path.write_text(
        f"<!-- ci-golden:verdict={verdict} -->\n## ci-golden: {verdict}\n\n{text}\n",
        encoding="utf-8",
    )
    return path


def github_env(
    server: GitHubAPIServer,
    tmp_path: Path,
    event: str = "pull_request.opened.json",
    name: str = "pull_request",
    *,
    token: str | None = None,
    repo: str = f"{OWNER}/{NAME}",
    **extra: str,
) -> dict[str, str]:
    return {
        **CLEARED,
        **FAST,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": name,
        "GITHUB_EVENT_PATH": str(EVENTS / event) if "/" not in event else event,
        "GITHUB_REPOSITORY": repo,
        "GITHUB_API_URL": server.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SHA": "f" * 40,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_TOKEN": token or server.token,
        **extra,
    }


def ours(
    server: GitHubAPIServer, owner: str = OWNER, repo: str = NAME, number: int = PR
) -> list[str]:
    return [c.body for c in server.comments(owner, repo, number) if c.body.startswith(MARKER)]


def no_secret(result: CliResult, server: GitHubAPIServer | GitLabAPIServer, *tokens: str) -> None:
    bodies = (
        [c.body for c in server.state.comments.values()]
        if isinstance(server, GitHubAPIServer)
        else [n.body for n in server.state.notes.values()]
    )
    for token in (server.token, *tokens):
        assert token not in result.stdout
        assert token not in result.stderr
        assert all(token not in b for b in bodies)


def comment(*args: str | Path, env: dict[str, str], timeout: float = 90) -> CliResult:
    return run_cli("-v", "comment", *args, env=env, timeout=timeout)


# -- the sticky comment ----------------------------------------------------------------------------


def test_create_then_update_in_place(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    github_api.add_comment(OWNER, NAME, PR, "LGTM")
    env = github_env(github_api, tmp_path)
    first = comment(report(tmp_path, text="first"), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == (
        f"ci-golden comment: created comment {github_api.comments(OWNER, NAME, PR)[1].id} "
        f"on pull request {OWNER}/{NAME}#{PR}"
    )
    assert (
        first.stderr.splitlines()[-1]
        == "ci-golden comment: 3 API requests (2 pages listed + 1 write)"
    )
    second = comment(report(tmp_path, verdict="pass", text="second"), env=env)
    assert second.returncode == 0, second.stderr
    assert (
        second.stderr.splitlines()[-1]
        == "ci-golden comment: 2 API requests (1 page listed + 1 write)"
    )
    assert ours(github_api) == [
        f"{MARKER}\n<!-- ci-golden:verdict=pass -->\n## ci-golden: pass\n\nsecond\n"
    ]
    assert len(github_api.comments(OWNER, NAME, PR)) == 2
    no_secret(second, github_api)


def test_250_comments_ours_on_page_3(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    for i in range(250):
        body = f"{MARKER}\nold report" if i == 220 else f"comment {i}"
        github_api.add_comment(OWNER, NAME, PR, body)
    result = comment(report(tmp_path, text="latest"), env=github_env(github_api, tmp_path))
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.splitlines()[-1]
        == "ci-golden comment: 4 API requests (3 pages listed + 1 write)"
    )
    assert [e.query for e in github_api.exchanges if e.method == "GET"] == [
        "per_page=100",
        "per_page=100&page=2",
        "per_page=100&page=3",
    ]
    assert ours(github_api) == [
        f"{MARKER}\n<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\nlatest\n"
    ]
    assert len(github_api.comments(OWNER, NAME, PR)) == 250


def test_duplicates_left_by_an_old_race_are_removed(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    keep = github_api.add_comment(OWNER, NAME, PR, f"{MARKER}\nold 1")
    gone = github_api.add_comment(OWNER, NAME, PR, f"{MARKER}\nold 2")
    result = comment(report(tmp_path, text="new"), env=github_env(github_api, tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"ci-golden comment: deleted duplicate comments {gone}" in result.stdout
    assert [c.id for c in github_api.comments(OWNER, NAME, PR)] == [keep]
    assert ours(github_api)[0].endswith("\nnew\n")


FAULTS: dict[str, tuple[bool, dict[str, t.Any]]] = {
    # name: (an old comment of ours exists, fault)
    "500 on list": (True, {"kind": "status", "method": "GET", "status": 500}),
    "502 on list": (
        False,
        {"kind": "status", "method": "GET", "status": 502, "message": "Server Error"},
    ),
    "503 on update": (True, {"kind": "status", "method": "PATCH", "status": 503, "times": 2}),
    "429 on create": (
        False,
        {
            "kind": "status",
            "method": "POST",
            "status": 429,
            "headers": {"Retry-After": "1"},
            "message": "API rate limit exceeded for installation ID 1.",
        },
    ),
    "403 secondary limit on update": (
        True,
        {
            "kind": "status",
            "method": "PATCH",
            "status": 403,
            "headers": {"Retry-After": "1"},
            "message": "You have exceeded a secondary rate limit."
            " Please wait a few minutes before you try again.",
        },
    ),
    "403 secondary limit on create": (
        False,
        {
            "kind": "status",
            "method": "POST",
            "status": 403,
            "headers": {"Retry-After": "1"},
            "message": "You have exceeded a secondary rate limit."
            " Please wait a few minutes before you try again.",
        },
    ),
    "connection reset on list": (True, {"kind": "reset", "method": "GET"}),
    "connection reset on create": (False, {"kind": "reset", "method": "POST"}),
    "slow list": (True, {"kind": "slow", "method": "GET", "delay": 3.0}),
    "slow create, stored": (False, {"kind": "slow", "method": "POST", "delay": 3.0}),
    "lost create, stored": (False, {"kind": "lost", "method": "POST"}),
    "502 on create": (False, {"kind": "status", "method": "POST", "status": 502}),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_faults_end_with_one_current_comment(
    github_api: GitHubAPIServer, tmp_path: Path, name: str
) -> None:
    existing, fault = FAULTS[name][0], dict(FAULTS[name][1])
    for i in range(3):
        github_api.add_comment(OWNER, NAME, PR, f"comment {i}")
    if existing:
        github_api.add_comment(OWNER, NAME, PR, f"{MARKER}\nold report")
    kind = fault.pop("kind")
    github_api.inject(kind, path="comments", **fault)
    result = comment(report(tmp_path, text=f"after {name}"), env=github_env(github_api, tmp_path))
    assert result.returncode == 0, result.stderr
    assert ours(github_api) == [
        f"{MARKER}\n<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\nafter {name}\n"
    ]
    assert any(e.fault == kind for e in github_api.exchanges), "the fault was not hit"
    figure = result.stderr.splitlines()[-1]
    assert figure.startswith("ci-golden comment: ") and "failed)" in figure
    no_secret(result, github_api)


def test_retry_after_is_honoured_then_gives_up_within_the_limit(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    github_api.inject("status", method="GET", status=503, times=100)
    env = {**github_env(github_api, tmp_path), "CI_GOLDEN_HTTP_ATTEMPTS": "3"}
    result = comment(report(tmp_path), env=env)
    assert result.returncode == 2
    url = f"{github_api.url}/repos/{OWNER}/{NAME}/issues/{PR}/comments?per_page=100"
    assert result.stderr.splitlines()[-1] == (
        f"ci-golden comment: error: GET {url}: HTTP 503: Server Error (gave up after 3 attempts)"
    )
    assert github_api.count("GET") == 3
    assert result.stderr.count("retrying GET in") == 2


def test_rate_limit_reset_beyond_the_deadline_gives_up_at_once(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    github_api.inject(
        "status",
        method="GET",
        status=403,
        message="API rate limit exceeded for installation.",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4102444800"},
    )  # 2100
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path))
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    wait = int(last.split("waiting ")[1].split("s ")[0])
    assert wait > 30
    assert last.endswith(
        f"HTTP 403: API rate limit exceeded for installation. (gave up: waiting {wait}s to retry "
        "would pass the 30s limit)"
    )
    assert github_api.count("GET") == 1


@pytest.mark.timeout(240)
def test_two_processes_at_the_same_moment(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    github_api.add_comment(OWNER, NAME, PR, "first!")
    github_api.race_lists(2, timeout=90)  # both list before either creates: both create
    # the held list must not time out and be retried: a retry would meet the first list at the
    # barrier by itself, and the other process, started late on a loaded machine, would find the
    # comment
    patient = {"CI_GOLDEN_HTTP_TIMEOUT": "120", "CI_GOLDEN_HTTP_DEADLINE": "180"}
    env = {**__import__("os").environ, **github_env(github_api, tmp_path), **patient}
    path = report(tmp_path, text="raced")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ci_golden", "-v", "comment", str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=200) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not github_api.race_broken, "the second process did not list within 90 s"
    # the race really happened: no request was retried, so the two lists held at the barrier
    # came one from each process, and both processes then created
    assert [err.count("retrying") for _, err in outs] == [0, 0], outs
    assert github_api.count("POST") == 2
    assert ours(github_api) == [
        f"{MARKER}\n<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\nraced\n"
    ]
    assert len(github_api.comments(OWNER, NAME, PR)) == 2


# -- options ---------------------------------------------------------------------------------------


def test_only_on_regression(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    env = github_env(github_api, tmp_path)
    passed = comment(report(tmp_path, verdict="pass"), "--only-on-regression", env=env)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines()[-1] == (
        "ci-golden comment: no regression and no earlier comment on pull request "
        f"{OWNER}/{NAME}#{PR}: "
        "nothing posted (--only-on-regression)"
    )
    assert github_api.comments(OWNER, NAME, PR) == []
    failed = comment(
        report(tmp_path, verdict="fail", text="broke"), "--only-on-regression", env=env
    )
    assert failed.returncode == 0 and ours(github_api)[0].endswith("broke\n")
    fixed = comment(report(tmp_path, verdict="pass", text="fixed"), "--only-on-regression", env=env)
    assert fixed.returncode == 0 and ours(github_api) == [
        f"{MARKER}\n<!-- ci-golden:verdict=pass -->\n## ci-golden: pass\n\nfixed\n"
    ]


def test_status_and_key(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    result = comment(
        report(tmp_path, verdict="drift"),
        "--status",
        "--key",
        "nightly",
        env=github_env(github_api, tmp_path),
    )
    assert result.returncode == 0, result.stderr
    sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert (
        result.stdout.splitlines()[-1]
        == f"ci-golden comment: commit status ci-golden/nightly = failure on {sha[:12]}"
    )
    [status] = github_api.state.statuses
    assert (
        status["sha"],
        status["state"],
        status["context"],
        status["description"],
        status["target_url"],
    ) == (
        sha,
        "failure",
        "ci-golden/nightly",
        "golden values: drift",
        f"https://github.com/{OWNER}/{NAME}/actions/runs/4242",
    )
    assert github_api.comments(OWNER, NAME, PR)[0].body.startswith(
        "<!-- ci-golden:report key=nightly -->\n"
    )
    assert (
        result.stderr.splitlines()[-1]
        == "ci-golden comment: 4 API requests (2 pages listed + 2 writes)"
    )


def test_dry_run_writes_nothing(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    result = comment(
        report(tmp_path), "--dry-run", "--status", env=github_env(github_api, tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"ci-golden comment: dry run: would create a comment on pull request {OWNER}/{NAME}#{PR}"
        in result.stdout
    )
    assert f"{MARKER}\n<!-- ci-golden:verdict=fail -->" in result.stdout  # -v shows the body
    assert {e.method for e in github_api.exchanges} == {"GET"}
    assert github_api.comments(OWNER, NAME, PR) == [] and github_api.state.statuses == []


def test_report_json_is_rendered_to_fit(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    from ci_golden.compare.engine import compare_job
    from ci_golden.goldens.discover import Job
    from ci_golden.report.aggregate import build_report

    results = [
        compare_job(
            Job(f"gpt/case_{i:03d}", "dev", "dgx_h100", Path("g.json")),
            None,
            None,
            policies={},
            gated=(),
            nondeterministic=False,
            error="Traceback: CUDA error " * 200,
        )
        for i in range(300)
    ]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(build_report(results, run_url="https://ci/run/1").to_dict()))
    assert path.stat().st_size > 1_000_000
    result = comment(path, env=github_env(github_api, tmp_path))
    assert result.returncode == 0, result.stderr
    [body] = ours(github_api)
    assert len(body) <= 65_536
    assert body.startswith(f"{MARKER}\n<!-- ci-golden:verdict=error -->\n")
    assert "gpt/case_299" in body  # the table is whole; details were cut


def test_long_markdown_is_cut_at_a_details_boundary(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    blocks = "".join(
        f"<details><summary>case {i}</summary>\n\n{'y' * 999}\n</details>\n\n" for i in range(100)
    )
    path = tmp_path / "report.md"
    path.write_text(f"<!-- ci-golden:verdict=fail -->\n| case | verdict |\n|---|---|\n\n{blocks}")
    result = comment(path, env=github_env(github_api, tmp_path))
    assert result.returncode == 0, result.stderr
    [body] = ours(github_api)
    assert len(body) <= 65_536
    assert body.endswith(
        "</details>\n\n> [!NOTE]\n> Cut to fit GitHub's 65,498-character limit. "
        f"The full report is in [the CI run](https://github.com/{OWNER}/{NAME}/actions/runs/4242).\n"
    )
    assert body.count("<details>") == body.count("</details>")


# -- context, forks, tokens ------------------------------------------------------------------------


def test_fork_pull_request_writes_the_step_summary(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    payload = json.loads((EVENTS / "pull_request.opened.json").read_text())
    payload["pull_request"]["head"]["repo"]["full_name"] = (
        "Octocoder/Hello-World"  # derived: a fork's PR
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    env = github_env(github_api, tmp_path, str(event), token=READ_ONLY)
    result = comment(report(tmp_path, text="from a fork"), "--status", env=env)
    assert result.returncode == 0, result.stderr
    assert github_api.comments(OWNER, NAME, PR) == [] and github_api.state.statuses == []
    assert (
        tmp_path / "summary.md"
    ).read_text() == "<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\nfrom a fork\n"
    notice = result.stdout.splitlines()[-1]
    assert notice.startswith(
        "::notice title=ci-golden comment::GitHub gives jobs of pull requests from forks a "
        "read-only token, so this job cannot comment (HTTP 403: Resource not accessible by "
        "integration)."
    )
    assert ".github/workflows/golden-comment.yml" in notice and "`workflow_run`" in notice
    no_secret(result, github_api, READ_ONLY)


def test_workflow_run_posts_on_the_pull_request(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    env = github_env(
        github_api,
        tmp_path,
        "workflow_run.completed.with_pull_request.json",
        "workflow_run",
        repo="octo-org/octo-repo",
    )
    result = comment(report(tmp_path), "--status", env=env)
    assert result.returncode == 0, result.stderr
    assert len(ours(github_api, "octo-org", "octo-repo", 2)) == 1
    [status] = github_api.state.statuses
    assert (status["sha"], status["target_url"]) == (
        "3484a3fb816e0859fd6e1cea078d76385ff50625",
        "https://github.com/octo-org/octo-repo/actions/runs/289782451",
    )


def test_workflow_run_of_a_fork_needs_the_number(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    env = github_env(
        github_api,
        tmp_path,
        "workflow_run.completed.json",
        "workflow_run",
        repo="octo-org/octo-repo",
    )
    result = comment(report(tmp_path), env=env)
    assert (result.returncode, result.stdout) == (
        0,
        "::notice title=ci-golden comment::the workflow_run event names no pull request:"
        " no comment posted\n",
    )
    assert github_api.exchanges == []
    given = comment(report(tmp_path), "--pr", "7", env=env)
    assert given.returncode == 0, given.stderr
    assert len(ours(github_api, "octo-org", "octo-repo", 7)) == 1


def test_merge_queue_comments_on_its_pull_request(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    env = github_env(github_api, tmp_path, "merge_group.checks_requested.json", "merge_group")
    result = comment(report(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert len(ours(github_api, number=104)) == 1


def test_push_is_not_a_pull_request(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path, "push.json", "push"))
    assert (result.returncode, result.stdout, github_api.exchanges) == (
        0,
        "::notice title=ci-golden comment::this run was triggered by push, not by a pull request: "
        "no comment posted\n",
        [],
    )


def test_outside_ci(tmp_path: Path) -> None:
    result = comment(report(tmp_path), env={**CLEARED})
    assert (result.returncode, result.stdout) == (
        0,
        "ci-golden comment: not running in GitHub Actions or GitLab CI (use --forge):"
        " nothing posted\n",
    )


def test_missing_report_is_exit_2(tmp_path: Path) -> None:
    result = comment(tmp_path / "nope.md", env={**CLEARED})
    assert (result.returncode, result.stderr) == (
        2,
        f"ci-golden comment: error: {tmp_path / 'nope.md'}: cannot read the report:"
        " No such file or directory\n",
    )


def test_no_token(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    env = {**github_env(github_api, tmp_path), "GITHUB_TOKEN": ""}
    result = comment(report(tmp_path), env=env)
    assert (result.returncode, result.stderr) == (
        2,
        (
            f"ci-golden comment: error: no token to comment on pull request {OWNER}/{NAME}#{PR}: "
            "set GITHUB_TOKEN (or CI_GOLDEN_GITHUB_TOKEN)\n"
        ),
    )


def test_the_token_never_shows(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    leaked = report(tmp_path, text=f"env dump: GITHUB_TOKEN={github_api.token}")
    ok = comment(leaked, env=github_env(github_api, tmp_path))
    assert ok.returncode == 0
    assert ours(github_api)[0].endswith("env dump: GITHUB_TOKEN=***\n")
    no_secret(ok, github_api)
    wrong = "ghs_wrongtoken0123456789"
    bad = comment(leaked, env=github_env(github_api, tmp_path, token=wrong))
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        f"ci-golden comment: error: GET {github_api.url}/repos/{OWNER}/{NAME}/issues/"
        f"{PR}/comments?per_page=100: HTTP 401: Bad credentials"
    )
    no_secret(bad, github_api, wrong)


# -- GitLab ----------------------------------------------------------------------------------------


def gitlab_env(server: GitLabAPIServer, **extra: str) -> dict[str, str]:
    return {
        **CLEARED,
        **FAST,
        "GITLAB_CI": "true",
        "CI_API_V4_URL": server.url,
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "5",
        "CI_PIPELINE_URL": "https://gitlab.example.com/g/p/-/pipelines/9",
        "CI_COMMIT_SHA": "c" * 40,
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_GOLDEN_GITLAB_TOKEN": server.token,
        "CI_JOB_TOKEN": server.job_token,
        **extra,
    }


def test_gitlab_note_created_then_updated(gitlab_api: GitLabAPIServer, tmp_path: Path) -> None:
    for i in range(230):
        gitlab_api.add_note("42", 5, f"note {i}", system=i % 2 == 0)
    env = gitlab_env(gitlab_api)
    first = comment(report(tmp_path, text="one"), "--status", env=env)
    assert first.returncode == 0, first.stderr
    assert (
        first.stderr.splitlines()[-1]
        == "ci-golden comment: 8 API requests (6 pages listed + 2 writes)"
    )
    second = comment(report(tmp_path, text="two"), env=env)
    assert second.returncode == 0, second.stderr
    assert (
        second.stderr.splitlines()[-1]
        == "ci-golden comment: 4 API requests (3 pages listed + 1 write)"
    )
    mine = [n for n in gitlab_api.notes("42", 5) if n.body.startswith(MARKER)]
    assert [n.body for n in mine] == [
        f"{MARKER}\n<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\ntwo\n"
    ]
    [status] = gitlab_api.state.statuses
    assert (status["sha"], status["status"], status["name"], status["target_url"]) == (
        "c" * 40,
        "failed",
        "ci-golden",
        "https://gitlab.example.com/g/p/-/pipelines/9",
    )
    no_secret(second, gitlab_api, gitlab_api.job_token)


def test_gitlab_lost_create(gitlab_api: GitLabAPIServer, tmp_path: Path) -> None:
    gitlab_api.inject("lost", method="POST", path="notes")
    result = comment(report(tmp_path, text="lost"), env=gitlab_env(gitlab_api))
    assert result.returncode == 0, result.stderr
    assert [n.body for n in gitlab_api.notes("42", 5)] == [
        f"{MARKER}\n<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\nlost\n"
    ]
    assert gitlab_api.count("POST") == 1


def test_gitlab_job_token_only(gitlab_api: GitLabAPIServer, tmp_path: Path) -> None:
    result = comment(report(tmp_path), env=gitlab_env(gitlab_api, CI_GOLDEN_GITLAB_TOKEN=""))
    assert result.returncode == 2
    assert result.stderr == (
        "ci-golden comment: error: only CI_JOB_TOKEN is set, and GitLab's job token cannot write "
        "merge request notes. Create a project access token (Settings > Access tokens) with the "
        "`api` scope and the Reporter role, store it as a masked CI/CD variable named "
        "CI_GOLDEN_GITLAB_TOKEN, and run again\n"
    )
    assert gitlab_api.exchanges == []
    no_secret(result, gitlab_api, gitlab_api.job_token)


def test_gitlab_branch_pipeline(gitlab_api: GitLabAPIServer, tmp_path: Path) -> None:
    result = comment(
        report(tmp_path),
        env=gitlab_env(gitlab_api, CI_MERGE_REQUEST_IID="", CI_PIPELINE_SOURCE="push"),
    )
    assert (result.returncode, result.stdout) == (
        0,
        "ci-golden comment: this pipeline (push) belongs to no merge request: no comment posted\n",
    )


def test_a_fork_whose_step_summary_is_a_fifo(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    payload = json.loads((EVENTS / "pull_request.opened.json").read_text())
    payload["pull_request"]["head"]["repo"]["full_name"] = "Octocoder/Hello-World"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    env = github_env(github_api, tmp_path, str(event), token=READ_ONLY)
    summary = tmp_path / "summary.md"
    os.mkfifo(summary)  # appending to it would wait for a reader forever
    result = comment(report(tmp_path, text="from a fork"), env=env)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        2,
        f"ci-golden comment: error: {summary}: not a regular file (a FIFO); refused without "
        "opening it",
    )
    assert github_api.comments(OWNER, NAME, PR) == []
