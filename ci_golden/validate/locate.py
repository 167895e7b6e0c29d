"""Turn schema errors into one-line findings and find the line a JSON/YAML place is on.

Line numbers come from a cheap text search for the keys of the place in order; they are
only computed for the (rare) files that have a finding.
"""

from __future__ import annotations

import json
import math
import re
import typing as t
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.goldens.model import MAX_GOLDEN_BYTES, line_of
from ci_golden.project.files import read_regular
from ci_golden.project.schema import did_you_mean, json_pointer
from ci_golden.validate.findings import Finding, finding

if t.TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

MAX_SCHEMA_FINDINGS = 10  # per file; the last one says how many more there are


def short(value: t.Any, limit: int = 40) -> str:
    """A JSON rendering of ``value`` cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, TypeError):  # an integer over Python's digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _find_key(text: str, key: str, start: int, yaml: bool) -> re.Match[str] | None:
    if yaml:
        pattern = r"(?m)^[ \t]*(?:-[ \t]+)?([\"']?)" + re.escape(key) + r"\1[ \t]*:"
        return re.compile(pattern).search(text, start)
    for quoted in {json.dumps(key), json.dumps(key, ensure_ascii=False)}:
        m = re.compile(re.escape(quoted) + r"\s*:").search(text, start)
        if m:
            return m
    return None


def locate(text: str, parts: t.Sequence[t.Any], *, yaml: bool = False) -> int | None:
    """The line of the deepest key of ``parts`` found in order in ``text`` (None: not found)."""
    pos, line = 0, None
    for part in parts:
        if not isinstance(part, str):
            break
        m = _find_key(text, part, pos, yaml)
        if m is None:
            break
        pos, line = m.end(), line_of(text, m.start())
    return line


def read_text(path: Path) -> str:
    """The text of a file already read once, to find lines in; "" when it cannot be read."""
    try:
        return read_regular(path, max_bytes=MAX_GOLDEN_BYTES).decode("utf-8", errors="replace")
    except InputError:
        return ""


def _reason(e: ValidationError) -> str:
    """What is wrong with ``e.instance``, without naming it."""
    v, inst = e.validator, e.instance
    if v == "type":
        return f"is not of type {short(e.validator_value)}"
    if v == "required" and isinstance(e.validator_value, list):
        missing = [k for k in e.validator_value if isinstance(inst, dict) and k not in inst]
        return f"lacks the required key {short(missing[0] if missing else e.validator_value)}"
    if v in ("minimum", "maximum"):
        return f"is {'less' if v == 'minimum' else 'greater'} than the {v} {e.validator_value}"
    if (
        v in ("pattern", "maxLength")
        and isinstance(e.schema, dict)
        and e.schema.get("pattern") == "^nan"
    ):
        return 'is a string other than "nan" (write numbers unquoted)'
    if v == "pattern":
        return f"does not match {e.validator_value}"
    if v == "const":
        return f"is not {short(e.validator_value)}"
    if v in ("minProperties", "minItems"):
        return "is empty"
    if v in ("anyOf", "oneOf") and e.context:
        return "fails every alternative: " + "; ".join(sorted({_reason(c) for c in e.context}))
    if v == "not" and isinstance(e.validator_value, dict) and "description" in e.validator_value:
        return f"breaks the rule: {e.validator_value['description']}"
    return e.message if len(e.message) <= 200 else e.message[:199] + "…"


def _message(e: ValidationError) -> str:
    inst = e.instance
    if e.validator == "additionalProperties" and isinstance(inst, dict):
        known = e.schema.get("properties", {}) if isinstance(e.schema, dict) else {}
        extra = [k for k in inst if k not in known]
        if extra:
            return f"unknown key {short(extra[0])}{did_you_mean(str(extra[0]), known)}"
    if e.validator == "required":
        return f"object {_reason(e)}"
    if e.validator == "not" and isinstance(inst, dict):
        reason = _reason(e)
        return reason[0].upper() + reason[1:]
    return f"{short(inst)} {_reason(e)}"


def _deepest(e: ValidationError) -> ValidationError:
    """For a failed anyOf/oneOf whose alternatives got to different depths, the error of the
    alternative that got furthest (the branch the author meant); else the error itself."""
    while e.validator in ("anyOf", "oneOf") and e.context and any(c.path for c in e.context):
        e = max(e.context, key=lambda c: len(c.absolute_path))
    return e


def schema_findings(
    code: str, path: Path, errors: t.Iterable[ValidationError], *, yaml: bool = False
) -> list[Finding]:
    """One finding per schema error (at most :data:`MAX_SCHEMA_FINDINGS`), with lines."""
    errs = sorted((_deepest(e) for e in errors), key=lambda e: [str(p) for p in e.absolute_path])
    text = read_text(path) if errs else ""
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    rest = 0
    for i, e in enumerate(errs):
        if len(out) == MAX_SCHEMA_FINDINGS:
            rest = len(errs) - i
            break
        parts = list(e.absolute_path)
        line = locate(text, parts, yaml=yaml) if parts else 1
        inst = e.instance
        this = code
        message = _message(e)
        if isinstance(inst, float) and not math.isfinite(inst) and yaml:  # .nan, .inf
            message = f"{inst} is not a finite number"
        elif isinstance(inst, float) and not math.isfinite(inst):  # 1e400 parses as inf
            this, message = (
                "CG106",
                f"{short(inst)}: a number out of the range of a double; "
                'write a finite number or "nan"',
            )
        if (json_pointer(parts), message) in seen:  # two keywords saying the same thing
            continue
        seen.add((json_pointer(parts), message))
        out.append(finding(this, str(path), message, json_pointer(parts), line))
    if rest:
        last = out[-1]
        out[-1] = finding(
            last.code,
            last.path,
            f"{last.message} (and {rest} more schema errors)",
            last.where,
            last.line,
        )
    return out
