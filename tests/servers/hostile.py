"""A hostile forge: a second server that records whatever reaches it, and answers that redirect
there, loop, or break the shapes the APIs document.

Use the answers with ``server.inject("reply", reply=...)`` on a test forge server (base.py); the
``other_host`` fixture (fixtures.py) starts the second server.
"""

from __future__ import annotations

import json
import typing as t
from urllib.parse import parse_qsl, urlencode

from .base import ApiServer, Reply, Request

# headers that carry a credential, in any of the forms the two forges accept
CREDENTIAL_HEADERS = ("authorization", "private-token", "job-token", "cookie")


class OtherHost(ApiServer):
    """Another host on 127.0.0.1 (another port, and reached as ``localhost``): it answers every
    request with ``answer`` and keeps each request, headers and body included, in
    ``captured``."""

    def __init__(self, answer: Reply | None = None) -> None:
        super().__init__(validate=False)
        self.answer = answer or Reply(200, [])
        self.captured: list[Request] = []

    @property
    def url(self) -> str:
        return self.origin.replace("127.0.0.1", "localhost")

    def dispatch(self, request: Request) -> tuple[Reply, bool]:
        with self.lock:
            self.captured.append(request)
        return self.answer, False

    def credentials(self) -> list[tuple[str, str]]:
        """(request line, header name) of every credential header that reached this host."""
        return [
            (f"{r.method} {r.path}", name)
            for r in self.captured
            for name in CREDENTIAL_HEADERS
            if name in r.headers
        ]


def query_of(request: Request) -> str:
    return urlencode([(k, v) for k, values in request.query.items() for v in values])


def redirect(to: str, status: int) -> t.Callable[[Request], Reply]:
    """Answer ``status`` with a ``Location`` of the same path and query under ``to``."""

    def reply(request: Request) -> Reply:
        query = query_of(request)
        location = f"{to}{request.path}" + (f"?{query}" if query else "")
        return Reply(status, None, {"Location": location})

    return reply


def page_of(request: Request) -> int:
    page = request.arg("page") or "1"
    return int(page) if page.isdigit() else 1


def pages(
    items: t.Callable[[int], t.Any], *, next_page: t.Callable[[int], int], style: str
) -> t.Callable[[Request], Reply]:
    """A list answered page after page: page ``n`` holds ``items(n)`` and names
    ``next_page(n)`` as the next one, in GitHub's ``Link`` header (``style="link"``) or GitLab's
    ``x-next-page`` (``style="gitlab"``)."""

    def reply(request: Request) -> Reply:
        page = page_of(request)
        following = next_page(page)
        if style == "gitlab":
            return Reply(200, items(page), {"x-page": str(page), "x-next-page": str(following)})
        query = dict(parse_qsl(query_of(request)))
        query["page"] = str(following)
        url = f"{request.base_url}{request.path}?{urlencode(query)}"
        return Reply(200, items(page), {"Link": f'<{url}>; rel="next"'})

    return reply


def answer(
    status: int, body: t.Any, content_type: str = "application/json"
) -> t.Callable[[Request], Reply]:
    """Always the same answer; ``body`` as JSON, or bytes sent as they are."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: Reply(status, data, {"Content-Type": content_type})
