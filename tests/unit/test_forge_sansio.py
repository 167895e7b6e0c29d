"""The pure parts of the forge layer: headers, decoding, pagination links, retry delays,
context from real event payloads, the sticky marker and cutting a report to size."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from ci_golden.errors import InputError, UsageError
from ci_golden.forge import checks, sansio
from ci_golden.forge.body import cut_markdown, cut_note, load_report, verdict_of
from ci_golden.forge.context import (
    GITLAB_JOB_TOKEN_MESSAGE,
    detect_forge,
    github_context,
    github_token,
    gitlab_context,
    gitlab_token,
)
from ci_golden.forge.sticky import compose, is_ours, marker
from ci_golden.project.redact import Redactor

EVENTS = Path(__file__).parents[1] / "data" / "webhook_payloads"
JSON = {"Content-Type": "application/json; charset=utf-8"}


# -- headers and decoding --------------------------------------------------------------------------


def test_github_headers() -> None:
    assert sansio.build_headers("github", "s3cr3t-token") == {
        "User-Agent": "ci-golden",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": "Bearer s3cr3t-token",
    }


def test_gitlab_headers_and_no_token() -> None:
    assert sansio.build_headers("gitlab", "glpat-abcdef") == {
        "User-Agent": "ci-golden",
        "Accept": "application/json",
        "PRIVATE-TOKEN": "glpat-abcdef",
    }
    assert "Authorization" not in sansio.build_headers("github", None)


def test_link_header_as_github_sends_it() -> None:
    value = (
        "<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2>;"
        ' rel="next", '
        "<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3>;"
        ' rel="last"'
    )
    assert sansio.parse_link_header(value) == {
        "next": "https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2",
        "last": "https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3",
    }
    assert sansio.parse_link_header(None) == {}


def test_next_page_from_gitlab_headers() -> None:
    url = "https://gitlab.example.com/api/v4/projects/1/merge_requests/2/notes?per_page=100&page=1&sort=asc"
    assert sansio.next_page_url(url, {"X-Next-Page": "2"}) == (
        "https://gitlab.example.com/api/v4/projects/1/merge_requests/2/notes?per_page=100&sort=asc&page=2"
    )
    assert sansio.next_page_url(url, {"x-next-page": ""}) is None


def test_decode_success_and_empty() -> None:
    body = json.dumps([{"id": 1}]).encode()
    headers = {**JSON, "Link": '<https://x/y?page=2>; rel="next"'}
    assert sansio.decode_response(200, headers, body, url="https://x/y") == (
        [{"id": 1}],
        "https://x/y?page=2",
    )
    assert sansio.decode_response(204, {}, b"") == (None, None)


@pytest.mark.parametrize(
    ("status", "headers", "message", "kind"),
    [
        (404, {}, "Not Found", sansio.NotFoundError),
        (410, {}, "Gone", sansio.NotFoundError),
        (403, {}, "Resource not accessible by integration", sansio.ForbiddenError),
        (401, {}, "Bad credentials", sansio.ForbiddenError),
        (
            403,
            {"Retry-After": "60"},
            "You have exceeded a secondary rate limit.",
            sansio.RateLimitError,
        ),
        (403, {"x-ratelimit-remaining": "0"}, "API rate limit exceeded", sansio.RateLimitError),
        (429, {}, "Too many requests", sansio.RateLimitError),
        (502, {}, "Server Error", sansio.ServerError),
        (422, {}, "Validation Failed", sansio.HTTPError),
    ],
)
def test_decode_errors_are_typed(
    status: int, headers: dict[str, str], message: str, kind: type[sansio.HTTPError]
) -> None:
    body = json.dumps({"message": message}).encode()
    with pytest.raises(kind) as info:
        sansio.decode_response(
            status, {**JSON, **headers}, body, url="https://api/x", method="POST"
        )
    assert type(info.value) is kind
    assert str(info.value) == f"POST https://api/x: HTTP {status}: {message}"
    assert info.value.status == status


def test_read_only_token_is_recognised() -> None:
    body = b'{"message": "Resource not accessible by integration"}'
    with pytest.raises(sansio.ForbiddenError) as info:
        sansio.decode_response(403, JSON, body)
    assert info.value.read_only_token


def test_decode_redacts_the_message() -> None:
    redact = Redactor(["ghs_secret123"])
    body = b'{"message": "token ghs_secret123 is invalid"}'
    with pytest.raises(sansio.ForbiddenError) as info:
        sansio.decode_response(401, JSON, body, url="https://api/x?t=ghs_secret123", redact=redact)
    assert "ghs_secret123" not in str(info.value)
    assert str(info.value) == "GET https://api/x?t=***: HTTP 401: token *** is invalid"


def test_invalid_json_on_success_is_a_server_error() -> None:
    with pytest.raises(sansio.ServerError, match="not valid JSON"):
        sansio.decode_response(200, JSON, b"<html>")


# -- retry delays ----------------------------------------------------------------------------------


def half() -> float:
    return 0.5


def test_retry_after_seconds_comes_first() -> None:
    headers = {"Retry-After": "7", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2000"}
    assert sansio.retry_delay(429, headers, 1, now=1000.0) == 7.0


def test_retry_after_http_date() -> None:
    assert (
        sansio.retry_delay(503, {"Retry-After": "Thu, 01 Jan 1970 00:16:52 GMT"}, 1, now=1000.0)
        == 12.0
    )


def test_ratelimit_reset_when_exhausted() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}
    assert (
        sansio.retry_delay(403, headers, 1, message="API rate limit exceeded", now=1000.0) == 31.0
    )


def test_exponential_backoff_with_jitter() -> None:
    delays = [sansio.retry_delay(500, {}, n, now=0.0, backoff=2.0, rand=half) for n in (1, 2, 3, 4)]
    assert delays == [1.5, 3.0, 6.0, 12.0]  # 2 * 2**(n-1) * (0.5 + 0.5/2)
    assert sansio.retry_delay(None, {}, 2, now=0.0, backoff=1.0, rand=lambda: 1.0) == 2.0


def test_secondary_limit_without_headers_waits_a_minute() -> None:
    message = (
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    )
    assert sansio.retry_delay(403, {}, 1, message=message, now=0.0, rand=half) == 60.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_no_retry_for_client_errors(status: int) -> None:
    assert (
        sansio.retry_delay(status, {}, 1, message="Resource not accessible by integration") is None
    )


def test_retry_policy_from_environ() -> None:
    policy = sansio.RetryPolicy.from_environ(
        {"CI_GOLDEN_HTTP_ATTEMPTS": "3", "CI_GOLDEN_HTTP_TIMEOUT": "2.5"}
    )
    assert policy == sansio.RetryPolicy(attempts=3, timeout=2.5, deadline=300.0, backoff=1.0)
    with pytest.raises(UsageError) as info:
        sansio.RetryPolicy.from_environ({"CI_GOLDEN_HTTP_DEADLINE": "soon"})
    assert str(info.value) == (
        "CI_GOLDEN_HTTP_DEADLINE='soon': expected a finite number of seconds, more than 0"
    )


# -- context from CI variables and real event payloads ---------------------------------------------


def github_env(event: str, name: str, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": name,
        "GITHUB_EVENT_PATH": str(EVENTS / event),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_RUN_ID": "42",
        **extra,
    }


def test_context_of_a_pull_request() -> None:
    ctx = github_context(
        github_env(
            "pull_request.opened.json", "pull_request", GITHUB_REPOSITORY="Codertocat/Hello-World"
        )
    )
    assert (ctx.forge, ctx.project, ctx.number, ctx.fork) == (
        "github",
        "Codertocat/Hello-World",
        2,
        False,
    )
    assert ctx.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert ctx.run_url == "https://github.com/Codertocat/Hello-World/actions/runs/42"
    assert ctx.where == "pull request Codertocat/Hello-World#2"


def test_context_of_a_fork_pull_request(tmp_path: Path) -> None:
    payload = json.loads((EVENTS / "pull_request.opened.json").read_text())
    payload["pull_request"]["head"]["repo"]["full_name"] = "Octocoder/Hello-World"
    (tmp_path / "event.json").write_text(json.dumps(payload))
    env = {
        **github_env("x", "pull_request_target", GITHUB_REPOSITORY="Codertocat/Hello-World"),
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
    }
    ctx = github_context(env)
    assert (ctx.number, ctx.fork, ctx.event) == (2, True, "pull_request_target")


def test_context_of_workflow_run() -> None:
    ctx = github_context(
        github_env(
            "workflow_run.completed.with_pull_request.json",
            "workflow_run",
            GITHUB_REPOSITORY="octo-org/octo-repo",
        )
    )
    assert (ctx.number, ctx.sha) == (2, "3484a3fb816e0859fd6e1cea078d76385ff50625")
    assert ctx.run_url == "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    no_pr = github_context(
        github_env(
            "workflow_run.completed.json", "workflow_run", GITHUB_REPOSITORY="octo-org/octo-repo"
        )
    )
    assert (no_pr.number, no_pr.reason) == (None, "the workflow_run event names no pull request")
    assert (
        github_context(
            github_env(
                "workflow_run.completed.json",
                "workflow_run",
                GITHUB_REPOSITORY="octo-org/octo-repo",
            ),
            pr=7,
        ).number
        == 7
    )


def test_context_of_merge_queue_and_push() -> None:
    ctx = github_context(
        github_env(
            "merge_group.checks_requested.json",
            "merge_group",
            GITHUB_REPOSITORY="Codertocat/Hello-World",
        )
    )
    assert (ctx.number, ctx.sha) == (104, "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d")
    push = github_context(
        github_env("push.json", "push", GITHUB_REPOSITORY="Codertocat/Hello-World")
    )
    assert (push.number, push.reason) == (
        None,
        "this run was triggered by push, not by a pull request",
    )


def test_unreadable_event_payload(tmp_path: Path) -> None:
    (tmp_path / "event.json").write_text("{")
    with pytest.raises(InputError, match=r"event.json: the GitHub event payload is not JSON"):
        github_context(
            {"GITHUB_REPOSITORY": "o/r", "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}
        )


def test_gitlab_context() -> None:
    env = {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "5",
        "CI_PIPELINE_URL": "https://gitlab.example.com/g/p/-/pipelines/9",
        "CI_COMMIT_SHA": "a" * 40,
        "CI_PIPELINE_SOURCE": "merge_request_event",
    }
    ctx = gitlab_context(env)
    assert (ctx.forge, ctx.api_url, ctx.project, ctx.number, ctx.sha) == (
        "gitlab",
        "https://gitlab.example.com/api/v4",
        "42",
        5,
        "a" * 40,
    )
    assert ctx.where == "merge request 42!5"
    branch = gitlab_context({**env, "CI_MERGE_REQUEST_IID": "", "CI_PIPELINE_SOURCE": "push"})
    assert branch.reason == "this pipeline (push) belongs to no merge request"


def test_detect_forge() -> None:
    assert detect_forge({"GITHUB_ACTIONS": "true"}) == "github"
    assert detect_forge({"GITLAB_CI": "true"}) == "gitlab"
    assert detect_forge({}) is None
    assert detect_forge({"GITHUB_ACTIONS": "true"}, "gitlab") == "gitlab"


def test_tokens() -> None:
    assert github_token({"GITHUB_TOKEN": "a1234", "CI_GOLDEN_GITHUB_TOKEN": "b1234"}) == "b1234"
    assert github_token({"GITHUB_TOKEN": "a1234", "CI_GOLDEN_GITHUB_TOKEN": ""}) == "a1234"
    assert gitlab_token({"CI_GOLDEN_GITLAB_TOKEN": "glpat-1", "CI_JOB_TOKEN": "j"}) == "glpat-1"
    assert gitlab_token({}) is None
    with pytest.raises(UsageError) as info:
        gitlab_token({"CI_JOB_TOKEN": "job-token-value"})
    assert str(info.value) == GITLAB_JOB_TOKEN_MESSAGE
    assert (
        "project access token" in GITLAB_JOB_TOKEN_MESSAGE
        and "`api` scope" in GITLAB_JOB_TOKEN_MESSAGE
    )


# -- marker and report bodies ----------------------------------------------------------------------


def test_marker_identifies_our_comment() -> None:
    body = compose("nightly/h100", "<!-- ci-golden:verdict=pass -->\nall good")
    assert body.splitlines()[0] == "<!-- ci-golden:report key=nightly/h100 -->"
    assert is_ours(body, "nightly/h100")
    assert not is_ours(body, "default")
    assert not is_ours("quoting: <!-- ci-golden:report key=nightly/h100 -->", "nightly/h100")
    with pytest.raises(Exception, match=r"comment key 'a b'"):
        marker("a b")


def report_with_details(n: int, size: int) -> str:
    head = (
        "<!-- ci-golden:verdict=fail -->\n## Golden values: fail\n\n"
        "| case | verdict |\n|---|---|\n| a | fail |\n"
    )
    blocks = [
        f"<details><summary>case {i}</summary>\n\n```\n{'x' * size}\n```\n</details>\n"
        for i in range(n)
    ]
    return head + "\n".join(blocks)


def test_cut_at_a_details_boundary() -> None:
    text = report_with_details(10, 1000)
    note = cut_note(4000, "GitHub", "https://ci/run/1")
    cut = cut_markdown(text, 4000, note)
    assert len(cut) <= 4000
    assert cut.startswith(text[: text.index("<details>")])
    assert cut.endswith("</details>\n\n" + note)
    assert cut.count("<details>") == cut.count("</details>")
    assert (
        note
        == "> [!NOTE]\n> Cut to fit GitHub's 4,000-character limit. The full report is in [the CI run](https://ci/run/1).\n"
    )
    assert cut_markdown(text, len(text), note) == text


def test_cut_inside_one_huge_block_closes_it() -> None:
    text = report_with_details(1, 10_000)
    cut = cut_markdown(text, 3000, "NOTE\n")
    assert len(cut) <= 3000
    assert cut.count("```") % 2 == 0 and cut.count("<details>") == cut.count("</details>")


def test_report_markdown_needs_the_verdict_line(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("# no marker\n")
    with pytest.raises(InputError) as info:
        load_report(path, 1000)
    assert str(info.value) == (
        f"{path}::line 1: the first line is not `<!-- ci-golden:verdict=... -->`; "
        "pass a file written by `ci-golden report`"
    )
    assert verdict_of("<!-- ci-golden:verdict=drift -->\n", "x") == "drift"


def test_long_report_is_cut_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text(report_with_details(100, 1000))
    text = load_report(path, 65_000, forge="GitHub")
    assert (text.verdict, text.cut, text.regressed) == ("fail", True, True)
    assert len(text.markdown) <= 65_000
    assert "Cut to fit GitHub's 65,000-character limit" in text.markdown


# -- what the forge and the CI variables give is checked -------------------------------------------


def test_printable_escapes_control_format_and_surrogate_characters() -> None:
    assert checks.printable("ok \x1b[2J\n::error::x\u202e\ud800 é") == (
        "ok \\x1b[2J\\n::error::x\\u202e\\ud800 é"
    )
    assert checks.printable("x" * 400) == "x" * 300 + "..."


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("2147483647", 2147483647), ("2147483648", None), ("0", None), ("05", None),
     ("-5", None), ("+5", None), ("5 ", None), ("٣", None), ("1.5", None), ("1e3", None),
     ("", None), ("9" * 5000, None)],
)  # fmt: skip
def test_positive_int_takes_ascii_digits_only(text: str, value: int | None) -> None:
    assert checks.positive_int(text, checks.NUMBER_MAX) == value


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"id": 7}, None),
        ({"id": 2**40}, None),
        ([], "the forge answered a comment that is not an object"),
        ({}, 'the forge answered a comment without an "id"'),
        ({"id": None}, 'the forge answered a comment whose "id" is null, not a positive integer'),
        ({"id": 1.0}, 'the forge answered a comment whose "id" is 1.0, not a positive integer'),
        ({"id": False}, 'the forge answered a comment whose "id" is false, not a positive integer'),
        ({"id": 0}, 'the forge answered a comment whose "id" is 0, not a positive integer'),
        ({"id": {"a": 1}}, 'the forge answered a comment whose "id" is an object, not a positive'
         " integer"),
    ],
)  # fmt: skip
def test_require_id(item: object, message: str | None) -> None:
    if message is None:
        assert checks.require_id(item, "a comment") == item["id"]  # type: ignore[index]
        return
    with pytest.raises(checks.MalformedAnswerError) as info:
        checks.require_id(item, "a comment")
    assert str(info.value) == message


def test_a_2xx_answer_that_is_not_json_is_malformed() -> None:
    with pytest.raises(checks.MalformedAnswerError) as info:
        sansio.decode_response(
            200, {"Content-Type": "text/html"}, b"<html>", url="https://api/x", method="GET"
        )
    assert str(info.value) == "GET https://api/x: the answer is not JSON (content type text/html)"
    with pytest.raises(sansio.ServerError, match="not valid JSON"):
        sansio.decode_response(200, JSON, b"[" * 100_000)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"CI_GOLDEN_HTTP_BACKOFF": "0"}, sansio.RetryPolicy(backoff=0.0)),
        ({"CI_GOLDEN_HTTP_TIMEOUT": "2.5", "CI_GOLDEN_HTTP_ATTEMPTS": "100"},
         sansio.RetryPolicy(timeout=2.5, attempts=100)),
        ({"CI_GOLDEN_HTTP_MAX_BYTES": "1000", "CI_GOLDEN_HTTP_DEADLINE": "1e3"},
         sansio.RetryPolicy(max_bytes=1000, deadline=1000.0)),
        ({"CI_GOLDEN_HTTP_BACKOFF": "NaN"}, "CI_GOLDEN_HTTP_BACKOFF='NaN': expected a finite"
         " number of seconds, 0 or more"),
        ({"CI_GOLDEN_HTTP_DEADLINE": "-0.5"}, "CI_GOLDEN_HTTP_DEADLINE='-0.5': expected a finite"
         " number of seconds, more than 0"),
        ({"CI_GOLDEN_HTTP_TIMEOUT": "Infinity"}, "CI_GOLDEN_HTTP_TIMEOUT='Infinity': expected a"
         " finite number of seconds, more than 0"),
        ({"CI_GOLDEN_HTTP_ATTEMPTS": "101"}, "CI_GOLDEN_HTTP_ATTEMPTS='101': expected a whole"
         " number from 1 to 100"),
        ({"CI_GOLDEN_HTTP_ATTEMPTS": "2.0"}, "CI_GOLDEN_HTTP_ATTEMPTS='2.0': expected a whole"
         " number from 1 to 100"),
    ],
)  # fmt: skip
def test_retry_policy_values_are_finite_and_in_range(
    environ: dict[str, str], expected: sansio.RetryPolicy | str
) -> None:
    if isinstance(expected, sansio.RetryPolicy):
        assert sansio.RetryPolicy.from_environ(environ) == expected
        return
    with pytest.raises(UsageError) as info:
        sansio.RetryPolicy.from_environ(environ)
    assert str(info.value) == expected


@pytest.mark.parametrize("token", ["ok-token-123", "ghp_" + "a" * 36])
def test_tokens_that_a_header_can_carry(token: str) -> None:
    assert github_token({"GITHUB_TOKEN": token}) == token


@pytest.mark.parametrize("token", ["tok en", "token\n", "\ttoken", "tök", "tok\x00en", "tok\x7f"])
def test_tokens_with_whitespace_or_control_characters(token: str) -> None:
    with pytest.raises(UsageError) as info:
        gitlab_token({"CI_GOLDEN_GITLAB_TOKEN": token})
    assert str(info.value) == (
        "CI_GOLDEN_GITLAB_TOKEN holds whitespace, a control character or a character outside "
        "ASCII, which no token has; set it again without them (its value is not shown)"
    )
    with pytest.raises(UsageError, match=r"^the token holds whitespace"):
        sansio.build_headers("gitlab", token)


def test_merge_queue_ref_takes_ascii_digits_only(tmp_path: Path) -> None:
    payload = json.loads((EVENTS / "merge_group.checks_requested.json").read_text())
    payload["merge_group"]["head_ref"] = "refs/heads/gh-readonly-queue/main/pr-١٠٤-" + "a" * 40
    (tmp_path / "event.json").write_text(json.dumps(payload))
    event = str(tmp_path / "event.json")
    env = {
        **github_env("merge_group.checks_requested.json", "merge_group"),
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_EVENT_PATH": event,
    }
    ctx = github_context(env)
    assert (ctx.number, ctx.reason) == (None, "the merge_group event names no pull request")


def test_workflow_run_pull_request_numbers_are_checked(tmp_path: Path) -> None:
    payload = json.loads((EVENTS / "workflow_run.completed.with_pull_request.json").read_text())
    payload["workflow_run"]["pull_requests"][0]["number"] = "2"
    (tmp_path / "event.json").write_text(json.dumps(payload))
    event = str(tmp_path / "event.json")
    env = {
        **github_env("workflow_run.completed.json", "workflow_run"),
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_EVENT_PATH": event,
    }
    with pytest.raises(InputError) as info:
        github_context(env)
    assert str(info.value) == (
        f"{tmp_path / 'event.json'}::$.workflow_run.pull_requests[0].number: expected a pull"
        ' request number (a positive integer, at most 2147483647), got "2"'
    )


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("GITHUB_API_URL", "file:///etc/passwd", "GITHUB_API_URL='file:///etc/passwd' is not an"
         " http(s) URL"),
        ("CI_API_V4_URL", "ftp://u:hunter22@h/api", "CI_API_V4_URL='ftp://u:***@h/api' is not"
         " an http(s) URL"),
    ],
)  # fmt: skip
def test_api_urls_are_http(name: str, url: str, message: str) -> None:
    from ci_golden.forge.context import api_url

    with pytest.raises(UsageError) as info:
        api_url("github" if name.startswith("GITHUB") else "gitlab", {name: url})
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["pull_request"]["head"].update(sha="../../x"),
         '$.pull_request.head.sha: expected a commit id, got "../../x"'),
        (lambda p: p["pull_request"]["head"].update(sha=7),
         "$.pull_request.head.sha: expected a string, got 7"),
        (lambda p: p["pull_request"].update(head={"sha": "\ud800"}),
         '$.pull_request.head.sha: expected a commit id, got "\\ud800"'),
    ],
)  # fmt: skip
def test_payload_commit_ids_are_checked(
    tmp_path: Path, change: t.Callable[[dict[str, t.Any]], None], message: str
) -> None:
    payload = json.loads((EVENTS / "pull_request.opened.json").read_text())
    change(payload)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    env = {
        **github_env("pull_request.opened.json", "pull_request"),
        "GITHUB_EVENT_PATH": str(event),
    }
    with pytest.raises(InputError) as info:
        github_context({**env, "GITHUB_REPOSITORY": "o/r"})
    assert str(info.value) == f"{event}::{message}"


def test_a_payload_nested_too_deeply(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError) as info:
        github_context({"GITHUB_REPOSITORY": "o/r", "GITHUB_EVENT_PATH": str(event)})
    assert str(info.value) == f"{event}: the GitHub event payload is nested too deeply"
