"""The HTML report: one self-contained page that works offline.

:func:`render_html` turns a :class:`Report` and its curves (:mod:`ci_golden.report.curves`)
into one document: the verdict summary, a table of the jobs that sorts and filters, and per
job the metric table, an interactive Plotly chart per metric (golden, actual, the tolerance
band, the repeats' mean ± std, the failing steps and the first failing step marked; zoom, pan
and values on hover), drawn when it scrolls into view, the run's settings and the CI run's link.

plotly.js is plotly's basic bundle (``plotly.js-basic-dist-min`` from npm, MIT, its licence
beside it in ``assets/``), inlined with the page's own script and style. The series travel as
one gzip-compressed binary blob, the rest as one JSON document. User strings (case,
environment, platform and metric names, messages, run facts) reach the page escaped as HTML or
inside that JSON, which cannot close its ``<script>`` element; the page's script puts them in
the DOM as text, never as markup. A Content-Security-Policy forbids every request.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import typing as t
from importlib import resources
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from ci_golden.compare.result import SEVERITY, failing_verdicts
from ci_golden.report.aggregate import worst_metric
from ci_golden.report.curves import Curve, JobCurves, job_curves

if t.TYPE_CHECKING:
    from ci_golden.compare.result import CaseResult, MetricResult
    from ci_golden.report.aggregate import Report

ICONS: dict[str, str] = {
    "pass": "✔", "drift": "⚠", "fail": "✖", "missing": "?", "no-golden": "✚", "error": "‼",
    "skipped": "»",
}  # fmt: skip
MAX_OPEN = 10  # failing jobs shown open when the page loads
F8_VALUES = 250_000  # up to this many values, float64 (exact hover values); past it float32
ASSETS = "assets"
PLOTLY_JS = "plotly-basic.min.js"
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("sev", "Verdict"), ("case", "Case"), ("environment", "Env"), ("platform", "Platform"),
    ("metric", "Worst metric"), ("rel", "Max rel diff"), ("step", "First failing step"),
)  # fmt: skip


class _Blob:
    """The page's arrays, each stored once and named by its index: steps as int32 differences
    (they compress well; float64 past the int32 range), values as float64 or float32."""

    def __init__(self) -> None:
        self.arrays: list[tuple[str, npt.NDArray[t.Any]]] = []
        self.n_values = 0

    def steps(self, values: npt.NDArray[np.int64]) -> int:
        deltas = np.diff(values, prepend=0)
        limit = np.iinfo(np.int32).max
        wide = len(values) and max(np.abs(values).max(), np.abs(deltas).max()) > limit
        self.arrays.append(("f8", values) if wide else ("d4", deltas))
        return len(self.arrays) - 1

    def values(self, values: npt.NDArray[np.float64], same_as: int | None = None) -> int:
        if same_as is not None and np.array_equal(self.arrays[same_as][1], values, equal_nan=True):
            return same_as
        self.arrays.append(("v", values))
        self.n_values += len(values)
        return len(self.arrays) - 1

    def encode(self) -> tuple[str, list[list[t.Any]]]:
        """(base64 of the gzip of all arrays back to back, each one's [dtype, offset, count])."""
        value_type = "f8" if self.n_values <= F8_VALUES else "f4"
        chunks, table, offset = [], [], 0
        for kind, arr in self.arrays:
            dtype = value_type if kind == "v" else kind
            raw = np.ascontiguousarray(arr, dtype={"d4": "<i4", "f4": "<f4", "f8": "<f8"}[dtype])
            chunks.append(raw.tobytes())
            table.append([dtype, offset, len(arr)])
            offset += raw.nbytes
        packed = gzip.compress(b"".join(chunks), compresslevel=6, mtime=0)
        return base64.b64encode(packed).decode("ascii"), table


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _chart(blob: _Blob, curve: Curve, metric: MetricResult) -> dict[str, t.Any]:
    golden = blob.values(curve.golden)
    chart: dict[str, t.Any] = {
        "x": blob.steps(curve.steps), "golden": golden,
        "actual": blob.values(curve.actual, same_as=golden), "n_steps": curve.n_steps,
        "full": curve.full, "kind": metric.policy.kind, "rtol": metric.policy.rtol,
        "atol": metric.policy.atol,
    }  # fmt: skip
    if len(curve.failing):
        chart |= {"failing": blob.steps(curve.failing), "n_failing": curve.n_failing}
    if curve.note:
        chart["note"] = curve.note
    if curve.band is not None:
        b = curve.band
        chart["repeats"] = {"x": blob.steps(b.steps), "mean": blob.values(b.mean),
                            "std": blob.values(b.std), "n": b.n_runs}  # fmt: skip
    return chart


def _metric(blob: _Blob, label: str, m: MetricResult, curve: Curve | None) -> dict[str, t.Any]:
    entry: dict[str, t.Any] = {
        "phase": label, "name": m.name, "verdict": m.verdict, "gated": m.gated,
        "policy": m.policy.describe(), "n_compared": m.n_compared, "n_failed": m.n_failed,
        "budget": m.budget, "n_missing": m.n_missing, "n_nan": m.n_nan,
        "first_failing_step": m.first_failing_step, "max_abs_diff": _num(m.max_abs_diff),
        "max_rel_diff": _num(m.max_rel_diff), "golden_stat": _num(m.golden_stat),
        "actual_stat": _num(m.actual_stat), "window": list(m.window) if m.window else None,
        "message": m.message, "notes": list(m.notes),
        "chart": _chart(blob, curve, m) if curve is not None else None,
    }  # fmt: skip
    return {k: v for k, v in entry.items() if v is not None and v != []}


def _job(blob: _Blob, r: CaseResult, curves: JobCurves) -> dict[str, t.Any]:
    worst = worst_metric(r)
    label = next((lb for lb, m in r.all_metrics() if m is worst), "")
    return {
        "case": r.case, "environment": r.environment, "platform": r.platform,
        "verdict": r.verdict, "message": r.message, "golden": r.golden, "actual": r.actual,
        "run": r.run, "nondeterministic": r.nondeterministic, "gated": list(r.gated),
        "resume_step": r.resume.resume_step if r.resume else None,
        "worst": None if worst is None else {
            "name": f"{label}: {worst.name}" if label else worst.name,
            "max_rel_diff": _num(worst.max_rel_diff),
            "first_failing_step": worst.first_failing_step,
        },
        "metrics": [_metric(blob, lb, m, curves.get((lb, m.name))) for lb, m in r.all_metrics()],
    }  # fmt: skip


def script_json(data: t.Any) -> str:
    """JSON for a ``<script>`` element: no ``<``, ``>``, ``&``, U+2028 or U+2029 (so no
    ``</script>`` or ``<!--``); ``JSON.parse`` of the element's text gives ``data`` back."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch in "<>&\u2028\u2029":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def safe_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) address, else None (no ``javascript:`` links)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def asset(name: str) -> str:
    """A file of ``ci_golden/report/assets`` (shipped in the wheel) as text."""
    return resources.files(__package__).joinpath(ASSETS).joinpath(name).read_text(encoding="utf-8")


def _script(code: str) -> str:
    return "<script>" + code.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _row(i: int, job: dict[str, t.Any], opened: bool) -> str:
    worst, v = job["worst"] or {}, job["verdict"]
    rel, step = worst.get("max_rel_diff"), worst.get("first_failing_step")
    attrs = {
        "data-job": i, "data-verdict": v, "data-sev": SEVERITY.index(v), "data-case": job["case"],
        "data-environment": job["environment"], "data-platform": job["platform"],
        "data-metric": worst.get("name", ""), "data-rel": "" if rel is None else repr(rel),
        "data-step": "" if step is None else step, "data-open": int(opened),
    }  # fmt: skip
    cells = [
        f'<td class="verdict"><button type="button" class="toggle" aria-expanded="false" '
        f'aria-controls="detail-{i}" title="show the job">▸</button> '
        f'<span class="v v-{v}">{ICONS[v]} {v}</span></td>',
        *(f"<td>{_e(job[k])}</td>" for k in ("case", "environment", "platform")),
        f"<td>{_e(worst.get('name', '—'))}</td>",
        f'<td class="num">{"—" if rel is None else f"{rel * 100:.3g}%"}</td>',
        f'<td class="num">{"—" if step is None else step}</td>',
    ]
    attr_text = " ".join(f'{k}="{_e(a)}"' for k, a in attrs.items())
    return (
        f'<tbody class="job" {attr_text}><tr class="row">{"".join(cells)}</tr>'
        f'<tr class="detail" id="detail-{i}" hidden><td colspan="7"></td></tr></tbody>'
    )


def _options(values: t.Iterable[str]) -> str:
    return '<option value="">all</option>' + "".join(
        f'<option value="{_e(v)}">{_e(v)}</option>' for v in values
    )


def _head(report: Report, run_url: str | None) -> str:
    n, verdict = len(report.results), report.verdict
    chips = "".join(
        f'<button type="button" class="chip v-{v}" data-verdict="{v}" aria-pressed="false">'
        f"{ICONS[v]} {count} {v}</button>"
        for v, count in report.counts.items()
    )
    drift = (
        ' <span class="muted">(drift allowed)</span>'
        if report.allow_drift and "drift" in report.counts
        else ""
    )
    link = f' · <a id="run-link" href="{_e(run_url)}" rel="noopener noreferrer">CI run</a>'
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in report.notes)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>ci-golden: {verdict} ({_plural(n, 'job')})</title>\n"
        f"<style>{asset('html_report.css')}</style>\n</head>\n<body>\n<header>\n"
        f'<h1 id="verdict" class="v-{verdict}">{ICONS[verdict]} ci-golden: {verdict}</h1>\n'
        f'<p id="summary"><b>{_plural(n, "job")}</b>{drift}{link if run_url else ""}</p>\n'
        f'<div id="chips" role="group" aria-label="verdicts">{chips}</div>\n{notes}\n'
        '<p id="status" class="muted" role="status"></p>\n</header>\n'
    )


def _filters(report: Report) -> str:
    results = report.results
    return (
        '<main>\n<div id="filters" role="search">\n'
        f'<label>Verdict <select id="f-verdict">{_options(report.counts)}</select></label>\n'
        '<label>Case <input id="f-case" type="search" placeholder="contains…"></label>\n'
        '<label>Env <select id="f-environment">'
        f"{_options(sorted({r.environment for r in results}))}</select></label>\n"
        '<label>Platform <select id="f-platform">'
        f"{_options(sorted({r.platform for r in results}))}</select></label>\n"
        '<label>Worst metric <input id="f-metric" type="search" placeholder="contains…"></label>\n'
        '<button type="button" id="expand-all">Expand shown</button>\n'
        '<button type="button" id="collapse-all">Collapse all</button>\n'
        f'<span id="shown" class="muted">{len(results)} of {_plural(len(results), "job")}</span>\n'
        "</div>\n"
    )


def render_html(report: Report, *, curves: t.Mapping[str, JobCurves] | None = None) -> str:
    """The report as one HTML page.

    ``curves`` maps a job id to its charts (:func:`ci_golden.report.curves.load_curves`, from
    the full series in the job's files); a job it does not hold is drawn from the points its
    result stored.
    """
    given = curves or {}
    blob = _Blob()
    jobs = [_job(blob, r, given.get(r.job_id) or job_curves(r)) for r in report.results]
    bad = failing_verdicts(allow_drift=report.allow_drift)
    opened = {i for i, j in enumerate(jobs) if j["verdict"] in bad}
    opened = set(sorted(opened)[:MAX_OPEN])
    encoded, table = blob.encode()
    run_url = safe_url(report.run_url)
    meta = {"run_url": run_url, "series": table, "jobs": jobs}
    return "".join(
        [
            _head(report, run_url),
            _filters(report),
            '<table id="jobs">\n<thead><tr>',
            *(
                f'<th scope="col" data-key="{k}"><button type="button" class="sort">{label}'
                "</button></th>"
                for k, label in COLUMNS
            ),
            "</tr></thead>\n",
            *(_row(i, j, i in opened) for i, j in enumerate(jobs)),
            "\n</table>\n</main>\n",
            f'<script type="application/json" id="cg-meta">{script_json(meta)}</script>\n',
            '<script type="application/octet-stream" id="cg-series">',
            encoded,
            "</script>\n",
            _script(asset(PLOTLY_JS)),
            "</script>\n",
            _script(asset("html_report.js")),
            "</script>\n</body>\n</html>\n",
        ]
    )
