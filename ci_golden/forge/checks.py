"""What the forge and the CI variables give, checked before it is used: numbers and ids in ASCII
digits, tokens a header can carry, the objects of an answer; and text from the forge made
printable.

Pure functions; a bad CI variable is a :class:`UsageError`, a bad answer a
:class:`MalformedAnswerError` (both exit 2).
"""

from __future__ import annotations

import json
import re
import typing as t
import unicodedata

from ci_golden.errors import ForgeError, UsageError

# pull/merge request numbers are 32-bit on both forges; ids (comments, runs, jobs) 64-bit
NUMBER_MAX = 2**31 - 1
ID_MAX = 2**63 - 1
MESSAGE_MAX = 300

_DIGITS = re.compile(r"[1-9][0-9]*")
# a header value a token can be sent in: visible ASCII only
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class MalformedAnswerError(ForgeError):
    """The forge answered 2xx with something its API does not document: not JSON, an error
    object where a list belongs, an item without its id, pages that loop."""


def printable(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` from the forge made safe for one line of a terminal or a CI log: control,
    format and lone surrogate characters escaped (``\\n``, ``\\x1b``, ``\\u202e``), at most
    ``limit`` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(
        ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(ch) in _UNPRINTABLE
        else ch
        for ch in text
    )


def describe(value: t.Any) -> str:
    """A JSON value in a message: scalars as JSON (short, ASCII), containers by kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def positive_int(text: str, maximum: int) -> int | None:
    """``text`` as a positive integer written in ASCII digits (no sign, no leading zero, no
    space), at most ``maximum``; ``None`` when it is not one."""
    if not _DIGITS.fullmatch(text) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def is_positive_int(value: t.Any, maximum: int = ID_MAX) -> bool:
    """Whether a JSON value is a positive integer (``true`` and ``1.0`` are not)."""
    return type(value) is int and 0 < value <= maximum


def check_token(name: str, token: str) -> None:
    """A :class:`UsageError` naming ``name`` when ``token`` cannot be a token (whitespace,
    control or non-ASCII characters); the value itself is never shown, in any form."""
    if not _TOKEN_RE.fullmatch(token):
        raise UsageError(
            f"{name} holds whitespace, a control character or a character outside ASCII, "
            "which no token has; set it again without them (its value is not shown)"
        )


def require_id(item: t.Any, what: str, key: str = "id") -> int:
    """``item[key]`` of an object the forge answered, a positive integer; otherwise a
    :class:`MalformedAnswerError` saying what was wrong (``what``: "a comment", "a job")."""
    if not isinstance(item, dict):
        raise MalformedAnswerError(f"the forge answered {what} that is not an object")
    if key not in item:
        raise MalformedAnswerError(f'the forge answered {what} without an "{key}"')
    value = item[key]
    if not is_positive_int(value):
        raise MalformedAnswerError(
            f'the forge answered {what} whose "{key}" is {describe(value)}, not a positive integer'
        )
    return t.cast(int, value)


def optional(item: dict[str, t.Any], key: str, kind: type, what: str) -> t.Any:
    """``item[key]`` when it is absent, null or of ``kind``; otherwise a
    :class:`MalformedAnswerError`."""
    value = item.get(key)
    if value is not None and not isinstance(value, kind):
        name = {str: "a string", dict: "an object", list: "a list", bool: "true or false"}[kind]
        raise MalformedAnswerError(
            f'the forge answered {what} whose "{key}" is {describe(value)}, not {name}'
        )
    return value
