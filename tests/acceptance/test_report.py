"""Aggregation and rendering: Markdown (size limit, escaping, Mermaid), JUnit, annotations,
and the ``report`` command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ci_golden.compare.engine import compare_job, write_result
from ci_golden.compare.policy import resolve_policies
from ci_golden.compare.result import CaseResult
from ci_golden.errors import InputError, UsageError
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries, write_golden
from ci_golden.project.config import load_config
from ci_golden.report.aggregate import (
    NO_RESULT,
    CiRun,
    ExpectedJob,
    Report,
    build_report,
    ci_run_from_env,
    collect_results,
    expect_jobs,
    run_url_from_env,
)
from ci_golden.report.render import (
    STEP_SUMMARY_LIMIT,
    escape_md,
    mermaid_chart,
    render_annotations,
    render_json,
    render_junit,
    render_markdown,
    render_step_summary,
    update_command,
)

HOSTILE = "gpt/x|y <script>alert(1)</script> @team `rm` [a](http://e) *b* #1\nline2"


def values(n: int, f: t.Callable[[int], float | None]) -> GoldenValues:
    return GoldenValues(
        "current",
        {
            "lm loss": MetricSeries.from_mapping("lm loss", {s: f(s) for s in range(1, n + 1)}),
            "num-zeros": MetricSeries.from_mapping(
                "num-zeros", {s: 100.0 + s for s in range(1, n + 1)}
            ),
        },
    )


def result(
    case: str,
    factor: float = 1.0,
    *,
    env: str = "dev",
    platform: str = "dgx_h100",
    metric: str = "lm loss",
    **kw: t.Any,
) -> CaseResult:
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    golden = values(100, lambda s: 10.0 - s / 50)
    actual = values(100, lambda s: (10.0 - s / 50) * (factor if s >= 60 else 1.0))
    if metric != "lm loss":
        golden.metrics[metric] = golden.metrics.pop("lm loss")
        actual.metrics[metric] = actual.metrics.pop("lm loss")
    job = Job(case, env, platform, Path(f"cases/{case}/golden_values_{env}_{platform}.json"))
    return compare_job(
        job,
        golden,
        actual,
        policies=policies,
        gated=(metric, "num-zeros"),
        nondeterministic=False,
        root=Path("."),
        **kw,
    )


# --- aggregation --------------------------------------------------------------------------


def test_collect_and_build(tmp_path: Path) -> None:
    write_result(tmp_path / "a" / "result.json", result("gpt/a"))
    write_result(tmp_path / "b" / "deep" / "result.json", result("gpt/b", 1.10))
    write_result(tmp_path / "c.json", result("gpt/c", 1.03))
    found = collect_results([tmp_path, tmp_path / "c.json", tmp_path / "a" / "result.json"])
    assert sorted(r.case for r in found) == ["gpt/a", "gpt/b", "gpt/c"]
    report = build_report(found, run_url="https://ci/run/1")
    assert (report.verdict, [r.case for r in report.results], report.counts) == (
        "fail",
        ["gpt/b", "gpt/c", "gpt/a"],
        {"fail": 1, "drift": 1, "pass": 1},
    )
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == report.to_dict()


def test_nothing_found_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        collect_results([tmp_path])
    assert str(e.value) == f"{tmp_path}: no result.json found in this folder or below"
    with pytest.raises(InputError) as e:
        collect_results([tmp_path / "nope"])
    assert str(e.value) == f"{tmp_path / 'nope'}: no such file or folder"


def test_run_url_from_env() -> None:
    gh = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "42",
    }
    assert run_url_from_env(gh) == "https://github.com/o/r/actions/runs/42"
    assert (
        run_url_from_env({"CI_PIPELINE_URL": "https://gitlab.com/g/p/-/pipelines/7"})
        == "https://gitlab.com/g/p/-/pipelines/7"
    )
    assert run_url_from_env({"GITHUB_REPOSITORY": "o/r"}) is None


# --- Markdown -----------------------------------------------------------------------------


def test_markdown_layout() -> None:
    report = build_report(
        [result("gpt/a"), result("gpt/b", 1.10)],
        run_url="https://github.com/o/r/actions/runs/42",
        sources=("results",),
    )
    md = render_markdown(report)
    lines = md.splitlines()
    assert lines[:7] == [
        "<!-- ci-golden:verdict=fail -->",
        "## ❌ ci-golden: fail",
        "",
        "**2 jobs**: 1 fail · 1 pass · [CI run](https://github.com/o/r/actions/runs/42)",
        "",
        "| Case | Env | Platform | Verdict | Worst metric | Max rel diff | First failing step |",
        "|---|---|---|---|---|---|---|",
    ]
    assert lines[7] == "| gpt/b | dev | dgx_h100 | ❌ fail | lm loss | 10% | 60 |"
    assert lines[8] == "| gpt/a | dev | dgx_h100 | ✅ pass | lm loss | 0% | — |"
    assert md.count("<details>") == 1 and md.count("</details>") == 1
    assert (
        "| lm loss | ❌ fail | approx rtol=0.05 +exact | 100 | 41 | 60 | 0.88 | 10% | "
        "41 of 100 steps outside approx rtol=0.05 (step 60: +10.0%), over the budget of 1 |" in md
    )
    assert "```sh\nci-golden update results --case gpt/b\n```" in md
    assert "Truncated" not in md


def mermaid_blocks(md: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)\n```$", md, flags=re.S | re.M)


XY_LINE = re.compile(
    r"---\nconfig:\n  xyChart:\n    showLegend: true\n  themeVariables:\n    xyChart:\n"
    r'      plotColorPalette: "#0072B2, #D55E00"\n---\n'
    r'xychart-beta\n    title "[A-Za-z0-9 _.:/()+-]*"\n    x-axis "step" (-?\d+) --> (-?\d+)\n'
    r'    y-axis "value" (-?\d+(\.\d+)?) --> (-?\d+(\.\d+)?)\n'
    r'    line "golden" \[-?\d+(\.\d+)?(, -?\d+(\.\d+)?)*\]\n'
    r'    line "actual" \[-?\d+(\.\d+)?(, -?\d+(\.\d+)?)*\]\Z'
)


def check_grammar(block: str) -> None:
    """The subset of xychart-beta we emit.

    Fixed lines, a legend's titles, a numeric step axis, plain decimals, 2-100 points per line,
    a y range holding the data.
    """
    match = XY_LINE.match(block)
    assert match, block
    assert int(match.group(1)) < int(match.group(2))
    lines = block.splitlines()
    lo, hi = (float(v) for v in lines[11].split('"value" ')[1].split(" --> "))
    ys = [[float(v) for v in ln.split("[")[1].rstrip("]").split(", ")] for ln in lines[12:14]]
    assert 2 <= len(ys[0]) == len(ys[1]) <= 100
    assert lo < min(map(min, ys)) and max(map(max, ys)) < hi


def mermaid_modules(repo_root: Path) -> Path | None:
    for candidate in (os.environ.get("CI_GOLDEN_MERMAID_MODULES"), repo_root / "node_modules"):
        if (
            candidate
            and (Path(candidate) / "mermaid" / "package.json").is_file()
            and (Path(candidate) / "jsdom").is_dir()
        ):
            return Path(candidate)
    return None


def test_mermaid_blocks_parse(repo_root: Path) -> None:
    results = [
        result("gpt/b", 1.10),
        result("gpt/c", 0.5, metric="mtp_1 loss"),
        result("gpt/d", 1.03),
    ]
    big = values(10000, lambda s: 1e-6 * s)
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    results.append(
        compare_job(
            Job("gpt/e", "lts", "dgx_a100", None),
            big,
            values(10000, lambda s: 2e-6 * s),
            policies=policies,
            gated=("lm loss",),
            nondeterministic=False,
        )
    )
    results[-1] = CaseResult.from_dict({**results[-1].to_dict(), "verdict": "fail"})
    results.append(
        compare_job(
            Job("gpt/f", "lts", "dgx_a100", None),
            values(100, lambda s: 3e10),
            values(100, lambda s: 3e10 * 1.2),
            policies=policies,
            gated=("lm loss",),
            nondeterministic=False,
        )
    )
    md = render_markdown(build_report(results))
    blocks = mermaid_blocks(md)
    assert len(blocks) == 5
    for block in blocks:
        check_grammar(block)
    modules = mermaid_modules(repo_root)
    node = shutil.which("node")
    if modules is None or node is None:
        pytest.skip(
            "mermaid + jsdom not installed (npm install mermaid jsdom);"
            " checked with the grammar subset only"
        )
    proc = subprocess.run(
        [node, str(repo_root / "tests" / "mermaid_parse.mjs"), str(modules)],
        input="\n---BLOCK---\n".join(blocks), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "".join(f"{i} ok xychart\n" for i in range(5))), (
        proc.stderr
    )


def test_mermaid_chart_shape() -> None:
    chart = mermaid_chart('a"b\nc', [1, 2, 3], [1.0, None, 3.0], [1.5, 2.0, 2.5])
    assert chart == (
        "---\nconfig:\n  xyChart:\n    showLegend: true\n  themeVariables:\n    xyChart:\n"
        '      plotColorPalette: "#0072B2, #D55E00"\n---\n'
        'xychart-beta\n    title "a_b_c"\n    x-axis "step" 1 --> 3\n'
        '    y-axis "value" 0.9 --> 3.1\n    line "golden" [1, 3]\n    line "actual" [1.5, 2.5]'
    )
    assert mermaid_chart("x", [1, 2], [1.0, None], [1.0, 2.0]) is None


def test_mermaid_points_are_evenly_spaced_steps() -> None:
    # Mermaid spreads a line's points evenly over a numeric axis: uneven steps are read at every
    # step of their common spacing (the actual's gap at step 2 is interpolated over)
    chart = mermaid_chart("x", [0, 2, 4, 10], [0.0, 2.0, 4.0, 10.0], [0.0, 4.0, None, 20.0])
    assert chart is not None
    assert chart.splitlines()[-4:] == [
        '    x-axis "step" 0 --> 10',
        '    y-axis "value" -1 --> 21',
        '    line "golden" [0, 2, 4, 6, 8, 10]',
        '    line "actual" [0, 4, 8, 12, 16, 20]',
    ]
    # too many steps of that spacing: 100 evenly spaced ones
    steps = [1, *range(7, 1000, 7)]
    chart = mermaid_chart("x", steps, [float(s) for s in steps], [2.0 * s for s in steps])
    assert chart is not None
    golden_line = chart.splitlines()[-2]
    assert golden_line.startswith('    line "golden" [1, 11.0303, 21.0606, 31.0909,')
    assert golden_line.count(", ") == 99


def test_hostile_names_come_out_inert() -> None:
    r = result(
        HOSTILE,
        1.10,
        env="dev|x",
        platform="<b>p</b>",
        metric="loss @team `x` <img src=x onerror=alert(1)>",
    )
    r = CaseResult.from_dict({**r.to_dict(), "message": "@org/team please <script>"})
    md = render_markdown(build_report([r], sources=("out dir",)))
    prose = re.sub(r"^(```+)(mermaid|sh)\n.*?\n\1$", "", md, flags=re.S | re.M)
    for bad in (
        "<script",
        "<img",
        "@team",
        "@org",
        "`rm`",
        "[a](",
        "*b*",
        "\nline2",
        "dev|x",
        "<b>p",
    ):
        assert bad not in prose, bad
    assert escape_md(HOSTILE) == (
        "gpt/x&#124;y &lt;script&gt;alert(1)&lt;/script&gt; @\u200bteam &#96;rm&#96; "
        "&#91;a&#93;(http://e) &#42;b&#42; &#35;1 line2"
    )
    table_rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert all(
        ln.count(" | ") == ln.count("|") - 2 for ln in table_rows
    )  # every pipe is a cell border
    for block in mermaid_blocks(md):
        check_grammar(block)
    command = re.search(r"^(`{3,})sh\n(.*?)\n\1$", md, flags=re.S | re.M)
    assert command is not None
    assert command.group(2) == (
        "ci-golden update 'out dir' --case "
        "'gpt/x|y <script>alert(1)</script> @team `rm` [a](http://e) *b* #1 line2'"
    )


def test_500_failing_cases_stay_under_the_limit() -> None:
    one = result("gpt/case", 1.10)
    results = [
        CaseResult.from_dict({**one.to_dict(), "case": f"gpt/case_{i:03d}"}) for i in range(500)
    ]
    report = build_report(results, run_url="https://ci/run/1")
    for limit in (65000, 20000, 1000):
        md = render_markdown(report, max_chars=limit)
        assert len(md) <= limit
        assert md.startswith(
            "<!-- ci-golden:verdict=fail -->\n## ❌ ci-golden: fail\n\n**500 jobs**: 500 fail"
        )
        assert (
            "| Case | Env | Platform | Verdict | Worst metric | Max rel diff |"
            " First failing step |\n|---|---|---|---|---|---|---|\n" in md
        )
        shown_rows = md.count("| ❌ fail | lm loss |")
        shown_details = md.count("<details>")
        assert md.count("<details>") == md.count("</details>")
        cut = re.search(r"> \*\*Truncated\*\* to fit (\d+) characters: (.*) not shown\.", md)
        assert cut is not None and cut.group(1) == str(limit)
        expected = []
        if shown_rows < 500:
            expected.append(f"{500 - shown_rows} of 500 table rows")
        expected.append(f"{500 - shown_details} of 500 detail sections")
        if (
            "ci-golden update" not in md.split("Truncated")[0]
            and "### Refresh the goldens" not in md
        ):
            expected.append("the `ci-golden update` command")
        assert cut.group(2) == ", ".join(expected)
    full = render_markdown(report, max_chars=10_000_000)
    assert "Truncated" not in full and full.count("<details>") == 500
    with pytest.raises(ValueError):
        render_markdown(report, max_chars=999)


# --- JUnit and annotations ----------------------------------------------------------------


def test_junit_one_testcase_per_job_and_gated_metric() -> None:
    crashed = compare_job(
        Job("gpt/z", "dev", "dgx_h100", None),
        None,
        None,
        policies={},
        gated=("lm loss",),
        nondeterministic=False,
        error="exit 137\x00",
    )
    report = build_report([result("gpt/a"), result("gpt/b", 1.10), result("gpt/c", 1.03), crashed])
    root = ET.fromstring(render_junit(report))
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "7",
        "failures": "2",
        "errors": "1",
        "skipped": "0",
    }
    cases = {
        (tc.get("classname"), tc.get("name")): [c.tag for c in tc] for tc in root.iter("testcase")
    }
    assert cases == {
        ("gpt/z", "run [dev, dgx_h100]"): ["error"],
        ("gpt/b", "lm loss [dev, dgx_h100]"): ["failure"],
        ("gpt/b", "num-zeros [dev, dgx_h100]"): [],
        ("gpt/c", "lm loss [dev, dgx_h100]"): ["failure"],
        ("gpt/c", "num-zeros [dev, dgx_h100]"): [],
        ("gpt/a", "lm loss [dev, dgx_h100]"): [],
        ("gpt/a", "num-zeros [dev, dgx_h100]"): [],
    }
    failure = root.find(".//testcase[@classname='gpt/b']/failure")
    assert (
        failure is not None
        and failure.get("message")
        == "fail: 41 of 100 steps outside approx rtol=0.05 (step 60: +10.0%), over the budget of 1"
    )
    allowed = ET.fromstring(render_junit(build_report([result("gpt/c", 1.03)], allow_drift=True)))
    assert allowed.get("failures") == "0"


def test_annotations() -> None:
    report = build_report([result("gpt/a"), result("gpt/b", 1.10)])
    assert render_annotations(report) == (
        "::error file=cases/gpt/b/golden_values_dev_dgx_h100.json,title=ci-golden fail::"
        "gpt/b [dev%2C dgx_h100]: "
        "lm loss: 41 of 100 steps outside approx rtol=0.05 (step 60: +10.0%25), "
        "over the budget of 1\n"
    ).replace("[dev%2C", "[dev,")


# --- the command --------------------------------------------------------------------------


@pytest.fixture()
def results_dir(tmp_path: Path) -> Path:
    write_result(tmp_path / "res" / "a" / "result.json", result("gpt/a"))
    write_result(tmp_path / "res" / "b" / "result.json", result("gpt/b", 1.10))
    return tmp_path


NO_CI = {"GITHUB_RUN_ID": "", "CI_PIPELINE_ID": "", "GITHUB_SERVER_URL": "", "CI_PIPELINE_URL": ""}


def test_cli_report_markdown(cli: t.Callable[..., t.Any], results_dir: Path) -> None:
    env = {
        **NO_CI,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "9",
    }
    r = cli("report", "res", "--out", "report.md", cwd=results_dir, env=env)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    md = (results_dir / "report.md").read_text()
    assert md.splitlines()[0] == "<!-- ci-golden:verdict=fail -->"
    assert "[CI run](https://github.com/o/r/actions/runs/9)" in md
    # in CI the refresh command fetches the run's results: the report machine's paths mean
    # nothing to a reviewer
    assert (
        "```sh\nci-golden fetch-results --github-run 9 --repo o/r --only-failing"
        " && ci-golden update ci-golden-results --case gpt/b\n```" in md
    )
    local = cli("report", "res", cwd=results_dir, env=NO_CI)
    assert (
        "```sh\nci-golden update res --case gpt/b\n```" in local.stdout
        and "fetch-results" not in local.stdout
    )
    ok = cli("report", "res/a", "--format", "json", cwd=results_dir, env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["verdict"] == "pass"


def test_cli_report_junit_and_json_round_trip(
    cli: t.Callable[..., t.Any], results_dir: Path
) -> None:
    assert (
        cli("report", "res", "--format", "json", "--out", "report.json", cwd=results_dir).returncode
        == 1
    )
    r = cli("report", "report.json", "--format", "junit", cwd=results_dir)
    assert r.returncode == 1 and ET.fromstring(r.stdout).get("tests") == "4"


def test_cli_github_summary(cli: t.Callable[..., t.Any], results_dir: Path) -> None:
    summary = results_dir / "summary.md"
    summary.write_text("earlier step output\n")
    r = cli(
        "report",
        "res",
        "--format",
        "github-summary",
        cwd=results_dir,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.returncode == 1
    assert r.stdout.startswith(
        "::error file=cases/gpt/b/golden_values_dev_dgx_h100.json,title=ci-golden fail::gpt/b"
    )
    text = summary.read_text()
    assert text.startswith("earlier step output\n<!-- ci-golden:verdict=fail -->\n")
    missing = cli(
        "report",
        "res",
        "--format",
        "github-summary",
        cwd=results_dir,
        env={"GITHUB_STEP_SUMMARY": ""},
    )
    assert (missing.returncode, missing.stderr) == (
        2, "ci-golden report: error: --format github-summary needs $GITHUB_STEP_SUMMARY"
           " (set by GitHub Actions) or --out FILE\n"
    )  # fmt: skip


def test_cli_report_errors(cli: t.Callable[..., t.Any], tmp_path: Path) -> None:
    r = cli("report", "nothing", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (
        2,
        "ci-golden report: error: nothing: no such file or folder\n",
    )
    r = cli("report", ".", "--max-chars", "10", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (
        2,
        "ci-golden report: error: --max-chars must be at least 1000\n",
    )


def test_cli_report_html_reads_each_job_s_files_and_links_back(
    cli: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    # a job folder as `ci-golden run` leaves it: result.json beside the actual values, the
    # golden below the folder the report is made in (its path in the result is relative to it)
    golden = values(1000, lambda s: 10.0 - s / 500)
    actual = values(1000, lambda s: (10.0 - s / 500) * (1.5 if s % 47 == 0 else 1.0))
    write_golden(tmp_path / "cases" / "gpt" / "golden_values.json", golden)
    write_golden(tmp_path / "out" / "a" / "golden_values.json", actual)
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    job = Job("gpt/a", "dev", "dgx_h100", tmp_path / "cases" / "gpt" / "golden_values.json")
    write_result(tmp_path / "out" / "a" / "result.json", compare_job(
        job, golden, actual, policies=policies, gated=("lm loss",), nondeterministic=True,
        actual_path="golden_values.json", root=tmp_path,
    ))  # fmt: skip
    r = cli("report", "out", "--format", "html", "--out", "report.html", cwd=tmp_path, env=NO_CI)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    page = (tmp_path / "report.html").read_text()
    meta = json.loads(page.split('id="cg-meta">')[1].split("</script>")[0])
    chart = meta["jobs"][0]["metrics"][0]["chart"]
    # every step seen: all 21 failing steps marked, not only those among the 100 stored
    assert (chart["full"], chart["n_steps"], chart["n_failing"]) == (True, 1000, 21)
    stdout = cli("report", "out", "--format", "html", cwd=tmp_path, env=NO_CI).stdout
    assert stdout == page  # the same page on stdout
    url = "https://github.com/o/r/actions/runs/9/artifacts/7"
    md = cli("report", "out", "--html-url", url, cwd=tmp_path, env=NO_CI).stdout
    assert md.splitlines()[3] == f"**1 job**: 1 fail · [HTML report with every curve]({url})"
    js = cli("report", "out", "--format", "json", "--html-url", url, cwd=tmp_path, env=NO_CI)
    assert json.loads(js.stdout)["html_url"] == url
    # `ci-golden comment report.json` renders the comment from the JSON: the link stays
    again = render_markdown(Report.from_dict(json.loads(js.stdout)))
    assert f"[HTML report with every curve]({url})" in again.splitlines()[3]
    bad = cli("report", "out", "--html-url", "javascript:alert(1)", cwd=tmp_path, env=NO_CI)
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        2, "", "ci-golden report: error: --html-url must be an http(s) address,"
        " got 'javascript:alert(1)'\n",
    )  # fmt: skip


# --- the plan's job list (--expect) ---------------------------------------------------------


def plan(*jobs: tuple[str, str, str]) -> str:
    return json.dumps({"include": [
        {"id": c.replace("/", "__"), "case": c, "environment": e, "platform": p, "runs-on": ["x"],
         "golden": f"cases/{c}/golden_values_{e}_{p}.json"}
        for c, e, p in jobs
    ]})  # fmt: skip


def test_expected_jobs_without_a_result_are_errors_and_the_others_get_a_note() -> None:
    expected = [
        ExpectedJob("gpt/a", "dev", "dgx_h100"),
        ExpectedJob("gpt/c", "lts", "dgx_a100", "cases/gpt/c/g.json"),
    ]
    results, notes = expect_jobs([result("gpt/a"), result("gpt/d")], expected, "plan.json")
    report = build_report(results, notes=notes)
    assert [(r.job_id, r.verdict, r.message, r.golden) for r in report.results] == [
        ("gpt/c [lts, dgx_a100]", "error", NO_RESULT, "cases/gpt/c/g.json"),
        ("gpt/a [dev, dgx_h100]", "pass", None, "cases/gpt/a/golden_values_dev_dgx_h100.json"),
        ("gpt/d [dev, dgx_h100]", "pass", None, "cases/gpt/d/golden_values_dev_dgx_h100.json"),
    ]
    assert notes == (
        "1 result is for a job the plan (plan.json) does not list: gpt/d [dev, dgx_h100]",
    )
    assert (report.verdict, report.ok) == ("error", False)
    assert Report.from_dict(json.loads(render_json(report))).to_dict() == report.to_dict()
    many = [result(f"gpt/x{i:02d}") for i in range(12)]
    assert expect_jobs(many, [], "p")[1] == (
        "12 results are for jobs the plan (p) does not list: "
        + ", ".join(f"gpt/x{i:02d} [dev, dgx_h100]" for i in range(10))
        + " and 2 more",
    )


def test_cli_report_expect_catches_a_job_without_a_result_in_every_format(
    cli: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write_result(tmp_path / "res" / "a" / "result.json", result("gpt/a"))
    write_result(tmp_path / "res" / "x" / "result.json", result("gpt/x"))
    (tmp_path / "plan.json").write_text(
        plan(("gpt/a", "dev", "dgx_h100"), ("gpt/b", "dev", "dgx_h100"))
    )
    silent = cli("report", "res", "--format", "json", cwd=tmp_path, env=NO_CI)
    assert (silent.returncode, json.loads(silent.stdout)["verdict"]) == (
        0,
        "pass",
    )  # what --expect is for
    args = ("report", "res", "--expect", "plan.json")
    md = cli(*args, cwd=tmp_path, env=NO_CI)
    assert (md.returncode, md.stderr) == (1, "")
    lines = md.stdout.splitlines()
    assert lines[:10] == [
        "<!-- ci-golden:verdict=error -->",
        "## 💥 ci-golden: error",
        "",
        "**3 jobs**: 1 error · 2 pass",
        "",
        "> 1 result is for a job the plan (plan.json) does not list: gpt/x &#91;dev, dgx_h100&#93;",
        "",
        "| Case | Env | Platform | Verdict | Worst metric | Max rel diff | First failing step |",
        "|---|---|---|---|---|---|---|",
        "| gpt/b | dev | dgx_h100 | 💥 error | — | — | — |",
    ]
    assert (
        f"dgx_h100: error</summary>\n\n{NO_RESULT}\n\n"
        "Golden: cases/gpt/b/golden_values_dev_dgx_h100.json\n" in md.stdout
    )
    js = cli(*args, "--format", "json", cwd=tmp_path, env=NO_CI)
    data = json.loads(js.stdout)
    assert (js.returncode, data["verdict"], data["counts"], data["notes"]) == (
        1, "error", {"error": 1, "pass": 2},
        ["1 result is for a job the plan (plan.json) does not list: gpt/x [dev, dgx_h100]"],
    )  # fmt: skip
    assert {k: data["results"][0][k] for k in ("case", "verdict", "message")} == {
        "case": "gpt/b",
        "verdict": "error",
        "message": NO_RESULT,
    }
    junit = cli(*args, "--format", "junit", cwd=tmp_path, env=NO_CI)
    root = ET.fromstring(junit.stdout)
    assert (junit.returncode, root.get("errors")) == (1, "1")
    error = root.find(".//testcase[@classname='gpt/b']/error")
    assert error is not None and error.get("message") == f"error: {NO_RESULT}"
    summary = tmp_path / "summary.md"
    gh = cli(*args, "--format", "github-summary", "--out", summary, cwd=tmp_path, env=NO_CI)
    assert gh.returncode == 1 and summary.read_text().startswith(
        "<!-- ci-golden:verdict=error -->\n"
    )
    assert gh.stdout == (
        "::notice title=ci-golden::1 result is for a job the plan (plan.json) does not list:"
        " gpt/x [dev, dgx_h100]\n"
        "::error file=cases/gpt/b/golden_values_dev_dgx_h100.json,title=ci-golden error::"
        f"gpt/b [dev, dgx_h100]: {NO_RESULT}\n"
    )


def test_cli_report_expect_with_no_results_at_all_reports_every_job(
    cli: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    # every job failed before uploading: the artifact folder was never created
    (tmp_path / "plan.json").write_text(
        plan(("gpt/a", "dev", "dgx_h100"), ("gpt/b", "lts", "dgx_h100"))
    )
    r = cli(
        "report",
        "ci-golden-out",
        "--expect",
        "plan.json",
        "--format",
        "json",
        cwd=tmp_path,
        env=NO_CI,
    )
    data = json.loads(r.stdout)
    assert (r.returncode, data["counts"]) == (1, {"error": 2})
    without = cli("report", "ci-golden-out", cwd=tmp_path, env=NO_CI)
    assert (without.returncode, without.stderr) == (
        2,
        "ci-golden report: error: ci-golden-out: no such file or folder\n",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "plan.json: zero-byte file: expected a JSON object"),
        (
            '{"include": {}}',
            'plan.json::$: not a job matrix: expected {"include": [...]}'
            " as `ci-golden matrix --ci github` writes",
        ),
        (
            '{"include": [3]}',
            "plan.json::$.include[0]: expected an object with case, environment and platform",
        ),
        (
            '{"include": [{"case": "a", "environment": "dev"}]}',
            "plan.json::$.include[0]: expected a non-empty string 'platform'",
        ),
    ],
)
def test_cli_report_bad_expect_file_is_exit_2(
    cli: t.Callable[..., t.Any], results_dir: Path, text: str, message: str
) -> None:
    (results_dir / "plan.json").write_text(text)
    r = cli(
        "report", "res", "--expect", "plan.json", "--out", "report.md", cwd=results_dir, env=NO_CI
    )
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"ci-golden report: error: {message}\n")
    assert not (results_dir / "report.md").exists()


# --- the refresh command ------------------------------------------------------------------


def test_ci_run_from_env_and_the_refresh_command() -> None:
    assert ci_run_from_env({}) is None
    gh = ci_run_from_env(
        {
            "GITHUB_RUN_ID": "42",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": "https://api.github.com",
        }
    )
    assert gh == CiRun("github", "42", "o/r", None)
    ghe = ci_run_from_env(
        {
            "GITHUB_RUN_ID": "42",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": "https://ghe.example/api/v3",
        }
    )
    gl = ci_run_from_env(
        {
            "CI_PIPELINE_ID": "7",
            "CI_PROJECT_PATH": "g/p",
            "CI_PROJECT_ID": "3",
            "CI_API_V4_URL": "https://gitlab.com/api/v4",
        }
    )
    assert gl == CiRun("gitlab", "7", "g/p", None)
    own = ci_run_from_env(
        {
            "CI_PIPELINE_ID": "7",
            "CI_PROJECT_ID": "3",
            "CI_API_V4_URL": "https://git.example/api/v4/",
        }
    )
    failing = [result("gpt/b", 1.10), result("gpt/c", 1.03)]
    commands = [
        update_command(build_report(failing, sources=("/tmp/fr",), ci_run=run))
        for run in (None, gh, ghe, gl, own)
    ]
    assert commands == [
        "ci-golden update /tmp/fr --case gpt/b --case gpt/c",
        "ci-golden fetch-results --github-run 42 --repo o/r --only-failing"
        " && ci-golden update ci-golden-results --case gpt/b --case gpt/c",
        "ci-golden fetch-results --github-run 42 --repo o/r"
        " --api-url https://ghe.example/api/v3 --only-failing"
        " && ci-golden update ci-golden-results --case gpt/b --case gpt/c",
        "ci-golden fetch-results --gitlab-pipeline 7 --project g/p --only-failing"
        " && ci-golden update ci-golden-results --case gpt/b --case gpt/c",
        "ci-golden fetch-results --gitlab-pipeline 7 --project 3"
        " --api-url https://git.example/api/v4 --only-failing"
        " && ci-golden update ci-golden-results --case gpt/b --case gpt/c",
    ]
    # the report JSON keeps the run, so a comment rendered later from it says the same
    report = build_report(failing, ci_run=gl)
    assert update_command(Report.from_dict(json.loads(render_json(report)))) == commands[3]


def test_the_refresh_command_flags_are_those_of_fetch_results_and_update() -> None:
    import argparse

    from ci_golden.commands import fetch_results, update

    command = update_command(
        build_report(
            [result("gpt/b", 1.10)], ci_run=CiRun("github", "42", "o/r", "https://ghe/api")
        )
    )
    assert command is not None
    fetch_part, update_part = (part.split() for part in command.split(" && "))
    for module, words in ((fetch_results, fetch_part), (update, update_part)):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        args = parser.parse_args(words[2:])
        if module is fetch_results:
            assert (args.github_run, args.repo, args.api_url, args.only_failing, args.out) == (
                42,
                "o/r",
                "https://ghe/api",
                True,
                "ci-golden-results",
            )
        else:
            assert (args.results, args.case) == (["ci-golden-results"], ["gpt/b"])


# --- output paths and the step summary ----------------------------------------------------


@pytest.mark.parametrize("fmt", ["markdown", "json", "junit", "github-summary", "html"])
def test_cli_report_out_where_no_file_can_be(
    cli: t.Callable[..., t.Any], results_dir: Path, fmt: str
) -> None:
    (results_dir / "README.md").write_text("keep\n")
    r = cli("report", "res", "--format", fmt, "--out", "README.md/x", cwd=results_dir, env=NO_CI)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden report: error: README.md/x: cannot write the file: README.md is not a folder\n",
    )
    r = cli("report", "res", "--format", fmt, "--out", "res", cwd=results_dir, env=NO_CI)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden report: error: res: cannot write the file: this is a folder\n",
    )
    assert (results_dir / "README.md").read_text() == "keep\n"
    assert sorted(p.name for p in results_dir.iterdir()) == ["README.md", "res"]


def test_step_summary_fits_what_is_left() -> None:
    report = build_report([result(f"gpt/case_{i:03d}", 1.10) for i in range(50)])
    text = render_step_summary(report, used=STEP_SUMMARY_LIMIT - 5000, max_chars=None, name="s.md")
    assert len(text.encode()) <= 5000 and "Truncated" in text
    assert render_step_summary(report, used=0, max_chars=3000, name="s.md") == render_markdown(
        report, max_chars=3000
    )
    with pytest.raises(UsageError) as e:
        render_step_summary(report, used=STEP_SUMMARY_LIMIT - 10, max_chars=None, name="s.md")
    assert str(e.value) == (
        f"s.md: the step summary already holds {STEP_SUMMARY_LIMIT - 10} bytes;"
        " no room left for the report"
    )
