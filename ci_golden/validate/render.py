"""Pure renderers of validation results: text, GitHub workflow commands (and the step summary
beside them), JSON."""

from __future__ import annotations

import json
import typing as t
from collections import Counter

from ci_golden.project.markdown import escape_md
from ci_golden.validate.engine import ValidationResult
from ci_golden.validate.findings import CODES, BaselineEntry, Finding

# GitHub shows the first 10 error and the first 10 warning annotations of a step; the rest
# would be lost in the log, so they are printed as plain lines and listed in the step summary
GITHUB_ANNOTATIONS = 10
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes GitHub accepts in one step's summary


def summary(result: ValidationResult) -> str:
    checked = f"{result.files} files in {result.cases} cases checked"
    accepted = []
    if result.baselined:
        accepted.append(f"{len(result.baselined)} baselined")
    if result.fixed:
        accepted.append(f"{len(result.fixed)} fixed (--write-baseline drops them)")
    if result.suppressed:
        accepted.append(f"{result.suppressed} suppressed by the config")
    more = f"; {', '.join(accepted)}" if accepted else ""
    if not result.findings:
        found = "no new problem" if result.baselined else "no problem"
        return f"ok: {checked}, {found} found{more}"
    return f"{result.errors} errors, {result.warnings} warnings{more} ({checked})"


def _place(f: Finding) -> str:
    return f"{f.path}:{f.line}" if f.line is not None else f.path


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _where(f: Finding) -> str:
    return f"{f.where}: " if f.where and f.where != f"line {f.line}" else ""


def _text_line(f: Finding, note: str = "") -> str:
    return _one_line(f"{_place(f)}: {f.code} {f.severity}{note}: {_where(f)}{f.message}")


def _fixed_line(e: BaselineEntry) -> str:
    where = f" ({e.location})" if e.location else ""
    return _one_line(f"{e.file}: {e.code} fixed{where}: in the baseline, no longer found")


def _lines(result: ValidationResult) -> list[str]:
    return [
        *(_text_line(f) for f in result.findings),
        *(_text_line(f, " (baselined)") for f in result.baselined),
        *(_fixed_line(e) for e in result.fixed),
    ]


def render_text(result: ValidationResult) -> str:
    """``PATH[:LINE]: CODE SEVERITY: [WHERE: ]MESSAGE`` per finding (new ones first, then the
    baselined ones, then the fixed baseline entries), then a summary line."""
    return "".join(line + "\n" for line in _lines(result)) + summary(result) + "\n"


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
    return f"::{f.severity} {','.join(props)}::{escape_data(_where(f) + f.message)}"


def render_github(result: ValidationResult) -> str:
    """Annotations a person reads: the first :data:`GITHUB_ANNOTATIONS` new errors, then as
    many new warnings, as ``::error``/``::warning`` commands; every other line (new findings
    past the cap, baselined findings, fixed entries) indented as plain text, so that no line
    is a workflow command and none is lost; then the summary line. The step summary
    (:func:`render_step_summary`) lists them all, grouped by code."""
    errors = [f for f in result.findings if f.is_error]
    warnings = [f for f in result.findings if not f.is_error]
    shown = [*errors[:GITHUB_ANNOTATIONS], *warnings[:GITHUB_ANNOTATIONS]]
    out = [_github_line(f) + "\n" for f in shown]
    rest = [
        *(_text_line(f) for f in errors[GITHUB_ANNOTATIONS:]),
        *(_text_line(f) for f in warnings[GITHUB_ANNOTATIONS:]),
        *(_text_line(f, " (baselined)") for f in result.baselined),
        *(_fixed_line(e) for e in result.fixed),
    ]
    if len(shown) < len(result.findings):
        out.append(
            f"{len(result.findings) - len(shown)} more new findings, not annotated "
            "(GitHub shows 10 errors and 10 warnings a step); the job summary lists them all\n"
        )
    out += [f"  {line}\n" for line in rest]
    return "".join(out) + summary(result) + "\n"


def _group_rows(result: ValidationResult) -> list[str]:
    new = Counter(f.code for f in result.findings)
    accepted = Counter(f.code for f in result.baselined)
    fixed = Counter(e.code for e in result.fixed)
    rows = [
        "| Code | Severity | New | Baselined | Fixed | Meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for code in sorted(new.keys() | accepted.keys() | fixed.keys()):
        severities = {f.severity for f in (*result.findings, *result.baselined) if f.code == code}
        severity = "/".join(sorted(severities)) or CODES.get(code, ("", ""))[0]
        meaning = escape_md(CODES[code][1]) if code in CODES else ""
        rows.append(
            f"| {escape_md(code)} | {severity} | {new[code]} | {accepted[code]} | {fixed[code]} "
            f"| {meaning} |"
        )
    return rows


def _md_item(f: Finding) -> str:
    return f"- {escape_md(_place(f))}: {escape_md(_where(f) + f.message)}\n"


def render_step_summary(result: ValidationResult, *, limit: int = STEP_SUMMARY_LIMIT) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: the summary line, a table of the codes found with
    counts (new, baselined, fixed), then each code's findings in a ``<details>`` block. Every
    path and message is escaped. Over ``limit`` bytes, the lists are cut (the table never) and
    the summary says so."""
    head = f"### ci-golden validate\n\n{escape_md(summary(result))}\n\n"
    if not (result.findings or result.baselined or result.fixed):
        return head
    head += "\n".join(_group_rows(result)) + "\n\n"
    groups: dict[tuple[str, str], list[str]] = {}
    for kind, findings in (("new", result.findings), ("baselined", result.baselined)):
        for f in findings:
            groups.setdefault((f.code, kind), []).append(_md_item(f))
    for e in result.fixed:
        where = f" ({e.location})" if e.location else ""
        groups.setdefault((e.code, "fixed"), []).append(f"- {escape_md(e.file + where)}\n")
    order = {"new": 0, "baselined": 1, "fixed": 2}
    out = [head]
    size = len(head.encode())
    left = sum(len(items) for items in groups.values())
    reserve = 400  # a closing tag and the note that says what was cut
    for (code, kind), items in sorted(groups.items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
        opening = f"<details><summary>{escape_md(code)} {kind}: {len(items)}</summary>\n\n"
        size += len(opening.encode())
        if size + reserve > limit:
            break
        out.append(opening)
        for item in items:
            size += len(item.encode())
            if size + reserve > limit:
                break
            out.append(item)
            left -= 1
        out.append("\n</details>\n\n")
        if size + reserve > limit:
            break
    if left:
        out.append(
            f"_{left} more findings are not listed, to fit the summary; the job log has them "
            "all._\n"
        )
    return "".join(out)


def render_json(result: ValidationResult) -> str:
    doc: dict[str, t.Any] = {
        "summary": {
            "errors": result.errors,
            "warnings": result.warnings,
            "files": result.files,
            "cases": result.cases,
            "baselined": len(result.baselined),
            "fixed": len(result.fixed),
            "suppressed": result.suppressed,
        },
        "findings": [f.to_dict() for f in result.findings],
        "baselined": [f.to_dict() for f in result.baselined],
        "fixed": [e.to_dict() for e in result.fixed],
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
