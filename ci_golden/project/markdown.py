"""Text from users (case names, file names, messages) made inert for Markdown and HTML."""

from __future__ import annotations

import re

_ENTITIES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;",
    "|": "&#124;", "\\": "&#92;", "*": "&#42;", "[": "&#91;", "]": "&#93;", "~": "&#126;",
    "#": "&#35;", "!": "&#33;", "$": "&#36;", "{": "&#123;", "}": "&#125;",
}  # fmt: skip
_SPECIALS = re.compile(r"[&<>\"'`|\\*\[\]~#!${}]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_ZWSP = "\u200b"


def escape_md(text: object) -> str:
    """Inert inline text for Markdown and HTML: entities for the special characters, control
    characters and newlines as spaces, and a zero-width space after every ``@``."""
    s = CONTROL_CHARS.sub(" ", str(text))
    s = _SPECIALS.sub(lambda m: _ENTITIES.get(m.group(), "&#95;"), s)
    return s.replace("@", "@" + _ZWSP)
