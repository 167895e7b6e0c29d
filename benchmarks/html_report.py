"""Benchmark: size and opening time of the HTML report for 300 jobs x 8 metrics x 100k steps.

Builds the report the way ``ci-golden report --format html`` does, one job at a time: loss-like
curves, compared by the engine (one job in ten fails from some step on, one in ten at 60
isolated steps, one in twenty drifts), each job's curves cut from its full series by
:mod:`ci_golden.report.curves`, then the page rendered. It opens the page in headless Chromium
until the page says it is ready (table built, the charts of the failing jobs open at load and
in view drawn), against two baselines opened in the same browser in turn: a blank page, and a
page holding only the same plotly.js. Prints the size against the 15 MB target and the
opening time against the 5 s target, with the ratios to the baselines. It also times reading
one job's files (what the report command adds per job). Needs playwright and chromium
(``.ci/test`` installs both).

    python benchmarks/html_report.py [--jobs 300] [--metrics 8] [--steps 100000] [--loads 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ci_golden.compare.engine import compare_job, write_result
from ci_golden.compare.policy import resolve_policies
from ci_golden.compare.result import CaseResult, load_result
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries, write_golden
from ci_golden.project.config import load_config
from ci_golden.report.aggregate import build_report
from ci_golden.report.curves import JobCurves, load_curves, make_curve
from ci_golden.report.html import PLOTLY_JS, asset, render_html

SIZE_TARGET = 15_000_000
OPEN_TARGET_S = 5.0
METRICS = (
    "lm loss", "num-zeros", "grad-norm", "learning-rate", "mem-allocated-bytes",
    "mem-max-allocated-bytes", "throughput", "iteration-time",
)  # fmt: skip
PLATFORMS = ("dgx_h100", "dgx_a100", "dgx_gb200")
READY = "document.documentElement.dataset.ready === 'true'"


def curve(rng: np.random.Generator, steps: np.ndarray, i: int) -> np.ndarray:
    n = len(steps)
    base = (
        2.0 + 8.0 * np.exp(-steps / (n / 5))
        if i % 2 == 0
        else 1e3 * (1 + 0.1 * np.sin(steps / (n / 7)))
    )
    walk = 0.002 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)
    return np.asarray(base * (1 + walk + 0.01 * rng.standard_normal(n)))


def job_values(
    j: int, n_metrics: int, steps: np.ndarray, rng: np.random.Generator
) -> tuple[GoldenValues, GoldenValues]:
    """Job ``j``'s golden and actual values."""
    golden, actual = {}, {}
    for m in range(n_metrics):
        name = METRICS[m % len(METRICS)] + (f"-{m}" if m >= len(METRICS) else "")
        g = curve(rng, steps, m)
        a = g if m < 4 else g * (1 + 0.001 * rng.standard_normal(len(steps)))
        if m == 0 and j % 10 == 3:  # fails from some step on
            start = int(rng.integers(len(steps) // 4, 3 * len(steps) // 4))
            a = a.copy()
            a[start:] *= np.linspace(1.0, 1.3, len(steps) - start)
        elif m == 0 and j % 10 == 7:  # fails at isolated steps
            a = a.copy()
            a[rng.choice(len(steps), 60, replace=False)] *= 1.5
        elif m < 2 and j % 20 == 5:  # drifts
            a = a * (1 + 1e-6)
        golden[name], actual[name] = (
            MetricSeries.from_arrays(
                name, steps, v, start_step=1, end_step=len(steps), step_interval=1
            )
            for v in (g, a)
        )
    return GoldenValues("current", golden), GoldenValues("current", actual)


def build(
    n_jobs: int, n_metrics: int, n_steps: int
) -> tuple[list[CaseResult], dict[str, JobCurves], float]:
    """The jobs' results and curves, made one job at a time; and the seconds spent cutting the
    curves (the rest is making and comparing the synthetic runs)."""
    rng = np.random.default_rng(0)
    steps = np.arange(1, n_steps + 1, dtype=np.int64)
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    results, curves, cutting = [], {}, 0.0
    for j in range(n_jobs):
        golden, actual = job_values(j, n_metrics, steps, rng)
        job = Job(f"model{j % 30}/case_{j:03d}", ("dev", "lts")[j % 2], PLATFORMS[j % 3], None)
        result = compare_job(job, golden, actual, policies=policies, gated=METRICS[:2],
                             nondeterministic=False)  # fmt: skip
        start = time.perf_counter()
        charts = {}
        for name, m in result.metrics.items():
            g = golden.metrics[name]
            made = make_curve(m, (g.steps, g.values, actual.metrics[name].values), full=True)
            if made is not None:
                charts[("", name)] = made
        cutting += time.perf_counter() - start
        results.append(result)
        curves[result.job_id] = charts
    return results, curves, cutting


def time_loading(n_metrics: int, n_steps: int, folder: Path) -> float:
    """Seconds to read one job's golden and actual files and cut its curves."""
    steps = np.arange(1, n_steps + 1, dtype=np.int64)
    golden, actual = job_values(3, n_metrics, steps, np.random.default_rng(1))
    write_golden(folder / "cases" / "golden_values.json", golden)
    write_golden(folder / "out" / "golden_values.json", actual)
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    job = Job("model/case", "dev", "dgx_h100", folder / "cases" / "golden_values.json")
    write_result(folder / "out" / "result.json", compare_job(
        job, golden, actual, policies=policies, gated=METRICS[:2], nondeterministic=False,
        actual_path="golden_values.json", root=folder,
    ))  # fmt: skip
    result = load_result(folder / "out" / "result.json")
    start = time.perf_counter()
    loaded = load_curves([result], {result.job_id: folder / "out"}, folder)
    seconds = time.perf_counter() - start
    assert all(c.full for c in loaded[result.job_id].values())
    return seconds


def open_times(pages: dict[str, Path], loads: int) -> dict[str, list[float]]:
    """Seconds from navigation to ready (the load event for pages without the report's
    script), each page ``loads`` times in turn, each time in a fresh tab."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    out: dict[str, list[float]] = {name: [] for name in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(loads):
            for name, path in pages.items():
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                start = time.perf_counter()
                page.goto(path.as_uri(), wait_until="load", timeout=120_000)
                if name == "report":
                    page.wait_for_function(READY, timeout=120_000)
                out[name].append(time.perf_counter() - start)
                page.close()
                if errors:
                    raise SystemExit(f"{name}: {errors}")
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5, help="loads per page; the median counts")
    parser.add_argument("--out", type=Path, help="keep the report here")
    args = parser.parse_args()

    start = time.perf_counter()
    results, curves, cutting = build(args.jobs, args.metrics, args.steps)
    making = time.perf_counter() - start - cutting
    report = build_report(results, run_url="https://github.com/o/r/actions/runs/1")
    start = time.perf_counter()
    text = render_html(report, curves=curves)
    rendering = time.perf_counter() - start
    plotly = asset(PLOTLY_JS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loading = time_loading(args.metrics, args.steps, folder)
        report_path = args.out or folder / "report.html"
        report_path.write_text(text, encoding="utf-8")
        blank = folder / "blank.html"
        blank.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body>")
        only_plotly = folder / "plotly.html"
        only_plotly.write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><script>{plotly}"
            "</script></body></html>",
            encoding="utf-8",
        )
        size = report_path.stat().st_size
        times = open_times(
            {"blank": blank, "plotly": only_plotly, "report": report_path}, args.loads
        )
    blank_s, plotly_s, report_s = (
        statistics.median(times[k]) for k in ("blank", "plotly", "report")
    )
    counts = ", ".join(f"{n} {v}" for v, n in report.counts.items())
    bundle = len(plotly.encode())
    print(f"report: {args.jobs} jobs ({counts}) x {args.metrics} metrics x {args.steps} steps")
    print(f"making and comparing the synthetic runs: {making:.1f} s (not part of the report)")
    print(
        f"cutting the curves (LTTB + failing steps): {cutting:.1f} s; rendering: {rendering:.1f} s"
    )
    print(f"reading one job's files and cutting its curves: {loading:.2f} s")
    print(
        f"size: {size / 1e6:.2f} MB = {size / SIZE_TARGET:.2f} x the 15 MB target "
        f"(plotly.js {bundle / 1e6:.2f} MB, the rest {(size - bundle) / 1e6:.2f} MB)"
    )
    print(
        f"open in headless Chromium, median of {args.loads}: {report_s:.2f} s"
        f" = {report_s / OPEN_TARGET_S:.2f} x the 5 s target"
    )
    print(f"  baseline, a blank page: {blank_s:.3f} s; the report takes {report_s / blank_s:.1f} x")
    print(
        f"  baseline, plotly.js alone: {plotly_s:.2f} s;"
        f" the report takes {report_s / plotly_s:.2f} x"
    )
    ok = size < SIZE_TARGET and report_s < OPEN_TARGET_S
    print("within both targets" if ok else "OVER A TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
