"""One sticky comment per pull/merge request and key, found by a hidden marker, updated in place.

The comment's first line is ``<!-- ci-golden:report key=KEY -->``. Every page of comments is
read (a bot that looks at page one only posts a second comment once the thread grows). Our
comment is updated when it exists and created only when it does not. Creating is made
idempotent by looking again: after a create whose answer was lost, we list before creating
anew, and after every create we list once more, so that when two jobs raced and both created,
the oldest comment is kept (holding the latest body) and the others are deleted.
"""

from __future__ import annotations

import contextlib
import re
import typing as t
from dataclasses import dataclass

from ci_golden.errors import ForgeError
from ci_golden.forge.sansio import AnswerLostError, NotFoundError

if t.TYPE_CHECKING:
    from ci_golden.forge.comments import Comment, CommentAPI

Action = t.Literal["created", "updated", "skipped", "would create", "would update"]
CREATE_ATTEMPTS = 3
_KEY_RE = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")


def marker(key: str) -> str:
    """The hidden first line that identifies our comment for ``key``."""
    if not _KEY_RE.match(key):
        raise ForgeError(f"comment key {key!r}: use 1-100 letters, digits, '.', '_', '/' or '-'")
    return f"<!-- ci-golden:report key={key} -->"


def is_ours(body: str, key: str) -> bool:
    return body.lstrip("\ufeff").split("\n", 1)[0].strip() == marker(key)


def compose(key: str, markdown: str) -> str:
    """The comment body: the marker line, then the report."""
    return f"{marker(key)}\n{markdown}"


@dataclass(frozen=True)
class Outcome:
    action: Action
    comment_id: int | None
    deleted: tuple[int, ...] = ()


def find_ours(api: CommentAPI, key: str) -> list[Comment]:
    """All our comments for ``key``, oldest first, reading every page."""
    ours = [c for page in api.pages() for c in page if is_ours(c.body, key)]
    return sorted(ours, key=lambda c: c.age_key)


def _delete(api: CommentAPI, comments: t.Iterable[Comment]) -> tuple[int, ...]:
    deleted = []
    for comment in comments:
        with contextlib.suppress(NotFoundError):  # the other job deleted it first
            api.delete(comment.id)
        deleted.append(comment.id)
    return tuple(deleted)


def _keep_oldest(
    api: CommentAPI, ours: list[Comment], body: str, *, written: int | None
) -> Outcome:
    keep = ours[0]
    if keep.id != written:
        api.update(keep.id, body)
    action: Action = "created" if keep.id == written else "updated"
    return Outcome(action, keep.id, _delete(api, ours[1:]))


def post_sticky(
    api: CommentAPI, key: str, body: str, *, create: bool = True, dry_run: bool = False
) -> Outcome:
    """Make the one comment of ``key`` hold ``body``.

    :param create: when false (``--only-on-regression`` and nothing regressed) an existing
        comment is still updated, but none is created.
    :param dry_run: read only; say what would be done.
    """
    ours = find_ours(api, key)
    if ours:
        if dry_run:
            return Outcome("would update", ours[0].id)
        return _keep_oldest(api, ours, body, written=None)
    if not create:
        return Outcome("skipped", None)
    if dry_run:
        return Outcome("would create", None)
    lost: AnswerLostError | None = None
    for _ in range(CREATE_ATTEMPTS):
        try:
            mine = api.create(body)
        except AnswerLostError as e:
            lost = e
            ours = find_ours(api, key)  # did the lost create land?
            if ours:
                return _keep_oldest(api, ours, body, written=None)
            continue
        # two jobs may have created at the same moment: look once more
        ours = find_ours(api, key) or [mine]
        return _keep_oldest(api, ours, body, written=mine.id)
    raise ForgeError(f"could not create the comment in {CREATE_ATTEMPTS} attempts: {lost}")
