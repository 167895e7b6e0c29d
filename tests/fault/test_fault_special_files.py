"""A FIFO, a socket or a device where ci-golden reads a file: refused without being opened, with
exit 2 (1 for validate, whose findings carry the code) and one line naming the file, never a
hang. Every command runs as a real subprocess with a timeout, so a read that waits on a FIFO
fails the test instead of hanging it."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from conftest import CliResult, run_cli

TIMEOUT = 60  # seconds; each command here takes well under one


@pytest.fixture()
def tree(tmp_path: Path, repo_root: Path) -> Path:
    """The bundled project config and demo cases."""
    shutil.copy(repo_root / "ci_golden.yaml", tmp_path / "ci_golden.yaml")
    shutil.copytree(repo_root / "test_cases" / "demo", tmp_path / "test_cases" / "demo")
    return tmp_path


def cli(*args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    return run_cli(*args, cwd=cwd, env=env, timeout=TIMEOUT)


def fifo_at(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


REFUSED = "not a regular file (a FIFO); refused without opening it"


def one_line(res: CliResult, code: int = 2) -> str:
    assert res.returncode == code, res
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.rstrip("\n")


@pytest.mark.parametrize("command", ["validate", "list", "matrix"])
def test_a_fifo_project_config(tree: Path, command: str) -> None:
    config = fifo_at(tree / "ci_golden.yaml")
    args = ["matrix", "--ci", "github"] if command == "matrix" else [command]
    assert one_line(cli(*args, cwd=tree)) == f"ci-golden {command}: error: {config}: {REFUSED}"


def test_a_fifo_model_config_is_a_finding_of_validate(tree: Path) -> None:
    fifo_at(tree / "test_cases/demo/regular/model_config.yaml")
    res = cli("validate", cwd=tree)
    assert res.returncode == 1
    assert f"test_cases/demo/regular/model_config.yaml: CG140 error: {REFUSED}" in res.stdout
    assert "CG143" not in res.stdout  # the folder has a config; it cannot be read


@pytest.mark.parametrize("command", ["list", "matrix"])
def test_a_fifo_model_config_stops_planning(tree: Path, command: str) -> None:
    path = fifo_at(tree / "test_cases/demo/regular/model_config.yaml")
    args = ["matrix", "--ci", "github"] if command == "matrix" else [command]
    assert one_line(cli(*args, cwd=tree)) == (
        f"ci-golden {command}: error: {path}: CG140: {REFUSED}"
    )


def test_a_socket_for_a_golden_and_a_device_symlink(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = tree / "test_cases/demo/regular/golden_values_dev_cpu.json"
    golden.unlink()
    monkeypatch.chdir(golden.parent)  # a socket's path is short: bind relative to the folder
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(golden.name)
        link = tree / "test_cases/demo/nondeterministic/golden_values_dev_cpu.json"
        link.unlink()
        link.symlink_to("/dev/zero")  # reading it would never end
        res = cli("validate", cwd=tree)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert (
        "test_cases/demo/regular/golden_values_dev_cpu.json: CG100 error: "
        "not a regular file (a socket); refused without opening it"
    ) in lines
    assert (
        "test_cases/demo/nondeterministic/golden_values_dev_cpu.json: CG151 error: "
        "symlink to a character device, not to a regular file; refused unopened"
    ) in lines


def test_compare_refuses_a_fifo_golden_actual_and_policy(tree: Path) -> None:
    golden = tree / "test_cases/demo/regular/golden_values_dev_cpu.json"
    pipe = fifo_at(tree / "pipe.json")
    for args in (
        ["--golden", pipe, "--actual", golden],
        ["--golden", golden, "--actual", pipe],
        ["--golden", golden, "--actual", golden, "--policy", pipe],
    ):
        assert one_line(cli("compare", *args, cwd=tree)) == (
            f"ci-golden compare: error: {pipe}: {REFUSED}"
        )


def test_report_refuses_fifo_results_plan_and_step_summary(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    golden = tree / "test_cases/demo/regular/golden_values_dev_cpu.json"
    made = cli("compare", "--golden", golden, "--actual", golden, "--out", out / "r.json", cwd=tree)
    assert made.returncode == 0, made
    result = fifo_at(out / "result.json")
    assert one_line(cli("report", out, cwd=tree)) == f"ci-golden report: error: {result}: {REFUSED}"
    assert one_line(cli("report", result, cwd=tree)) == (
        f"ci-golden report: error: {result}: {REFUSED}"
    )
    result.unlink()
    plan = fifo_at(tmp_path / "plan.json")
    assert one_line(cli("report", out / "r.json", "--expect", plan, cwd=tree)) == (
        f"ci-golden report: error: {plan}: {REFUSED}"
    )
    summary = fifo_at(tmp_path / "summary.md")
    res = cli(
        "report", out / "r.json", "--format", "github-summary",
        cwd=tree, env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert one_line(res) == (
        f"ci-golden report: error: {summary}: cannot write the file: it is a FIFO, "
        "not a regular file"
    )


def test_matrix_refuses_a_fifo_github_output(tree: Path, tmp_path: Path) -> None:
    output = fifo_at(tmp_path / "github_output")
    res = cli(
        "matrix", "--ci", "github", "--github-output", "matrix",
        cwd=tree, env={"GITHUB_OUTPUT": str(output)},
    )  # fmt: skip
    assert one_line(res) == f"ci-golden matrix: error: {output}: {REFUSED}"


@pytest.mark.parametrize(
    ("name", "source_format"),
    [("metrics.jsonl", "jsonl"), ("stdout.log", "log"), ("events.out.tfevents.1.h", "tensorboard")],
)
def test_collect_refuses_a_fifo_source(tmp_path: Path, name: str, source_format: str) -> None:
    pytest.importorskip("tensorboard")
    pipe = fifo_at(tmp_path / name)
    res = cli("collect", pipe, "--from", source_format, cwd=tmp_path)
    assert one_line(res) == f"ci-golden collect: error: {pipe}: {REFUSED}"


def test_collect_skips_nothing_silently_in_an_event_folder(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    folder = tmp_path / "tb"
    folder.mkdir()
    pipe = fifo_at(folder / "events.out.tfevents.1.host")
    res = cli("collect", folder, cwd=tmp_path)
    assert (
        one_line(res)
        == f"ci-golden collect: error: {folder}: no events*tfevents* file in this folder"
    )
    assert pipe.exists()


def test_run_refuses_a_fifo_job_file(tree: Path, tmp_path: Path) -> None:
    job = fifo_at(tmp_path / "job.json")
    assert one_line(cli("run", "--job", job, "--dry-run", cwd=tree)) == (
        f"ci-golden run: error: {job}: {REFUSED}"
    )


@pytest.mark.parametrize("command", ["update", "calibrate"])
def test_results_commands_refuse_a_fifo_result(tree: Path, tmp_path: Path, command: str) -> None:
    result = fifo_at(tmp_path / "result.json")
    res = cli(command, result, cwd=tree)
    assert one_line(res) == f"ci-golden {command}: error: {result}: {REFUSED}"


def test_a_directory_named_like_the_config_is_not_skipped(tree: Path) -> None:
    config = tree / "ci_golden.yaml"
    config.unlink()
    config.mkdir()
    res = cli("validate", cwd=tree)
    assert one_line(res) == (
        f"ci-golden validate: error: {config}: not a regular file (a folder); refused without "
        "opening it"
    )


def test_the_job_file_limit(tree: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"case": "demo/regular", "x": "y" * (1 << 20)}))
    res = cli("run", "--job", job, "--dry-run", cwd=tree)
    assert one_line(res).startswith(f"ci-golden run: error: {job}: file is ")


def test_comment_refuses_a_fifo_event_payload_and_report(tree: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text("<!-- ci-golden:verdict=pass -->\n## ci-golden: pass\n")
    event = fifo_at(tmp_path / "event.json")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "octo/repo",
        "GITHUB_TOKEN": "t0ken-for-a-server-never-reached",
        "GITHUB_API_URL": "http://127.0.0.1:9",
    }
    assert one_line(cli("comment", report, cwd=tree, env=env)) == (
        f"ci-golden comment: error: {event}: cannot read the GitHub event payload: {REFUSED}"
    )
    fifo_report = fifo_at(tmp_path / "fifo.md")
    env["GITHUB_EVENT_PATH"] = str(
        Path(__file__).parents[1] / "data" / "webhook_payloads" / "pull_request.opened.json"
    )
    assert one_line(cli("comment", fifo_report, cwd=tree, env=env)) == (
        f"ci-golden comment: error: {fifo_report}: cannot read the report: {REFUSED}"
    )


def test_validate_refuses_a_fifo_baseline_and_step_summary(tree: Path, tmp_path: Path) -> None:
    baseline = fifo_at(tree / ".ci-golden-baseline.json")
    assert one_line(cli("validate", cwd=tree)) == (
        f"ci-golden validate: error: {baseline}: cannot read the baseline: {REFUSED}"
    )
    baseline.unlink()
    summary = fifo_at(tmp_path / "summary.md")
    res = cli("validate", "--format", "github", cwd=tree, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.stderr == f"ci-golden validate: error: {summary}: {REFUSED}\n"
    assert res.returncode == 2
