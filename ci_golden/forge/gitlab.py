"""GitLab merge request notes and commit statuses (REST API v4).

https://docs.gitlab.com/api/notes/#merge-requests, https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
"""

from __future__ import annotations

import typing as t
from urllib.parse import quote

from ci_golden.forge.checks import optional
from ci_golden.forge.comments import Comment, Verdict

if t.TYPE_CHECKING:
    from ci_golden.forge.http import Client

GITLAB_MAX_BODY = 1_000_000
_STATES = {"success": "success", "failure": "failed", "error": "failed", "pending": "pending"}


def _note(item: t.Any) -> tuple[Comment, bool]:
    """A note and whether GitLab wrote it (a system note: "added 1 commit", ...)."""
    comment = Comment.from_api(item)
    return comment, optional(item, "system", bool, "a comment") is True


class GitLabNotes:
    name = "GitLab"
    max_body = GITLAB_MAX_BODY

    def __init__(self, client: Client, project: str, iid: int) -> None:
        self.client = client
        self.project = f"projects/{quote(project, safe='')}"
        self.notes = f"{self.project}/merge_requests/{iid}/notes"

    def pages(self) -> t.Iterator[list[Comment]]:
        params = {"sort": "asc", "order_by": "created_at"}
        for page in self.client.pages(self.notes, params, parse=_note):
            yield [comment for comment, system in page if not system]

    def create(self, body: str) -> Comment:
        answer = self.client.request("POST", self.notes, json={"body": body})
        return self.client.parse(answer, Comment.from_api)

    def update(self, comment_id: int, body: str) -> Comment:
        answer = self.client.request("PUT", f"{self.notes}/{comment_id}", json={"body": body})
        return self.client.parse(answer, Comment.from_api)

    def delete(self, comment_id: int) -> None:
        self.client.request("DELETE", f"{self.notes}/{comment_id}")

    def set_status(
        self, sha: str, state: Verdict, *, context: str, description: str, target_url: str | None
    ) -> None:
        payload: dict[str, t.Any] = {
            "state": _STATES[state],
            "name": context,
            "description": description[:255],
        }
        if target_url:
            payload["target_url"] = target_url
        self.client.request("POST", f"{self.project}/statuses/{quote(sha, safe='')}", json=payload)
