"""The report as a comment body that fits the forge: re-rendered from JSON, or a cut Markdown."""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.compare.result import failing_verdicts
from ci_golden.errors import InputError
from ci_golden.project.files import UnreadableFile, read_regular
from ci_golden.report.aggregate import Report
from ci_golden.report.render import render_markdown

VERDICT_RE = re.compile(r"^<!-- ci-golden:verdict=(?P<verdict>[a-z-]+) -->$")
# verdicts that fail the pipeline (as Report.ok): --only-on-regression creates a comment for them
REGRESSIONS = failing_verdicts()
_DETAILS_RE = re.compile(r"(?m)^[ \t]*<details\b")


@dataclass(frozen=True)
class ReportText:
    verdict: str
    markdown: str
    cut: bool = False
    regressed: bool = False  # the pipeline fails: --only-on-regression creates a comment


def cut_note(limit: int, forge: str, run_url: str | None) -> str:
    where = (
        f" The full report is in [the CI run]({run_url})."
        if run_url
        else " The full report is in the CI run's artifacts."
    )
    return f"> [!NOTE]\n> Cut to fit {forge}'s {limit:,}-character limit.{where}\n"


def cut_markdown(markdown: str, limit: int, note: str) -> str:
    """``markdown`` cut to at most ``limit`` characters, at a ``<details>`` boundary if there is
    one.

    The verdict and the table before the first ``<details>`` are kept; open ``<details>`` and
    code fences before the cut are closed; ``note`` says the report was cut.
    """
    if len(markdown) <= limit:
        return markdown
    budget = limit - len(note) - 64  # room for closing tags
    starts = [m.start() for m in _DETAILS_RE.finditer(markdown) if 0 < m.start() <= budget]
    if starts:
        cut = starts[-1]
    else:
        cut = markdown.rfind("\n\n", 0, budget)
        cut = cut if cut > 0 else markdown.rfind("\n", 0, budget)
        cut = cut if cut > 0 else max(0, budget)
    head = markdown[:cut].rstrip()
    closing = ""
    if head.count("```") % 2:
        closing += "\n```"
    open_details = len(re.findall(r"<details\b", head)) - head.count("</details>")
    closing += "\n</details>" * max(0, open_details)
    return f"{head}{closing}\n\n{note}"


def verdict_of(markdown: str, path: str) -> str:
    first = markdown.lstrip("\ufeff").split("\n", 1)[0].strip()
    match = VERDICT_RE.match(first)
    if not match:
        raise InputError(
            path,
            "the first line is not `<!-- ci-golden:verdict=... -->`; "
            "pass a file written by `ci-golden report`",
            "line 1",
        )
    return match.group("verdict")


MAX_REPORT_BYTES = 64 * 1024 * 1024


def load_report(
    path: Path, max_chars: int, *, forge: str = "GitHub", run_url: str | None = None
) -> ReportText:
    """The report at ``path`` (``.json`` from ``ci-golden report --format json``, else Markdown)
    rendered or cut to at most ``max_chars`` characters."""
    try:  # a regular file only: a FIFO would wait for a writer
        text = read_regular(path, max_bytes=MAX_REPORT_BYTES).decode("utf-8")
    except UnreadableFile as e:
        raise InputError(str(path), f"cannot read the report: {e.reason}") from None
    except InputError as e:  # over the size limit
        raise InputError(str(path), f"cannot read the report: {e.detail}") from None
    except UnicodeDecodeError as e:
        raise InputError(str(path), f"the report is not UTF-8 text: {e.reason}") from None
    if path.suffix.lower() == ".json":
        return _from_json(path, text, max_chars)
    verdict = verdict_of(text, str(path))
    regressed = verdict in REGRESSIONS
    if len(text) <= max_chars:
        return ReportText(verdict, text, regressed=regressed)
    return ReportText(
        verdict,
        cut_markdown(text, max_chars, cut_note(max_chars, forge, run_url)),
        cut=True,
        regressed=regressed,
    )


def _from_json(path: Path, text: str, max_chars: int) -> ReportText:

    try:
        data: t.Any = json.loads(text)
    except ValueError as e:
        raise InputError(str(path), f"not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("verdict"), str):
        raise InputError(
            str(path),
            "not a report: expected an object with a `verdict`; "
            "write it with `ci-golden report --format json`",
            "$",
        )
    try:
        report = Report.from_dict(data, str(path))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            str(path), f"not a report written by `ci-golden report --format json`: {e}"
        ) from None
    markdown = render_markdown(report, max_chars=max_chars)
    return ReportText(report.verdict, markdown, regressed=not report.ok)
