"""Where a command runs: which forge, which pull/merge request, which token, from CI variables.

``environ`` is always a parameter; nothing here reads ``os.environ`` itself.

GitHub: https://docs.github.com/en/actions/reference/variables-reference and the event payloads
of ``pull_request``, ``pull_request_target``, ``merge_group`` and ``workflow_run``.
GitLab: https://docs.gitlab.com/ci/variables/predefined_variables/
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass

from ci_golden.errors import InputError, UsageError
from ci_golden.forge.checks import (
    ID_MAX,
    NUMBER_MAX,
    check_token,
    describe,
    is_positive_int,
    positive_int,
)
from ci_golden.forge.sansio import Forge
from ci_golden.project.files import UnreadableFile, read_regular
from ci_golden.project.redact import redact_urls

PR_EVENTS = ("pull_request", "pull_request_target", "merge_group", "workflow_run")
_MERGE_QUEUE_REF = re.compile(r"/pr-([0-9]+)-[0-9a-f]+$")
# GitHub owners and repositories; GitLab namespaces and projects, one path segment each
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
REPOSITORY_FORM = "OWNER/NAME (letters, digits, '-', '_' and '.')"
NUMBER_FORM = f"a positive integer in ASCII digits (at most {NUMBER_MAX})"

GITLAB_JOB_TOKEN_MESSAGE = (
    "only CI_JOB_TOKEN is set, and GitLab's job token cannot write merge request notes. "
    "Create a project access token (Settings > Access tokens) with the `api` scope and the "
    "Reporter role, store it as a masked CI/CD variable named CI_GOLDEN_GITLAB_TOKEN, and run again"
)


@dataclass(frozen=True)
class Context:
    """One pull/merge request on one forge, or the reason there is none (``number is None``)."""

    forge: Forge
    api_url: str
    project: str  # "owner/repo" on GitHub, the project id on GitLab
    number: int | None  # pull request number / merge request iid
    sha: str | None  # head commit, for commit statuses
    run_url: str | None
    event: str | None = None
    fork: bool = False
    reason: str | None = None  # why there is no pull/merge request
    step_summary: str | None = None

    @property
    def where(self) -> str:
        kind = "pull request" if self.forge == "github" else "merge request"
        sign = "#" if self.forge == "github" else "!"
        return f"{kind} {self.project}{sign}{self.number}"


def detect_forge(environ: t.Mapping[str, str], choice: str = "auto") -> Forge | None:
    """The forge asked for, else the one whose CI we run in, else ``None``."""
    if choice in ("github", "gitlab"):
        return t.cast(Forge, choice)
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


def api_url(forge: Forge, environ: t.Mapping[str, str]) -> str:
    """The API root the CI variables name: GITHUB_API_URL, or CI_API_V4_URL (else
    CI_SERVER_URL/api/v4); github.com and gitlab.com when unset."""
    if forge == "github":
        name, url = "GITHUB_API_URL", environ.get("GITHUB_API_URL") or "https://api.github.com"
    elif environ.get("CI_API_V4_URL"):
        name, url = "CI_API_V4_URL", environ["CI_API_V4_URL"]
    else:
        server = environ.get("CI_SERVER_URL") or "https://gitlab.com"
        name, url = "CI_SERVER_URL", f"{server.rstrip('/')}/api/v4"
    return check_api_url(name, url)


def check_api_url(name: str, url: str) -> str:
    """``url`` without its trailing slash when it is an http(s) URL; else a
    :class:`UsageError` naming ``name`` (credentials inside the URL are not shown)."""
    if not re.match(r"https?://[^/\s]", url) or any(c.isspace() for c in url):
        raise UsageError(f"{name}={redact_urls(url)!r} is not an http(s) URL")
    return url.rstrip("/")


def is_repository(value: str) -> bool:
    """``OWNER/NAME`` as GitHub allows them (and neither ``.`` nor ``..``)."""
    parts = value.split("/")
    return len(parts) == 2 and all(_NAME.fullmatch(p) and p not in (".", "..") for p in parts)


def is_gitlab_project(value: str) -> bool:
    """A GitLab project id (a positive integer) or path (``group/sub/project``)."""
    if positive_int(value, ID_MAX) is not None:
        return True
    parts = value.split("/")
    return len(parts) >= 2 and all(_NAME.fullmatch(p) and p not in (".", "..") for p in parts)


def _object(parent: t.Mapping[str, t.Any], key: str, source: str, where: str) -> dict[str, t.Any]:
    """``parent[key]`` of an event payload: an object, or ``{}`` when absent or null."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(source, f"expected an object, got {describe(value)}", f"{where}.{key}")
    return value


def _text(parent: t.Mapping[str, t.Any], key: str, source: str, where: str) -> str | None:
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise InputError(source, f"expected a string, got {describe(value)}", f"{where}.{key}")


def _sha(parent: t.Mapping[str, t.Any], key: str, source: str, where: str) -> str | None:
    """A commit id of the payload: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits."""
    value = _text(parent, key, source, where)
    if value is None or _SHA.fullmatch(value):
        return value
    raise InputError(source, f"expected a commit id, got {describe(value)}", f"{where}.{key}")


def _number(value: t.Any, source: str, where: str) -> int:
    if is_positive_int(value, NUMBER_MAX):
        return t.cast(int, value)
    raise InputError(
        source,
        f"expected a pull request number (a positive integer, at most {NUMBER_MAX}), "
        f"got {describe(value)}",
        where,
    )


MAX_EVENT_BYTES = 64 * 1024 * 1024  # GitHub's webhook payloads are capped at 25 MB


def _load_event(path: str) -> dict[str, t.Any]:
    try:  # a regular file only: a FIFO would wait for a writer
        data = json.loads(read_regular(path, max_bytes=MAX_EVENT_BYTES).decode("utf-8"))
    except UnreadableFile as e:
        raise InputError(path, f"cannot read the GitHub event payload: {e.reason}") from None
    except InputError as e:  # over the size limit
        raise InputError(path, f"cannot read the GitHub event payload: {e.detail}") from None
    except ValueError as e:
        raise InputError(path, f"the GitHub event payload is not JSON: {e}") from None
    except RecursionError:
        raise InputError(path, "the GitHub event payload is nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(path, "the GitHub event payload is not a JSON object")
    return data


def github_context(environ: t.Mapping[str, str], *, pr: int | None = None) -> Context:
    """The pull request of a GitHub Actions run; ``pr`` overrides the number from the event.

    Every value taken from the event payload is checked: a number that is not a positive
    integer, or an object of the wrong shape, is an :class:`InputError` naming its place.
    """
    repo = environ.get("GITHUB_REPOSITORY", "")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_id = environ.get("GITHUB_RUN_ID")
    event_path = environ.get("GITHUB_EVENT_PATH")
    payload = _load_event(event_path) if event_path else {}
    source = event_path or "the GitHub event payload"
    name = environ.get("GITHUB_EVENT_NAME") or next((k for k in PR_EVENTS if k in payload), None)
    if repo and not is_repository(repo):
        raise UsageError(
            f"GITHUB_REPOSITORY={repo!r} is not a repository: expected {REPOSITORY_FORM}"
        )
    if not repo:
        repo = _text(_object(payload, "repository", source, "$"), "full_name", source,
                     "$.repository") or ""  # fmt: skip
        if repo and not is_repository(repo):
            raise InputError(
                source, f"expected {REPOSITORY_FORM}, got {describe(repo)}",
                "$.repository.full_name",
            )  # fmt: skip
    if not repo:
        raise UsageError("GITHUB_REPOSITORY is not set: cannot tell which repository to comment on")
    run_url = f"{server}/{repo}/actions/runs/{run_id}" if run_id else None
    number: int | None = None
    sha = environ.get("GITHUB_SHA")
    fork = False
    if name in ("pull_request", "pull_request_target") and "pull_request" in payload:
        pull = _object(payload, "pull_request", source, "$")
        if pull.get("number") is not None:
            number = _number(pull["number"], source, "$.pull_request.number")
        elif payload.get("number") is not None:
            number = _number(payload["number"], source, "$.number")
        head = _object(pull, "head", source, "$.pull_request")
        base = _object(pull, "base", source, "$.pull_request")
        sha = _sha(head, "sha", source, "$.pull_request.head") or sha
        head_repo = _text(_object(head, "repo", source, "$.pull_request.head"), "full_name",
                          source, "$.pull_request.head.repo")  # fmt: skip
        base_repo = _text(_object(base, "repo", source, "$.pull_request.base"), "full_name",
                          source, "$.pull_request.base.repo")  # fmt: skip
        fork = bool(head_repo and base_repo and head_repo != base_repo)
    elif name == "merge_group" and "merge_group" in payload:
        group = _object(payload, "merge_group", source, "$")
        sha = _sha(group, "head_sha", source, "$.merge_group") or sha
        match = _MERGE_QUEUE_REF.search(_text(group, "head_ref", source, "$.merge_group") or "")
        number = positive_int(match.group(1), NUMBER_MAX) if match else None
    elif name == "workflow_run" and "workflow_run" in payload:
        run = _object(payload, "workflow_run", source, "$")
        sha = _sha(run, "head_sha", source, "$.workflow_run") or sha
        run_url = _text(run, "html_url", source, "$.workflow_run") or run_url
        pulls = run.get("pull_requests") or []
        if not isinstance(pulls, list):
            raise InputError(
                source, f"expected a list, got {describe(pulls)}", "$.workflow_run.pull_requests"
            )
        for i, pull in enumerate(pulls):
            if isinstance(pull, dict) and pull.get("number") is not None:
                where = f"$.workflow_run.pull_requests[{i}].number"
                number = _number(pull["number"], source, where)
                break
        head_repo = _text(_object(run, "head_repository", source, "$.workflow_run"),
                          "full_name", source, "$.workflow_run.head_repository")  # fmt: skip
        fork = bool(head_repo and head_repo != repo)
    if pr is not None:
        number = pr
    reason = None
    if number is None:
        reason = (
            f"the {name} event names no pull request"
            if name in PR_EVENTS
            else f"this run was triggered by {name or 'no event'}, not by a pull request"
        )
    return Context(
        "github",
        api_url("github", environ),
        repo,
        number,
        sha,
        run_url,
        event=name,
        fork=fork,
        reason=reason,
        step_summary=environ.get("GITHUB_STEP_SUMMARY") or None,
    )


def gitlab_context(environ: t.Mapping[str, str], *, mr: int | None = None) -> Context:
    """The merge request of a GitLab CI pipeline; ``mr`` overrides CI_MERGE_REQUEST_IID."""
    project = gitlab_project_of(environ)
    if not project:
        raise UsageError("CI_PROJECT_ID is not set: cannot tell which project to comment on")
    iid = environ.get("CI_MERGE_REQUEST_IID", "")
    number = mr
    if number is None and iid:
        number = positive_int(iid, NUMBER_MAX)
        if number is None:
            raise UsageError(
                f"CI_MERGE_REQUEST_IID={iid!r} is not a merge request number: expected "
                f"{NUMBER_FORM}"
            )
    sha = environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or environ.get("CI_COMMIT_SHA") or None
    source = environ.get("CI_PIPELINE_SOURCE")
    reason = (
        None
        if number is not None
        else (f"this pipeline ({source or 'unknown source'}) belongs to no merge request")
    )
    fork = bool(
        environ.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
        and environ.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID") != environ.get("CI_PROJECT_ID")
    )
    return Context(
        "gitlab",
        api_url("gitlab", environ),
        project,
        number,
        sha,
        environ.get("CI_PIPELINE_URL") or None,
        event=source,
        fork=fork,
        reason=reason,
    )


def gitlab_project_of(environ: t.Mapping[str, str]) -> str | None:
    """CI_PROJECT_ID (a positive integer), else CI_PROJECT_PATH (``group/project``), checked;
    ``None`` when neither is set."""
    project_id = environ.get("CI_PROJECT_ID")
    if project_id:
        if positive_int(project_id, ID_MAX) is None:
            raise UsageError(
                f"CI_PROJECT_ID={project_id!r} is not a GitLab project id: expected a positive "
                "integer in ASCII digits"
            )
        return project_id
    path = environ.get("CI_PROJECT_PATH")
    if not path:
        return None
    if not is_gitlab_project(path):
        raise UsageError(
            f"CI_PROJECT_PATH={path!r} is not a GitLab project path: expected group/project "
            "(letters, digits, '-', '_' and '.')"
        )
    return path


def _token(environ: t.Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` that is set, checked (:func:`check_token`)."""
    for name in names:
        token = environ.get(name)
        if token:
            check_token(name, token)
            return token
    return None


def github_token(environ: t.Mapping[str, str]) -> str | None:
    return _token(environ, "CI_GOLDEN_GITHUB_TOKEN", "GITHUB_TOKEN")


def gitlab_token(environ: t.Mapping[str, str]) -> str | None:
    """CI_GOLDEN_GITLAB_TOKEN; a UsageError (exit 2) when only CI_JOB_TOKEN is available."""
    token = _token(environ, "CI_GOLDEN_GITLAB_TOKEN")
    if token:
        return token
    if environ.get("CI_JOB_TOKEN"):
        raise UsageError(GITLAB_JOB_TOKEN_MESSAGE)
    return None


def token_for(forge: Forge, environ: t.Mapping[str, str]) -> str | None:
    return github_token(environ) if forge == "github" else gitlab_token(environ)
