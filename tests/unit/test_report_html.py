"""The HTML renderer without a browser: escaping, links, the embedded data, offline assets."""

from __future__ import annotations

import base64
import gzip
import json
import re
import typing as t
from pathlib import Path

import numpy as np
import pytest

from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import resolve_policies
from ci_golden.compare.result import CaseResult
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries
from ci_golden.project.config import load_config
from ci_golden.report.aggregate import build_report
from ci_golden.report.curves import job_curves
from ci_golden.report.html import CSP, PLOTLY_JS, asset, render_html, safe_url, script_json
from ci_golden.report.render import render_report

HOSTILE = "</script><script>alert(1)</script><!--"


def values(n: int, f: t.Callable[[int], float | None], name: str = "lm loss") -> GoldenValues:
    return GoldenValues(
        "current", {name: MetricSeries.from_mapping(name, {s: f(s) for s in range(1, n + 1)})}
    )


def result(
    case: str = "gpt/a", factor: float = 1.0, name: str = "lm loss", **kw: t.Any
) -> CaseResult:
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    golden = values(100, lambda s: 10.0 - s / 50, name)
    actual = values(100, lambda s: (10.0 - s / 50) * (factor if s >= 60 else 1.0), name)
    return compare_job(
        Job(case, kw.pop("env", "dev"), kw.pop("platform", "dgx_h100"), None), golden, actual,
        policies=policies, gated=(name,), nondeterministic=False, **kw,
    )  # fmt: skip


def page_parts(page: str) -> tuple[dict[str, t.Any], bytes]:
    meta = re.search(r'<script type="application/json" id="cg-meta">(.*?)</script>', page, re.S)
    blob = re.search(r'<script type="application/octet-stream" id="cg-series">(.*?)</script>', page)
    assert meta and blob
    return json.loads(meta.group(1)), gzip.decompress(base64.b64decode(blob.group(1)))


def decode(meta: dict[str, t.Any], raw: bytes, sid: int) -> np.ndarray:
    dtype, offset, count = meta["series"][sid]
    np_type = {"d4": "<i4", "f4": "<f4", "f8": "<f8"}[dtype]
    arr = np.frombuffer(raw[offset : offset + count * np.dtype(np_type).itemsize], dtype=np_type)
    return np.cumsum(arr) if dtype == "d4" else arr


def test_script_json_cannot_close_the_script_element() -> None:
    data = {"name": HOSTILE, "sep": "\u2028\u2029", "amp": "&lt;"}
    text = script_json(data)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == data


def test_user_strings_are_escaped_everywhere() -> None:
    r = result(HOSTILE, 1.10, HOSTILE, env=HOSTILE, platform=HOSTILE)
    r = CaseResult.from_dict({**r.to_dict(), "message": HOSTILE, "run": {HOSTILE: HOSTILE}})
    report = build_report([r], run_url="javascript:alert(1)", notes=(HOSTILE,))
    page = render_html(report)
    # the meta JSON, the series, plotly.js and the page's own script: nothing else closes
    assert page.count("</script>") == 4
    assert "<script>alert(1)" not in page and "javascript:" not in page
    esc = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!--"
    assert page.count(f"<td>{esc}</td>") == 4  # case, environment, platform, worst metric
    for name in ("case", "environment", "platform", "metric"):
        assert f'data-{name}="{esc}"' in page
    assert f'<p class="note">{esc}</p>' in page
    assert page.count(f'<option value="{esc}">{esc}</option>') == 2
    assert page.count(esc) == 13
    meta, _ = page_parts(page)
    job = meta["jobs"][0]
    assert (job["case"], job["platform"], job["message"], job["run"]) == (
        HOSTILE, HOSTILE, HOSTILE, {HOSTILE: HOSTILE}
    )  # fmt: skip
    assert job["metrics"][0]["name"] == HOSTILE and meta["run_url"] is None


@pytest.mark.parametrize(("url", "ok"), [
    ("https://github.com/o/r/actions/runs/1", True), ("http://ci.local/x", True),
    ("javascript:alert(1)", False), ("data:text/html,x", False), ("//evil.example", False),
    ("https://", False), (None, False),
])  # fmt: skip
def test_safe_url(url: str | None, ok: bool) -> None:
    assert (safe_url(url) is not None) == ok


def test_small_series_are_exact_and_identical_ones_stored_once() -> None:
    page = render_html(build_report([result("gpt/same")]))
    meta, raw = page_parts(page)
    chart = meta["jobs"][0]["metrics"][0]["chart"]
    assert chart["actual"] == chart["golden"]
    assert decode(meta, raw, chart["golden"]).tolist() == [10.0 - s / 50 for s in range(1, 101)]
    assert decode(meta, raw, chart["x"]).tolist() == list(range(1, 101))
    assert (chart["full"], chart["n_steps"]) == (False, 100)


def test_a_failing_job_is_open_at_load_and_its_chart_marks_the_failing_steps() -> None:
    report = build_report([result("gpt/ok"), result("gpt/bad", 1.10)])
    page = render_html(report)
    meta, raw = page_parts(page)
    assert [j["case"] for j in meta["jobs"]] == ["gpt/bad", "gpt/ok"]
    assert re.search(
        r'<tbody class="job" data-job="0" data-verdict="fail"[^>]* data-open="1"', page
    )
    assert re.search(
        r'<tbody class="job" data-job="1" data-verdict="pass"[^>]* data-open="0"', page
    )
    m = meta["jobs"][0]["metrics"][0]
    x = decode(meta, raw, m["chart"]["x"])
    assert x[decode(meta, raw, m["chart"]["failing"])].tolist() == list(range(60, 101))
    assert (m["first_failing_step"], m["chart"]["n_failing"]) == (60, 41)
    assert meta["jobs"][0]["worst"] == {
        "name": "lm loss", "max_rel_diff": pytest.approx(0.1), "first_failing_step": 60,
    }  # fmt: skip


def test_given_curves_replace_the_stored_points() -> None:
    r = result("gpt/a", 1.10)
    curves = job_curves(r, points=10)
    meta, raw = page_parts(render_html(build_report([r]), curves={r.job_id: curves}))
    chart = meta["jobs"][0]["metrics"][0]["chart"]
    assert decode(meta, raw, chart["x"]).tolist() == curves[("", "lm loss")].steps.tolist()
    assert render_report(build_report([r]), "html", curves={r.job_id: curves}) == render_html(
        build_report([r]), curves={r.job_id: curves}
    )


def test_the_page_is_self_contained_and_allows_no_request() -> None:
    page = render_html(build_report([result()], run_url="https://ci.example/run/1"))
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "default-src 'none'" in CSP and "connect-src 'none'" in CSP
    assert asset(PLOTLY_JS) in page.replace("<\\/script", "</script")
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", markup)
    assert re.findall(r'(?:href|src)="([^"]*)"', markup) == ["https://ci.example/run/1"]


def test_the_plotly_bundle_ships_with_its_licence() -> None:
    bundle = asset(PLOTLY_JS)
    assert bundle.startswith("/**\n* plotly.js (basic - minified) v")
    assert "Licensed under the MIT license" in bundle[:300]
    assert asset("plotly-basic.LICENSE").startswith("MIT License\n\nCopyright (c)")


def test_a_job_without_metrics_and_allowed_drift() -> None:
    crashed = compare_job(
        Job("gpt/z", "dev", "dgx_h100", None), None, None, policies={}, gated=("lm loss",),
        nondeterministic=False, error="exit 137",
    )  # fmt: skip
    report = build_report([crashed, result("gpt/d", 1.0000001)], allow_drift=True)
    page = render_html(report)
    meta, _ = page_parts(page)
    assert [(j["verdict"], j["metrics"] != []) for j in meta["jobs"]] == [
        ("error", False), ("drift", True)
    ]  # fmt: skip
    assert '<span class="muted">(drift allowed)</span>' in page
    assert "<title>ci-golden: error (2 jobs)</title>" in page
    assert re.search(r'data-verdict="drift"[^>]* data-open="0"', page)  # drift allowed: closed
