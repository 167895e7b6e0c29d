"""Pure renderers of validation results: text, GitHub workflow commands, JSON."""

from __future__ import annotations

import json
import typing as t

from ci_golden.validate.engine import ValidationResult
from ci_golden.validate.findings import CODES, Finding


def summary(result: ValidationResult) -> str:
    checked = f"{result.files} files in {result.cases} cases checked"
    if not result.findings:
        return f"ok: {checked}, no problem found"
    return f"{result.errors} errors, {result.warnings} warnings ({checked})"


def _place(f: Finding) -> str:
    return f"{f.path}:{f.line}" if f.line is not None else f.path


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _text_line(f: Finding) -> str:
    where = f"{f.where}: " if f.where and f.where != f"line {f.line}" else ""
    return _one_line(f"{_place(f)}: {f.code} {f.severity}: {where}{f.message}")


def render_text(result: ValidationResult) -> str:
    """``PATH[:LINE]: CODE SEVERITY: [WHERE: ]MESSAGE`` per finding, then a summary line."""
    return "".join(_text_line(f) + "\n" for f in result.findings) + summary(result) + "\n"


def escape_data(value: str) -> str:
    """Escape a workflow-command message (GitHub's toolkit rules)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow-command property value; ``:`` and ``,`` separate properties."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _github_line(f: Finding) -> str:
    props = [f"file={escape_property(f.path)}"]
    if f.line is not None:
        props.append(f"line={f.line}")
    props.append(f"title={escape_property(f.code)}")
    where = f"{f.where}: " if f.where and f.where != f"line {f.line}" else ""
    return f"::{f.severity} {','.join(props)}::{escape_data(where + f.message)}"


def render_github(result: ValidationResult) -> str:
    """One ``::error``/``::warning`` annotation per finding, then the summary line."""
    return "".join(_github_line(f) + "\n" for f in result.findings) + summary(result) + "\n"


def render_json(result: ValidationResult) -> str:
    doc: dict[str, t.Any] = {
        "summary": {
            "errors": result.errors,
            "warnings": result.warnings,
            "files": result.files,
            "cases": result.cases,
        },
        "findings": [f.to_dict() for f in result.findings],
        "codes": {
            code: {"severity": sev, "description": text} for code, (sev, text) in CODES.items()
        },
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


RENDERERS_BY_NAME: dict[str, t.Callable[[ValidationResult], str]] = {
    "text": render_text,
    "github": render_github,
    "json": render_json,
}
