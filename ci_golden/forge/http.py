"""The one transport: a ``requests.Session`` with bounded retries, pagination and downloads.

Retries are bounded twice: ``policy.attempts`` per request and ``policy.deadline`` seconds for
the whole client (one command run). Writes that are not idempotent (creating a comment) are
never retried blindly once sent: a lost answer raises :class:`AnswerLostError` and the caller
looks before it writes again.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ci_golden.errors import ForgeError
from ci_golden.forge.context import secrets_in
from ci_golden.forge.sansio import (
    AnswerLostError,
    Forge,
    HTTPError,
    Redactor,
    RetryPolicy,
    ServerError,
    TransportError,
    build_headers,
    decode_response,
    retry_delay,
)

if t.TYPE_CHECKING:
    import requests

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
PER_PAGE = 100


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    data: t.Any
    next_url: str | None


@dataclass
class Counts:
    """API requests sent by one client; ``pages`` and ``writes`` for the ``--verbose`` figure."""

    requests: int = 0
    pages: int = 0
    writes: int = 0
    retries: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


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
        self.redact = redactor or Redactor()
        self.redact.add(token)
        self.sleep = sleep
        self.clock = clock
        self.log = log
        self.counts = Counts()
        self._started = clock()

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

    def _send(
        self, method: str, url: str, *, params: t.Any, json: t.Any, allow_redirects: bool
    ) -> requests.Response:
        import requests

        timeout = max(0.1, min(self.policy.timeout, self.remaining()))
        self.counts.requests += 1
        self.counts.by_method[method] = self.counts.by_method.get(method, 0) + 1
        try:
            return self.session.request(
                method,
                url,
                params=params,
                json=json,
                timeout=timeout,
                allow_redirects=allow_redirects,
            )
        except requests.RequestException as e:
            kind = "timed out" if isinstance(e, requests.Timeout) else "failed"
            sent = not isinstance(e, requests.ConnectTimeout) and "NewConnectionError" not in repr(
                e
            )
            raise TransportError(
                self.redact(f"{method} {url}: {kind}: {type(e).__name__}: {e}"), sent=sent
            ) from None

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: t.Mapping[str, t.Any] | None = None,
        json: t.Any = None,
        allow_redirects: bool = True,
        decode: bool = True,
    ) -> Answer:
        """Send one request, retrying what is safe to retry; raise a typed error otherwise.

        Rate limits and 5xx answers are retried after :func:`retry_delay`; transport failures
        too. A POST is retried only when the forge certainly did not apply it (rate limited,
        connection refused); otherwise :class:`AnswerLostError`.
        """
        method = method.upper()
        url = self.url(path_or_url)
        idempotent = method in IDEMPOTENT
        attempt = 0
        while True:
            attempt += 1
            started = self.clock()
            status: int | None = None
            headers: dict[str, str] = {}
            message = ""
            try:
                response = self._send(
                    method, url, params=params, json=json, allow_redirects=allow_redirects
                )
                status, headers = response.status_code, dict(response.headers)
                self._say(f"{method} {response.url} -> {status} ({self.clock() - started:.2f}s)")
                if not decode and (200 <= status < 400):
                    return Answer(status, headers, response.content, None)
                data, next_url = decode_response(
                    status,
                    headers,
                    response.content,
                    url=response.url,
                    method=method,
                    redact=self.redact,
                )
                if method not in ("GET", "HEAD"):
                    self.counts.writes += 1
                return Answer(status, headers, data, next_url)
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
                status,
                headers,
                attempt,
                message=message,
                now=time.time(),
                backoff=self.policy.backoff,
            )
            if delay is None:
                raise error
            if attempt >= self.policy.attempts or delay > self.remaining() - 0.1:
                why = (
                    f"gave up after {attempt} attempts"
                    if attempt >= self.policy.attempts
                    else f"gave up: waiting {delay:.0f}s to retry "
                    f"would pass the {self.policy.deadline:.0f}s limit"
                )
                if isinstance(error, HTTPError):
                    error.args = (f"{error.args[0]} ({why})",)
                    raise error
                raise TransportError(f"{error} ({why})") from None
            self.counts.retries += 1
            self._say(
                f"retrying {method} in {delay:.1f}s "
                f"(attempt {attempt + 1} of {self.policy.attempts})"
            )
            self.sleep(delay)

    # -- conveniences --------------------------------------------------------------------------

    def get(self, path: str, params: t.Mapping[str, t.Any] | None = None) -> t.Any:
        return self.request("GET", path, params=params).data

    def pages(
        self, path: str, params: t.Mapping[str, t.Any] | None = None
    ) -> t.Iterator[list[t.Any]]:
        """Every page of a list (``per_page=100``), following ``Link``/``x-next-page``."""
        url: str | None = path
        query: dict[str, t.Any] | None = {"per_page": PER_PAGE, **(params or {})}
        while url is not None:
            answer = self.request("GET", url, params=query)
            self.counts.pages += 1
            items = answer.data
            if isinstance(items, dict):  # GitHub's wrapped lists, e.g. {"artifacts": [...]}
                items = next((v for v in items.values() if isinstance(v, list)), [])
            if not isinstance(items, list):
                raise ForgeError(
                    self.redact(f"GET {url}: expected a JSON list, got {type(items).__name__}")
                )
            yield items
            url, query = answer.next_url, None

    def paginate(self, path: str, params: t.Mapping[str, t.Any] | None = None) -> t.Iterator[t.Any]:
        for page in self.pages(path, params):
            yield from page

    def download(self, path_or_url: str, *, max_redirects: int = 5) -> bytes:
        """The bytes at ``path_or_url``, following redirects; the token goes to the API host
        only.
        """
        import requests

        answer = self.request("GET", path_or_url, allow_redirects=False, decode=False)
        for _ in range(max_redirects):
            if answer.status not in (301, 302, 303, 307, 308):
                return t.cast(bytes, answer.data)
            location = urljoin(
                self.url(path_or_url),
                answer.headers.get("Location") or answer.headers.get("location", ""),
            )
            if _origin(location) == _origin(self.base_url):
                answer = self.request("GET", location, allow_redirects=False, decode=False)
                continue
            # a signed storage URL: fetched without our credentials
            self.counts.requests += 1
            self._say(f"GET {location.split('?')[0]} (redirect, no token)")
            try:
                response = requests.get(
                    location, timeout=max(0.1, min(self.policy.timeout, self.remaining()))
                )
            except requests.RequestException as e:
                raise TransportError(
                    self.redact(f"GET {location.split('?')[0]}: {type(e).__name__}")
                ) from None
            if response.status_code != 200:
                raise HTTPError(
                    response.status_code,
                    "download failed",
                    dict(response.headers),
                    method="GET",
                    url=location.split("?")[0],
                )
            return response.content
        raise ForgeError(self.redact(f"GET {path_or_url}: more than {max_redirects} redirects"))


def client_from_environ(
    forge: Forge,
    base_url: str,
    token: str | None,
    environ: t.Mapping[str, str],
    *,
    log: t.Callable[[str], None] | None = None,
    redactor: Redactor | None = None,
) -> Client:
    """A client whose retry limits come from CI_GOLDEN_HTTP_* and which redacts every token
    found in ``environ``, including those it does not send (``redactor``, when given, is used
    and extended instead: it should already hold them)."""

    return Client(
        forge,
        base_url,
        token,
        policy=RetryPolicy.from_environ(environ),
        log=log,
        redactor=redactor or Redactor(secrets_in(environ)),
    )
