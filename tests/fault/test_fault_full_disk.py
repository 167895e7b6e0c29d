"""A full disk under every command that writes: exit 2 with one line naming the file, and nothing
half-written (every file there keeps its old bytes, no new file, no temp file left).

The disk is a small tmpfs mounted for each test and filled to its last byte, which needs root
and the right to mount; elsewhere these tests skip and say so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
from conftest import CliResult, run_cli
from servers.fixtures import github_api_fixture  # noqa: F401

if t.TYPE_CHECKING:
    from servers.github_api import GitHubAPIServer

NO_SPACE = "No space left on device"


class Disk:
    """A mounted tmpfs: fill it, then compare what it holds with what it held."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.before: dict[str, bytes] = {}

    def fill(self) -> None:
        """Take every free byte, then remember every file."""
        with (self.root / ".filler").open("wb", buffering=0) as f:
            chunk = b"\0" * 4096
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass
            try:  # the last partial page
                while True:
                    f.write(b"\0")
            except OSError:
                pass
        self.before = self.files()

    def files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and p.name != ".filler"
        }

    def unchanged(self) -> bool:
        return self.files() == self.before


@pytest.fixture()
def disk(tmp_path: Path) -> t.Iterator[Disk]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the full-disk tests need to mount a small tmpfs")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0777", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs here (the full-disk tests need root and the right to mount): "
            + made.stderr.strip()
        )
    try:
        yield Disk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture()
def tree(tmp_path: Path, repo_root: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(repo_root / "ci_golden.yaml", root / "ci_golden.yaml")
    shutil.copytree(repo_root / "test_cases" / "demo", root / "test_cases" / "demo")
    return root


def refused(res: CliResult, command: str, path: Path) -> None:
    assert (res.returncode, res.stderr.count("\n")) == (2, 1), res
    assert res.stderr.startswith(f"ci-golden {command}: error: {path}")
    assert res.stderr.endswith(f"{NO_SPACE}\n"), res.stderr


GOLDEN = "test_cases/demo/regular/golden_values_dev_cpu.json"


def page(text: str) -> str:
    """``text`` filling whole 4 KiB pages: an append to it needs a new page, which a full
    tmpfs has not got."""
    return text + "\n" * (-len(text) % 4096)


def test_matrix_output(tree: Path, disk: Disk) -> None:
    (disk.root / "matrix.json").write_text("{}\n")
    disk.fill()
    out = disk.root / "matrix.json"
    refused(run_cli("matrix", "--ci", "github", "--output", out, cwd=tree), "matrix", out)
    assert disk.unchanged()


def test_matrix_github_output(tree: Path, disk: Disk) -> None:
    output = disk.root / "github_output"
    output.write_text(page("earlier=1\n"))
    disk.fill()
    res = run_cli(
        "matrix", "--ci", "github", "--github-output", "matrix",
        cwd=tree, env={"GITHUB_OUTPUT": str(output)},
    )  # fmt: skip
    refused(res, "matrix", output)
    assert disk.unchanged()


def test_collect_out(tree: Path, disk: Disk, tmp_path: Path) -> None:
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text("".join(f'{{"step": {s}, "lm loss": {1 / s}}}\n' for s in range(1, 101)))
    disk.fill()
    out = disk.root / "golden_values.json"
    refused(run_cli("collect", jsonl, "--out", out, cwd=tree), "collect", out)
    assert disk.unchanged()


def test_compare_out_and_report_outputs(tree: Path, disk: Disk, tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    assert (
        run_cli("compare", "--golden", GOLDEN, "--actual", GOLDEN, "--out", result, cwd=tree)[0]
        == 0
    )
    summary = disk.root / "summary.md"
    summary.write_text(page("# earlier step\n"))
    disk.fill()
    out = disk.root / "result.json"
    res = run_cli("compare", "--golden", GOLDEN, "--actual", GOLDEN, "--out", out, cwd=tree)
    refused(res, "compare", out)
    for fmt in ("markdown", "junit", "json"):
        out = disk.root / f"report.{fmt}"
        refused(run_cli("report", result, "--format", fmt, "--out", out, cwd=tree), "report", out)
    res = run_cli(
        "report", result, "--format", "github-summary",
        cwd=tree, env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    refused(res, "report", summary)
    assert disk.unchanged()


def test_run_out(tree: Path, disk: Disk) -> None:
    disk.fill()
    out = disk.root / "run"
    res = run_cli(
        "run", "demo/regular", "--environment", "dev", "--platform", "cpu", "--out", out,
        cwd=tree, timeout=300,
    )  # fmt: skip
    refused(res, "run", out)
    assert not (out / "result.json").exists()
    assert not (out / "golden_values_dev_cpu.json").exists()
    assert list(disk.root.rglob("*.tmp")) == []


def test_local_out(tree: Path, disk: Disk) -> None:
    disk.fill()
    out = disk.root / "out"
    res = run_cli("local", "--out", out, cwd=tree, timeout=600)
    refused(res, "local", out)
    assert list(out.rglob("result.json")) == [] and list(out.rglob("report*")) == []
    assert list(disk.root.rglob("*.tmp")) == []


def test_update_and_its_summary(tree: Path, disk: Disk, tmp_path: Path) -> None:
    shutil.copytree(tree, disk.root / "project")
    project = disk.root / "project"
    results = tmp_path / "results"
    res = run_cli(
        "run", "demo/regular", "--environment", "dev", "--platform", "cpu", "--out", results,
        cwd=project, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res
    golden = project / GOLDEN
    golden.write_text(golden.read_text().replace('"1": ', '"1": 1.0, "0": ', 1))  # now differs
    disk.fill()
    res = run_cli("update", results, cwd=project)
    refused(res, "update", project / GOLDEN)
    assert disk.unchanged()
    res = run_cli(
        "update", results, "--dry-run", "--summary", disk.root / "summary.md", cwd=project
    )
    refused(res, "update", disk.root / "summary.md")
    assert disk.unchanged()


def test_migrate_apply(tree: Path, disk: Disk, repo_root: Path) -> None:
    case = disk.root / "project" / "test_cases" / "legacy" / "case"
    shutil.copytree(repo_root / "tests" / "data" / "invalid" / "legacy_layout", case)
    shutil.copy(tree / "ci_golden.yaml", disk.root / "project" / "ci_golden.yaml")
    disk.fill()
    res = run_cli("migrate", "--apply", cwd=disk.root / "project")
    assert (res.returncode, res.stderr.count("\n")) == (2, 1), res
    assert res.stderr.endswith(f"{NO_SPACE}\n")
    assert disk.unchanged()


def test_fetch_results_out(github_api: GitHubAPIServer, tree: Path, disk: Disk) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("result.json", json.dumps({"x": 1}) + " " * 4096)
    github_api.add_artifact("acme", "models", 7, "ci-golden-a", buf.getvalue())
    disk.fill()
    out = disk.root / "results"
    env = {
        "GITHUB_API_URL": github_api.url,
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_TOKEN": github_api.token,
        "CI_GOLDEN_HTTP_BACKOFF": "0",
    }
    res = run_cli("fetch-results", "--github-run", "7", "--out", out, cwd=tree, env=env)
    assert (res.returncode, res.stderr.count("\n")) == (2, 1), res
    assert res.stderr.endswith(f"cannot be written: {NO_SPACE}\n"), res.stderr
    assert not out.exists()
    assert disk.unchanged() and [p.name for p in disk.root.iterdir()] == [".filler"]
