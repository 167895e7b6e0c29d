"""``ci-golden comment`` against a hostile forge, on GitHub and on GitLab: redirects to another
host, pages that loop or never advance, answers that trickle, malformed answers, rate limits
asking for absurd waits, and hostile CI variables.

What must hold in every case: no token and no request body reaches another host, the command
ends within its limits (CI_GOLDEN_HTTP_*; the subprocess timeout only guards the suite), a
broken answer is exit 2 with one line, and a broken answer never leads to a new comment.
"""

from __future__ import annotations

import json
import re
import socket
import typing as t
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import run_cli
from servers.fixtures import (  # noqa: F401
    github_api_fixture,
    gitlab_api_fixture,
    other_host_fixture,
)
from servers.github_api import GitHubAPIServer
from servers.gitlab_api import GitLabAPIServer
from servers.hostile import OtherHost, answer, pages, redirect
from test_comment import (
    CLEARED,
    EVENTS,
    FAST,
    MARKER,
    NAME,
    OWNER,
    PR,
    comment,
    github_env,
    gitlab_env,
    report,
)

if t.TYPE_CHECKING:
    from conftest import CliResult

Server = GitHubAPIServer | GitLabAPIServer

pytestmark = pytest.mark.timeout(120)

FORGES = ("github", "gitlab")


def forge_server(request: pytest.FixtureRequest, forge: str) -> Server:
    return t.cast(Server, request.getfixturevalue(f"{forge}_api"))


def env_for(server: Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    if isinstance(server, GitHubAPIServer):
        return github_env(server, tmp_path, **extra)
    return gitlab_env(server, **extra)


def list_path(server: Server) -> str:
    if isinstance(server, GitHubAPIServer):
        return f"/repos/{OWNER}/{NAME}/issues/{PR}/comments"
    return "/projects/42/merge_requests/5/notes"


def list_url(server: Server) -> str:
    query = (
        "per_page=100"
        if isinstance(server, GitHubAPIServer)
        else ("per_page=100&sort=asc&order_by=created_at")
    )
    return f"{server.url}{list_path(server)}?{query}"


def add_comment(server: Server, body: str) -> int:
    if isinstance(server, GitHubAPIServer):
        return server.add_comment(OWNER, NAME, PR, body)
    return server.add_note("42", 5, body)


def bodies(server: Server) -> list[str]:
    if isinstance(server, GitHubAPIServer):
        return [c.body for c in server.comments(OWNER, NAME, PR)]
    return [n.body for n in server.notes("42", 5)]


def item(server: Server, n: int, body: str = "LGTM") -> dict[str, t.Any]:
    """A comment (GitHub) or note (GitLab) as the API lists it, enough for the client."""
    stamp = f"2024-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z"
    if isinstance(server, GitHubAPIServer):
        return {"id": n, "body": body, "created_at": stamp}
    return {"id": n, "body": body, "created_at": stamp, "system": False}


def shown_forms(secret: str) -> set[str]:
    """The forms in which a value could leak: as is, stripped, escaped as Python, JSON and URLs
    escape it, and its longest run without whitespace or control characters."""
    core = max(re.split(r"[\s\x00-\x1f\x7f]+", secret), key=len)
    return {
        secret,
        secret.strip(),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        secret.encode("unicode_escape").decode("ascii"),
        core,
    }


def never_shown(result: CliResult, *secrets: str) -> None:
    for secret in secrets:
        for form in shown_forms(secret):
            assert form not in result.stdout and form not in result.stderr, form


def last_error(result: CliResult) -> str:
    return result.stderr.splitlines()[-1]


# -- redirects -------------------------------------------------------------------------------------

REDIRECTS = [
    # forge, method, status, an old comment of ours exists (so that the write is an update)
    ("github", "GET", 301, False),
    ("github", "GET", 302, False),
    ("github", "POST", 307, False),
    ("github", "PATCH", 308, True),
    ("gitlab", "GET", 302, False),
    ("gitlab", "GET", 308, False),
    ("gitlab", "POST", 307, False),
    ("gitlab", "PUT", 308, True),
]


@pytest.mark.parametrize(("forge", "method", "status", "existing"), REDIRECTS)
def test_a_redirect_to_another_host_takes_neither_token_nor_body_there(
    request: pytest.FixtureRequest,
    other_host: OtherHost,
    tmp_path: Path,
    forge: str,
    method: str,
    status: int,
    existing: bool,
) -> None:
    server = forge_server(request, forge)
    old = f"{MARKER}\nold report"
    if existing:
        add_comment(server, old)
    fault = server.inject("reply", method=method, reply=redirect(other_host.url, status))
    result = comment(report(tmp_path, text="new"), env=env_for(server, tmp_path))
    assert result.returncode == 2, result.stderr
    assert other_host.captured == []
    path = next(e for e in server.exchanges if e.method == method)
    sent = f"{server.url}{path.path}" + (f"?{path.query}" if path.query else "")
    assert last_error(result) == (
        f"ci-golden comment: error: {method} {sent}: HTTP {status} redirect to "
        f"{other_host.url}{path.path}"
        + (f"?{path.query}" if path.query else "")
        + f" not followed: it is not on the API host {server.origin}"
    )
    assert fault.times == 0
    assert bodies(server) == ([old] if existing else [])
    never_shown(result, server.token)


def test_a_redirect_on_the_api_host_is_followed(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    """A renamed repository answers 301 (reads) and 307 (writes) on the API host itself."""
    github_api.add_comment(OWNER, NAME, PR, f"{MARKER}\nold report")
    github_api.inject("reply", method="GET", reply=redirect(github_api.url, 301))
    github_api.inject("reply", method="PATCH", reply=redirect(github_api.url, 307))
    result = comment(report(tmp_path, text="moved"), env=github_env(github_api, tmp_path))
    assert result.returncode == 0, result.stderr
    assert bodies(github_api) == [
        f"{MARKER}\n<!-- ci-golden:verdict=fail -->\n## ci-golden: fail\n\nmoved\n"
    ]
    assert [(e.method, e.status) for e in github_api.exchanges] == [
        ("GET", 301), ("GET", 200), ("PATCH", 307), ("PATCH", 200),
    ]  # fmt: skip
    assert result.stderr.splitlines()[-1] == (
        "ci-golden comment: 4 API requests (1 page listed + 1 write, 2 redirected)"
    )


def test_a_write_redirected_as_a_read_is_not_resent(
    gitlab_api: GitLabAPIServer, tmp_path: Path
) -> None:
    gitlab_api.inject("reply", method="POST", reply=redirect(gitlab_api.url, 303))
    result = comment(report(tmp_path), env=gitlab_env(gitlab_api))
    assert result.returncode == 2
    url = f"{gitlab_api.url}/projects/42/merge_requests/5/notes"
    assert last_error(result) == (
        f"ci-golden comment: error: POST {url}: HTTP 303 redirect to {url} not followed: "
        "a POST is not sent again as a GET"
    )
    assert gitlab_api.count("POST") == 1 and bodies(gitlab_api) == []


# -- pages that loop or never advance --------------------------------------------------------------


def following(page: int) -> int:
    return page + 1


@pytest.mark.parametrize("forge", FORGES)
def test_a_next_page_that_points_back_is_a_loop(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str
) -> None:
    server = forge_server(request, forge)
    style = "link" if forge == "github" else "gitlab"
    loop = pages(lambda n: [item(server, 7)], next_page=lambda page: 1, style=style)
    server.inject("reply", method="GET", reply=loop, times=1000)
    result = comment(report(tmp_path), env=env_for(server, tmp_path))
    assert result.returncode == 2, result.stderr
    if forge == "github":
        again = f"{server.url}{list_path(server)}?per_page=100&page=1"
        assert last_error(result) == (
            f"ci-golden comment: error: GET {again}: this page repeats page 1:"
            " the forge's pagination does not advance; stopped"
        )
        assert server.count("GET") == 2
    else:
        first = list_url(server)
        assert last_error(result) == (
            f"ci-golden comment: error: GET {first}&page=1: this page repeats page 1:"
            " the forge's pagination does not advance; stopped"
        )
        assert server.count("GET") == 2
    assert server.count("POST") == 0


@pytest.mark.parametrize("forge", FORGES)
def test_a_next_page_that_is_the_page_itself_is_a_loop(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str
) -> None:
    server = forge_server(request, forge)
    style = "link" if forge == "github" else "gitlab"
    stuck = pages(lambda n: [item(server, n)], next_page=lambda page: 2, style=style)
    server.inject("reply", method="GET", reply=stuck, times=1000)
    result = comment(report(tmp_path), env=env_for(server, tmp_path))
    assert result.returncode == 2, result.stderr
    page2 = (
        f"{server.url}{list_path(server)}?per_page=100&page=2"
        if forge == "github"
        else f"{list_url(server)}&page=2"
    )
    assert last_error(result) == (
        f"ci-golden comment: error: GET {page2}: the next page ({page2}) was read before:"
        " the forge's pagination loops; stopped"
    )
    assert (server.count("GET"), server.count("POST")) == (2, 0)


@pytest.mark.parametrize("forge", FORGES)
def test_pages_that_repeat_the_same_comments_stop(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str
) -> None:
    server = forge_server(request, forge)
    style = "link" if forge == "github" else "gitlab"
    server.inject(
        "reply",
        method="GET",
        reply=pages(lambda n: [item(server, 1), item(server, 2)], next_page=following, style=style),
        times=1000,
    )
    result = comment(report(tmp_path), env=env_for(server, tmp_path))
    assert result.returncode == 2, result.stderr
    assert last_error(result).endswith(
        "page=2: this page repeats page 1: the forge's pagination does not advance; stopped"
    )
    assert (server.count("GET"), server.count("POST")) == (2, 0)


def test_an_empty_page_that_names_a_next_page_stops(
    github_api: GitHubAPIServer, tmp_path: Path
) -> None:
    github_api.inject(
        "reply", method="GET", reply=pages(lambda n: [], next_page=following, style="link"),
        times=1000,
    )  # fmt: skip
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path))
    assert result.returncode == 2, result.stderr
    url = list_url(github_api)
    assert last_error(result) == (
        f"ci-golden comment: error: GET {url}: an empty page names a next page"
        f" ({url}&page=2): the forge's pagination does not advance; stopped"
    )
    assert (github_api.count("GET"), github_api.count("POST")) == (1, 0)


@pytest.mark.parametrize("forge", FORGES)
def test_endless_new_pages_end_at_the_deadline(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str
) -> None:
    server = forge_server(request, forge)
    style = "link" if forge == "github" else "gitlab"
    endless = pages(lambda n: [item(server, n)], next_page=following, style=style)
    server.inject("reply", method="GET", reply=endless, times=10**9)
    env = env_for(server, tmp_path, CI_GOLDEN_HTTP_DEADLINE="3")
    result = comment(report(tmp_path), env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert re.fullmatch(
        r"ci-golden comment: error: GET \S+page=\d+: (not sent: the 3 s limit for network"
        r" requests \(CI_GOLDEN_HTTP_DEADLINE\) has passed|timed out: the 3 s limit for network"
        r" requests \(CI_GOLDEN_HTTP_DEADLINE\) passed before the answer was complete)",
        last_error(result),
    ), last_error(result)
    assert server.count("GET") > 2 and server.count("POST") == 0


# -- answers that trickle --------------------------------------------------------------------------


@pytest.mark.parametrize(("forge", "head"), [("github", False), ("gitlab", True)])
def test_a_trickling_answer_times_out(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str, head: bool
) -> None:
    """One byte every 0.2 s: no read ever waits long, so only a limit on the whole answer ends
    it (here, about 1000 s of trickle against a 1 s limit)."""
    server = forge_server(request, forge)
    for i in range(5):
        add_comment(server, f"comment {i} " + "x" * 200)
    server.inject("trickle", method="GET", delay=0.2, head=head, times=10)
    env = env_for(server, tmp_path, CI_GOLDEN_HTTP_TIMEOUT="1", CI_GOLDEN_HTTP_ATTEMPTS="2")
    result = comment(report(tmp_path), env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert last_error(result) == (
        f"ci-golden comment: error: GET {list_url(server)}: timed out: no complete answer"
        " within 1 s (gave up after 2 attempts)"
    )
    assert server.count("POST") == 0


def test_a_trickle_is_cut_at_the_deadline(github_api: GitHubAPIServer, tmp_path: Path) -> None:
    github_api.add_comment(OWNER, NAME, PR, "x" * 5000)
    github_api.inject("trickle", method="GET", delay=0.2)
    env = github_env(
        github_api, tmp_path, CI_GOLDEN_HTTP_TIMEOUT="600", CI_GOLDEN_HTTP_DEADLINE="2"
    )
    result = comment(report(tmp_path), env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert last_error(result) == (
        f"ci-golden comment: error: GET {list_url(github_api)}: timed out: the 2 s limit for"
        " network requests (CI_GOLDEN_HTTP_DEADLINE) passed before the answer was complete"
    )


def test_an_answer_over_the_size_limit_is_not_read(
    gitlab_api: GitLabAPIServer, tmp_path: Path
) -> None:
    for i in range(30):
        gitlab_api.add_note("42", 5, f"note {i} " + "y" * 1000)
    env = gitlab_env(gitlab_api, CI_GOLDEN_HTTP_MAX_BYTES="20000")
    result = comment(report(tmp_path), env=env)
    assert result.returncode == 2, result.stderr
    assert last_error(result) == (
        f"ci-golden comment: error: GET {list_url(gitlab_api)}: the answer is larger than"
        " 20000 bytes (CI_GOLDEN_HTTP_MAX_BYTES); not read"
    )
    assert gitlab_api.count("POST") == 0


# -- malformed answers -----------------------------------------------------------------------------

MALFORMED_LISTS = {
    "an error object": (
        {"message": "API rate limit exceeded"},
        "expected a JSON list, got an object",
    ),
    "a comment without id": (
        [{"body": f"{MARKER}\nold", "created_at": "2024-01-01T00:00:00Z"}],
        'the forge answered a comment without an "id"',
    ),
    "an id that is true": (
        [{"id": True, "body": "LGTM", "created_at": "2024-01-01T00:00:00Z"}],
        'the forge answered a comment whose "id" is true, not a positive integer',
    ),
    "an id that is a string": (
        [{"id": "1001", "body": "LGTM", "created_at": "2024-01-01T00:00:00Z"}],
        'the forge answered a comment whose "id" is "1001", not a positive integer',
    ),
    "an id of 10^23": (
        [{"id": 10**23, "body": "LGTM", "created_at": "2024-01-01T00:00:00Z"}],
        'the forge answered a comment whose "id" is 100000000000000000000000,'
        " not a positive integer",
    ),
    "a comment that is a string": (["LGTM"], "the forge answered a comment that is not an object"),
    "a body that is a number": (
        [{"id": 3, "body": 5, "created_at": "2024-01-01T00:00:00Z"}],
        'the forge answered a comment whose "body" is 5, not a string',
    ),
}


@pytest.mark.parametrize("forge", FORGES)
@pytest.mark.parametrize("case", list(MALFORMED_LISTS))
def test_a_malformed_list_is_exit_2_and_never_a_new_comment(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str, case: str
) -> None:
    server = forge_server(request, forge)
    body, message = MALFORMED_LISTS[case]
    server.inject("reply", method="GET", reply=answer(200, body), times=10)
    result = comment(report(tmp_path), env=env_for(server, tmp_path))
    assert (result.returncode, last_error(result)) == (
        2,
        f"ci-golden comment: error: GET {list_url(server)}: {message}",
    )
    assert [e.method for e in server.exchanges] == ["GET"]
    assert bodies(server) == []


@pytest.mark.parametrize("forge", FORGES)
def test_a_created_comment_without_id_is_exit_2(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str
) -> None:
    server = forge_server(request, forge)
    server.inject("reply", method="POST", reply=answer(201, {"body": "x"}))
    result = comment(report(tmp_path), env=env_for(server, tmp_path))
    url = list_url(server).split("?")[0]
    assert (result.returncode, last_error(result)) == (
        2,
        f'ci-golden comment: error: POST {url}: the forge answered a comment without an "id"',
    )
    assert server.count("POST") == 1


NOT_JSON = {
    "100,000 nested brackets": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "a huge integer": (b"[" + b"9" * 100_000 + b"]", "application/json"),
    "truncated JSON": (b'[{"id": 1, "bo', "application/json"),
    "an HTML page": (b"<html><body>Sign in</body></html>", "text/html"),
}


@pytest.mark.parametrize("case", list(NOT_JSON))
def test_an_answer_that_is_not_json_is_exit_2(
    github_api: GitHubAPIServer, tmp_path: Path, case: str
) -> None:
    data, content_type = NOT_JSON[case]
    github_api.inject("reply", method="GET", reply=answer(200, data, content_type), times=10)
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path))
    got = (
        "the answer is not JSON (content type text/html)"
        if content_type == "text/html"
        else "HTTP 200: the answer is not valid JSON"
    )
    assert (result.returncode, last_error(result)) == (
        2,
        f"ci-golden comment: error: GET {list_url(github_api)}: {got}",
    )
    assert github_api.count("POST") == 0


def test_control_characters_in_a_forge_message_are_escaped(
    gitlab_api: GitLabAPIServer, tmp_path: Path
) -> None:
    hostile = "\x1b[31mdenied\n::error::injected\r\u202e\ud800"
    gitlab_api.inject("reply", method="GET", reply=answer(422, {"message": hostile}))
    result = run_cli("comment", report(tmp_path), env=gitlab_env(gitlab_api))  # without -v
    assert (result.returncode, result.stderr) == (
        2,
        f"ci-golden comment: error: GET {list_url(gitlab_api)}: HTTP 422: "
        "\\x1b[31mdenied\\n::error::injected\\r\\u202e\\ud800\n",
    )


# -- rate limits asking for absurd waits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("forge", "method", "retry_after", "shown"),
    [
        ("github", "POST", "100000000000000000000000000000", "more than 10000000000s"),
        ("gitlab", "GET", "86400", "86400s"),
        ("github", "GET", "Fri, 31 Dec 9999 23:59:59 GMT", "more than 10000000000s"),
    ],
)
def test_a_huge_retry_after_gives_up_at_once(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    forge: str,
    method: str,
    retry_after: str,
    shown: str,
) -> None:
    server = forge_server(request, forge)
    server.inject(
        "status", method=method, status=429, message="Too Many Requests",
        headers={"Retry-After": retry_after},
    )  # fmt: skip
    result = comment(report(tmp_path), env=env_for(server, tmp_path))
    assert result.returncode == 2, result.stderr
    url = list_url(server) if method == "GET" else list_url(server).split("?")[0]
    assert last_error(result) == (
        f"ci-golden comment: error: {method} {url}: HTTP 429: Too Many Requests (gave up: "
        f"waiting {shown} to retry would pass the 30s limit)"
    )
    assert server.count(method) == 1 and bodies(server) == []


# -- hostile CI variables --------------------------------------------------------------------------

BAD_TOKENS = {
    "a trailing newline": "test-token-0123456789\n",
    "a space inside": "test-token 0123456789",
    "a tab": "\ttest-token-0123456789",
    "a carriage return": "test-token-0123456789\r",
    "an escape": "test-token-\x1b0123456789",
    "a non-ASCII letter": "test-tökén-0123456789",
}


@pytest.mark.parametrize("forge", FORGES)
@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_token_with_whitespace_or_control_characters_is_refused_unseen(
    request: pytest.FixtureRequest, tmp_path: Path, forge: str, case: str
) -> None:
    server = forge_server(request, forge)
    token = BAD_TOKENS[case]
    variable = "GITHUB_TOKEN" if forge == "github" else "CI_GOLDEN_GITLAB_TOKEN"
    env = {**env_for(server, tmp_path), variable: token}
    result = comment(report(tmp_path), env=env)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"ci-golden comment: error: {variable} holds whitespace, a control character or a "
        "character outside ASCII, which no token has; set it again without them "
        "(its value is not shown)\n",
    )
    assert server.exchanges == []
    never_shown(result, token)


def test_a_password_in_the_api_url_is_never_shown(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = "hunter2-in-the-url"
    env = {
        **CLEARED,
        **FAST,
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"http://ci-bot:{password}@127.0.0.1:{port}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "5",
        "CI_GOLDEN_GITLAB_TOKEN": "glpat-nowhere-0123456789",
        "CI_GOLDEN_HTTP_ATTEMPTS": "1",
    }
    result = comment(report(tmp_path), env=env)
    assert result.returncode == 2
    url = f"http://ci-bot:***@127.0.0.1:{port}/api/v4/projects/42/merge_requests/5/notes"
    assert last_error(result).startswith(
        f"ci-golden comment: error: GET {url}?per_page=100&sort=asc&order_by=created_at: failed: "
    )
    never_shown(result, password)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "'0'"),
        ("-5", "'-5'"),
        ("٣", "'٣'"),
        ("1.5", "'1.5'"),
        ("1" + "0" * 23, "'1" + "0" * 23 + "'"),
        ("+3", "'+3'"),
    ],
)
def test_pr_numbers_are_positive_ascii_integers(
    github_api: GitHubAPIServer, tmp_path: Path, value: str, shown: str
) -> None:
    result = comment(report(tmp_path), f"--pr={value}", env=github_env(github_api, tmp_path))
    assert (result.returncode, last_error(result)) == (
        2,
        f"ci-golden comment: error: argument --pr: expected a positive integer in ASCII digits"
        f" (at most 2147483647), got {shown}",
    )
    assert github_api.exchanges == []


@pytest.mark.parametrize("value", ["٣", "0", "-5", "5 ", "0x5", "99999999999"])
def test_merge_request_iid_must_be_ascii_digits(
    gitlab_api: GitLabAPIServer, tmp_path: Path, value: str
) -> None:
    result = comment(report(tmp_path), env=gitlab_env(gitlab_api, CI_MERGE_REQUEST_IID=value))
    assert (result.returncode, result.stderr) == (
        2,
        f"ci-golden comment: error: CI_MERGE_REQUEST_IID={value!r} is not a merge request"
        " number: expected a positive integer in ASCII digits (at most 2147483647)\n",
    )
    assert gitlab_api.exchanges == []


@pytest.mark.parametrize(
    ("number", "shown"),
    [(True, "true"), (1.5, "1.5"), (10**23, "100000000000000000000000"), ("2", '"2"'),
     (0, "0"), (-5, "-5")],
)  # fmt: skip
def test_payload_numbers_must_be_positive_integers(
    github_api: GitHubAPIServer, tmp_path: Path, number: t.Any, shown: str
) -> None:
    payload = json.loads((EVENTS / "pull_request.opened.json").read_text())
    payload["pull_request"]["number"] = number
    payload["number"] = number
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path, str(event)))
    assert (result.returncode, result.stderr) == (
        2,
        f"ci-golden comment: error: {event}::$.pull_request.number: expected a pull request"
        f" number (a positive integer, at most 2147483647), got {shown}\n",
    )
    assert github_api.exchanges == []


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("head", "main", 'expected an object, got "main"'),
        ("base", ["x"], "expected an object, got a list"),
    ],
)
def test_payloads_of_the_wrong_shape_are_exit_2(
    github_api: GitHubAPIServer, tmp_path: Path, where: str, value: t.Any, expected: str
) -> None:
    payload = json.loads((EVENTS / "pull_request.opened.json").read_text())
    payload["pull_request"][where] = value
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path, str(event)))
    assert (result.returncode, result.stderr) == (
        2, f"ci-golden comment: error: {event}::$.pull_request.{where}: {expected}\n",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CI_PROJECT_ID", "..", "is not a GitLab project id: expected a positive integer in ASCII"
         " digits"),
        ("CI_PROJECT_ID", "٤٢", "is not a GitLab project id: expected a positive integer in ASCII"
         " digits"),
        ("CI_PROJECT_ID", "42/../7", "is not a GitLab project id: expected a positive integer in"
         " ASCII digits"),
    ],
)  # fmt: skip
def test_a_project_id_is_validated(
    gitlab_api: GitLabAPIServer, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    result = comment(report(tmp_path), env=gitlab_env(gitlab_api, **{variable: value}))
    assert (result.returncode, result.stderr) == (
        2, f"ci-golden comment: error: {variable}={value!r} {message}\n",
    )  # fmt: skip
    assert gitlab_api.exchanges == []


@pytest.mark.parametrize("repo", ["Codertocat/..", "../Hello-World", "a/b/c", "a", "a/b c"])
def test_a_repository_name_is_validated(
    github_api: GitHubAPIServer, tmp_path: Path, repo: str
) -> None:
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path, repo=repo))
    assert (result.returncode, result.stderr) == (
        2,
        f"ci-golden comment: error: GITHUB_REPOSITORY={repo!r} is not a repository:"
        " expected OWNER/NAME (letters, digits, '-', '_' and '.')\n",
    )
    assert github_api.exchanges == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CI_GOLDEN_HTTP_BACKOFF", "nan", "a finite number of seconds, 0 or more"),
        ("CI_GOLDEN_HTTP_BACKOFF", "-1", "a finite number of seconds, 0 or more"),
        ("CI_GOLDEN_HTTP_BACKOFF", "inf", "a finite number of seconds, 0 or more"),
        ("CI_GOLDEN_HTTP_TIMEOUT", "0", "a finite number of seconds, more than 0"),
        ("CI_GOLDEN_HTTP_DEADLINE", "1e999", "a finite number of seconds, more than 0"),
        ("CI_GOLDEN_HTTP_ATTEMPTS", "0", "a whole number from 1 to 100"),
        ("CI_GOLDEN_HTTP_ATTEMPTS", "٣", "a whole number from 1 to 100"),
        ("CI_GOLDEN_HTTP_MAX_BYTES", "-1", "a whole number of bytes, at least 1"),
    ],
)
def test_http_settings_must_be_finite_and_in_range(
    github_api: GitHubAPIServer, tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    result = comment(report(tmp_path), env=github_env(github_api, tmp_path, **{variable: value}))
    assert (result.returncode, result.stderr) == (
        2, f"ci-golden comment: error: {variable}={value!r}: expected {expected}\n",
    )  # fmt: skip
    assert github_api.exchanges == []
