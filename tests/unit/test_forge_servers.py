"""The test forge servers are faithful (OpenAPI checks, schemathesis, real clients: PyGithub and
python-gitlab), and the forge client behaves against them: retry delays honoured exactly,
downloads that keep the token on the API host, pagination, typed errors."""

from __future__ import annotations

import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from servers.base import OPENAPI
from servers.fixtures import github_api_fixture, gitlab_api_fixture  # noqa: F401
from servers.github_api import GitHubAPIServer
from servers.gitlab_api import GitLabAPIServer

from ci_golden.errors import ForgeError
from ci_golden.forge.github import GitHubComments
from ci_golden.forge.gitlab import GitLabNotes
from ci_golden.forge.http import Client
from ci_golden.forge.sansio import NotFoundError, RetryPolicy
from ci_golden.forge.sticky import compose, post_sticky

ST = Path(sys.executable).parent / "st"
OWNER, NAME = "Codertocat", "Hello-World"
MARKER = "<!-- ci-golden:report key=default -->"

pytestmark = pytest.mark.timeout(180)


def client(
    server: GitHubAPIServer | GitLabAPIServer, sleeps: list[float] | None = None, **policy: t.Any
) -> Client:
    forge = "github" if isinstance(server, GitHubAPIServer) else "gitlab"
    return Client(
        forge,
        server.url,
        server.token,
        policy=RetryPolicy(**{"timeout": 2.0, **policy}),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )


# -- the servers are faithful ----------------------------------------------------------------------


def test_schemathesis_finds_the_github_server_faithful(tmp_path: Path) -> None:
    """Property-based requests from the description; every answer must conform to it.

    Status-code conformance is left out on purpose: GitHub answers 404 and 422 where its
    description omits them (delete-comment lists only 204, create-commit-status only 201).
    """
    server = GitHubAPIServer().start()
    try:
        server.add_comment("octocat", "hello-world", 1, "hello")
        proc = subprocess.run(
            [
                str(ST),
                "run",
                str(OPENAPI / "github-subset.json"),
                "--url",
                server.url,
                "-H",
                f"Authorization: Bearer {server.token}",
                "--checks",
                "not_a_server_error,content_type_conformance,response_headers_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--mode",
                "positive",
                "--max-examples",
                "10",
                "--generation-deterministic",
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=170,
            cwd=tmp_path,
        )
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Selected: 7/7" in proc.stdout and " passed" in proc.stdout
    assert server.violations == []
    assert server.count() > 50


def test_the_openapi_check_is_live(github_api: GitHubAPIServer) -> None:
    import requests

    answer = requests.post(
        f"{github_api.url}/repos/{OWNER}/{NAME}/issues/2/comments",
        json={"text": "no body"},
        headers={"Authorization": f"Bearer {github_api.token}"},
        timeout=10,
    )
    assert (answer.status_code, answer.json()["message"]) == (422, "Validation Failed")
    assert len(github_api.violations) == 1
    assert github_api.violations[0].startswith(
        f"request POST /repos/{OWNER}/{NAME}/issues/2/comments:"
        " ['InvalidRequestBody: Request body validation error"
    )
    github_api.violations.clear()


def test_pygithub_drives_the_github_server(github_api: GitHubAPIServer) -> None:
    from github import Auth, Github

    for i in range(150):
        github_api.add_comment(OWNER, NAME, 2, f"comment {i}")
    gh = Github(
        base_url=github_api.url,
        auth=Auth.Token(github_api.token),
        per_page=100,
        retry=None,
        seconds_between_requests=0,
        seconds_between_writes=0,
        lazy=True,
    )
    repo = gh.get_repo(f"{OWNER}/{NAME}")
    issue = repo.get_issue(2)
    assert [c.body for c in issue.get_comments()] == [f"comment {i}" for i in range(150)]
    created = issue.create_comment("from PyGithub")
    assert (created.body, created.user.login) == ("from PyGithub", "github-actions[bot]")
    created.edit("edited by PyGithub")
    assert github_api.comments(OWNER, NAME, 2)[-1].body == "edited by PyGithub"
    # our client finds what PyGithub wrote and the other way round
    ours = post_sticky(
        GitHubComments(client(github_api), f"{OWNER}/{NAME}", 2), "default", compose("default", "r")
    )
    assert [c.id for c in issue.get_comments() if c.body.startswith(MARKER)] == [ours.comment_id]
    created.delete()
    assert len(github_api.comments(OWNER, NAME, 2)) == 151
    status = repo.get_commit("a" * 40).create_status(
        state="failure",
        target_url="https://ci/run/1",
        description="golden values: fail",
        context="ci-golden",
    )
    assert (status.state, status.context) == ("failure", "ci-golden")
    aid = github_api.add_artifact(OWNER, NAME, 77, "ci-golden-report", b"PK\x03\x04zip")
    from github.Artifact import Artifact
    from github.PaginatedList import PaginatedList

    # the list a WorkflowRun's get_artifacts() walks, without first fetching the run itself
    runs = PaginatedList(
        Artifact, gh.requester, f"{repo.url}/actions/runs/77/artifacts", None, list_item="artifacts"
    )
    [artifact] = list(runs)
    assert (artifact.id, artifact.name, artifact.size_in_bytes) == (aid, "ci-golden-report", 7)


def test_python_gitlab_drives_the_gitlab_server(gitlab_api: GitLabAPIServer) -> None:
    import gitlab

    for i in range(45):
        gitlab_api.add_note("42", 5, f"note {i}", system=i == 0)
    gl = gitlab.Gitlab(
        gitlab_api.origin, private_token=gitlab_api.token, retry_transient_errors=False
    )
    mr = gl.projects.get(42, lazy=True).mergerequests.get(5, lazy=True)
    notes = mr.notes.list(get_all=True, per_page=20, sort="asc", order_by="created_at")
    assert [n.body for n in notes] == [f"note {i}" for i in range(45)]
    note = mr.notes.create({"body": "from python-gitlab"})
    note.body = "edited by python-gitlab"
    note.save()
    assert gitlab_api.notes("42", 5)[-1].body == "edited by python-gitlab"
    ours = post_sticky(GitLabNotes(client(gitlab_api), "42", 5), "default", compose("default", "r"))
    assert [n.id for n in mr.notes.list(get_all=True) if n.body.startswith(MARKER)] == [
        ours.comment_id
    ]
    note.delete()
    project = gl.projects.get(42, lazy=True)
    project.commits.get("b" * 40, lazy=True).statuses.create(
        {"state": "success", "name": "ci-golden"}
    )
    assert gitlab_api.state.statuses[-1]["status"] == "success"
    jid = gitlab_api.add_job("42", 9, "golden dev h100", artifacts=b"PK\x03\x04")
    gitlab_api.add_bridge("42", 9, "golden-tests", 10)
    pipeline = project.pipelines.get(9, lazy=True)
    assert [j.id for j in pipeline.jobs.list(get_all=True)] == [jid]
    assert [b.downstream_pipeline["id"] for b in pipeline.bridges.list(get_all=True)] == [10]
    assert project.jobs.get(jid, lazy=True).artifacts() == b"PK\x03\x04"


# -- the client against them -----------------------------------------------------------------------


def test_retry_after_and_reset_are_honoured_exactly(github_api: GitHubAPIServer) -> None:
    import time

    sleeps: list[float] = []
    github_api.inject(
        "status", method="GET", status=429, headers={"Retry-After": "7"}, message="slow down"
    )
    reset = int(time.time()) + 20
    github_api.inject(
        "status",
        method="GET",
        status=403,
        message="API rate limit exceeded",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    github_api.inject("status", method="GET", status=502, message="Bad Gateway")
    c = client(github_api, sleeps, backoff=0.25)
    assert list(c.pages(f"repos/{OWNER}/{NAME}/issues/2/comments")) == [[]]
    assert sleeps[0] == 7.0
    assert 18.0 <= sleeps[1] <= 21.0  # until the reset, plus a second
    assert 0.5 * 0.25 * 4 <= sleeps[2] <= 0.25 * 4  # third attempt: backoff * 2**2 with jitter
    assert (c.counts.requests, c.counts.pages, c.counts.retries) == (4, 1, 3)


def test_post_is_not_retried_blindly(github_api: GitHubAPIServer) -> None:
    from ci_golden.forge.sansio import AnswerLostError

    github_api.inject("lost", method="POST")
    c = client(github_api)
    with pytest.raises(AnswerLostError) as info:
        c.request("POST", f"repos/{OWNER}/{NAME}/issues/2/comments", json={"body": "x"})
    assert str(info.value).endswith("the forge may have applied it")
    assert github_api.count("POST") == 1 and len(github_api.comments(OWNER, NAME, 2)) == 1


def test_download_keeps_the_token_on_the_api_host(github_api: GitHubAPIServer) -> None:
    aid = github_api.add_artifact(OWNER, NAME, 5, "ci-golden-dev", b"PK\x03\x04data")
    c = client(github_api)
    assert c.download(f"repos/{OWNER}/{NAME}/actions/artifacts/{aid}/zip") == b"PK\x03\x04data"
    assert [e.status for e in github_api.exchanges] == [302, 200]


def test_gitlab_job_artifacts(gitlab_api: GitLabAPIServer) -> None:
    jid = gitlab_api.add_job("group/project", 3, "golden dev", artifacts=b"PK\x03\x04zz")
    c = client(gitlab_api)
    [page] = c.pages("projects/group%2Fproject/pipelines/3/jobs")
    assert [j["id"] for j in page] == [jid]
    assert c.download(f"projects/group%2Fproject/jobs/{jid}/artifacts") == b"PK\x03\x04zz"
    with pytest.raises(NotFoundError, match=r"HTTP 404: 404 Not found$"):
        c.download("projects/group%2Fproject/jobs/999/artifacts")


def test_the_token_never_leaves_the_api_host(github_api: GitHubAPIServer) -> None:
    c = client(github_api)
    with pytest.raises(ForgeError) as info:
        c.get("https://elsewhere.example/repos/x")
    assert str(info.value) == (
        f"refusing to send the token to https://elsewhere.example/repos/x: "
        f"not on the API host {github_api.url}/"
    )
