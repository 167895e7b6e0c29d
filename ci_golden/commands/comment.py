from __future__ import annotations

import argparse
import os
import sys
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from ci_golden.forge.comments import CommentAPI
    from ci_golden.forge.context import Context
    from ci_golden.forge.http import Client
    from ci_golden.forge.sansio import Redactor

HELP = "post or update the one report comment on the pull/merge request"

STEP_SUMMARY_MAX_BYTES = 1_048_576
FORK_ADVICE = (
    "GitHub gives jobs of pull requests from forks a read-only token, so this job cannot comment "
    "({why}). The report was written to the job summary instead. To post it as a comment, keep "
    ".github/workflows/golden-comment.yml in the default branch: it runs on `workflow_run` when "
    "\"Golden tests\" completes, downloads the report artifact and posts it with "
    "`ci-golden comment` and a write token, without checking out or running the fork's code."
)
STATES = {"pass": "success", "no-golden": "success", "drift": "failure", "fail": "failure",
          "missing": "failure", "error": "error"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT", help="report.md (or report.json, re-rendered to fit the forge)")
    parser.add_argument("--forge", choices=("auto", "github", "gitlab"), default="auto")
    parser.add_argument("--key", default="default", help="comment key: one sticky comment per key")
    parser.add_argument("--only-on-regression", action="store_true",
                        help="update an existing comment always, create one only when something regressed")
    parser.add_argument("--status", action="store_true", help="also set a commit status")
    parser.add_argument("--dry-run", action="store_true", help="read only: show what would be posted")
    parser.add_argument("--pr", metavar="NUMBER", type=int,
                        help="pull/merge request number (default: from the CI event or variables)")


def run(args: argparse.Namespace) -> int:
    from ci_golden.errors import CiGoldenError
    from ci_golden.forge.context import secrets_in
    from ci_golden.forge.sansio import Redactor

    environ = os.environ
    redact = Redactor(secrets_in(environ))
    try:
        return comment(
            Path(args.report), forge=args.forge, key=args.key,
            only_on_regression=args.only_on_regression, status=args.status, dry_run=args.dry_run,
            pr=args.pr, verbose=int(getattr(args, "verbose", 0) or 0), environ=environ, redact=redact,
        )
    except CiGoldenError as e:
        e.args = tuple(redact(str(a)) for a in e.args)
        raise


def _say(text: str, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _notice(environ: t.Mapping[str, str], text: str) -> None:
    if environ.get("GITHUB_ACTIONS") == "true":
        _say(f"::notice title=ci-golden comment::{text}")
    else:
        _say(f"ci-golden comment: {text}")


def comment(
    report: Path,
    *,
    forge: str = "auto",
    key: str = "default",
    only_on_regression: bool = False,
    status: bool = False,
    dry_run: bool = False,
    pr: int | None = None,
    verbose: int = 0,
    environ: t.Mapping[str, str],
    redact: Redactor,
) -> int:
    """Post or update the sticky report comment; return the exit code."""
    from ci_golden.errors import UsageError
    from ci_golden.forge.body import load_report
    from ci_golden.forge.context import detect_forge, github_context, gitlab_context, token_for
    from ci_golden.forge.github import GITHUB_MAX_BODY
    from ci_golden.forge.gitlab import GITLAB_MAX_BODY
    from ci_golden.forge.sticky import compose, marker

    chosen = detect_forge(environ, forge)
    limit = GITLAB_MAX_BODY if chosen == "gitlab" else GITHUB_MAX_BODY
    room = limit - len(marker(key)) - 1
    name = "GitLab" if chosen == "gitlab" else "GitHub"
    if chosen is None:
        load_report(report, room)  # a wrong path is an error even outside CI
        _notice(environ, "not running in GitHub Actions or GitLab CI (use --forge): nothing posted")
        return 0
    ctx = github_context(environ, pr=pr) if chosen == "github" else gitlab_context(environ, mr=pr)
    text = load_report(report, room, forge=name, run_url=ctx.run_url)
    if ctx.number is None:
        _notice(environ, f"{ctx.reason}: no comment posted")
        return 0
    token = token_for(chosen, environ)
    redact.add(token)
    body = redact(compose(key, text.markdown))
    if not token:
        if not dry_run:
            variable = "GITHUB_TOKEN (or CI_GOLDEN_GITHUB_TOKEN)" if chosen == "github" else "CI_GOLDEN_GITLAB_TOKEN"
            raise UsageError(f"no token to comment on {ctx.where}: set {variable}")
        _say(f"ci-golden comment: dry run without a token: would create or update the {key!r} comment on {ctx.where}")
        if verbose:
            _say(body)
        return 0
    client = _client(ctx, token, environ, redact, verbose)
    posted = _post(ctx, _api(ctx, client), key=key, body=body, text_markdown=redact(text.markdown),
                   create=text.regressed or not only_on_regression, dry_run=dry_run,
                   environ=environ, verbose=verbose)
    if status and posted and not dry_run:
        _status(ctx, _api(ctx, client), key=key, verdict=text.verdict)
    if verbose:
        _say(f"ci-golden comment: {_figure(client)}", err=True)
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _figure(client: Client) -> str:
    """``N API requests (P pages listed + W writes[, F failed])``: P + W when nothing failed."""
    c = client.counts
    failed = c.requests - c.pages - c.writes
    extra = f", {failed} failed" if failed else ""
    return (f"{_plural(c.requests, 'API request')} ({_plural(c.pages, 'page')} listed + "
            f"{_plural(c.writes, 'write')}{extra})")


def _client(ctx: Context, token: str | None, environ: t.Mapping[str, str], redact: Redactor,
            verbose: int) -> Client:
    from ci_golden.forge.http import Client
    from ci_golden.forge.sansio import RetryPolicy

    log = (lambda line: _say(f"ci-golden comment: {line}", err=True)) if verbose else None
    return Client(ctx.forge, ctx.api_url, token, policy=RetryPolicy.from_environ(environ),
                  log=log, redactor=redact)


def _api(ctx: Context, client: Client) -> CommentAPI:
    from ci_golden.forge.github import GitHubComments
    from ci_golden.forge.gitlab import GitLabNotes

    assert ctx.number is not None
    if ctx.forge == "github":
        return GitHubComments(client, ctx.project, ctx.number)
    return GitLabNotes(client, ctx.project, ctx.number)


def _post(ctx: Context, api: CommentAPI, *, key: str, body: str, text_markdown: str,
          create: bool, dry_run: bool, environ: t.Mapping[str, str], verbose: int) -> bool:
    """Post the comment; false when the token turned out read-only (a fork's pull request)."""
    from ci_golden.forge.sansio import ForbiddenError
    from ci_golden.forge.sticky import post_sticky

    try:
        outcome = post_sticky(api, key, body, create=create, dry_run=dry_run)
    except ForbiddenError as e:
        if ctx.forge == "github" and (e.read_only_token or ctx.fork):
            _fork_fallback(ctx, text_markdown, environ, why=f"HTTP {e.status}: {e.message}")
            return False
        raise
    target = f"comment {outcome.comment_id}" if outcome.comment_id is not None else "a comment"
    if outcome.action == "skipped":
        _say(f"ci-golden comment: no regression and no earlier comment on {ctx.where}: nothing posted "
             "(--only-on-regression)")
    else:
        _say(f"ci-golden comment: {'dry run: ' if dry_run else ''}{outcome.action} {target} on {ctx.where}")
    if outcome.deleted:
        _say(f"ci-golden comment: deleted duplicate comments {', '.join(map(str, outcome.deleted))}")
    if dry_run and verbose:
        _say(body)
    return True


def _fork_fallback(ctx: Context, markdown: str, environ: t.Mapping[str, str], *, why: str) -> None:
    from ci_golden.forge.body import cut_markdown, cut_note

    if ctx.step_summary:
        size = len(markdown.encode("utf-8"))
        if size > STEP_SUMMARY_MAX_BYTES:
            limit = len(markdown) * (STEP_SUMMARY_MAX_BYTES - 4096) // size
            markdown = cut_markdown(markdown, limit, cut_note(limit, "the job summary", ctx.run_url))
        with open(ctx.step_summary, "a", encoding="utf-8") as f:
            f.write(markdown.rstrip("\n") + "\n")
    else:
        why += "; GITHUB_STEP_SUMMARY is not set, so the report is only in the job's files"
    _notice(environ, FORK_ADVICE.format(why=why))


def _status(ctx: Context, api: CommentAPI, *, key: str, verdict: str) -> None:
    from ci_golden.forge.sansio import ForbiddenError

    if not ctx.sha:
        _say("ci-golden comment: no commit SHA in the CI variables: commit status not set", err=True)
        return
    context = "ci-golden" if key == "default" else f"ci-golden/{key}"
    state = STATES.get(verdict, "error")
    try:
        api.set_status(ctx.sha, t.cast(t.Any, state), context=context,
                       description=f"golden values: {verdict}", target_url=ctx.run_url)
    except ForbiddenError as e:
        if ctx.forge == "github" and (e.read_only_token or ctx.fork):
            _say(f"ci-golden comment: commit status not set: read-only token ({e.message})", err=True)
            return
        raise
    _say(f"ci-golden comment: commit status {context} = {state} on {ctx.sha[:12]}")
