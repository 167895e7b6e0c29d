"""Editing one top-level block of a YAML file and nothing else (ruamel.yaml round trip).

``ci-golden import-recipes`` writes the ``CI_GOLDEN`` block of Megatron-LM's model_config.yaml
files and the scopes of the project config. The block is loaded, changed and dumped by
ruamel.yaml's round-trip mode, so its comments, key order and quoting stay. The rest of the
file is left byte for byte: ruamel.yaml reads a key given twice as one (keeping the first) and
drops trailing blanks on a dump of the whole file, which would change 21 of the 271 real
Megatron-LM files, and 2 of them in what they run (CG146). The block is found by ruamel.yaml's
composer (which sees every key, repeated or not), from its key's line to the next top-level
key's line.
"""

from __future__ import annotations

import io
import json
import typing as t

from ci_golden.errors import InputError
from ci_golden.project.yamlio import load_yaml_text

if t.TYPE_CHECKING:
    from ruamel.yaml import YAML


def _yaml() -> YAML:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line
    yaml.indent(mapping=2, sequence=4, offset=2)  # the style of Megatron-LM's files
    return yaml


def _compose(text: str, name: str) -> t.Any:
    from ruamel.yaml.error import YAMLError

    try:
        docs = list(_yaml().compose_all(text))
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        problem = getattr(e, "problem", None) or str(e)
        raise InputError(name, f"invalid YAML: {problem}", where) from None
    if len(docs) > 1:
        raise InputError(name, "holds more than one YAML document; edit it by hand")
    return docs[0] if docs else None


def edit_block(text: str, name: str, key: str, change: t.Callable[[t.Any], t.Any]) -> str:
    """``text`` with the value of its top-level ``key`` replaced by ``change(value)`` (``value``
    is ruamel.yaml's round-trip object, None when the key is absent or empty; ``change`` may
    change it in place and return it, keeping its comments). A new key goes after the last
    one. When the value reads the same after the change, ``text`` is returned as it is.
    Raises :class:`InputError` (naming ``name``) for a file whose top level is not a
    block-style mapping, or that gives ``key`` twice."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    root = _compose(text, name)
    if root is not None and not (isinstance(root, MappingNode) and not root.flow_style):
        raise InputError(name, "the top level is not a block-style mapping; edit it by hand", "$")
    pairs = root.value if root is not None else []
    lines = text.splitlines(keepends=True)
    found = [i for i, (k, _) in enumerate(pairs) if isinstance(k, ScalarNode) and k.value == key]
    if len(found) > 1:
        lines_of = " and ".join(str(pairs[i][0].start_mark.line + 1) for i in found)
        raise InputError(name, f"{key} is given twice (lines {lines_of}); keep one", f"$.{key}")
    yaml = _yaml()
    if found:
        start = pairs[found[0]][0].start_mark.line
        after = found[0] + 1
        end = pairs[after][0].start_mark.line if after < len(pairs) else len(lines)
        block = yaml.load("".join(lines[start:end]))
    else:
        start = end = len(lines)
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"
        block = CommentedMap([(key, None)])
    before = _plain(block[key])
    block[key] = value = change(block[key])
    if found and _plain(value) == before:
        return text
    out = io.StringIO()
    yaml.dump(block, out)
    new_text = "".join([*lines[:start], out.getvalue(), *lines[end:]])
    _check(text, new_text, out.getvalue(), name, key, value)
    return new_text


def _plain(value: t.Any) -> t.Any:
    """ruamel.yaml's round-trip types as plain ones."""
    return json.loads(json.dumps(value))


def _check(old: str, new: str, block: str, name: str, key: str, value: t.Any) -> None:
    """The edited file reads as the old one with ``key`` set to ``value``, by the project's own
    strict reader; when that cannot read the old file (a key given twice), the new block alone
    reads as ``key: value``. A difference is a bug of this module, not of the file."""
    expected = _plain(value)
    try:
        before = load_yaml_text(old, name)
    except InputError:
        assert load_yaml_text(block, name) == {key: expected}, f"{name}: {key} reads back wrong"
        return
    after = load_yaml_text(new, name)
    assert after == {**(before or {}), key: expected}, f"{name}: the edit changed more than {key}"
