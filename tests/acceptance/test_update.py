"""`ci-golden update`: the refresh loop on the bundled CPU demo, selection, safety, crash safety."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import resolve_policies
from ci_golden.compare.result import write_result
from ci_golden.goldens.discover import Job, discover
from ci_golden.goldens.model import GoldenValues, MetricSeries, load_golden, write_golden
from ci_golden.project.config import load_config
from ci_golden.validate.engine import check_golden_file

GIT = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]

CONFIG = """\
test_cases: cases
platforms:
  cpu: {gpu: null, gpus_per_node: 0}
  arm: {gpu: null, gpus_per_node: 0}
environments:
  dev: {platforms: [cpu, arm]}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture()
def demo_repo(tmp_path: Path, repo_root: Path) -> Path:
    """A git repository holding the project config and the bundled demo cases, committed."""
    repo = tmp_path / "repo"
    files = git(repo_root, "ls-files", "ci_golden.yaml", "test_cases/demo").split()
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / name, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "demo cases")
    return repo


def run_demo(cli: t.Any, repo: Path, case: str, out: Path) -> t.Any:
    # trained to the end: a refresh needs every step, which fail-fast would not wait for
    return cli("run", case, "--environment", "dev", "--platform", "cpu", "--out", out,
               "--no-fail-fast", cwd=repo)  # fmt: skip


def test_refresh_loop_on_the_demo_case(demo_repo: Path, tmp_path: Path, cli: t.Any) -> None:
    config = demo_repo / "test_cases/demo/regular/model_config.yaml"
    config.write_text(config.read_text().replace("--lr: 3.0e-3", "--lr: 4.0e-3"))
    git(demo_repo, "commit", "-qam", "raise the learning rate")

    failed = run_demo(cli, demo_repo, "demo/regular", tmp_path / "out1")
    assert failed.returncode == 1
    assert "demo/regular [dev, cpu]: FAIL\n" in failed.stdout

    summary = tmp_path / "summary.md"
    updated = cli("update", tmp_path / "out1", "--summary", summary, cwd=demo_repo)
    assert updated.returncode == 0, updated.stderr
    # plain text on the console, Markdown in the summary file
    lines = updated.stdout.splitlines()
    assert lines[:3] == [
        "Golden values updated: 1 file(s)",
        "  test_cases/demo/regular/golden_values_dev_cpu.json",
        f"    demo/regular [dev, cpu], verdict fail, from {tmp_path / 'out1' / 'result.json'}",
    ]
    loss = next(line for line in lines if line.startswith("    lm loss: "))
    assert loss.startswith("    lm loss: changed, mean rel diff ")
    markdown = summary.read_text().splitlines()
    assert markdown[:5] == [
        "## Golden values updated: 1 file(s)",
        "",
        "### `test_cases/demo/regular/golden_values_dev_cpu.json`",
        "",
        "demo/regular \\[dev, cpu\\], verdict **fail**, "
        f"from `{tmp_path / 'out1' / 'result.json'}`",
    ]
    assert (
        git(demo_repo, "status", "--porcelain")
        == " M test_cases/demo/regular/golden_values_dev_cpu.json\n"
    )
    new = load_golden(demo_repo / "test_cases/demo/regular/golden_values_dev_cpu.json")
    assert new.same_as(load_golden(tmp_path / "out1" / "golden_values_dev_cpu.json"))

    passed = run_demo(cli, demo_repo, "demo/regular", tmp_path / "out2")
    assert passed.returncode == 0, passed.stderr
    assert "demo/regular [dev, cpu]: PASS\n" in passed.stdout

    again = cli("update", tmp_path / "out2", "--dry-run", cwd=demo_repo)
    assert again.returncode == 0
    assert again.stdout == (
        "Golden values would be updated: 0 file(s)\n"
        "Unchanged (1): test_cases/demo/regular/golden_values_dev_cpu.json\n"
    )


def test_a_refresh_changes_only_the_changed_steps(
    demo_repo: Path, tmp_path: Path, cli: t.Any
) -> None:
    golden = demo_repo / "test_cases/demo/regular/golden_values_dev_cpu.json"
    text = golden.read_text()
    for step in ("10", "20", "30"):  # 3 steps of lm loss, as a stale golden would have them
        start = text.index(f'"{step}": ') + len(f'"{step}": ')
        end = text.index(",", start)
        text = text[:start] + repr(round(float(text[start:end]) * 1.01, 5)) + text[end:]
    golden.write_text(text)
    git(demo_repo, "commit", "-qam", "three stale steps")
    drift = run_demo(cli, demo_repo, "demo/regular", tmp_path / "out")
    assert drift.returncode == 1
    assert (
        "  lm loss                    drift    gated  3 of 50 steps differ from the golden, first "
        "at step 10; within approx rtol=0.05\n" in drift.stdout
    )
    updated = cli("update", tmp_path / "out", cwd=demo_repo)
    assert updated.returncode == 0, updated.stderr
    assert git(demo_repo, "diff", "--numstat") == (
        "3\t3\ttest_cases/demo/regular/golden_values_dev_cpu.json\n"
    )
    assert git(demo_repo, "diff", "HEAD~1", "--numstat") == ""  # back to the original bytes


def test_the_grid_and_layout_of_a_golden_are_kept(tmp_path: Path, cli: t.Any) -> None:
    # a one-line golden on a 5-step grid with integer-looking values, refreshed from a run that
    # logged every step: the same line, the same grid, only the changed numbers differ
    root = project(tmp_path, {"a": {}})
    golden = root / "cases/a/golden_values_dev_cpu.json"
    golden.write_text(
        '{"lm loss": {"start_step": 1, "end_step": 20, "step_interval": 5, "values": '
        '{"1": 10.5, "5": 9, "10": "nan", "15": 8.25, "20": 8.0}}}'
    )
    run = values(20)
    make_result(root, root / "out", "a", "cpu", run)
    assert cli("update", "out", cwd=root).returncode == 0
    assert golden.read_text() == (
        '{"lm loss": {"start_step": 1, "end_step": 20, "step_interval": 5, "values": '
        '{"1": 9.999, "5": 9.995, "10": 9.99, "15": 9.985, "20": 9.98}}}'
    )


def test_values_given_explicitly_may_live_anywhere(tmp_path: Path, cli: t.Any) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev_cpu.json": values(20)}})
    make_result(root, root / "out", "a", "cpu", values(20, scale=1.01))
    make_result(root, root / "out2", "a", "cpu", values(20, scale=1.02))
    elsewhere = tmp_path / "elsewhere" / "metrics.jsonl"
    elsewhere.parent.mkdir()
    elsewhere.write_text("".join(f'{{"step": {k}, "lm loss": {k}.5}}\n' for k in range(1, 21)))
    refused = cli("update", "out", "out2", "--actual", elsewhere, cwd=root)
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        2, "", "ci-golden update: error: --actual needs exactly one result, got 2\n"
    )  # fmt: skip
    done = cli("update", "out", "--actual", elsewhere, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    new = load_golden(root / "cases/a/golden_values_dev_cpu.json")
    assert new.metrics["lm loss"].as_dict() == {k: k + 0.5 for k in range(1, 21)}


def test_dry_run_and_selection_flags(demo_repo: Path, tmp_path: Path, cli: t.Any) -> None:
    config = demo_repo / "test_cases/demo/regular/model_config.yaml"
    config.write_text(config.read_text().replace("--lr: 3.0e-3", "--lr: 4.0e-3"))
    git(demo_repo, "commit", "-qam", "raise the learning rate")
    assert run_demo(cli, demo_repo, "demo/regular", tmp_path / "runs" / "regular").returncode == 1
    assert (
        run_demo(cli, demo_repo, "demo/nondeterministic", tmp_path / "runs" / "nondet").returncode
        == 0
    )

    dry = cli("update", tmp_path / "runs", "--dry-run", cwd=demo_repo)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("Golden values would be updated: 2 file(s)\n")
    assert git(demo_repo, "status", "--porcelain") == ""

    failing = cli("update", tmp_path / "runs", "--only-failing", "--dry-run", cwd=demo_repo)
    assert failing.stdout.startswith(
        "Golden values would be updated: 1 file(s)\n"
        "  test_cases/demo/regular/golden_values_dev_cpu.json\n"
    )

    only_case = cli("update", tmp_path / "runs", "--case", "demo/non*", cwd=demo_repo)
    assert only_case.returncode == 0
    assert (
        git(demo_repo, "status", "--porcelain")
        == " M test_cases/demo/nondeterministic/golden_values_dev_cpu.json\n"
    )

    none = cli("update", tmp_path / "runs", "--only-drift", cwd=demo_repo)
    assert (none.returncode, none.stdout) == (2, "")
    assert none.stderr == (
        f"ci-golden update: error: {tmp_path / 'runs'}: no result matches the selection "
        "(--only-failing, --only-drift, --case)\n"
    )


# --- synthetic projects: results built by the real comparison engine ----------------------


def values(n: int, scale: float = 1.0, metrics: t.Sequence[str] = ("lm loss",)) -> GoldenValues:
    steps = {s: scale * (10.0 - s * 1e-3) for s in range(1, n + 1)}
    return GoldenValues(
        layout="current",
        metrics={m: MetricSeries.from_mapping(m, steps, step_interval=1) for m in metrics},
    )


def project(
    tmp_path: Path, cases: t.Mapping[str, t.Mapping[str, GoldenValues]], train_iters: int = 20
) -> Path:
    (tmp_path / "ci_golden.yaml").write_text(CONFIG)
    for case, goldens in cases.items():
        folder = tmp_path / "cases" / case
        folder.mkdir(parents=True)
        (folder / "model_config.yaml").write_text(f"MODEL_ARGS:\n  --train-iters: {train_iters}\n")
        for name, golden in goldens.items():
            write_golden(folder / name, golden)
    return tmp_path


def make_result(
    root: Path,
    out: Path,
    case: str,
    platform: str,
    actual: GoldenValues | None,
    error: str | None = None,
) -> Path:
    config = load_config(root / "ci_golden.yaml")
    test_case = discover(config).case(case)
    golden_path = test_case.golden_for("dev", platform)
    policies, gated = resolve_policies(config, test_case)
    out.mkdir(parents=True)
    name = None
    if actual is not None:
        name = f"golden_values_dev_{platform}.json"
        write_golden(out / name, actual)
    result = compare_job(
        Job(case, "dev", platform, golden_path),
        load_golden(golden_path) if golden_path else None, actual,
        policies=policies, gated=gated, nondeterministic=False, actual_path=name, root=root,
        error=error,
    )  # fmt: skip
    write_result(out / "result.json", result)
    return out / "result.json"


def test_a_shared_golden_read_by_another_job_is_left_to_it(tmp_path: Path, cli: t.Any) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev.json": values(20)}})
    shared = (root / "cases/a/golden_values_dev.json").read_bytes()
    make_result(root, root / "out", "a", "cpu", values(20, scale=1.1))
    result = cli("update", "out", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Golden values updated: 1 file(s)",
        "  cases/a/golden_values_dev_cpu.json (created)",
        "    a [dev, cpu], verdict fail, from out/result.json",
        "    note: golden_values_dev.json is also read by dev/arm:"
        " writing golden_values_dev_cpu.json so their golden stays",
        "    lm loss: changed, mean rel diff +10%, max abs diff 0.9999, 20/20 steps changed",
    ]
    assert (root / "cases/a/golden_values_dev.json").read_bytes() == shared
    assert load_golden(root / "cases/a/golden_values_dev_cpu.json").same_as(
        load_golden(root / "out/golden_values_dev_cpu.json")
    )


def test_results_that_cannot_be_applied_are_listed_and_the_rest_written(
    tmp_path: Path, cli: t.Any
) -> None:
    root = project(
        tmp_path,
        {
            "crashed": {"golden_values_dev_cpu.json": values(20)},
            "fewer": {"golden_values_dev_cpu.json": values(20, metrics=("lm loss", "num-zeros"))},
            "longer": {"golden_values_dev_cpu.json": values(20)},
            "good": {"golden_values_dev_cpu.json": values(20)},
        },
    )
    before = {p: p.read_bytes() for p in (root / "cases").rglob("golden_values*.json")}
    make_result(
        root, root / "out/crashed", "crashed", "cpu", None, error="phase1 exited with code 137"
    )
    make_result(root, root / "out/fewer", "fewer", "cpu", values(20, scale=1.01))
    make_result(root, root / "out/longer", "longer", "cpu", values(30, scale=1.01))
    make_result(root, root / "out/good", "good", "cpu", values(20, scale=1.01))
    result = cli("update", "out", cwd=root)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[-3:] == [
        "Not updated: 2 result(s)",
        "  crashed [dev, cpu] from out/crashed/result.json: the run failed "
        "(verdict error: phase1 exited with code 137); its values are no golden",
        "  fewer [dev, cpu] from out/fewer/result.json: "
        "the run logged no 'num-zeros'; refusing to drop it from the golden",
    ]
    after = {p: p.read_bytes() for p in (root / "cases").rglob("golden_values*.json")}
    changed = sorted(p.relative_to(root).as_posix() for p in after if after[p] != before[p])
    # a run longer than its golden refreshes the golden's own steps: the grid stays
    assert changed == [
        "cases/good/golden_values_dev_cpu.json",
        "cases/longer/golden_values_dev_cpu.json",
    ]
    longer = load_golden(root / "cases/longer/golden_values_dev_cpu.json")
    assert longer.metrics["lm loss"].end_step == 20
    assert list((root / "cases").rglob("*.tmp")) == []


def test_a_crafted_result_cannot_write_outside_its_case(tmp_path: Path, cli: t.Any) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev_cpu.json": values(20)}})
    path = make_result(root, root / "out/a", "a", "cpu", values(20, scale=1.5))
    text = path.read_text()
    path.write_text(
        text.replace(
            '"actual": "golden_values_dev_cpu.json"',
            '"actual": "../../cases/a/golden_values_dev_cpu.json"',
        )
    )
    escaped = cli("update", "out", cwd=root)
    assert escaped.returncode == 1
    assert (
        "from out/a/result.json: actual values path "
        "'../../cases/a/golden_values_dev_cpu.json' leaves the result's folder; "
        "to use it, pass it explicitly: --actual FILE" in escaped.stdout
    )

    path.write_text(text.replace('"case": "a"', '"case": "../../etc"'))
    unknown = cli("update", "out", cwd=root)
    assert unknown.returncode == 1
    assert f"{root}/cases: no test case '../../etc'" in unknown.stdout
    assert load_golden(root / "cases/a/golden_values_dev_cpu.json").same_as(values(20))


def test_two_results_for_one_golden_are_both_refused(tmp_path: Path, cli: t.Any) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev_cpu.json": values(20)}})
    make_result(root, root / "out/1", "a", "cpu", values(20, scale=1.5))
    make_result(root, root / "out/2", "a", "cpu", values(20, scale=2.0))
    result = cli("update", "out", cwd=root)
    assert result.returncode == 1
    assert result.stdout.count("2 results update this file") == 2
    assert load_golden(root / "cases/a/golden_values_dev_cpu.json").same_as(values(20))


def test_a_summary_that_cannot_be_written_is_refused_before_any_golden(
    tmp_path: Path, cli: t.Any
) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev_cpu.json": values(20)}})
    make_result(root, root / "out", "a", "cpu", values(20, scale=1.5))
    (root / "notes.md").write_text("notes\n")
    for summary, reason in (("notes.md/x", "notes.md is not a folder"), ("cases", "is a folder")):
        refused = cli("update", "out", "--summary", summary, cwd=root)
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr == f"ci-golden update: error: {summary}: {reason}\n"
        assert load_golden(root / "cases/a/golden_values_dev_cpu.json").same_as(values(20))
    assert (root / "notes.md").read_text() == "notes\n"
    assert sorted(p.name for p in root.rglob(".*.tmp")) == []

    written = cli("update", "out", "--summary", "new/folder/summary.md", cwd=root)
    assert written.returncode == 0, written.stderr
    assert (
        (root / "new/folder/summary.md")
        .read_text()
        .startswith("## Golden values updated: 1 file(s)\n")
    )
    assert load_golden(root / "cases/a/golden_values_dev_cpu.json").same_as(values(20, scale=1.5))
    assert sorted(p.name for p in root.rglob(".*.tmp")) == []


def test_refreshed_goldens_keep_their_mode_and_a_new_summary_gets_the_usual_one(
    tmp_path: Path, cli: t.Any
) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev_cpu.json": values(20)}})
    make_result(root, root / "out", "a", "cpu", values(20, scale=1.5))
    golden = root / "cases/a/golden_values_dev_cpu.json"
    golden.chmod(0o640)
    written = cli("update", "out", "--summary", "summary.md", cwd=root)
    assert written.returncode == 0, written.stderr
    assert load_golden(golden).same_as(values(20, scale=1.5))
    assert oct(golden.stat().st_mode & 0o777) == oct(0o640)
    umask = os.umask(0o022)
    os.umask(umask)
    assert oct((root / "summary.md").stat().st_mode & 0o777) == oct(0o666 & ~umask)


def test_a_summary_not_written_leaves_no_temp_file_and_no_folder(tmp_path: Path) -> None:
    from ci_golden.project.files import PendingFile

    pending = PendingFile(tmp_path / "new" / "folder" / "summary.md")
    assert [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*"))][:2] == [
        "new",
        "new/folder",
    ]
    pending.discard()
    assert list(tmp_path.iterdir()) == []


def test_paths_with_backticks_stay_code_in_the_summary(tmp_path: Path) -> None:
    from ci_golden.lifecycle.update import MetricChange, Update, render_summary

    def update(target: str, result: str, **kw: t.Any) -> Update:
        return Update(Path(result), "a", "dev", "cpu", "fail", target=Path(target), **kw)

    changed = (MetricChange("lm loss", "changed", 2, 1, 0.5, 1.0),)
    summary = render_summary(
        [
            update(
                "cases/a`b/golden.json", "out/``x``/result.json", text="{}", existed=True,
                changes=changed,
            ),
            update(
                "`lead/golden.json", "out/b/result.json", text="{}",
                changes=(MetricChange("lm loss", "unchanged", 2, 0),),
            ),
            update("cases/c/golden.json", "out/c\nd`/result.json", problem="no actual values"),
        ],
        dry_run=False,
    )  # fmt: skip
    lines = summary.splitlines()
    assert lines[2] == "### ``cases/a`b/golden.json``"
    assert lines[4] == "a \\[dev, cpu\\], verdict **fail**, from ```out/``x``/result.json```"
    assert "Unchanged (1): `` `lead/golden.json ``" in lines
    assert lines[-1] == "- a \\[dev, cpu\\] from ``out/c d`/result.json``: no actual values"


def test_sigkill_in_the_middle_leaves_every_golden_old_or_new_and_valid(
    tmp_path: Path, repo_root: Path
) -> None:
    n_cases, n_steps = 40, 5000
    cases = {f"c{i:03d}": {"golden_values_dev_cpu.json": values(n_steps)} for i in range(n_cases)}
    root = project(tmp_path, cases, train_iters=n_steps)
    old = {
        case: (root / "cases" / case / "golden_values_dev_cpu.json").read_bytes() for case in cases
    }
    new_values = values(n_steps, scale=1.25)
    for case in cases:
        make_result(root, root / "out" / case, case, "cpu", new_values)
    first = root / "cases" / "c000" / "golden_values_dev_cpu.json"
    inode = first.stat().st_ino

    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_golden", "update", "out"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while first.stat().st_ino == inode:
            assert proc.poll() is None, (
                f"update ended before the first file was replaced: {proc.stderr.read()!r}"
            )  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL

    states = {}
    for case in cases:
        path = root / "cases" / case / "golden_values_dev_cpu.json"
        if path.read_bytes() == old[case]:
            states[case] = "old"
            continue
        assert load_golden(path).same_as(new_values), case
        assert [
            f for f in check_golden_file(path, run=(n_steps, "--train-iters"))[1] if f.is_error
        ] == []
        states[case] = "new"
    assert states["c000"] == "new"
    assert states[f"c{n_cases - 1:03d}"] == "old", (
        "the kill came after the last file: nothing was interrupted"
    )
    order = [states[c] for c in sorted(cases)]
    assert order == sorted(order, key=lambda s: s == "old")  # written in order: new ones first
    assert [
        p.name
        for p in (root / "cases").rglob("golden_values*.json")
        if not p.name.endswith(".json")
    ] == []

    again = subprocess.run(
        [sys.executable, "-m", "ci_golden", "update", "out"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert list((root / "cases").rglob("*.tmp")) == []  # whatever the kill left is gone
    for line in again.stderr.splitlines():
        assert line.endswith(".tmp, left by an interrupted update"), line


def test_temp_files_of_an_interrupted_update_are_removed_and_said(
    tmp_path: Path, cli: t.Any
) -> None:
    root = project(tmp_path, {"a": {"golden_values_dev_cpu.json": values(20)}})
    folder = root / "cases" / "a"
    stale = folder / ".golden_values_dev_cpu.json.k1ll3d00.tmp"  # a writer killed mid-write
    stale.write_text('{"lm lo')
    live = folder / ".golden_values_dev_cpu.json.w0rk1ng0.tmp"  # a writer still at work
    live.write_text("")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
         str(live)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        make_result(root, root / "out", "a", "cpu", values(20, scale=1.1))
        res = cli("update", "out", cwd=root)
    finally:
        holder.communicate("")
    assert res.returncode == 0, res.stderr
    assert res.stderr == (
        "ci-golden update: removed cases/a/.golden_values_dev_cpu.json.k1ll3d00.tmp, "
        "left by an interrupted update\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == [live.name, "golden_values_dev_cpu.json",
                                                         "model_config.yaml"]  # fmt: skip
    assert load_golden(folder / "golden_values_dev_cpu.json").same_as(values(20, scale=1.1))
