"""Posting a report: the sticky comment, the fork fallback to the job summary, the commit status.

:func:`post_report` and :func:`set_status` return what they did as :class:`Message` lines for
the command to show; nothing here prints. They are two calls so that the lines of a comment
already posted are shown even when setting the status then fails.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import UsageError
from ci_golden.forge.body import cut_markdown, cut_note, load_report
from ci_golden.forge.context import detect_forge, github_context, gitlab_context, token_for
from ci_golden.forge.github import GITHUB_MAX_BODY, GitHubComments
from ci_golden.forge.gitlab import GITLAB_MAX_BODY, GitLabNotes
from ci_golden.forge.http import client_from_environ
from ci_golden.forge.sansio import ForbiddenError
from ci_golden.forge.sticky import compose, marker, post_sticky
from ci_golden.project.files import append_text

if t.TYPE_CHECKING:
    from ci_golden.forge.comments import CommentAPI
    from ci_golden.forge.context import Context
    from ci_golden.forge.http import Client
    from ci_golden.project.redact import Redactor

STEP_SUMMARY_MAX_BYTES = 1_048_576
FORK_ADVICE = (
    "GitHub gives jobs of pull requests from forks a read-only token, so this job cannot comment "
    "({why}). The report was written to the job summary instead. To post it as a comment, keep "
    ".github/workflows/golden-comment.yml in the default branch: it runs on `workflow_run` when "
    '"Golden tests" completes, downloads the report artifact and posts it with '
    "`ci-golden comment` and a write token, without checking out or running the fork's code."
)
STATES = {
    "pass": "success",
    "no-golden": "success",
    "skipped": "success",
    "drift": "failure",
    "fail": "failure",
    "missing": "failure",
    "error": "error",
}
PREFIX = "ci-golden comment: "


@dataclass(frozen=True)
class Message:
    """One line for the user; ``err`` lines go to stderr."""

    text: str
    err: bool = False


@dataclass(frozen=True)
class Posting:
    """What :func:`post_report` did.

    ``posted`` is true when the comment was written (or, in a dry run, would be); ``ctx``,
    ``api``, ``client`` and ``verdict`` are set once a forge client was made.
    """

    messages: tuple[Message, ...]
    posted: bool = False
    ctx: Context | None = None
    api: CommentAPI | None = None
    client: Client | None = None
    verdict: str | None = None


def notice(environ: t.Mapping[str, str], text: str) -> Message:
    """A notice: a workflow command in GitHub Actions, a prefixed line elsewhere."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return Message(f"::notice title=ci-golden comment::{text}")
    return Message(PREFIX + text)


def post_report(
    report: Path,
    *,
    forge: str = "auto",
    key: str = "default",
    only_on_regression: bool = False,
    dry_run: bool = False,
    pr: int | None = None,
    verbose: bool = False,
    environ: t.Mapping[str, str],
    redact: Redactor,
    log: t.Callable[[str], None] | None = None,
) -> Posting:
    """Create or update the sticky report comment of ``key`` on the pull/merge request.

    Outside CI, or in a run without a pull/merge request, nothing is posted (a notice says
    why). A GitHub token that turns out read-only on a fork's pull request writes the report
    to the job summary instead. ``verbose`` adds the body to a dry run's lines; ``log``
    receives one line per API request.
    """

    chosen = detect_forge(environ, forge)
    limit = GITLAB_MAX_BODY if chosen == "gitlab" else GITHUB_MAX_BODY
    room = limit - len(marker(key)) - 1
    name = "GitLab" if chosen == "gitlab" else "GitHub"
    if chosen is None:
        load_report(report, room)  # a wrong path is an error even outside CI
        return Posting(
            (
                notice(
                    environ,
                    "not running in GitHub Actions or GitLab CI (use --forge): nothing posted",
                ),
            )
        )
    ctx = github_context(environ, pr=pr) if chosen == "github" else gitlab_context(environ, mr=pr)
    text = load_report(report, room, forge=name, run_url=ctx.run_url)
    if ctx.number is None:
        return Posting((notice(environ, f"{ctx.reason}: no comment posted"),))
    token = token_for(chosen, environ)
    redact.add(token)
    body = redact(compose(key, text.markdown))
    if not token:
        if not dry_run:
            variable = (
                "GITHUB_TOKEN (or CI_GOLDEN_GITHUB_TOKEN)"
                if chosen == "github"
                else "CI_GOLDEN_GITLAB_TOKEN"
            )
            raise UsageError(f"no token to comment on {ctx.where}: set {variable}")
        line = Message(
            f"{PREFIX}dry run without a token: "
            f"would create or update the {key!r} comment on {ctx.where}"
        )
        return Posting((line, Message(body)) if verbose else (line,))
    client = client_from_environ(ctx.forge, ctx.api_url, token, environ, log=log, redactor=redact)
    api = _api(ctx, client)
    posted, lines = _post(
        ctx,
        api,
        key=key,
        body=body,
        text_markdown=redact(text.markdown),
        create=text.regressed or not only_on_regression,
        dry_run=dry_run,
        environ=environ,
        verbose=verbose,
    )
    return Posting(lines, posted=posted, ctx=ctx, api=api, client=client, verdict=text.verdict)


def _api(ctx: Context, client: Client) -> CommentAPI:

    assert ctx.number is not None
    if ctx.forge == "github":
        return GitHubComments(client, ctx.project, ctx.number)
    return GitLabNotes(client, ctx.project, ctx.number)


def _post(
    ctx: Context,
    api: CommentAPI,
    *,
    key: str,
    body: str,
    text_markdown: str,
    create: bool,
    dry_run: bool,
    environ: t.Mapping[str, str],
    verbose: bool,
) -> tuple[bool, tuple[Message, ...]]:
    """Post the comment: (posted, lines); not posted when the token turned out read-only (a
    fork's pull request) and the report went to the job summary."""

    try:
        outcome = post_sticky(api, key, body, create=create, dry_run=dry_run)
    except ForbiddenError as e:
        if ctx.forge == "github" and (e.read_only_token or ctx.fork):
            return False, (
                fork_fallback(ctx, text_markdown, environ, why=f"HTTP {e.status}: {e.message}"),
            )
        raise
    target = f"comment {outcome.comment_id}" if outcome.comment_id is not None else "a comment"
    if outcome.action == "skipped":
        lines = [
            Message(
                f"{PREFIX}no regression and no earlier comment on {ctx.where}: nothing posted "
                "(--only-on-regression)"
            )
        ]
    else:
        lines = [
            Message(
                f"{PREFIX}{'dry run: ' if dry_run else ''}{outcome.action} {target} on {ctx.where}"
            )
        ]
    if outcome.deleted:
        lines.append(
            Message(f"{PREFIX}deleted duplicate comments {', '.join(map(str, outcome.deleted))}")
        )
    if dry_run and verbose:
        lines.append(Message(body))
    return True, tuple(lines)


def fork_fallback(
    ctx: Context, markdown: str, environ: t.Mapping[str, str], *, why: str
) -> Message:
    """Append the report to the job summary (cut to GitHub's 1 MiB) and return the notice that
    says how to comment on a fork's pull request."""

    if ctx.step_summary:
        size = len(markdown.encode("utf-8"))
        if size > STEP_SUMMARY_MAX_BYTES:
            limit = len(markdown) * (STEP_SUMMARY_MAX_BYTES - 4096) // size
            markdown = cut_markdown(
                markdown, limit, cut_note(limit, "the job summary", ctx.run_url)
            )
        append_text(ctx.step_summary, markdown.rstrip("\n") + "\n")
    else:
        why += "; GITHUB_STEP_SUMMARY is not set, so the report is only in the job's files"
    return notice(environ, FORK_ADVICE.format(why=why))


def set_status(posting: Posting, *, key: str) -> tuple[Message, ...]:
    """Set the commit status of ``key`` from the report's verdict on the head commit."""

    ctx, api = posting.ctx, posting.api
    assert ctx is not None and api is not None and posting.verdict is not None
    if not ctx.sha:
        return (
            Message(f"{PREFIX}no commit SHA in the CI variables: commit status not set", err=True),
        )
    context = "ci-golden" if key == "default" else f"ci-golden/{key}"
    state = STATES.get(posting.verdict, "error")
    try:
        api.set_status(
            ctx.sha,
            t.cast(t.Any, state),
            context=context,
            description=f"golden values: {posting.verdict}",
            target_url=ctx.run_url,
        )
    except ForbiddenError as e:
        if ctx.forge == "github" and (e.read_only_token or ctx.fork):
            return (
                Message(f"{PREFIX}commit status not set: read-only token ({e.message})", err=True),
            )
        raise
    return (Message(f"{PREFIX}commit status {context} = {state} on {ctx.sha[:12]}"),)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def request_figure(client: Client) -> str:
    """``N API requests (P pages listed + W writes[, R redirected][, F failed])``: P + W when
    nothing failed and nothing was redirected."""
    c = client.counts
    failed = c.requests - c.pages - c.writes - c.redirects
    extra = f", {c.redirects} redirected" if c.redirects else ""
    extra += f", {failed} failed" if failed else ""
    return (
        f"{_plural(c.requests, 'API request')} ({_plural(c.pages, 'page')} listed + "
        f"{_plural(c.writes, 'write')}{extra})"
    )
