"""A small threaded HTTP server on 127.0.0.1 with routing, fault injection and OpenAPI checks.

Subclasses add routes and state (see github_api.py, gitlab_api.py). Every request and every
normal answer is checked against an OpenAPI description with openapi-core; what does not
conform is recorded in ``violations`` (tests assert it stays empty) and a request that does
not conform is answered 422 like the real forge would.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

OPENAPI = Path(__file__).resolve().parent.parent / "openapi"

FaultKind = t.Literal["status", "reset", "slow", "lost", "reply", "trickle"]


@dataclass
class Fault:
    """An injected failure for the next ``times`` requests matching ``method`` and ``path``.

    kinds: ``status`` answers ``status`` with ``message`` and ``headers`` without doing
    anything; ``reset`` drops the connection (TCP RST) without doing anything; ``slow``
    does the work then waits ``delay`` seconds before answering; ``lost`` does the work and
    then drops the connection, so the client never learns that it succeeded. A hostile forge:
    ``reply`` answers what ``reply(request)`` returns (redirects, looping pages, malformed
    answers), unchecked and without doing anything; ``trickle`` does the work and sends the
    answer one byte every ``delay`` seconds, from its first line (``head``) or after the
    headers.
    """

    kind: FaultKind
    method: str | None = None
    path: str | None = None  # a regular expression searched in the path
    status: int = 500
    message: str = "Server Error"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    reply: t.Callable[[Request], Reply] | None = None
    head: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None
        )


@dataclass
class Reply:
    status: int
    body: t.Any = None  # JSON-able, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            headers.setdefault("Content-Type", "application/octet-stream")
            return self.body, headers
        if self.body is None:
            return b"", headers
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body).encode(), headers


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: str
    status: int | None  # None: the connection was dropped
    fault: str | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent (percent-encoded), without the prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> t.Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


Handler = t.Callable[..., Reply]


class OpenAPICheck:
    """openapi-core validation of requests and answers against one description."""

    def __init__(self, spec: dict[str, t.Any], server_url: str) -> None:
        from openapi_core import OpenAPI

        spec = {**spec, "servers": [{"url": server_url}]}
        self.api = OpenAPI.from_dict(spec)

    @staticmethod
    def _text(e: Exception) -> str:
        cause = e.__cause__
        errors = [
            x.message
            for x in getattr(cause, "schema_errors", None)
            or getattr(e, "schema_errors", None)
            or []
        ]
        return f"{type(e).__name__}: {e}" + (f" {errors}" if errors else "")

    def _request(self, method: str, url: str, headers: t.Mapping[str, str], body: bytes) -> t.Any:
        import requests
        from openapi_core.contrib.requests import RequestsOpenAPIRequest

        prepared = requests.Request(method, url, headers=dict(headers), data=body or None).prepare()
        return RequestsOpenAPIRequest(prepared)

    def request_errors(
        self, method: str, url: str, headers: t.Mapping[str, str], body: bytes
    ) -> list[str]:
        try:
            self.api.validate_request(self._request(method, url, headers, body))
        except Exception as e:
            return [self._text(e)]
        return []

    def response_errors(
        self,
        method: str,
        url: str,
        headers: t.Mapping[str, str],
        body: bytes,
        status: int,
        reply_headers: t.Mapping[str, str],
        reply_body: bytes,
    ) -> list[str]:
        import requests
        from openapi_core.contrib.requests import RequestsOpenAPIResponse

        response = requests.Response()
        response.status_code = status
        response.headers = requests.structures.CaseInsensitiveDict(reply_headers)
        response._content = reply_body
        try:
            self.api.validate_response(
                self._request(method, url, headers, body), RequestsOpenAPIResponse(response)
            )
        except Exception as e:
            if type(e).__name__ == "ResponseNotFound" and status >= 400:
                # the forges answer 401/404/422 where their descriptions omit them (GitHub's
                # delete-comment lists only 204): only documented answers can be checked
                return []
            return [self._text(e)]
        return []


class ApiServer:
    """Base of the test forge servers: subclasses call :meth:`route` and keep their state."""

    prefix = ""
    spec_file: str | None = None

    def __init__(self, *, token: str = "test-token-0123456789", validate: bool = True) -> None:
        self.token = token
        self.validate = validate
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.exchanges: list[Exchange] = []
        self.violations: list[str] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool, bool]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._check: OpenAPICheck | None = None
        self._list_barrier: threading.Barrier | None = None
        self.race_broken = False

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> ApiServer:
        server = self

        class _Handler(_RequestHandler):
            api = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        if self.validate and self.spec_file:
            self._check = OpenAPICheck(self.load_spec(), self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def load_spec(cls) -> dict[str, t.Any]:
        assert cls.spec_file
        path = OPENAPI / cls.spec_file
        if path.suffix == ".json":
            return t.cast(dict[str, t.Any], json.loads(path.read_text(encoding="utf-8")))
        import yaml

        return t.cast(dict[str, t.Any], yaml.safe_load(path.read_text(encoding="utf-8")))

    @property
    def origin(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.origin + self.prefix

    # -- configuration by tests ------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        **kwargs: t.Any,
    ) -> Fault:
        fault = Fault(kind, method, path, times=times, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def race_lists(self, parties: int = 2, timeout: float = 60.0) -> None:
        """Hold the first list request until ``parties`` list requests have arrived.

        The wait is long (processes started together may start far apart on a loaded
        machine); ``race_broken`` tells whether it ran out before they all arrived.
        """
        self.race_broken = False
        self._list_barrier = threading.Barrier(parties, timeout=timeout)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for e in self.exchanges
            if (method is None or e.method == method) and (path is None or re.search(path, e.path))
        )

    # -- routing --------------------------------------------------------------------------------

    def route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        is_list: bool = False,
        checked: bool = True,
    ) -> None:
        """``checked``: the route is in the OpenAPI description (storage URLs are not)."""
        self._routes.append((method, re.compile(f"^{pattern}$"), handler, is_list, checked))

    def checked(self, method: str, path: str) -> bool:
        return any(m == method and p.match(path) and c for m, p, _, _, c in self._routes)

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        return Reply(401, {"message": "Bad credentials"})

    def not_found(self) -> Reply:
        return Reply(404, {"message": "Not Found"})

    def dispatch(self, request: Request) -> tuple[Reply, bool]:
        """(reply, validate the exchange)."""
        for method, pattern, handler, is_list, _ in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                if not self.authorized(request):
                    return self.unauthorized(), True
                if is_list and self._list_barrier is not None:
                    barrier = self._list_barrier
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        self.race_broken = True
                    self._list_barrier = None
                return handler(
                    request, **{k: unquote(v) for k, v in match.groupdict().items()}
                ), True
        return self.not_found(), False

    @staticmethod
    def link_header(
        base: str, query: dict[str, list[str]], page: int, last: int, per_page: int
    ) -> str:
        def url(p: int) -> str:
            q = {k: v[-1] for k, v in query.items() if k not in ("page", "per_page")}
            q.update(per_page=str(per_page), page=str(p))
            return f"<{base}?{urlencode(q)}>"

        links = []
        if page < last:
            links += [f'{url(page + 1)}; rel="next"', f'{url(last)}; rel="last"']
        if page > 1:
            links += [f'{url(1)}; rel="first"', f'{url(page - 1)}; rel="prev"']
        return ", ".join(links)


class _RequestHandler(BaseHTTPRequestHandler):
    api: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        self.wfile = _Sink()  # type: ignore[assignment]

    def _handle(self) -> None:
        api = self.api
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = split.path
        if api.prefix and path.startswith(api.prefix):
            path = path[len(api.prefix) :]
        request = Request(
            self.command,
            path,
            parse_qs(split.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            api.url,
        )
        fault = None
        with api.lock:
            for f in api.faults:
                if f.times > 0 and f.matches(request.method, request.path):
                    f.times -= 1
                    fault = f
                    break
        record = (request.method, request.path, split.query)
        if fault is not None and fault.kind == "reset":
            api.exchanges.append(Exchange(*record, None, "reset"))
            self._reset()
            return
        if fault is not None and fault.kind == "reply":
            assert fault.reply is not None
            reply, validate = fault.reply(request), False
        elif fault is not None and fault.kind == "status":
            reply = Reply(
                fault.status,
                {"message": fault.message, "documentation_url": "https://docs.github.com/rest"},
                dict(fault.headers),
            )
            validate = False  # injected infrastructure answers are not in the description
        else:
            checked = api._check is not None and api.checked(request.method, request.path)
            errors = (
                api._check.request_errors(
                    self.command, api.origin + self.path, dict(self.headers), body
                )
                if api._check is not None and checked
                else []
            )
            if errors:
                with api.lock:
                    api.violations.append(f"request {self.command} {self.path}: {errors}")
                reply, validate = (
                    Reply(
                        422,
                        {
                            "message": "Validation Failed",
                            "errors": errors,
                            "documentation_url": "https://docs.github.com/rest",
                        },
                    ),
                    False,
                )
            else:
                try:
                    with api.lock if request.method != "GET" else _nolock():
                        reply, validate = api.dispatch(request)
                except Exception as e:  # a bug of the test server: say so, answer 500
                    with api.lock:
                        api.violations.append(f"server error on {self.command} {self.path}: {e!r}")
                    reply, validate = Reply(500, {"message": "Server Error"}), False
                validate = validate and checked
        data, headers = reply.encode()
        if validate and api._check is not None and reply.status < 500:
            errors = api._check.response_errors(
                self.command,
                api.origin + self.path,
                dict(self.headers),
                body,
                reply.status,
                headers,
                data,
            )
            if errors:
                with api.lock:
                    api.violations.append(
                        f"response {reply.status} to {self.command} {self.path}: {errors}"
                    )
        if fault is not None and fault.kind == "lost":
            api.exchanges.append(Exchange(*record, None, "lost"))
            self._reset()
            return
        api.exchanges.append(Exchange(*record, reply.status, fault.kind if fault else None))
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "trickle":
            self._trickle(reply.status, headers, data, fault)
            return
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _trickle(self, status: int, headers: dict[str, str], data: bytes, fault: Fault) -> None:
        """Send the answer a byte at a time, ``fault.delay`` seconds apart, until the client
        leaves."""
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(data)}", "", ""]
        head = "\r\n".join(lines).encode("latin-1")
        slow = head + data if fault.head else data
        self.close_connection = True
        try:
            if not fault.head:
                self.wfile.write(head)
            for i in range(len(slow)):
                self.wfile.write(slow[i : i + 1])
                time.sleep(fault.delay)
        except OSError:  # the client gave up, as it should
            pass

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _handle


class _Sink:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _nolock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
