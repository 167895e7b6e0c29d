"""``ci-golden fetch-results`` against a hostile forge: artifact listings that loop, chains of
child pipelines without end, storage that trickles, malformed listings, and bad ids.

Every case ends with exit 2, one line, nothing written, within the client's limits (the
subprocess timeout only guards the suite).
"""

from __future__ import annotations

import random
import re
import typing as t
from pathlib import Path

import pytest
from servers.base import Reply, Request
from servers.fixtures import (  # noqa: F401
    github_api_fixture,
    gitlab_api_fixture,
    other_host_fixture,
)
from servers.hostile import OtherHost, answer, pages, redirect
from test_fetch_results import make_zip, run_folder

if t.TYPE_CHECKING:
    from conftest import CliResult
    from servers.github_api import GitHubAPIServer
    from servers.gitlab_api import GitLabAPIServer

pytestmark = pytest.mark.timeout(120)

FAST = {"CI_GOLDEN_HTTP_BACKOFF": "0.05", "CI_GOLDEN_HTTP_TIMEOUT": "1.5"}


def github_env(api: GitHubAPIServer, **extra: str) -> dict[str, str]:
    return {
        **FAST,
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_TOKEN": api.token,
        **extra,
    }


def gitlab_env(api: GitLabAPIServer, **extra: str) -> dict[str, str]:
    return {
        **FAST,
        "CI_API_V4_URL": api.url,
        "CI_GOLDEN_GITLAB_TOKEN": api.token,
        "CI_PROJECT_ID": "42",
        **extra,
    }


def fetch(
    cli: t.Any, tmp_path: Path, *args: str, env: dict[str, str], refused: bool = True
) -> CliResult:
    """Run the command in an empty folder; when it is ``refused``, nothing may appear there."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    result: CliResult = cli("fetch-results", *args, "--out", "out", cwd=work, env=env, timeout=60)
    if refused:
        assert list(work.iterdir()) == [], "something was written"
    return result


DEADLINE = re.compile(
    r"ci-golden fetch-results: error: GET \S+: (not sent: the 3 s limit for network requests"
    r" \(CI_GOLDEN_HTTP_DEADLINE\) has passed|timed out: the 3 s limit for network requests"
    r" \(CI_GOLDEN_HTTP_DEADLINE\) passed before the answer was complete)"
)


def error(result: CliResult) -> tuple[int, str]:
    return result.returncode, result.stderr.splitlines()[-1]


def artifact_json(n: int) -> dict[str, t.Any]:
    return {"id": n, "name": f"ci-golden-{n}", "expired": False}


# -- GitHub ----------------------------------------------------------------------------------------


def test_an_artifact_listing_that_loops_stops(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    def listing(n: int) -> dict[str, t.Any]:
        return {"total_count": 1, "artifacts": [artifact_json(n)]}

    github_api.inject(
        "reply", method="GET", path="/artifacts$", times=1000,
        reply=pages(listing, next_page=lambda page: 2, style="link"),
    )  # fmt: skip
    result = fetch(cli, tmp_path, "--github-run", "7", env=github_env(github_api))
    url = f"{github_api.url}/repos/acme/models/actions/runs/7/artifacts?per_page=100&page=2"
    assert error(result) == (
        2,
        f"ci-golden fetch-results: error: GET {url}: the next page ({url}) was read before:"
        " the forge's pagination loops; stopped",
    )
    assert github_api.count("GET") == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"message": "Must have admin rights to Repository."},
            'expected a JSON object with a list "artifacts", got an object without one',
        ),
        ([artifact_json(5)], 'expected a JSON object with a list "artifacts", got a list'),
        (
            {"total_count": 1, "artifacts": [{"name": "ci-golden-x", "expired": False}]},
            'the forge answered an artifact without an "id"',
        ),
        (
            {"total_count": 1, "artifacts": [{"id": 5, "name": ["x"], "expired": False}]},
            'the forge answered an artifact whose "name" is a list, not a string',
        ),
    ],
)
def test_a_malformed_artifact_listing_is_exit_2(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any, body: t.Any, message: str
) -> None:
    github_api.inject("reply", method="GET", path="/artifacts$", reply=answer(200, body))
    result = fetch(cli, tmp_path, "--github-run", "7", env=github_env(github_api))
    url = f"{github_api.url}/repos/acme/models/actions/runs/7/artifacts?per_page=100"
    assert error(result) == (2, f"ci-golden fetch-results: error: GET {url}: {message}")


def test_storage_that_trickles_is_cut_at_the_deadline(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    """A download may take until the deadline (artifacts are large), not longer: a byte every
    0.2 s never lets a read wait long enough to time out on its own."""
    aid = github_api.add_artifact(
        "acme", "models", 7, "ci-golden-a", make_zip(run_folder("demo/a", 1.5))
    )
    github_api.inject("trickle", method="GET", path="/_storage/", delay=0.2, times=10)
    env = github_env(github_api, CI_GOLDEN_HTTP_DEADLINE="3")
    result = fetch(cli, tmp_path, "--github-run", "7", env=env)
    storage = github_api.origin.replace("127.0.0.1", "localhost")
    assert error(result) == (
        2,
        f"ci-golden fetch-results: error: GET {storage}/_storage/{aid}.zip?sig=***: timed out:"
        " the 3 s limit for network requests (CI_GOLDEN_HTTP_DEADLINE) passed before the"
        " answer was complete",
    )


def test_an_archive_over_the_size_limit_is_not_downloaded(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    big = make_zip({**run_folder("demo/a", 1.5), "noise.bin": random.Random(0).randbytes(60_000)})
    aid = github_api.add_artifact("acme", "models", 7, "ci-golden-a", big)
    result = fetch(
        cli, tmp_path, "--github-run", "7", "--max-total-bytes", "50000",
        env=github_env(github_api),
    )  # fmt: skip
    assert error(result) == (
        2,
        f"ci-golden fetch-results: error: artifact 'ci-golden-a' (id {aid}): archive is"
        f" {len(big)} bytes, over the limit of 50000; refused",
    )


def test_storage_elsewhere_gets_no_token(
    github_api: GitHubAPIServer, other_host: OtherHost, tmp_path: Path, cli: t.Any
) -> None:
    """Artifacts are served by another host: followed, without the token (and the download
    that host answers is then unpacked like any other)."""
    other_host.answer = Reply(200, make_zip(run_folder("demo/a", 1.5)))
    github_api.add_artifact("acme", "models", 7, "ci-golden-a", b"unused")
    github_api.inject("reply", method="GET", path="/zip$", reply=redirect(other_host.url, 302))
    result = fetch(cli, tmp_path, "--github-run", "7", env=github_env(github_api), refused=False)
    assert result.returncode == 0, result.stderr
    assert [r.method for r in other_host.captured] == ["GET"]
    assert other_host.credentials() == []


# -- GitLab ----------------------------------------------------------------------------------------


def test_an_endless_chain_of_child_pipelines_ends_at_the_deadline(
    gitlab_api: GitLabAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    def bridges(request: Request) -> Reply:
        pipeline = int(request.path.split("/")[-2])
        return Reply(200, [{"id": pipeline, "downstream_pipeline": {"id": pipeline + 1}}])

    gitlab_api.inject("reply", method="GET", path="/bridges$", reply=bridges, times=10**9)
    env = gitlab_env(gitlab_api, CI_GOLDEN_HTTP_DEADLINE="3")
    result = fetch(cli, tmp_path, "--gitlab-pipeline", "100", env=env)
    code, last = error(result)
    assert code == 2
    assert DEADLINE.fullmatch(last), last
    assert gitlab_api.count("GET", "/bridges$") > 3


def test_a_job_listing_whose_next_page_is_itself_stops(
    gitlab_api: GitLabAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    gitlab_api.add_job("42", 100, "a", artifacts=None)
    listing = pages(
        lambda n: [{"id": 9, "name": "a", "artifacts": []}], next_page=lambda page: 1,
        style="gitlab",
    )  # fmt: skip
    gitlab_api.inject("reply", method="GET", path="/jobs$", reply=listing, times=1000)
    result = fetch(cli, tmp_path, "--gitlab-pipeline", "100", env=gitlab_env(gitlab_api))
    url = f"{gitlab_api.url}/projects/42/pipelines/100/jobs?per_page=100&page=1"
    assert error(result) == (
        2,
        f"ci-golden fetch-results: error: GET {url}: this page repeats page 1:"
        " the forge's pagination does not advance; stopped",
    )


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/jobs$", [{"name": "a"}], 'the forge answered a job without an "id"'),
        ("/jobs$", {"message": "403 Forbidden"}, "expected a JSON list, got an object"),
        (
            "/bridges$",
            [{"id": 3, "downstream_pipeline": {"id": ".."}}],
            'the forge answered a bridge whose "downstream_pipeline.id" is "..", not a positive'
            " integer",
        ),
        (
            "/bridges$",
            [{"id": 3, "downstream_pipeline": "200"}],
            'the forge answered a bridge whose "downstream_pipeline" is "200", not an object',
        ),
    ],
)
def test_a_malformed_job_listing_is_exit_2(
    gitlab_api: GitLabAPIServer, tmp_path: Path, cli: t.Any, path: str, body: t.Any, message: str
) -> None:
    gitlab_api.inject("reply", method="GET", path=path, reply=answer(200, body))
    result = fetch(cli, tmp_path, "--gitlab-pipeline", "100", env=gitlab_env(gitlab_api))
    url = f"{gitlab_api.url}/projects/42/pipelines/100{path[:-1]}?per_page=100"
    assert error(result) == (2, f"ci-golden fetch-results: error: GET {url}: {message}")


def test_artifacts_redirected_to_object_storage_get_no_token(
    gitlab_api: GitLabAPIServer, other_host: OtherHost, tmp_path: Path, cli: t.Any
) -> None:
    other_host.answer = Reply(200, make_zip(run_folder("demo/a", 1.5)))
    gitlab_api.add_job("42", 100, "demo/a dev cpu", artifacts=b"unused")
    gitlab_api.inject(
        "reply", method="GET", path="/artifacts$", reply=redirect(other_host.url, 307)
    )
    result = fetch(
        cli, tmp_path, "--gitlab-pipeline", "100", env=gitlab_env(gitlab_api), refused=False
    )
    assert result.returncode == 0, result.stderr
    assert other_host.credentials() == [] and len(other_host.captured) == 1


# -- bad ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--github-run", ".."), "argument --github-run: expected a positive integer in ASCII"
         " digits (at most 9223372036854775807), got '..'"),
        (("--github-run", "٣"), "argument --github-run: expected a positive integer in ASCII"
         " digits (at most 9223372036854775807), got '٣'"),
        (("--gitlab-pipeline", "0"), "argument --gitlab-pipeline: expected a positive integer in"
         " ASCII digits (at most 9223372036854775807), got '0'"),
        (("--gitlab-pipeline", "1", "--project", ".."), "argument --project: expected a GitLab"
         " project id (a positive integer) or path (group/project), got '..'"),
        (("--gitlab-pipeline", "1", "--project", "g/../p"), "argument --project: expected a"
         " GitLab project id (a positive integer) or path (group/project), got 'g/../p'"),
        (("--github-run", "1", "--repo", "acme/.."), "argument --repo: expected OWNER/NAME"
         " (letters, digits, '-', '_' and '.'), got 'acme/..'"),
        (("--github-run", "1", "--max-total-bytes", "٣"), "argument --max-total-bytes: expected"
         " a positive integer in ASCII digits (at most 9223372036854775807), got '٣'"),
        (("--github-run", "1", "--max-entry-bytes", "0"), "argument --max-entry-bytes: expected"
         " a positive integer in ASCII digits (at most 9223372036854775807), got '0'"),
    ],
)  # fmt: skip
def test_bad_ids_are_refused_before_any_request(
    github_api: GitHubAPIServer,
    gitlab_api: GitLabAPIServer,
    tmp_path: Path,
    cli: t.Any,
    args: tuple[str, ...],
    message: str,
) -> None:
    env = {**github_env(github_api), **gitlab_env(gitlab_api)}
    result = fetch(cli, tmp_path, *args, env=env)
    assert error(result) == (2, f"ci-golden fetch-results: error: {message}")
    assert github_api.exchanges == [] and gitlab_api.exchanges == []


def test_a_bad_token_is_refused_unseen(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    token = github_api.token + "\n"
    result = fetch(
        cli, tmp_path, "--github-run", "7", env=github_env(github_api, GITHUB_TOKEN=token)
    )
    assert (result.returncode, result.stderr) == (
        2,
        "ci-golden fetch-results: error: GITHUB_TOKEN holds whitespace, a control character or a"
        " character outside ASCII, which no token has; set it again without them"
        " (its value is not shown)\n",
    )
    assert github_api.token not in result.stderr and github_api.exchanges == []
