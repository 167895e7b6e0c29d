"""One request and its whole answer, bounded in time and in size.

requests' timeouts bound each read of the socket, not the whole answer: a forge that trickles
its answer (headers included) a byte at a time never trips them, nor does a slow name lookup.
So the exchange runs in a worker thread, which the caller waits for no longer than allowed and
then abandons (the worker stops at its next chunk; its socket goes when the command ends). The
answer is read in chunks up to a size limit, counted on the decompressed bytes, and refused at
once when its declared length is over the limit.
"""

from __future__ import annotations

import threading
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    import requests

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Raw:
    """An answer as it came: status, headers, the URL requested (query included), the body."""

    status: int
    headers: dict[str, str]
    url: str
    body: bytes


class TimedOut(Exception):
    """No complete answer within the time allowed."""


class TooLarge(Exception):
    """An answer over the size limit; ``size`` is its declared length when it had one."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        super().__init__(size)


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: t.Any,
    json: t.Any,
    allowed: float,
    read_timeout: float,
    limit: int,
) -> Raw:
    """Send one request (redirects are not followed) and read its answer, all within
    ``allowed`` seconds, each read of the socket within ``read_timeout``, at most ``limit``
    bytes.

    Raises :class:`TimedOut`, :class:`TooLarge`, or what requests raised.
    """
    outcome: list[Raw | BaseException] = []
    cancelled = threading.Event()

    def work() -> None:
        try:
            outcome.append(
                _transfer(session, method, url, params=params, json=json,
                          read_timeout=read_timeout, limit=limit, cancelled=cancelled)
            )  # fmt: skip
        except BaseException as e:  # handed to the caller's thread
            outcome.append(e)

    worker = threading.Thread(target=work, name="ci-golden-http", daemon=True)
    worker.start()
    worker.join(allowed)
    if not outcome:
        cancelled.set()
        raise TimedOut
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _transfer(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: t.Any,
    json: t.Any,
    read_timeout: float,
    limit: int,
    cancelled: threading.Event,
) -> Raw:
    response = session.request(
        method, url, params=params, json=json, timeout=read_timeout, allow_redirects=False,
        stream=True,
    )  # fmt: skip
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise TooLarge(int(declared))
        chunks, size = [], 0
        for chunk in response.iter_content(CHUNK):
            if cancelled.is_set():  # the caller has given up
                break
            size += len(chunk)
            if size > limit:
                raise TooLarge(None)
            chunks.append(chunk)
        return Raw(response.status_code, dict(response.headers), response.url, b"".join(chunks))
    finally:
        response.close()
