"""The one transport: a ``requests.Session`` with bounded retries, redirects, pagination and
downloads.

Every exchange is bounded (:mod:`ci_golden.forge.exchange`). An API request (sending, waiting,
reading the whole answer) takes at most ``policy.timeout`` seconds and ``policy.max_bytes``
bytes; all requests of a client (one command) end by ``policy.deadline`` seconds after it was
made: a request due after it is not sent, one under way is cut at it. Downloads may take until
the deadline, each read at most ``policy.timeout``.

Retries are bounded twice: ``policy.attempts`` per request, and the deadline. Writes that are
not idempotent (creating a comment) are never retried blindly once sent: a lost answer raises
:class:`AnswerLostError` and the caller looks before it writes again.

Redirects are followed by hand, and only on the API host (same scheme, host and port): a
redirect elsewhere is an error, since the request carries the token (GitLab's is a header
requests would carry along) and maybe a body; a write is sent again only after a 307 or 308.
Downloads are the exception: storage on another host is fetched by a bare session, without the
token. Pagination stops with :class:`MalformedAnswerError` when a page repeats an earlier one,
an empty page names a next one, or the next page was read before.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import time
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ci_golden.errors import ForgeError
from ci_golden.forge.checks import MalformedAnswerError, describe, printable
from ci_golden.forge.exchange import Raw, TimedOut, TooLarge, exchange
from ci_golden.forge.sansio import (
    USER_AGENT,
    AnswerLostError,
    Forge,
    HTTPError,
    RetryPolicy,
    ServerError,
    TransportError,
    build_headers,
    decode_response,
    retry_delay,
)
from ci_golden.project.redact import Redactor

if t.TYPE_CHECKING:
    import requests

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
PER_PAGE = 100
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEADLINE_NOTE = "limit for network requests (CI_GOLDEN_HTTP_DEADLINE)"
T = t.TypeVar("T")


class AnswerTooLargeError(ForgeError):
    """An answer longer than the limit; ``size`` is its declared length when it had one."""

    def __init__(self, message: str, size: int | None) -> None:
        self.size = size
        super().__init__(message)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    data: t.Any
    next_url: str | None
    url: str = ""  # as requested, query included
    method: str = "GET"


@dataclass
class Counts:
    """API requests sent by one client; ``pages``, ``writes`` and ``redirects`` (followed) for the
    ``--verbose`` figure."""

    requests: int = 0
    pages: int = 0
    writes: int = 0
    redirects: int = 0
    retries: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


def _shown(method: str, url: str, params: t.Any) -> str:
    """The URL as it will be requested, query included, for messages."""
    import requests

    try:
        return requests.Request(method, url, params=params).prepare().url or url
    except requests.RequestException:  # the request itself will fail, and say why
        return url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port out of range: no origin anything shares
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def _origin_text(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _wait(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 1e10 else "more than 10000000000s"


def _as_is(item: t.Any) -> t.Any:
    return item


def _items(data: t.Any, key: str | None, where: str) -> list[t.Any]:
    """The list of one page: the answer itself, or its ``key`` (GitHub's wrapped lists)."""
    if key is None:
        if isinstance(data, list):
            return data
        raise MalformedAnswerError(f"{where}: expected a JSON list, got {describe(data)}")
    if isinstance(data, dict) and isinstance(data.get(key), list):
        return t.cast(list[t.Any], data[key])
    got = "an object without one" if isinstance(data, dict) else describe(data)
    raise MalformedAnswerError(f'{where}: expected a JSON object with a list "{key}", got {got}')


class Client:
    """An authenticated client of one forge API rooted at ``base_url``.

    :param forge: ``"github"`` or ``"gitlab"`` (chooses the headers).
    :param base_url: e.g. ``https://api.github.com`` or ``https://gitlab.com/api/v4``.
    :param token: sent as ``Authorization: Bearer`` (GitHub) or ``PRIVATE-TOKEN`` (GitLab) and
        redacted from every message.
    :param log: receives one redacted line per request (``--verbose``).
    """

    def __init__(
        self,
        forge: Forge,
        base_url: str,
        token: str | None,
        *,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
        log: t.Callable[[str], None] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        import requests

        self.forge = forge
        self.base_url = base_url.rstrip("/") + "/"
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.session.headers.update(build_headers(forge, token))
        self.redact = redactor if redactor is not None else Redactor()
        self.redact.add(token)
        self.sleep = sleep
        self.clock = clock
        self.log = log
        self.counts = Counts()
        self._started = clock()
        self._bare: requests.Session | None = None

    # -- plumbing -----------------------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            if _origin(path_or_url) != _origin(self.base_url):
                raise ForgeError(
                    f"refusing to send the token to {self.redact(path_or_url)}: "
                    f"not on the API host {self.redact(self.base_url)}"
                )
            return path_or_url
        return urljoin(self.base_url, path_or_url.lstrip("/"))

    def remaining(self) -> float:
        return self.policy.deadline - (self.clock() - self._started)

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(self.redact(line))

    def _bare_session(self) -> requests.Session:
        """A session without our headers, for storage on another host."""
        import requests

        if self._bare is None:
            self._bare = requests.Session()
            self._bare.headers.update({"User-Agent": USER_AGENT})
        return self._bare

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        params: t.Any,
        json: t.Any,
        limit: int | None = None,
        session: requests.Session | None = None,
        download: bool = False,
    ) -> Raw:
        """One exchange (:func:`exchange`) within this request's time: ``policy.timeout``
        (downloads: until the deadline, ``policy.timeout`` a read), never past the deadline;
        what went wrong as a typed error with a redacted message."""
        import requests

        shown = _shown(method, url, params)
        remaining = self.remaining()
        if remaining <= 0:
            raise TransportError(
                self.redact(
                    f"{method} {shown}: not sent: the {self.policy.deadline:g} s {DEADLINE_NOTE}"
                    " has passed"
                ),
                sent=False,
            )
        allowed = remaining if download else min(self.policy.timeout, remaining)
        limit = limit or self.policy.max_bytes
        self.counts.requests += 1
        self.counts.by_method[method] = self.counts.by_method.get(method, 0) + 1
        try:
            return exchange(
                session or self.session, method, url, params=params, json=json, allowed=allowed,
                read_timeout=min(self.policy.timeout, allowed), limit=limit,
            )  # fmt: skip
        except TimedOut:
            why = (
                f"the {self.policy.deadline:g} s {DEADLINE_NOTE} passed before the answer was"
                " complete"
                if allowed >= remaining
                else f"no complete answer within {allowed:g} s"
            )
            raise TransportError(self.redact(f"{method} {shown}: timed out: {why}")) from None
        except TooLarge as e:
            variable = "" if download else " (CI_GOLDEN_HTTP_MAX_BYTES)"
            raise AnswerTooLargeError(
                self.redact(
                    f"{method} {shown}: the answer is larger than {limit} bytes{variable}; not read"
                ),
                e.size,
            ) from None
        except requests.RequestException as e:
            kind = "timed out" if isinstance(e, requests.Timeout) else "failed"
            sent = not isinstance(e, requests.ConnectTimeout) and (
                "NewConnectionError" not in repr(e)
            )
            raise TransportError(
                self.redact(f"{method} {shown}: {kind}: {type(e).__name__}: {e}"), sent=sent
            ) from None

    def _attempts(
        self,
        method: str,
        url: str,
        *,
        params: t.Any = None,
        json: t.Any = None,
        decode: bool = True,
        limit: int | None = None,
        session: requests.Session | None = None,
        download: bool = False,
    ) -> Answer:
        """One request, retried while that is safe and within the limits; redirects are
        returned, not followed."""
        idempotent = method in IDEMPOTENT
        attempt = 0
        while True:
            attempt += 1
            started = self.clock()
            status: int | None = None
            headers: dict[str, str] = {}
            message = ""
            try:
                raw = self._exchange(
                    method, url, params=params, json=json, limit=limit, session=session,
                    download=download,
                )  # fmt: skip
                status, headers = raw.status, raw.headers
                self._say(f"{method} {raw.url} -> {status} ({self.clock() - started:.2f}s)")
                if status in REDIRECTS or (not decode and 200 <= status < 300):
                    return Answer(status, headers, raw.body, None, raw.url, method)
                data, next_url = decode_response(
                    status, headers, raw.body, url=raw.url, method=method, redact=self.redact
                )
                if method not in ("GET", "HEAD"):
                    self.counts.writes += 1
                return Answer(status, headers, data, next_url, raw.url, method)
            except TransportError as e:
                self._say(str(e))
                error: ForgeError = e
                if not idempotent and e.sent:
                    raise AnswerLostError(f"{e}; the forge may have applied it") from None
            except HTTPError as e:
                error, message = e, e.message
                if not idempotent and isinstance(e, ServerError):
                    raise AnswerLostError(f"{e}; the forge may have applied it") from None
            delay = retry_delay(
                status, headers, attempt, message=message, now=time.time(),
                backoff=self.policy.backoff,
            )  # fmt: skip
            if delay is None:
                raise error
            self._give_up_or_wait(error, attempt, delay, method)

    def _give_up_or_wait(self, error: ForgeError, attempt: int, delay: float, method: str) -> None:
        remaining = self.remaining()
        if attempt >= self.policy.attempts:
            why = f"gave up after {attempt} attempts"
        elif remaining <= 0:
            if isinstance(error, TransportError):
                raise error  # its message says that the time is up
            why = f"gave up: the {self.policy.deadline:g} s {DEADLINE_NOTE} has passed"
        elif delay > remaining - 0.1:
            why = (
                f"gave up: waiting {_wait(delay)} to retry "
                f"would pass the {self.policy.deadline:.0f}s limit"
            )
        else:
            self.counts.retries += 1
            self._say(
                f"retrying {method} in {delay:.1f}s "
                f"(attempt {attempt + 1} of {self.policy.attempts})"
            )
            self.sleep(delay)
            return
        if isinstance(error, HTTPError):
            error.args = (f"{error.args[0]} ({why})",)
            raise error
        raise TransportError(f"{error} ({why})") from None

    def _redirect_target(self, answer: Answer) -> str:
        location = next((v for k, v in answer.headers.items() if k.lower() == "location"), "")
        where = f"{answer.method} {answer.url}: HTTP {answer.status}"
        if not location:
            raise MalformedAnswerError(self.redact(f"{where}: a redirect without a Location"))
        return urljoin(answer.url, location)

    # -- requests ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: t.Mapping[str, t.Any] | None = None,
        json: t.Any = None,
    ) -> Answer:
        """Send one request, retrying what is safe to retry; raise a typed error otherwise.

        Rate limits and 5xx answers are retried after :func:`retry_delay`; transport failures
        too. A POST is retried only when the forge certainly did not apply it (rate limited,
        connection refused); otherwise :class:`AnswerLostError`. Redirects are followed on the
        API host only (a write only after 307 or 308).
        """
        method = method.upper()
        url = self.url(path_or_url)
        query: t.Mapping[str, t.Any] | None = params
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._attempts(method, url, params=query, json=json)
            if answer.status not in REDIRECTS:
                return answer
            target = self._redirect_target(answer)
            refused = f"{answer.method} {answer.url}: HTTP {answer.status} redirect to " + (
                f"{printable(target)} not followed: "
            )
            if _origin(target) != _origin(self.base_url):
                raise ForgeError(
                    self.redact(f"{refused}it is not on the API host {_origin_text(self.base_url)}")
                )
            if method not in ("GET", "HEAD") and answer.status not in (307, 308):
                raise ForgeError(self.redact(f"{refused}a {method} is not sent again as a GET"))
            self.counts.redirects += 1
            url, query = target, None
        raise ForgeError(self.redact(f"{method} {url}: more than {MAX_REDIRECTS} redirects"))

    def parse(self, answer: Answer, parse: t.Callable[[t.Any], T]) -> T:
        """``parse(answer.data)``, a :class:`MalformedAnswerError` naming the request."""
        try:
            return parse(answer.data)
        except MalformedAnswerError as e:
            raise MalformedAnswerError(self.redact(f"{answer.method} {answer.url}: {e}")) from None

    def get(self, path: str, params: t.Mapping[str, t.Any] | None = None) -> t.Any:
        return self.request("GET", path, params=params).data

    def pages(
        self,
        path: str,
        params: t.Mapping[str, t.Any] | None = None,
        *,
        key: str | None = None,
        parse: t.Callable[[t.Any], T] = _as_is,
    ) -> t.Iterator[list[T]]:
        """Every page of a list (``per_page=100``), following ``Link``/``x-next-page``, each
        item passed through ``parse``.

        ``key`` names the list in GitHub's wrapped answers (``{"artifacts": [...]}``). Anything
        else than a list, or pages that loop, raise :class:`MalformedAnswerError`.
        """
        url: str | None = path
        query: dict[str, t.Any] | None = {"per_page": PER_PAGE, **(params or {})}
        read: set[str] = set()
        seen: dict[bytes, int] = {}
        number = 0
        while url is not None:
            answer = self.request("GET", url, params=query)
            self.counts.pages += 1
            number += 1
            where = self.redact(f"GET {answer.url}")
            items = _items(answer.data, key, where)
            fingerprint = hashlib.sha256(jsonlib.dumps(items, sort_keys=True).encode()).digest()
            if items and fingerprint in seen:
                raise MalformedAnswerError(
                    f"{where}: this page repeats page {seen[fingerprint]}: "
                    "the forge's pagination does not advance; stopped"
                )
            seen.setdefault(fingerprint, number)
            read.add(answer.url)
            nxt = answer.next_url
            if nxt is not None:
                shown = self.redact(printable(nxt))
                if not items:
                    raise MalformedAnswerError(
                        f"{where}: an empty page names a next page ({shown}): "
                        "the forge's pagination does not advance; stopped"
                    )
                if urljoin(answer.url, nxt) in read:
                    raise MalformedAnswerError(
                        f"{where}: the next page ({shown}) was read before: "
                        "the forge's pagination loops; stopped"
                    )
            yield [self.parse(Answer(200, {}, item, None, answer.url), parse) for item in items]
            url, query = nxt, None

    def paginate(self, path: str, params: t.Mapping[str, t.Any] | None = None) -> t.Iterator[t.Any]:
        page: list[t.Any]
        for page in self.pages(path, params):
            yield from page

    def download(self, path_or_url: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes at ``path_or_url`` (at most ``max_bytes``, else
        :class:`AnswerTooLargeError`).

        Redirects on the API host are followed with the token; one to another host (signed
        storage) without it, and every redirect after that too.
        """
        url = self.url(path_or_url)
        session: requests.Session | None = None
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._attempts(
                "GET", url, decode=False, limit=max_bytes, session=session, download=True
            )
            if answer.status not in REDIRECTS:
                return t.cast(bytes, answer.data)
            url = self._redirect_target(answer)
            self.counts.redirects += 1
            if session is None and _origin(url) != _origin(self.base_url):
                session = self._bare_session()
                self._say(f"GET {url}: on another host, fetched without the token")
        raise ForgeError(self.redact(f"GET {path_or_url}: more than {MAX_REDIRECTS} redirects"))


def client_from_environ(
    forge: Forge,
    base_url: str,
    token: str | None,
    environ: t.Mapping[str, str],
    *,
    log: t.Callable[[str], None] | None = None,
    redactor: Redactor | None = None,
) -> Client:
    """A client whose limits come from CI_GOLDEN_HTTP_* and which redacts every secret found in
    ``environ``, including those it does not send (``redactor``, when given, is used and
    extended instead: it should already hold them)."""

    return Client(
        forge,
        base_url,
        token,
        policy=RetryPolicy.from_environ(environ),
        log=log,
        redactor=redactor if redactor is not None else Redactor.from_environ(environ),
    )
