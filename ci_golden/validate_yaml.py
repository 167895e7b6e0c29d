"""A fast reader for the plain subset of YAML that model_config.yaml files are written in.

PyYAML builds every scalar through generic Python machinery; over a tree of hundreds of
cases that costs more than reading all the golden JSON. Nearly every model_config.yaml is
nested block mappings of plain scalars, short block or flow lists, and comments. This reader
handles exactly that subset and returns None for anything else (anchors, tags, quotes with
escapes, multi-line scalars, flow mappings, tabs, document markers...), so the caller falls
back to PyYAML, which also reports the errors. Scalars are typed by PyYAML's own YAML 1.1
resolver and constructors, so ``on``, ``1_000`` or ``1:30`` read exactly as PyYAML reads them.
``tests/test_validate_yaml.py`` compares both readers on every corpus file.
"""

from __future__ import annotations

import functools
import re
import typing as t
from pathlib import Path

import yaml

from ci_golden.yamlio import load_yaml_text, read_yaml_text

_LINE = re.compile(r"( *)(?:(- )|([-A-Za-z0-9_.][-A-Za-z0-9_./]*):(?: +|$))(.*)\Z")
_PLAIN_START_BAD = set("[]{}#&*!|>'\"%@`,")
_QUOTED = re.compile(r"\"([^\"\\]*)\"|'([^']*)'")
_RESOLVERS = yaml.resolver.Resolver.yaml_implicit_resolvers
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
# what PyYAML refuses, and the line breaks of YAML 1.1 other than \n: left to PyYAML
_NOT_SIMPLE = re.compile("[^\x0A\x0D\x20-\x7E\xA0-\u2027\u202A-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


class _NotPlain(Exception):
    pass


@functools.lru_cache(maxsize=8192)
def plain_scalar(text: str) -> t.Any:
    """The value of a plain scalar, typed like PyYAML types it (raises _NotPlain).

    Memoized: the configs of a tree repeat most of their keys and values (98% of the scalars
    of the Megatron-LM corpus), and every value this returns is immutable.
    """
    first = text[0]
    if first in _PLAIN_START_BAD or (first in "-?:" and text[1:2] in ("", " ")):
        raise _NotPlain
    if ": " in text or text.endswith(":") or "\t" in text:
        raise _NotPlain
    for tag, regexp in _RESOLVERS.get(first, ()):
        if regexp.match(text):
            if tag == _STR:
                return text
            node = yaml.ScalarNode(tag, text)
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
    return text


def _scalar(text: str) -> t.Any:
    text = _strip_comment(text)
    if not text:
        return None
    if text[0] in "\"'":
        m = _QUOTED.fullmatch(text)
        if m is None:
            raise _NotPlain
        return m.group(1) if m.group(1) is not None else m.group(2)
    if text[0] == "[":
        if not text.endswith("]"):
            raise _NotPlain
        inner = text[1:-1].strip()
        if not inner:
            return []
        if any(c in inner for c in "[]{}\"'#:?"):
            raise _NotPlain
        return [plain_scalar(item.strip()) for item in inner.split(",")]
    return plain_scalar(text)


def _strip_comment(text: str) -> str:
    if "#" in text:
        if text.startswith("#"):
            return ""
        cut = text.find(" #")
        if cut >= 0:
            text = text[:cut]
    return text.rstrip(" ")


def read_plain_yaml(text: str) -> dict[str, t.Any] | None:
    """The document when ``text`` is in the plain subset and a mapping; else None."""
    if _NOT_SIMPLE.search(text):
        return None
    try:
        return _read(text)
    except (_NotPlain, yaml.YAMLError, ValueError, KeyError, IndexError):
        return None


def load_model_config(path: Path) -> t.Any:
    """Read a model_config.yaml like :func:`ci_golden.yamlio.load_yaml` does (same limits and
    messages), through the fast reader when the file is in its subset."""
    text = read_yaml_text(path)
    fast = read_plain_yaml(text)
    return fast if fast is not None else load_yaml_text(text, str(path))


_NOT_PLAIN_LINE = "not plain"  # a line that makes the whole document not plain, wherever it is
_CAUGHT = (_NotPlain, yaml.YAMLError, ValueError, KeyError, IndexError)  # what read_plain_yaml maps to None


class _Line(t.NamedTuple):
    """What one line says on its own, before the lines around it give it a place."""

    indent: int
    dash: bool
    key: str  # "" on a list item
    open: bool  # a key with nothing after it: its value is on the lines below
    value: t.Any  # immutable: a flow list is kept as a tuple
    is_list: bool
    error: Exception | None  # what reading the value raised, raised again where it is read


@functools.lru_cache(maxsize=8192)
def _parse_line(raw: str) -> _Line | str | None:
    """One line of the document: None when blank or a comment, :data:`_NOT_PLAIN_LINE` when
    the document cannot be plain. Memoized like :func:`plain_scalar`: the configs of a tree
    share most of their lines (18,486 lines, 834 different, in the Megatron-LM corpus)."""
    line = raw.rstrip("\r")
    stripped = line.lstrip(" ")
    if not stripped or stripped.startswith("#"):
        return None
    if "\t" in line or line.startswith(("---", "...", "%")):
        return _NOT_PLAIN_LINE
    m = _LINE.match(line)
    if m is None:
        return _NOT_PLAIN_LINE
    indent, dash, key, rest = len(m.group(1)), m.group(2), m.group(3) or "", m.group(4)
    try:
        if key and type(plain_scalar(key)) is not str:
            return _NOT_PLAIN_LINE  # a key YAML types (on, 1, null): PyYAML decides
    except _CAUGHT:
        return _NOT_PLAIN_LINE
    if dash:
        if _LINE.match(rest) and ": " in rest:
            return _NOT_PLAIN_LINE
    else:
        rest = _strip_comment(rest)
        if not rest:
            return _Line(indent, False, key, True, None, False, None)
    try:
        value = _scalar(rest)
    except _CAUGHT:
        return _NOT_PLAIN_LINE
    except Exception as e:  # not one read_plain_yaml catches: raised where the line is read
        return _Line(indent, bool(dash), key, False, None, False, e)
    if type(value) is list:
        return _Line(indent, bool(dash), key, False, tuple(value), True, None)
    return _Line(indent, bool(dash), key, False, value, False, None)


def clear_memos() -> None:
    """Forget the memoized scalars and lines (a benchmark's round reads as a first run would)."""
    plain_scalar.cache_clear()
    _parse_line.cache_clear()


def _read(text: str) -> dict[str, t.Any] | None:
    root: dict[str, t.Any] = {}
    content = False  # an empty document is None for PyYAML
    # stack of (indent, container), its top also kept in locals; a key whose value is still
    # open waits in `pending`
    stack: list[tuple[int, t.Any]] = [(-1, root)]
    top_indent: int = -1
    container: t.Any = root
    in_list = False  # whether container is a list
    pending: tuple[int, dict[str, t.Any], str] | None = None
    for raw in text.split("\n"):
        parsed = _parse_line(raw)
        if parsed is None:
            continue
        if isinstance(parsed, str):  # _NOT_PLAIN_LINE
            return None
        content = True
        indent, dash, key, open_, value, is_list, error = parsed
        if pending is not None:
            p_indent, p_map, p_key = pending
            pending = None
            if dash and indent >= p_indent:
                container = p_map[p_key] = []
                top_indent, in_list = indent, True
                stack.append((indent, container))
            elif not dash and indent > p_indent:
                container = p_map[p_key] = {}
                top_indent, in_list = indent, False
                stack.append((indent, container))
        while top_indent > indent or (top_indent == indent and not dash and in_list):
            stack.pop()
            top_indent, container = stack[-1]
            in_list = isinstance(container, list)
        if dash:
            if not in_list or top_indent != indent:
                return None
            if error is not None:
                raise error
            container.append(list(value) if is_list else value)
            continue
        if in_list or (top_indent != indent and container is not root) or (container is root and indent):
            return None
        if open_:
            container[key] = None
            pending = (indent, container, key)
        else:
            if error is not None:
                raise error
            container[key] = list(value) if is_list else value
    return root if content else None
