"""The comment operations both forges offer, as one small interface over :class:`Client`."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ci_golden.forge.checks import optional, require_id

if t.TYPE_CHECKING:
    from ci_golden.forge.http import Client

Verdict = t.Literal["success", "failure", "error", "pending"]


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    created_at: str  # ISO 8601 from the forge; ties are broken by id

    @property
    def age_key(self) -> tuple[str, int]:
        return (self.created_at, self.id)

    @classmethod
    def from_api(cls, data: t.Any) -> Comment:
        """A GitHub issue comment or a GitLab note as the API returns it; one without a valid
        ``id``, or whose ``body`` is not text, is a :class:`MalformedAnswerError`."""
        comment_id = require_id(data, "a comment")
        body = optional(data, "body", str, "a comment") or ""
        created_at = optional(data, "created_at", str, "a comment") or ""
        return cls(comment_id, body, created_at)


class CommentAPI(t.Protocol):
    """One pull/merge request's comments, and commit statuses of its repository."""

    client: Client
    max_body: int  # the forge's limit in characters
    name: str  # "GitHub" or "GitLab"

    def pages(self) -> t.Iterator[list[Comment]]: ...
    def create(self, body: str) -> Comment: ...
    def update(self, comment_id: int, body: str) -> Comment: ...
    def delete(self, comment_id: int) -> None: ...
    def set_status(
        self, sha: str, state: Verdict, *, context: str, description: str, target_url: str | None
    ) -> None: ...
