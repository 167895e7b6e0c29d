"""GitHub issue comments and commit statuses (REST API version 2022-11-28).

https://docs.github.com/en/rest/issues/comments, https://docs.github.com/en/rest/commits/statuses
"""

from __future__ import annotations

import typing as t
from urllib.parse import quote

from ci_golden.forge.comments import Comment, Verdict

if t.TYPE_CHECKING:
    from ci_golden.forge.http import Client

GITHUB_MAX_BODY = 65_536


class GitHubComments:
    name = "GitHub"
    max_body = GITHUB_MAX_BODY

    def __init__(self, client: Client, repo: str, number: int) -> None:
        self.client = client
        owner, _, name = repo.partition("/")
        self.repo = f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self.number = number

    def pages(self) -> t.Iterator[list[Comment]]:
        yield from self.client.pages(
            f"{self.repo}/issues/{self.number}/comments", parse=Comment.from_api
        )

    def create(self, body: str) -> Comment:
        answer = self.client.request(
            "POST", f"{self.repo}/issues/{self.number}/comments", json={"body": body}
        )
        return self.client.parse(answer, Comment.from_api)

    def update(self, comment_id: int, body: str) -> Comment:
        answer = self.client.request(
            "PATCH", f"{self.repo}/issues/comments/{comment_id}", json={"body": body}
        )
        return self.client.parse(answer, Comment.from_api)

    def delete(self, comment_id: int) -> None:
        self.client.request("DELETE", f"{self.repo}/issues/comments/{comment_id}")

    def set_status(
        self, sha: str, state: Verdict, *, context: str, description: str, target_url: str | None
    ) -> None:
        payload: dict[str, t.Any] = {
            "state": state,
            "context": context,
            "description": description[:140],
        }
        if target_url:
            payload["target_url"] = target_url
        self.client.request("POST", f"{self.repo}/statuses/{quote(sha, safe='')}", json=payload)
