"""Pure parts of the forge clients: headers, response decoding, pagination links, retry delays.

Nothing here performs I/O; :mod:`ci_golden.forge.http` moves the bytes. Exceptions carry the
status and headers so that callers can decide; every message passes through a redactor
(:class:`ci_golden.project.redact.Redactor`) so that no token can leak through
``str(exception)``, and text from the forge is made printable (one line, no control
characters) before it reaches a message.

API references: https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api,
https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api,
https://docs.gitlab.com/api/rest/#pagination
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import time
import typing as t
from dataclasses import dataclass

from ci_golden.errors import ForgeError, UsageError
from ci_golden.forge.checks import (
    ID_MAX,
    MalformedAnswerError,
    check_token,
    positive_int,
    printable,
)

Forge = t.Literal["github", "gitlab"]

GITHUB_API_VERSION = "2022-11-28"
USER_AGENT = "ci-golden"
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
# GitHub asks clients to wait at least a minute after a secondary limit without headers.
SECONDARY_LIMIT_DEFAULT_WAIT = 60.0

_LINK_RE = re.compile(r"<(?P<url>[^>]*)>\s*;\s*(?P<params>[^,]*(?:,(?!\s*<)[^,]*)*)")
_REL_RE = re.compile(r'rel\s*=\s*"?(?P<rel>[^";]+)"?')


class HTTPError(ForgeError):
    """The forge answered with an error status (after retries, where retrying made sense)."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: t.Mapping[str, str] | None = None,
        *,
        method: str = "",
        url: str = "",
    ) -> None:
        self.status = status
        self.message = message = printable(message)
        self.headers = dict(headers or {})
        self.method = method
        self.url = url
        where = f"{method} {url}: " if method else ""
        super().__init__(f"{where}HTTP {status}: {message}")


class RateLimitError(HTTPError):
    """Primary or secondary rate limit (403 or 429)."""


class ForbiddenError(HTTPError):
    """403 that is not a rate limit, e.g. a read-only token on a fork pull request."""

    @property
    def read_only_token(self) -> bool:
        return "resource not accessible by integration" in self.message.lower()


class NotFoundError(HTTPError):
    """404 (or 410): the pull request, comment or project does not exist or is hidden."""


class ServerError(HTTPError):
    """5xx from the forge."""


class TransportError(ForgeError):
    """No answer: connection refused or reset, or the answer was slower than the timeout.

    ``sent`` is false when the request certainly never reached the forge (connection refused).
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        self.sent = sent
        super().__init__(message)


class AnswerLostError(ForgeError):
    """A write was sent but its answer was lost; the forge may or may not have applied it."""


def build_headers(forge: Forge, token: str | None) -> dict[str, str]:
    """Request headers for ``forge`` authenticated with ``token`` (none when ``token`` is empty).

    A token that no header can carry as it is is refused (:func:`check_token`)."""
    if token:
        check_token("the token", token)
    headers = {"User-Agent": USER_AGENT}
    if forge == "github":
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = GITHUB_API_VERSION
        if token:
            headers["Authorization"] = f"Bearer {token}"
    else:
        headers["Accept"] = "application/json"
        if token:
            headers["PRIVATE-TOKEN"] = token
    return headers


def parse_link_header(value: str | None) -> dict[str, str]:
    """``rel -> url`` from an RFC 8288 ``Link`` header."""
    links: dict[str, str] = {}
    for match in _LINK_RE.finditer(value or ""):
        rel = _REL_RE.search(match.group("params"))
        if rel:
            for name in rel.group("rel").split():
                links[name] = match.group("url")
    return links


def next_page_url(url: str, headers: t.Mapping[str, str]) -> str | None:
    """The next page of a paginated list: ``Link: rel="next"``, else GitLab's ``x-next-page``."""
    lower = {k.lower(): v for k, v in headers.items()}
    nxt = parse_link_header(lower.get("link")).get("next")
    if nxt:
        return nxt
    page = lower.get("x-next-page", "").strip()
    if positive_int(page, ID_MAX) is not None:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
        query.append(("page", page))
        return urlunsplit(parts._replace(query=urlencode(query)))
    return None


def _is_json(content_type: str | None) -> bool:
    return "json" in (content_type or "").lower()


def _message(body: bytes, content_type: str | None) -> tuple[t.Any, str]:
    data: t.Any = None
    if body and _is_json(content_type):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: brackets nested too deep
            data = None
    if isinstance(data, dict):
        msg = data.get("message") or data.get("error") or data.get("error_description")
        if isinstance(msg, dict | list):
            msg = json.dumps(msg)
        if msg:
            return data, str(msg)
    text = body[:300].decode("utf-8", "replace").strip() if body else ""
    return data, text or "(no message)"


def is_rate_limited(status: int, headers: t.Mapping[str, str], message: str) -> bool:
    """GitHub's primary (``x-ratelimit-remaining: 0``) or secondary limit, or any 429."""
    if status == 429:
        return True
    if status != 403:
        return False
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("x-ratelimit-remaining") == "0" or "retry-after" in lower:
        return True
    return "rate limit" in message.lower()


def decode_response(
    status: int,
    headers: t.Mapping[str, str],
    body: bytes,
    *,
    url: str = "",
    method: str = "GET",
    redact: t.Callable[[str], str] = str,
) -> tuple[t.Any, str | None]:
    """``(data, next_url)`` for a 2xx answer, else the typed :class:`HTTPError` raised.

    ``data`` is the decoded JSON (``None`` for an empty body); ``next_url`` the next page of a
    paginated list or ``None``.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type")
    if 200 <= status < 300:
        if not body:
            return None, next_page_url(url, headers)
        if not _is_json(content_type):
            raise MalformedAnswerError(
                redact(
                    f"{method} {url}: the answer is not JSON "
                    f"(content type {printable(content_type or 'none', 60)})"
                )
            )
        data, _ = _message(body, content_type)
        if data is None and body.strip() != b"null":
            raise ServerError(
                status, "the answer is not valid JSON", headers, method=method, url=redact(url)
            )
        return data, next_page_url(url, headers)
    _, message = _message(body, content_type)
    message = redact(message)
    cls: type[HTTPError] = HTTPError
    if is_rate_limited(status, headers, message):
        cls = RateLimitError
    elif status in (401, 403):
        cls = ForbiddenError
    elif status in (404, 410):
        cls = NotFoundError
    elif status >= 500:
        cls = ServerError
    raise cls(status, message, headers, method=method, url=redact(url))


def _retry_after(value: str, now: float) -> float | None:
    value = value.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def retry_delay(
    status: int | None,
    headers: t.Mapping[str, str],
    attempt: int,
    *,
    message: str = "",
    now: float | None = None,
    backoff: float = 1.0,
    rand: t.Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retry number ``attempt`` (1-based), or ``None``: do not retry.

    ``status`` is ``None`` for a transport failure (connection reset, timeout). Order:
    ``Retry-After`` (seconds or HTTP date), then ``x-ratelimit-reset`` (epoch seconds) when the
    limit is exhausted, then exponential backoff ``backoff * 2**(attempt-1)`` with full jitter
    in [50 %, 100 %]. A secondary rate limit with neither header waits at least a minute, as
    GitHub documents.
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    limited = status is not None and is_rate_limited(status, headers, message)
    if status is not None and not limited and status not in RETRYABLE_STATUSES:
        return None
    if "retry-after" in lower:
        delay = _retry_after(lower["retry-after"], now)
        if delay is not None:
            return delay
    if (
        limited
        and lower.get("x-ratelimit-remaining") == "0"
        and re.fullmatch(r"[0-9]{1,20}", lower.get("x-ratelimit-reset", ""))
    ):
        return max(0.0, float(lower["x-ratelimit-reset"]) - now) + 1.0
    exponential = backoff * 2 ** max(0, attempt - 1)
    jittered = exponential * (0.5 + rand() / 2)
    if limited and status == 403 and "secondary" in message.lower():
        return max(SECONDARY_LIMIT_DEFAULT_WAIT, jittered)
    return jittered


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for one command: attempts per request, seconds per request (the whole answer) and
    for all requests together, and the size of one answer."""

    attempts: int = 5
    timeout: float = 30.0
    deadline: float = 300.0
    backoff: float = 1.0
    max_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_environ(cls, environ: t.Mapping[str, str]) -> RetryPolicy:
        """Overrides from ``CI_GOLDEN_HTTP_{ATTEMPTS,TIMEOUT,DEADLINE,BACKOFF,MAX_BYTES}``; a
        value out of range (NaN, infinite, negative, zero attempts) is a :class:`UsageError`."""

        values: dict[str, t.Any] = {}
        for field, expected in _SETTINGS.items():
            name = f"CI_GOLDEN_HTTP_{field.upper()}"
            raw = environ.get(name)
            if not raw:
                continue
            value = _setting(field, raw)
            if value is None:
                raise UsageError(f"{name}={raw!r}: expected {expected}")
            values[field] = value
        return cls(**values)


_SETTINGS = {
    "attempts": "a whole number from 1 to 100",
    "timeout": "a finite number of seconds, more than 0",
    "deadline": "a finite number of seconds, more than 0",
    "backoff": "a finite number of seconds, 0 or more",
    "max_bytes": "a whole number of bytes, at least 1",
}


def _setting(field: str, raw: str) -> float | int | None:
    if field in ("attempts", "max_bytes"):
        value = positive_int(raw, 100 if field == "attempts" else ID_MAX)
        return value
    if not re.fullmatch(r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.", raw):
        return None
    number = float(raw)
    if not math.isfinite(number) or (field != "backoff" and number <= 0):
        return None
    return number
