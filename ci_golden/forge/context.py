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
from pathlib import Path

from ci_golden.errors import InputError, UsageError
from ci_golden.forge.sansio import Forge

PR_EVENTS = ("pull_request", "pull_request_target", "merge_group", "workflow_run")
_MERGE_QUEUE_REF = re.compile(r"/pr-(\d+)-[0-9a-f]+$")

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
        return (environ.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    api = environ.get("CI_API_V4_URL", "").rstrip("/")
    if api:
        return api
    server = environ.get("CI_SERVER_URL", "https://gitlab.com").rstrip("/")
    return f"{server}/api/v4"


def _load_event(path: str) -> dict[str, t.Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(path, f"cannot read the GitHub event payload: {e.strerror}") from None
    except ValueError as e:
        raise InputError(path, f"the GitHub event payload is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise InputError(path, "the GitHub event payload is not a JSON object")
    return data


def github_context(environ: t.Mapping[str, str], *, pr: int | None = None) -> Context:
    """The pull request of a GitHub Actions run; ``pr`` overrides the number from the event."""
    repo = environ.get("GITHUB_REPOSITORY", "")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_id = environ.get("GITHUB_RUN_ID")
    run_url = f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else None
    event_path = environ.get("GITHUB_EVENT_PATH")
    payload = _load_event(event_path) if event_path else {}
    name = environ.get("GITHUB_EVENT_NAME") or next((k for k in PR_EVENTS if k in payload), None)
    if not repo and isinstance(payload.get("repository"), dict):
        repo = str(payload["repository"].get("full_name", ""))
    if not repo:
        raise UsageError("GITHUB_REPOSITORY is not set: cannot tell which repository to comment on")
    number: int | None = None
    sha = environ.get("GITHUB_SHA")
    fork = False
    if name in ("pull_request", "pull_request_target") and isinstance(
        payload.get("pull_request"), dict
    ):
        pull = payload["pull_request"]
        number = int(pull.get("number") or payload.get("number") or 0) or None
        head = pull.get("head") or {}
        sha = head.get("sha") or sha
        head_repo = (head.get("repo") or {}).get("full_name")
        base_repo = ((pull.get("base") or {}).get("repo") or {}).get("full_name")
        fork = bool(head_repo and base_repo and head_repo != base_repo)
    elif name == "merge_group" and isinstance(payload.get("merge_group"), dict):
        group = payload["merge_group"]
        sha = group.get("head_sha") or sha
        match = _MERGE_QUEUE_REF.search(str(group.get("head_ref", "")))
        number = int(match.group(1)) if match else None
    elif name == "workflow_run" and isinstance(payload.get("workflow_run"), dict):
        run = payload["workflow_run"]
        sha = run.get("head_sha") or sha
        run_url = run.get("html_url") or run_url
        pulls = [
            p for p in run.get("pull_requests") or [] if isinstance(p, dict) and p.get("number")
        ]
        number = int(pulls[0]["number"]) if pulls else None
        head_repo = (run.get("head_repository") or {}).get("full_name")
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
    project = environ.get("CI_PROJECT_ID") or environ.get("CI_PROJECT_PATH", "")
    if not project:
        raise UsageError("CI_PROJECT_ID is not set: cannot tell which project to comment on")
    iid = environ.get("CI_MERGE_REQUEST_IID", "").strip()
    number = mr if mr is not None else (int(iid) if iid.isdigit() else None)
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


def github_token(environ: t.Mapping[str, str]) -> str | None:
    return environ.get("CI_GOLDEN_GITHUB_TOKEN") or environ.get("GITHUB_TOKEN") or None


def gitlab_token(environ: t.Mapping[str, str]) -> str | None:
    """CI_GOLDEN_GITLAB_TOKEN; a UsageError (exit 2) when only CI_JOB_TOKEN is available."""
    token = environ.get("CI_GOLDEN_GITLAB_TOKEN")
    if token:
        return token
    if environ.get("CI_JOB_TOKEN"):
        raise UsageError(GITLAB_JOB_TOKEN_MESSAGE)
    return None


def token_for(forge: Forge, environ: t.Mapping[str, str]) -> str | None:
    return github_token(environ) if forge == "github" else gitlab_token(environ)


def secrets_in(environ: t.Mapping[str, str]) -> list[str]:
    """Every token-like value, for redaction (even those we do not send)."""
    names = (
        "CI_GOLDEN_GITHUB_TOKEN",
        "GITHUB_TOKEN",
        "CI_GOLDEN_GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    )
    return [environ[n] for n in names if environ.get(n)]
