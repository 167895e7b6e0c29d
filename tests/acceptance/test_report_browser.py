"""The HTML report in a real browser: Playwright driving Debian's Chromium.

Opens the report ``ci-golden local`` writes for the bundled demo, and the reports of a copy of
the demo whose goldens were edited to fail, drift and miss steps (``ci-golden local`` and
``ci-golden report --format html``), and a 100,000-step job. Every page must load with no
console error and no request leaving the file; every chart must be drawn once in view; the
first-failing-step marker must stand at its step; the table's filters and sort must work;
user strings must stay text. The comment's Mermaid charts are drawn with mermaid itself.
Screenshots go to ``test-output/html-report/`` (``$CI_GOLDEN_TEST_OUTPUT`` instead of
``test-output``); each test prints where.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import typing as t
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli

from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import resolve_policies
from ci_golden.compare.result import CaseResult
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries, write_golden
from ci_golden.project.config import load_config
from ci_golden.report.aggregate import build_report
from ci_golden.report.html import render_html
from ci_golden.report.render import render_markdown

CHROMIUM = (
    os.environ.get("CI_GOLDEN_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
if CHROMIUM is None:
    pytest.skip(
        "no chromium on PATH (apt-get install chromium; .ci/test does)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

if t.TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Locator, Page

HOSTILE = "lm loss</script><script>window.__pwned=1</script>"
NO_CI = {"GITHUB_RUN_ID": "", "CI_PIPELINE_ID": "", "GITHUB_SERVER_URL": "", "CI_PIPELINE_URL": ""}
IN_CI = {
    **NO_CI, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
    "GITHUB_RUN_ID": "42",
}  # fmt: skip
RUN_URL = "https://github.com/o/r/actions/runs/42"
# (case folder, golden file, metric, first step edited, factor): how the demo is broken
EDITS = (
    ("regular", "golden_values_dev_cpu.json", "lm loss", 30, 1.5),  # fail from step 30
    ("regular", "golden_values_lts_cpu.json", "lm loss", 1, 1 + 1e-7),  # drift: within rtol
    ("ckpt_resume", "golden_values_lts_cpu.json", "mem-allocated-bytes", 20, 0.9),  # info fails
)
# (case, environment, chart label) -> the first failing step each edit gives
FIRST_FAILING = {
    ("demo/regular", "dev", "lm loss"): 30,
    ("demo/regular", "lts", "lm loss"): 1,
    ("demo/ckpt_resume", "lts", "mem-allocated-bytes"): 20,
    ("demo/nondeterministic", "dev", HOSTILE): 1,
    ("demo/nondeterministic", "lts", HOSTILE): 1,
}
READY = "document.documentElement.dataset.ready === 'true'"
CHART_DRAWN = """(div) => {
  const lines = div.querySelectorAll('svg.main-svg .scatterlayer .trace path.js-line');
  const drawn = Array.from(lines).some((p) => (p.getAttribute('d') || '').length > 10);
  return div.dataset.state === 'drawn' && drawn;
}"""
MARKER = """(div) => {
  const shape = (div.layout.shapes || []).find((s) => s.name === 'first-failing-step');
  const note = (div.layout.annotations || []).find((a) => a.name === 'first-failing-step');
  if (!shape) return null;
  const xa = div._fullLayout.xaxis;
  const box = div.getBoundingClientRect();
  const drawn = Array.from(div.querySelectorAll('.shapelayer path'))
    .map((p) => p.getBoundingClientRect()).map((r) => r.left + r.width / 2 - box.left);
  const golden = div.data.find((d) => d.name === 'golden');
  const failing = div.data.find((d) => (d.name || '').startsWith('failing steps'));
  return {
    x0: shape.x0, x1: shape.x1, text: note ? note.text : null,
    expected_px: xa._offset + xa.l2p(shape.x0), drawn_px: drawn,
    in_series: Array.from(golden.x).includes(shape.x0),
    failing_x: failing ? Array.from(failing.x) : [],
  };
}"""


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = Path(os.environ.get("CI_GOLDEN_TEST_OUTPUT") or REPO / "test-output") / "html-report"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page_or_locator: Page | Locator, folder: Path, name: str) -> None:
    path = folder / name
    page_or_locator.screenshot(path=str(path))
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000


@pytest.fixture(scope="session")
def browser() -> t.Iterator[Browser]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, t.Any], Path]:
    """The bundled demo's report.json and report.html, as ``ci-golden local`` writes them."""
    out = tmp_path_factory.mktemp("demo") / "out"
    res = run_cli("local", "--out", out, env=NO_CI)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads((out / "report.json").read_text()), out / "report.html"


def broken_demo(root: Path) -> None:
    """The demo cases and config in ``root``, their goldens edited as :data:`EDITS` says, and a
    gated metric the run never logs, named to break out of a ``<script>`` element."""
    shutil.copytree(REPO / "test_cases" / "demo", root / "test_cases" / "demo")
    shutil.copy(REPO / "ci_golden.yaml", root / "ci_golden.yaml")
    cases = root / "test_cases" / "demo"
    for folder, name, metric, start, factor in EDITS:
        path = cases / folder / name
        golden = json.loads(path.read_text())
        golden[metric]["values"] = {
            k: v * factor if int(k) >= start else v for k, v in golden[metric]["values"].items()
        }
        path.write_text(json.dumps(golden, indent=4))
    for env in ("dev", "lts"):
        path = cases / "nondeterministic" / f"golden_values_{env}_cpu.json"
        golden = json.loads(path.read_text())
        golden[HOSTILE] = golden["lm loss"]
        path.write_text(json.dumps(golden, indent=4))
    config = cases / "nondeterministic" / "model_config.yaml"
    config.write_text(
        config.read_text().replace("  - lm loss\n", f"  - lm loss\n  - {json.dumps(HOSTILE)}\n")
    )


@pytest.fixture(scope="session")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, t.Any], Path]:
    """The broken demo's report.json, and the HTML page ``ci-golden report`` makes of its job
    folders in a CI run (so with a link to the run)."""
    root = tmp_path_factory.mktemp("failing")
    broken_demo(root)
    local = run_cli("local", "--out", "out", cwd=root, env=NO_CI)
    assert local.returncode == 1, local.stdout + local.stderr
    report = run_cli("report", "out", "--format", "html", "--out", "ci.html", cwd=root, env=IN_CI)
    assert (report.returncode, report.stdout, report.stderr) == (1, "", "")
    # outside CI the same results give the very page `ci-golden local` wrote beside report.md
    again = run_cli("report", "out", "--format", "html", cwd=root, env=NO_CI)
    assert again.stdout == (root / "out" / "report.html").read_text()
    return json.loads((root / "out" / "report.json").read_text()), root / "ci.html"


class Opened:
    """A report open in a tab, keeping every console error, page error, dialog and request;
    requests other than the file itself are aborted."""

    def __init__(self, browser: Browser, path: Path) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri())
        self.page.wait_for_function(READY, timeout=60_000)

    @staticmethod
    def _route(route: t.Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check_clean(self) -> None:
        assert (self.errors, self.dialogs) == ([], [])
        assert [u for u in self.requests if not u.startswith(("file:", "data:", "blob:"))] == []
        assert self.page.evaluate("window.__pwned === undefined")

    def job(self, case: str, environment: str) -> Locator:
        return self.page.locator(f'tbody.job[data-case="{case}"][data-environment="{environment}"]')

    def expand(self, case: str, environment: str) -> Locator:
        body = self.job(case, environment)
        if "open" not in (body.get_attribute("class") or "").split():
            body.locator("tr.row").click()
        return body

    def draw(self, chart: Locator) -> None:
        chart.evaluate("(div) => div.scrollIntoView({block: 'center'})")
        self.page.wait_for_function(
            f"(div) => ({CHART_DRAWN})(div)", arg=chart.element_handle(), timeout=20_000
        )

    def draw_all(self) -> int:
        charts = self.page.locator("tbody.job:not([hidden]) tr.detail:not([hidden]) .chart")
        for i in range(charts.count()):
            self.draw(charts.nth(i))
        return charts.count()

    def shown(self) -> list[tuple[str, str]]:
        rows: list[list[str]] = self.page.evaluate(
            "Array.from(document.querySelectorAll('tbody.job')).filter((b) => !b.hidden)"
            ".map((b) => [b.dataset.case, b.dataset.environment])"
        )
        return [(case, env) for case, env in rows]


def charted(data: dict[str, t.Any]) -> dict[tuple[str, str, str], dict[str, t.Any]]:
    """(case, environment, chart label) -> metric, for every metric with a value to plot."""
    out = {}
    for r in data["results"]:
        phases = [("", r["metrics"])] + [
            (p["label"], p["metrics"]) for p in [r["resume"], *r["repeats"]] if p
        ]
        for label, metrics in phases:
            for name, m in metrics.items():
                if any(v is not None for v in [*m["golden"], *m["actual"]]):
                    out[(r["case"], r["environment"], f"{label}: {name}" if label else name)] = m
    return out


def test_demo_report_draws_every_chart(
    browser: Browser, demo: tuple[dict[str, t.Any], Path], shots: Path
) -> None:
    data, path = demo
    opened = Opened(browser, path)
    page = opened.page
    assert page.locator("#verdict").inner_text() == "✔ ci-golden: pass"
    assert page.locator("tbody.job").count() == len(data["results"]) == 12
    page.click("#expand-all")
    assert opened.draw_all() == len(charted(data)) == 60
    # the main run's charts read the full series from the job folders
    sources = page.evaluate(
        "window.ciGolden.meta.jobs.flatMap((j) => j.metrics.filter((m) => m.chart)"
        ".map((m) => [m.phase, m.chart.full]))"
    )
    assert {phase: full for phase, full in sources} == {"": True, "resume": False}
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, shots, "demo-report.png")
    opened.check_clean()
    page.close()


def test_failing_report_marks_the_first_failing_step(
    browser: Browser, failing: tuple[dict[str, t.Any], Path], shots: Path
) -> None:
    data, path = failing
    opened = Opened(browser, path)
    page = opened.page
    assert page.locator("#verdict").inner_text() == "✖ ci-golden: fail"
    assert page.locator("#run-link").get_attribute("href") == RUN_URL
    assert page.locator(".chart[data-state='drawn']").count() > 0  # failing jobs open at load
    expected = {k: m for k, m in charted(data).items() if m["first_failing_step"] is not None}
    assert {k: expected[k]["first_failing_step"] for k in FIRST_FAILING} == FIRST_FAILING
    for (case, env, label), metric in expected.items():
        body = opened.expand(case, env)
        chart = body.locator(f'.chart[aria-label="{label}: golden and actual per step"]')
        opened.draw(chart)
        got = chart.evaluate(MARKER)
        step = metric["first_failing_step"]
        where = (case, env, label, got)
        assert got is not None and got["x0"] == got["x1"] == step, where
        assert got["text"] == f"first failing step {step}", where
        assert any(abs(px - got["expected_px"]) < 1.5 for px in got["drawn_px"]), where
        assert got["in_series"], where
        if metric["verdict"] in ("fail", "missing"):
            assert step in got["failing_x"], where
    target = opened.expand("demo/regular", "dev")
    target.locator("figure.metric").first.evaluate("(f) => f.scrollIntoView({block: 'start'})")
    page.evaluate("window.scrollBy(0, -60)")
    shot(page, shots, "failing-report.png")
    opened.check_clean()
    page.close()


def test_table_filters_and_sorts(
    browser: Browser, failing: tuple[dict[str, t.Any], Path], shots: Path
) -> None:
    data, path = failing
    opened = Opened(browser, path)
    page = opened.page
    jobs = [(r["case"], r["environment"], r["verdict"]) for r in data["results"]]
    everything = {(c, e) for c, e, _ in jobs}
    assert set(opened.shown()) == everything and len(everything) == 12
    page.select_option("#f-verdict", "missing")
    assert set(opened.shown()) == {(c, e) for c, e, v in jobs if v == "missing"} != set()
    assert page.locator("#shown").inner_text() == f"{len(opened.shown())} of 12 jobs"
    page.select_option("#f-verdict", "")
    page.fill("#f-case", "REGULAR")
    assert set(opened.shown()) == {("demo/regular", "dev"), ("demo/regular", "lts")}
    page.select_option("#f-environment", "lts")
    assert opened.shown() == [("demo/regular", "lts")]
    page.fill("#f-case", "")
    page.select_option("#f-environment", "")
    page.fill("#f-metric", "</script>")
    assert set(opened.shown()) == {
        ("demo/nondeterministic", "dev"),
        ("demo/nondeterministic", "lts"),
    }
    page.fill("#f-metric", "")
    page.select_option("#f-platform", "cpu")
    assert set(opened.shown()) == everything
    page.select_option("#f-platform", "")
    page.locator("#chips .chip[data-verdict='fail']").click()
    assert opened.shown() == [("demo/regular", "dev")]
    page.locator("#chips .chip[data-verdict='fail']").click()
    assert set(opened.shown()) == everything
    page.locator("th[data-key='case'] button").click()
    cases = [c for c, _ in opened.shown()]
    assert cases == sorted(cases)
    page.locator("th[data-key='case'] button").click()
    assert [c for c, _ in opened.shown()] == sorted(cases, reverse=True)
    page.locator("th[data-key='sev'] button").click()
    order = ["error", "fail", "missing", "drift", "no-golden", "pass", "skipped"]
    verdicts = page.evaluate(
        "Array.from(document.querySelectorAll('tbody.job'), (b) => b.dataset.verdict)"
    )
    assert verdicts == sorted(verdicts, key=order.index)
    page.fill("#f-case", "ckpt")
    shot(page, shots, "filtered-table.png")
    opened.check_clean()
    page.close()


def test_user_strings_stay_text(
    browser: Browser, failing: tuple[dict[str, t.Any], Path], tmp_path: Path
) -> None:
    data = failing[0]
    first = data["results"][0]
    hostile = CaseResult.from_dict(
        {
            **first,
            "case": 'demo/<img src=x onerror="window.__pwned=2">',
            "platform": "</script><script>window.__pwned=3</script>",
            "message": "</SCRIPT ><b>bold?</b>\u2028next line",
            "run": {**first["run"], "note": "<!-- <script>window.__pwned=4</script>"},
        }
    )
    others = [CaseResult.from_dict(r) for r in data["results"][1:]]
    path = tmp_path / "hostile.html"
    path.write_text(
        render_html(build_report([hostile, *others], run_url="javascript:window.__pwned=5"))
    )
    opened = Opened(browser, path)
    page = opened.page
    assert page.locator("#run-link").count() == 0
    body = page.locator("tbody.job").filter(has_text="onerror")
    assert body.locator("td").nth(1).inner_text() == hostile.case
    body.locator("tr.row").click()
    detail = body.locator("tr.detail")
    assert detail.locator("p.message").inner_text().startswith("</SCRIPT ><b>bold?</b>")
    assert detail.get_by_text("<!-- <script>window.__pwned=4</script>").count() == 1
    assert detail.locator("b, img, script").count() == 0
    named = page.locator("tbody.job[data-case='demo/nondeterministic']").first
    named.locator("tr.row").click()
    assert named.locator("table.metrics").get_by_text(HOSTILE).count() == 1
    opened.draw_all()
    opened.check_clean()
    page.close()


@pytest.fixture(scope="session")
def long_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A 100,000-step job made by the real commands: ``ci-golden compare`` writes its
    result.json beside the actual values, ``ci-golden report --format html`` draws it."""
    root = tmp_path_factory.mktemp("long")
    n = 100_000
    steps = np.arange(1, n + 1)
    rng = np.random.default_rng(3)
    golden = 2.0 + 8.0 * np.exp(-steps / 20_000) + 0.01 * rng.standard_normal(n)
    actual = golden * (1 + 0.001 * rng.standard_normal(n))
    spikes = np.sort(rng.choice(np.arange(1_000, n), 60, replace=False))
    actual[spikes] *= 1.5

    def doc(values: np.ndarray) -> GoldenValues:
        series = MetricSeries.from_arrays("lm loss", steps, values, start_step=1, end_step=n,
                                          step_interval=1)  # fmt: skip
        return GoldenValues("current", {"lm loss": series})

    write_golden(root / "cases" / "long" / "run" / "golden_values_dev_dgx_h100.json", doc(golden))
    write_golden(root / "out" / "long" / "golden_values_dev_dgx_h100.json", doc(actual))
    compared = run_cli(
        "compare", "--golden", "cases/long/run/golden_values_dev_dgx_h100.json",
        "--actual", "out/long/golden_values_dev_dgx_h100.json", "--out", "out/long/result.json",
        cwd=root,
    )  # fmt: skip
    assert compared.returncode == 1, compared.stdout + compared.stderr
    made = run_cli("report", "out", "--format", "html", "--out", "long.html", cwd=root, env=NO_CI)
    assert made.returncode == 1, made.stderr
    return root / "long.html", steps[spikes].tolist()


def test_long_series_zoom_pan_hover(
    browser: Browser, long_report: tuple[Path, list[int]], shots: Path
) -> None:
    path, spikes = long_report
    opened = Opened(browser, path)
    page = opened.page
    chart = page.locator(".chart").first
    opened.draw(chart)
    got = chart.evaluate(MARKER)
    assert got["x0"] == spikes[0]
    assert sorted(got["failing_x"]) == spikes  # every spike, from 100,000 steps
    assert (
        page.locator("figcaption")
        .first.inner_text()
        .endswith(f"all 100000 steps · first failing step {spikes[0]}")
    )
    names = chart.evaluate("(d) => d.data.map((trace) => trace.name)")
    assert names == ["tolerance (approx)", "tolerance (approx)", "golden", "actual",
                     "failing steps (60)"]  # fmt: skip
    full = chart.evaluate("(d) => d._fullLayout.xaxis.range.slice()")
    box = chart.locator(".nsewdrag").first.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.wait_for_selector(".hoverlayer .hovertext, .hoverlayer .legend", timeout=5_000)
    hover = chart.locator(".hoverlayer").evaluate("(g) => g.textContent")
    assert "golden" in hover and "actual" in hover
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=8)
    page.mouse.up()
    zoomed = chart.evaluate("(d) => d._fullLayout.xaxis.range.slice()")
    assert full[0] < zoomed[0] < zoomed[1] < full[1]
    assert (zoomed[1] - zoomed[0]) < 0.2 * (full[1] - full[0])
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 5)
    titles = chart.locator(".modebar-btn").evaluate_all(
        "(bs) => bs.map((b) => b.getAttribute('data-title'))"
    )
    assert "Pan" in titles and "Zoom" in titles
    assert not [title for title in titles if "Share" in title or "Cloud" in title]
    chart.locator(".modebar-btn[data-val='pan']").click()
    page.mouse.move(box["x"] + box["width"] * 0.6, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=8)
    page.mouse.up()
    panned = chart.evaluate("(d) => d._fullLayout.xaxis.range.slice()")
    assert panned[0] > zoomed[0]
    assert abs((panned[1] - panned[0]) - (zoomed[1] - zoomed[0])) < 1e-6 * 100_000
    shot(chart, shots, "long-series-zoomed.png")
    page.mouse.dblclick(box["x"] + box["width"] * 0.5, y)
    page.wait_for_function(
        "(d) => d._fullLayout.xaxis.autorange === true", arg=chart.element_handle()
    )
    opened.check_clean()
    page.close()


def test_repeats_draw_a_band(browser: Browser, tmp_path: Path) -> None:
    steps = range(1, 101)

    def run(scale: float) -> GoldenValues:
        values = {s: (10.0 - s / 50) * scale for s in steps}
        return GoldenValues("current", {"lm loss": MetricSeries.from_mapping("lm loss", values)})

    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    result = compare_job(
        Job("gpt/r", "dev", "dgx_h100", None), run(1.0), run(1.001), repeats=[run(0.999)],
        policies=policies, gated=("lm loss",), nondeterministic=True,
    )  # fmt: skip
    path = tmp_path / "repeats.html"
    path.write_text(render_html(build_report([result])))
    opened = Opened(browser, path)
    opened.expand("gpt/r", "dev")
    chart = opened.page.locator('.chart[aria-label="lm loss: golden and actual per step"]')
    opened.draw(chart)
    names = chart.evaluate("(d) => d.data.map((trace) => trace.name)")
    assert names[:2] == ["repeats: mean ± std (2 runs)"] * 2
    opened.check_clean()


def mermaid_js() -> Path:
    path = REPO / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
    if not path.is_file():
        pytest.skip("mermaid is not installed (npm ci)")
    return path


def test_comment_charts_have_two_distinct_lines_a_legend_and_readable_steps(
    browser: Browser, failing: tuple[dict[str, t.Any], Path], shots: Path
) -> None:
    from ci_golden.report.aggregate import Report

    markdown = render_markdown(Report.from_dict(failing[0]))
    blocks = [b.split("\n```")[0] for b in markdown.split("```mermaid\n")[1:]]
    # regular dev (fail) and lts (drift); the missing metric has no actual values to draw
    assert len(blocks) == 2
    assert markdown.count(": golden (blue) vs actual (orange)\n") == 2
    page = browser.new_page(viewport={"width": 900, "height": 600})
    page.set_content("<!DOCTYPE html><html><body><div id='chart'></div></body></html>")
    page.add_script_tag(path=str(mermaid_js()))
    page.evaluate("mermaid.initialize({startOnLoad: false})")
    for i, block in enumerate(blocks):
        drawn = page.evaluate(
            """async ([id, source]) => {
              const {svg} = await mermaid.render(id, source);
              document.getElementById('chart').innerHTML = svg;
              const root = document.querySelector('#chart svg');
              const labels = Array.from(root.querySelectorAll('g.bottom-axis g.label text'),
                (t) => t.getBoundingClientRect()).map((r) => [r.left, r.right]);
              const lines = root.querySelectorAll('g[class^=line-plot] path');
              return {
                lines: Array.from(lines, (p) => p.getAttribute('stroke')),
                legend: Array.from(root.querySelectorAll('g.legend text'), (t) => t.textContent),
                labels,
              };
            }""",
            [f"chart{i}", block],
        )
        assert drawn["lines"] == ["#0072B2", "#D55E00"]
        assert drawn["legend"] == ["golden", "actual"]
        labels = drawn["labels"]
        assert 2 <= len(labels) <= 12, labels
        assert all(a[1] < b[0] for a, b in itertools.pairwise(labels)), labels  # no overlap
        if i == 0:
            shot(page.locator("#chart"), shots, "comment-mermaid-chart.png")
    page.close()
