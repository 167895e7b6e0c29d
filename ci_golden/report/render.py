"""Pure renderers: a :class:`Report` (or one result) in, text out.

Every string that comes from users (case, environment, platform and metric names, messages)
passes through :func:`escape_md` before it reaches Markdown: it cannot open HTML, break a
table, start a code span or @mention anyone. Mermaid blocks only carry numbers and a
sanitised title.
"""

from __future__ import annotations

import math
import re
import shlex
import typing as t
import xml.etree.ElementTree as ET
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from ci_golden.compare.result import CaseResult, MetricResult, Verdict, dumps_json, failing_verdicts
from ci_golden.errors import UsageError
from ci_golden.project.markdown import CONTROL_CHARS, escape_md
from ci_golden.report.aggregate import Report, worst_metric
from ci_golden.report.html import render_html

if t.TYPE_CHECKING:
    from ci_golden.report.curves import JobCurves

MARKER = "<!-- ci-golden:verdict={verdict} -->"
MIN_CHARS = 1000
DEFAULT_MAX_CHARS = 65000  # a GitHub comment holds 65,536 characters
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes GitHub accepts in one step's summary
FETCHED = "ci-golden-results"  # where `ci-golden fetch-results` writes by default
DETAIL_VERDICTS = frozenset({"fail", "drift", "missing", "error"})
REFRESH_VERDICTS = frozenset({"fail", "drift", "missing", "no-golden"})
ICONS: dict[str, str] = {
    "pass": "✅", "drift": "⚠️", "fail": "❌", "missing": "❓", "no-golden": "🆕", "error": "💥",
    "skipped": "⏭️",
}  # fmt: skip
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def fmt_num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"


def fmt_rel(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.3g}%"


# --- Markdown ------------------------------------------------------------------------------

TABLE_HEAD = (
    "| Case | Env | Platform | Verdict | Worst metric | Max rel diff | First failing step |\n"
    "|---|---|---|---|---|---|---|\n"
)


def _verdict(v: Verdict) -> str:
    return f"{ICONS[v]} {v}"


def _row(r: CaseResult) -> str:
    m = worst_metric(r)
    cells = [
        escape_md(r.case), escape_md(r.environment), escape_md(r.platform), _verdict(r.verdict),
        escape_md(m.name) if m else "—", fmt_rel(m.max_rel_diff) if m else "—",
        str(m.first_failing_step) if m and m.first_failing_step is not None else "—",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |\n"


def _mermaid_num(v: float) -> str:
    return str(np.format_float_positional(v, precision=6, unique=True, fractional=False, trim="-"))


def _mermaid_title(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 _.:/()+-]", "_", text)[:80]


MERMAID_POINTS = 100
# golden and actual: blue and vermilion (Okabe-Ito), told apart in colour and in lightness
MERMAID_COLORS = ("#0072B2", "#D55E00")
MERMAID_LEGEND = "golden (blue) vs actual (orange)"
_MERMAID_CONFIG = (
    "---\nconfig:\n  xyChart:\n    showLegend: true\n  themeVariables:\n    xyChart:\n"
    f'      plotColorPalette: "{", ".join(MERMAID_COLORS)}"\n---'
)


def _floats(values: t.Sequence[float | None]) -> npt.NDArray[np.float64]:
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def mermaid_chart(
    title: str,
    steps: t.Sequence[int],
    golden: t.Sequence[float | None],
    actual: t.Sequence[float | None],
) -> str | None:
    """An ``xychart-beta`` of golden and actual: two titled lines in distinct colours (a legend
    where the forge's Mermaid draws one) over a numeric step axis, which Mermaid labels with a
    few round steps rather than one label per point.

    Mermaid spreads a line's points evenly over that axis, so both series are read (linear
    interpolation over each one's finite values) at evenly spaced steps from the first to the
    last step where both have values: every multiple of the steps' common spacing, which puts
    each point where it belongs (steps 1, 5, 10, ... give 1, 2, 3, ...), or 100 steps when that
    would be more than 100 points. The y range is that of the data. None below two points.
    """
    s = np.asarray(steps, dtype=np.int64)
    g, a = _floats(golden)[: len(s)], _floats(actual)[: len(s)]
    both = np.flatnonzero(np.isfinite(g) & np.isfinite(a))
    if len(both) < 2:
        return None
    first, last = int(s[both[0]]), int(s[both[-1]])
    spacing = int(np.gcd.reduce(np.diff(s[both])))
    if (last - first) // spacing < MERMAID_POINTS:
        grid = np.arange(first, last + 1, spacing, dtype=np.float64)
    else:
        grid = np.linspace(first, last, min(len(both), MERMAID_POINTS))
    lines = [np.interp(grid, s[np.isfinite(v)], v[np.isfinite(v)]) for v in (g, a)]
    lo, hi = min(v.min() for v in lines), max(v.max() for v in lines)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.01 or 1.0
    return "\n".join(
        [
            _MERMAID_CONFIG,
            "xychart-beta",
            f'    title "{_mermaid_title(title)}"',
            f'    x-axis "step" {first} --> {last}',
            f'    y-axis "value" {_mermaid_num(lo - pad)} --> {_mermaid_num(hi + pad)}',
            *(
                f'    line "{name}" [' + ", ".join(map(_mermaid_num, v)) + "]"
                for name, v in zip(("golden", "actual"), lines, strict=True)
            ),
        ]
    )


def _metric_row(label: str, m: MetricResult) -> str:
    name = f"{label}: {m.name}" if label else m.name
    first = str(m.first_failing_step) if m.first_failing_step is not None else "—"
    failed = str(m.n_failed)
    if m.verdict == "drift":  # nothing failed the tolerance: say what differs, and where first
        failed += f" ({m.n_differ} differ exactly)" if m.n_differ is not None else ""
        first += " (first difference)" if m.first_failing_step is not None else ""
    cells = [
        escape_md(name) + ("" if m.gated else " (info)"),
        _verdict(m.verdict),
        escape_md(m.policy.describe()),
        str(m.n_compared),
        failed,
        first,
        fmt_num(m.max_abs_diff),
        fmt_rel(m.max_rel_diff),
        escape_md(m.message or ""),
    ]
    return "| " + " | ".join(cells) + " |\n"


def details_block(r: CaseResult) -> str:
    """A ``<details>`` block: per-metric table and golden-vs-actual plots of the failing metrics."""
    out = [
        f"<details><summary>{ICONS[r.verdict]} <b>{escape_md(r.case)}</b> · "
        f"{escape_md(r.environment)} · {escape_md(r.platform)}: {r.verdict}</summary>\n\n"
    ]
    if r.message:
        out.append(f"{escape_md(r.message)}\n\n")
    if r.golden:
        out.append(
            f"Golden: {escape_md(r.golden)}"
            + (" (nondeterministic: exact check skipped)" if r.nondeterministic else "")
            + "\n\n"
        )
    rows = list(r.all_metrics())
    if rows:
        out.append(
            "| Metric | Verdict | Policy | Compared | Failed | First failing step "
            "| Max abs diff | Max rel diff | Detail |\n"
        )
        out.append("|---|---|---|---|---|---|---|---|---|\n")
        out.extend(_metric_row(label, m) for label, m in rows)
        out.append("\n")
    for _label, m in rows:
        for note in m.notes:
            out.append(f"- {escape_md(m.name)}: {escape_md(note)}\n")
    charts = []
    for label, m in rows:
        if m.verdict in DETAIL_VERDICTS and m.gated:
            chart = mermaid_chart(f"{label} {m.name}".strip(), m.steps, m.golden, m.actual)
            if chart:
                charts.append(
                    f"{escape_md(m.name)}{' (' + label + ')' if label else ''}: "
                    f"{MERMAID_LEGEND}\n\n"
                    f"```mermaid\n{chart}\n```\n\n"
                )
    out.extend(charts)
    out.append("</details>\n\n")
    return "".join(out)


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _shell(parts: t.Sequence[str]) -> str:
    return " ".join(shlex.quote(CONTROL_CHARS.sub(" ", p)) for p in parts)


def update_command(report: Report) -> str | None:
    """The command refreshing the goldens of every affected job: in a CI run, ``ci-golden
    fetch-results`` of that run then ``ci-golden update`` of what it fetched (anyone can run
    it); else ``ci-golden update`` of the report's local sources."""
    cases = list(dict.fromkeys(r.case for r in report.results if r.verdict in REFRESH_VERDICTS))
    if not cases:
        return None
    run = report.ci_run
    sources = (FETCHED,) if run else report.sources or ("ci-golden-out",)
    update = ["ci-golden", "update", *sources]
    for case in cases:
        update += ["--case", case]
    if run is None:
        return _shell(update)
    fetch = [
        "ci-golden",
        "fetch-results",
        "--github-run" if run.forge == "github" else "--gitlab-pipeline",
        run.id,
    ]
    if run.project:
        fetch += ["--repo" if run.forge == "github" else "--project", run.project]
    if run.api_url:
        fetch += ["--api-url", run.api_url]
    return f"{_shell([*fetch, '--only-failing'])} && {_shell(update)}"


def _update_section(report: Report) -> str:
    command = update_command(report)
    if command is None:
        return ""
    fence = _fence(command)
    return (
        "### Refresh the goldens\n\n"
        "If these changes are expected, refresh the affected goldens from the job "
        f"results and commit them:\n\n{fence}sh\n{command}\n{fence}\n\n"
    )


def _link(url: str, text: str = "CI run") -> str:
    return f"[{text}]({quote(url, safe=':/?&=#%~+,;@')})"


def render_markdown(report: Report, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The pipeline report. Its first line is ``<!-- ci-golden:verdict=<verdict> -->``.

    Never longer than ``max_chars``: table rows, the update command and detail blocks are cut
    (in that order of priority: details go first) and the report says what was cut; the
    verdict and the table head always stay.
    """
    if max_chars < MIN_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_CHARS}")
    counts = " · ".join(f"{n} {v}" for v, n in report.counts.items())
    total = len(report.results)
    head = MARKER.format(verdict=report.verdict) + "\n"
    head += f"## {ICONS[report.verdict]} ci-golden: {report.verdict}\n\n"
    head += f"**{total} job{'s' if total != 1 else ''}**: {counts}"
    if report.allow_drift and "drift" in report.counts:
        head += " (drift allowed)"
    if report.run_url:
        head += f" · {_link(report.run_url)}"
    if report.html_url:
        head += f" · {_link(report.html_url, 'HTML report with every curve')}"
    head += "\n\n" + "".join(f"> {escape_md(note)}\n\n" for note in report.notes) + TABLE_HEAD
    rows = [_row(r) for r in report.results]
    detail = [
        details_block(r) for r in report.results if r.verdict in DETAIL_VERDICTS | {"skipped"}
    ]
    update = _update_section(report)
    note_room = 400
    budget = max_chars - len(head) - note_room
    shown_rows: list[str] = []
    for row in rows:
        if len(row) > budget:
            break
        shown_rows.append(row)
        budget -= len(row)
    update_shown = bool(update) and len(update) <= budget
    if update_shown:
        budget -= len(update)
    shown_detail: list[str] = []
    for block in detail:
        if len(block) <= budget:
            shown_detail.append(block)
            budget -= len(block)
    cut = []
    if len(shown_rows) < len(rows):
        cut.append(f"{len(rows) - len(shown_rows)} of {len(rows)} table rows")
    if len(shown_detail) < len(detail):
        cut.append(f"{len(detail) - len(shown_detail)} of {len(detail)} detail sections")
    if update and not update_shown:
        cut.append("the `ci-golden update` command")
    note = ""
    if cut:
        note = (
            f"\n> **Truncated** to fit {max_chars} characters: {', '.join(cut)} not shown. "
            "The full report: `ci-golden report RESULTS --max-chars 1000000`, "
            "or the job artifacts.\n"
        )
    body = head + "".join(shown_rows) + note + "\n"
    if shown_detail:
        body += "### Details\n\n" + "".join(shown_detail)
    if update_shown:
        body += update
    assert len(body) <= max_chars, (len(body), max_chars)
    return body


def render_step_summary(report: Report, *, used: int, max_chars: int | None, name: str) -> str:
    """Markdown that fits what is left of the 1 MiB step-summary limit (in bytes) when the
    summary file ``name`` already holds ``used`` bytes; ``max_chars`` caps it further."""
    room = STEP_SUMMARY_LIMIT - used
    limit = room if max_chars is None else min(max_chars, room)
    while limit >= MIN_CHARS:
        text = render_markdown(report, max_chars=limit)
        size = len(text.encode("utf-8"))
        if size <= room:
            return text
        limit -= size - room + 1
    raise UsageError(
        f"{name}: the step summary already holds {used} bytes; no room left for the report"
    )


# --- other formats -------------------------------------------------------------------------


def render_json(report: Report) -> str:
    return dumps_json(report.to_dict())


def _xml(text: object) -> str:
    return _XML_BAD.sub("\ufffd", str(text))


def render_junit(report: Report) -> str:
    """JUnit XML: one testsuite per job, one testcase per gated metric (or one ``run`` case
    for a job without metrics). fail/missing are failures, error an error, drift a failure
    unless drift is allowed, no-golden and skipped skipped."""
    root = ET.Element("testsuites", name="ci-golden")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for r in report.results:
        suite = ET.SubElement(root, "testsuite", name=_xml(r.job_id))
        cases = [
            (f"{label}: {m.name}" if label else m.name, m.verdict, m.message or "")
            for label, m in r.all_metrics()
            if m.gated
        ]
        if not cases or r.verdict in ("error", "no-golden", "skipped"):
            cases = [("run", r.verdict, r.message or r.verdict)] + (
                cases if r.verdict == "error" else []
            )
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for name, verdict, message in cases:
            tc = ET.SubElement(
                suite,
                "testcase",
                classname=_xml(r.case),
                name=_xml(f"{name} [{r.environment}, {r.platform}]"),
                time="0",
            )
            counts["tests"] += 1
            text = _xml(f"{verdict}: {message}")
            if verdict == "error":
                ET.SubElement(tc, "error", message=text, type=verdict).text = text
                counts["errors"] += 1
            elif verdict in failing_verdicts(allow_drift=report.allow_drift):
                ET.SubElement(tc, "failure", message=text, type=verdict).text = text
                counts["failures"] += 1
            elif verdict in ("no-golden", "skipped"):
                ET.SubElement(tc, "skipped", message=text)
                counts["skipped"] += 1
            elif verdict == "drift":
                ET.SubElement(tc, "system-out").text = text
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_annotations(report: Report) -> str:
    """GitHub workflow commands: ``::error`` for each failing job (``::warning`` for allowed
    drift, ``::notice`` for a job without a golden), pointing at its golden file."""
    out = [f"::notice title=ci-golden::{_gh_data(note)}\n" for note in report.notes]
    for r in report.results:
        if r.verdict == "pass":
            continue
        level = (
            "notice"
            if r.verdict in ("no-golden", "skipped")
            else "warning"
            if r.verdict == "drift" and report.allow_drift
            else "error"
        )
        m = worst_metric(r)
        what = (
            r.message
            if r.verdict in ("error", "no-golden", "skipped") or m is None
            else f"{m.name}: {m.message}"
        )
        props = f"title={_gh_prop(f'ci-golden {r.verdict}')}"
        if r.golden:
            props = f"file={_gh_prop(r.golden)},{props}"
        out.append(f"::{level} {props}::{_gh_data(f'{r.job_id}: {what}')}\n")
    return "".join(out)


def render_text(result: CaseResult, *, allow_drift: bool = False) -> str:
    """Plain text for ``ci-golden compare``: the verdict, then one line per metric."""
    lines = [f"{result.job_id}: {result.verdict.upper()}"]
    if result.message:
        lines.append(f"  {result.message}")
    width = max((len(m.name) + len(label) + 2 for label, m in result.all_metrics()), default=0)
    for label, m in result.all_metrics():
        name = f"{label}: {m.name}" if label else m.name
        lines.append(
            f"  {name:<{width}}  {m.verdict:<8} {'gated' if m.gated else 'info ':<5}  "
            f"{m.message or ''}"
        )
    if result.verdict == "drift":
        tail = "allowed (--allow-drift)" if allow_drift else "exit 1; pass --allow-drift to accept"
        lines.append(
            f"drift: numerics moved within tolerance ({tail}); "
            "if expected, refresh the golden with `ci-golden update`"
        )
    return "\n".join(lines) + "\n"


RENDERERS_BY_NAME: dict[str, t.Callable[..., str]] = {
    "markdown": render_markdown,
    "junit": render_junit,
    "json": render_json,
    "github-summary": render_markdown,
    "html": render_html,
}


def render_report(
    report: Report,
    fmt: str,
    *,
    max_chars: int | None = None,
    curves: t.Mapping[str, JobCurves] | None = None,
) -> str:
    """The report in ``fmt``; ``max_chars`` (default :data:`DEFAULT_MAX_CHARS`) caps Markdown;
    ``curves`` (job id to charts, :func:`ci_golden.report.curves.load_curves`) feed HTML."""
    if fmt == "markdown":
        return render_markdown(report, max_chars=max_chars or DEFAULT_MAX_CHARS)
    if fmt == "html":
        return render_html(report, curves=curves)
    return RENDERERS_BY_NAME[fmt](report)
