"""`ci-golden local`: the whole flow on the bundled CPU cases, as the README's first command."""

from __future__ import annotations

import json
import os
import shutil
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_JOBS = [
    "PASS      demo/checkpoint_consistency [dev, cpu]",
    "PASS      demo/ckpt_resume [dev, cpu]",
    "PASS      demo/ckpt_resume [lts, cpu]",
    "PASS      demo/frozen_resume [dev, cpu]",
    "PASS      demo/frozen_start [dev, cpu]",
    "PASS      demo/inference [dev, cpu]",
    "PASS      demo/nondeterministic [dev, cpu]",
    "PASS      demo/nondeterministic [lts, cpu]",
    "PASS      demo/regular [dev, cpu]",
    "PASS      demo/regular [lts, cpu]",
    "PASS      demo/release [dev, cpu]",
]
XPASS = (
    "SKIPPED   demo/xpass [dev, cpu]: TEST_EVALUATION xpass tolerates a training failure; "
    "values not compared: repeat_1_run_1 exited with code 1 (log: run/1/run_1/stdout.log); "
    "last line: [exiting program at iteration 20] datetime: "
)


def copy_project(tmp_path: Path, cases: t.Sequence[str] = ("regular", "nondeterministic")) -> Path:
    """The repository's config and some demo cases, in a folder of their own."""
    root = tmp_path / "proj"
    for case in cases:
        shutil.copytree(REPO / "test_cases" / "demo" / case, root / "test_cases" / "demo" / case)
    for name in ("trainer.py", "grads_match.py", "frozen_checkpoints"):
        source, target = REPO / "test_cases" / "demo" / name, root / "test_cases" / "demo" / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    shutil.copy(REPO / "ci_golden.yaml", root / "ci_golden.yaml")
    for config in (root / "test_cases" / "demo").glob("*/model_config.yaml"):
        text = config.read_text().replace(
            "test_cases/demo/trainer.py", str(root / "test_cases" / "demo" / "trainer.py")
        )
        config.write_text(text)
    return root


def test_local_runs_the_bundled_cases_without_tensorboard(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    # as on a fresh clone with `pip install -e .` only: neither the optional tensorboard nor
    # tensorboardX can be imported, so the trainer writes JSON lines only and they are read
    blockers = tmp_path / "block"
    for package in ("tensorboard", "tensorboardX"):
        (blockers / package).mkdir(parents=True)
        (blockers / package / "__init__.py").write_text(f"raise ImportError('no {package}')\n")
    out = tmp_path / "out"
    pythonpath = os.pathsep.join(filter(None, (str(blockers), os.environ.get("PYTHONPATH"))))
    res = cli("local", "--out", out, env={"PYTHONPATH": pythonpath})
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[:11] == DEMO_JOBS
    assert lines[11].startswith(XPASS)
    assert lines[12:] == [
        "12 jobs: 11 pass, 1 skipped",
        "verdict: pass",
        f"reports: {out}/report.md, {out}/report.json, {out}/junit.xml, {out}/report.html",
        f"job folders: {out}/<job>/ (result.json, actual values, run logs)",
    ]
    assert res.stderr.endswith(
        "0 errors, 1 warnings (24 files in 10 cases checked)\n"
    )  # the gpt case's shadowed golden
    markdown = (out / "report.md").read_text()
    assert markdown.splitlines()[0] == "<!-- ci-golden:verdict=pass -->"
    report = json.loads((out / "report.json").read_text())
    assert [r["verdict"] for r in report["results"]].count("pass") == 11
    page = (out / "report.html").read_text()
    assert "<title>ci-golden: pass (12 jobs)</title>" in page
    suite = ET.parse(out / "junit.xml").getroot()
    assert (
        sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suite.iter("testsuite"))
        == 0
    )
    job = out / "demo__regular__dev__cpu"
    assert sorted(p.name for p in job.iterdir()) == [
        "golden_values_dev_cpu.json",
        "result.json",
        "run",
    ]
    log = (job / "run" / "1" / "run_1" / "stdout.log").read_text()
    assert log.count("] iteration ") == 50
    assert "trainer: tensorboardX is not installed: no TensorBoard events written" in log
    assert not any((job / "run" / "1" / "tensorboard").iterdir())


def test_local_fails_on_a_regression(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = copy_project(tmp_path)
    golden = root / "test_cases" / "demo" / "regular" / "golden_values_lts_cpu.json"
    doc = json.loads(golden.read_text())
    doc["lm loss"]["values"] = {k: v * 1.5 for k, v in doc["lm loss"]["values"].items()}
    golden.write_text(json.dumps(doc, indent=4) + "\n")
    res = cli("local", "--out", "out", cwd=root)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:4] == [
        "PASS      demo/nondeterministic [dev, cpu]",
        "PASS      demo/nondeterministic [lts, cpu]",
        "PASS      demo/regular [dev, cpu]",
        "FAIL      demo/regular [lts, cpu]",
    ]
    assert lines[4:6] == ["4 jobs: 1 fail, 3 pass", "verdict: fail"]
    assert (root / "out" / "report.md").read_text().startswith("<!-- ci-golden:verdict=fail -->\n")


def test_local_stops_when_validation_finds_errors(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = copy_project(tmp_path)
    (root / "test_cases" / "demo" / "regular" / "golden_values_dev_cpu.json").write_text("{}\n")
    res = cli("local", "--out", "out", cwd=root)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr.endswith("ci-golden local: validation found errors; nothing was run\n")
    assert "test_cases/demo/regular/golden_values_dev_cpu.json" in res.stderr
    assert not (root / "out").exists()


def test_local_with_no_job_on_the_platform(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = copy_project(tmp_path)
    res = cli("local", "--out", "out", "--platform", "dgx_a100", cwd=root)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr.endswith(
        f"ci-golden local: error: {root / 'test_cases'}: no job on platform(s) dgx_a100: "
        "no case lists them in CI_GOLDEN.platforms\n"
    )


def test_local_refuses_an_output_folder_that_is_a_file(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = copy_project(tmp_path, cases=("regular",))
    (root / "out").write_text("kept\n")
    res = cli("local", "--out", "out", cwd=root)
    assert (res.returncode, res.stdout, res.stderr) == (
        2,
        "",
        "ci-golden local: error: out: exists and is not a folder\n",
    )
    assert (root / "out").read_text() == "kept\n"


def test_verbose_streams_the_training_logs_with_a_prefix(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = copy_project(tmp_path, cases=("regular",))
    quiet = cli("local", "--out", "quiet", cwd=root)
    loud = cli("-v", "local", "--out", "loud", cwd=root)
    assert quiet.returncode == loud.returncode == 0, loud.stdout + loud.stderr
    assert "] iteration " not in quiet.stdout
    for env in ("dev", "lts"):
        lines = [
            line
            for line in loud.stdout.splitlines()
            if line.startswith(f"[demo/regular {env} cpu repeat_1_run_1] ")
        ]
        assert sum("] iteration " in line for line in lines) == 50
