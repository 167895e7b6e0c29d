"""Safe YAML reading: no Python tags, bounded alias expansion, errors that name the line."""

from __future__ import annotations

import typing as t
from pathlib import Path

import yaml

from ci_golden.errors import InputError
from ci_golden.project.files import read_regular

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built


class Repeat(t.NamedTuple):
    """A key given twice in one mapping with the same value: harmless, but worth a word."""

    key: str
    first_line: int
    line: int


class DuplicateKeyError(InputError):
    """A key given twice in one mapping with different values: which one was meant is unknown."""


class _Conflict(yaml.constructor.ConstructorError):
    pass


class UniqueKeyLoader(_Base):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader (libyaml's parser when present) that refuses a key given twice.

    YAML says keys are unique, yet PyYAML keeps the last one silently: ``TEST_TYPE: regular``
    then ``TEST_TYPE: ckpt-resume`` would become a ckpt-resume case without a word. A key
    repeated with the same value is kept and listed in ``repeats``.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeats: list[Repeat] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[t.Any, t.Any]:
        seen: dict[t.Any, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first_key, first_value = seen.setdefault(key, (key_node, value_node))
            except TypeError:
                continue  # an unhashable key: the base constructor says so
            if first_key is key_node:
                continue
            first_line, line = first_key.start_mark.line + 1, key_node.start_mark.line + 1
            old = self.construct_object(first_value, deep=True)
            new = self.construct_object(value_node, deep=True)
            if type(old) is type(new) and old == new:
                self.repeats.append(Repeat(str(key), first_line, line))
                continue
            raise _Conflict(
                None,
                None,
                f"duplicate key {key!r} on lines {first_line} and {line} with different values "
                f"({old!r} and {new!r}): keep the one meant",
                key_node.start_mark,
            )
        return t.cast("dict[t.Any, t.Any]", super().construct_mapping(node, deep=deep))


MAX_YAML_BYTES = 8 * 1024 * 1024
MAX_EXPANDED_NODES = 1_000_000


def expanded_size(data: t.Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """Number of nodes the document has once aliases are expanded (counted without expanding).

    Shared sub-trees created by YAML anchors are sized once and memoized, so a
    "billion laughs" document is measured in linear time.
    Raises :class:`RecursiveAlias` for a node that contains itself (``a: &a [*a]``), and
    :class:`LoneSurrogate` for a string that is not Unicode text.
    """
    memo: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: t.Any) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if not isinstance(node, (dict, list)):
            if isinstance(node, str) and not node.isascii():
                try:  # libyaml refuses a "\ud800" escape; PyYAML's Python parser does not
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    raise LoneSurrogate(node) from None
            return 1
        if key in open_nodes:
            raise RecursiveAlias
        open_nodes.add(key)
        if isinstance(node, dict):
            n = 1 + sum(size(k) + size(v) for k, v in node.items())
        else:
            n = 1 + sum(size(v) for v in node)
        open_nodes.discard(key)
        memo[key] = n = min(n, limit + 1)
        return n

    return size(data)


class RecursiveAlias(Exception):
    """A YAML node that contains itself through an alias."""


class LoneSurrogate(Exception):
    """A string holding half of a UTF-16 surrogate pair, which no UTF-8 file can hold."""


def load_yaml_text(text: str, name: str, repeats: list[Repeat] | None = None) -> t.Any:
    """Parse YAML text safely; keys repeated with the same value are added to ``repeats``."""
    loader = UniqueKeyLoader(text)
    try:
        data = loader.get_single_data()
    except _Conflict as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        raise DuplicateKeyError(name, f"invalid YAML: {e.problem}", where) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        problem = (e.problem or str(e)).strip()
        if isinstance(e, yaml.constructor.ConstructorError):
            problem = f"unsafe or unknown YAML tag ({problem})"
        raise InputError(name, f"invalid YAML: {problem}", where) from e
    except yaml.reader.ReaderError as e:  # a control character, or bytes that are not text
        what = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        where = f"line {text.count(chr(10), 0, e.position) + 1}"
        raise InputError(name, f"invalid YAML: character {what}: {e.reason}", where) from e
    except yaml.YAMLError as e:
        raise InputError(name, f"invalid YAML: {' '.join(str(e).split())}") from e
    except ValueError as e:  # an integer literal over Python's digit limit
        raise InputError(name, "invalid YAML: an integer literal too long to read") from e
    finally:
        loader.dispose()
    if repeats is not None:
        repeats += loader.repeats
    try:
        nodes = expanded_size(data)
    except RecursiveAlias:
        raise InputError(
            name, "a YAML alias refers to a node that contains it (recursive alias); refused"
        ) from None
    except LoneSurrogate as e:
        raise InputError(
            name, f"{ascii(e.args[0])[:60]} holds half of a UTF-16 surrogate pair, not a character"
        ) from None
    if nodes > MAX_EXPANDED_NODES:
        raise InputError(
            name, f"YAML aliases expand to over {MAX_EXPANDED_NODES} nodes (alias bomb); refused"
        )
    return data


def read_yaml_text(path: Path) -> str:
    """The text of a YAML file: a regular file, size-limited, UTF-8 (a BOM is allowed);
    :class:`InputError` else."""
    raw = read_regular(path, max_bytes=MAX_YAML_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(str(path), f"not UTF-8 (byte {e.start})") from e
    return text


def load_yaml(path: Path, repeats: list[Repeat] | None = None) -> t.Any:
    """Read one YAML file safely; raises :class:`InputError` naming the file and line."""
    return load_yaml_text(read_yaml_text(path), str(path), repeats)
