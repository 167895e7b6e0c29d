from __future__ import annotations

import argparse
import os
import sys
import typing as t
from pathlib import Path

from ci_golden.commands import forge_id, gitlab_project, repository
from ci_golden.errors import UsageError
from ci_golden.forge.context import (
    REPOSITORY_FORM,
    api_url,
    check_api_url,
    gitlab_project_of,
    is_repository,
    token_for,
)
from ci_golden.forge.fetch import Limits, fetch, github_artifacts, gitlab_artifacts, render_fetched
from ci_golden.forge.http import client_from_environ

if t.TYPE_CHECKING:
    from ci_golden.forge.fetch import Artifact
    from ci_golden.forge.http import Client


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--github-run", metavar="ID", type=forge_id, help="a GitHub Actions workflow run id"
    )
    source.add_argument(
        "--gitlab-pipeline",
        metavar="ID",
        type=forge_id,
        help="a GitLab pipeline id (its child pipelines are followed)",
    )
    parser.add_argument(
        "--only-failing", action="store_true", help="keep only results whose verdict is not pass"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="ci-golden-results",
        help="output folder, absent or empty (default: ci-golden-results)",
    )
    parser.add_argument(
        "--repo",
        metavar="OWNER/NAME",
        type=repository,
        help="GitHub repository (default: GITHUB_REPOSITORY)",
    )
    parser.add_argument(
        "--project",
        metavar="ID",
        type=gitlab_project,
        help="GitLab project id or path (default: CI_PROJECT_ID)",
    )
    parser.add_argument(
        "--api-url", metavar="URL", help="API root (default: GITHUB_API_URL or CI_API_V4_URL)"
    )
    parser.add_argument(
        "--max-entry-bytes",
        type=forge_id,
        metavar="N",
        help="largest file an archive may hold (default 256 MiB)",
    )
    parser.add_argument(
        "--max-total-bytes",
        type=forge_id,
        metavar="N",
        help="largest archive, packed or unpacked (default 1 GiB)",
    )


def _client(
    forge: t.Literal["github", "gitlab"],
    api: str,
    token: str,
    environ: t.Mapping[str, str],
    verbose: int,
) -> Client:

    log = (
        (lambda line: print(f"ci-golden fetch-results: {line}", file=sys.stderr))
        if verbose
        else None
    )
    return client_from_environ(forge, api, token, environ, log=log)


def _artifacts(
    args: argparse.Namespace, environ: t.Mapping[str, str]
) -> tuple[Client, list[Artifact]]:

    verbose = getattr(args, "verbose", 0)
    api = check_api_url("--api-url", args.api_url) if args.api_url else None
    if args.github_run:
        repo = args.repo or environ.get("GITHUB_REPOSITORY")
        if not repo:
            raise UsageError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
        if not is_repository(repo):
            raise UsageError(
                f"GITHUB_REPOSITORY={repo!r} is not a repository: expected {REPOSITORY_FORM}"
            )
        token = token_for("github", environ)
        if not token:
            raise UsageError(
                "no token: set GITHUB_TOKEN (or CI_GOLDEN_GITHUB_TOKEN) "
                "to one that may read Actions artifacts"
            )
        client = _client("github", api or api_url("github", environ), token, environ, verbose)
        return client, github_artifacts(client, repo, args.github_run)
    project = args.project or gitlab_project_of(environ)
    if not project:
        raise UsageError("no project: pass --project ID or set CI_PROJECT_ID")
    token = token_for("gitlab", environ)
    if not token:
        raise UsageError(
            "no token: set CI_GOLDEN_GITLAB_TOKEN to a project or personal access token "
            "with the read_api scope"
        )
    client = _client("gitlab", api or api_url("gitlab", environ), token, environ, verbose)
    return client, gitlab_artifacts(client, project, args.gitlab_pipeline)


def run(args: argparse.Namespace, environ: t.Mapping[str, str] = os.environ) -> int:
    """Exit 0 when results were fetched, 1 when the run left none, 2 on bad input or refusal."""

    defaults = Limits()
    limits = Limits(
        entry=args.max_entry_bytes or defaults.entry, total=args.max_total_bytes or defaults.total
    )
    client, artifacts = _artifacts(args, environ)
    fetched = fetch(
        client, artifacts, Path(args.out), only_failing=args.only_failing, limits=limits
    )
    sys.stdout.write(render_fetched(fetched, args.out))
    if not any(f.kept for f in fetched):
        failing = "failing " if args.only_failing else ""
        print(
            f"ci-golden fetch-results: no {failing}result "
            f"in the run's {len(artifacts)} artifact(s)",
            file=sys.stderr,
        )
        return 1
    return 0
