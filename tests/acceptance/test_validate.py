"""``ci-golden validate`` end to end: real trees, real subprocesses, real git."""

from __future__ import annotations

import json
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest

from ci_golden.validate.engine import ValidationResult
from ci_golden.validate.findings import Finding
from ci_golden.validate.render import (
    escape_data,
    escape_property,
    render_github,
    render_json,
    render_text,
)

INVALID = Path(__file__).parents[1] / "data" / "invalid"
GOLDEN = "golden_values_dev_dgx_h100.json"


def make_tree(tmp_path: Path, *names: str) -> Path:
    """A test-case root holding the ``case`` folder of each named bad input, as ``<name>``."""
    root = tmp_path / "cases"
    for name in names:
        shutil.copytree(INVALID / name / "case", root / name)
    return root


def test_text_output_and_exit_code(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "steps_off_grid", "second_phase_golden")
    res = cli("--test-cases", "cases", "validate", cwd=tmp_path)
    assert res.stdout.splitlines() == [
        "cases/second_phase_golden/golden_values_dev_dgx_h100_2nd.json: CG133 warning: "
        "unreferenced: second-phase golden of a resume run; no job reads it",
        f"cases/steps_off_grid/{GOLDEN}:9: CG111 error: "
        '$["lm loss"].values["7"]: step 7 is off the grid of start_step 1 and step_interval 5',
        "1 errors, 1 warnings (5 files in 2 cases checked)",
    ]
    assert res.stderr == ""
    assert res.returncode == 1


def test_warnings_pass_unless_strict(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "legacy_layout")
    plain = cli("--test-cases", "cases", "validate", cwd=tmp_path)
    strict = cli("--test-cases", "cases", "validate", "--strict", cwd=tmp_path)
    assert (plain.returncode, strict.returncode) == (0, 1)
    assert plain.stdout == strict.stdout
    assert plain.stdout.splitlines()[-1] == "0 errors, 1 warnings (2 files in 1 cases checked)"


def test_clean_tree(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = tmp_path / "cases"
    shutil.copytree(INVALID.parent / "valid" / "inference_requests" / "case", root / "inference")
    res = cli("--test-cases", "cases", "validate", "--strict", cwd=tmp_path)
    assert (res.returncode, res.stdout) == (0, "ok: 2 files in 1 cases checked, no problem found\n")


def test_github_format(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "misspelt_block_key", "old_cluster_name")
    res = cli("--test-cases", "cases", "validate", "--format", "github", cwd=tmp_path)
    assert res.stdout.splitlines() == [
        f"::error file=cases/misspelt_block_key/{GOLDEN},line=2,title=CG110::"
        '$["lm loss"]: unknown key "step_intervall" (did you mean \'step_interval\'?)',
        f"::error file=cases/misspelt_block_key/{GOLDEN},line=2,title=CG110::"
        '$["lm loss"]: object lacks the required key "step_interval"',
        "::warning file=cases/old_cluster_name/golden_values_lts_dgxa100_dracooci.json,"
        "title=CG134::"
        "unreferenced: unknown platform 'dgxa100_dracooci' (an old cluster name?)",
        "2 errors, 1 warnings (5 files in 2 cases checked)",
    ]
    assert res.returncode == 1


def test_json_format(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "empty_object")
    res = cli("--test-cases", "cases", "validate", "--format", "json", cwd=tmp_path)
    doc = json.loads(res.stdout)
    assert doc["summary"] == {
        "errors": 1,
        "warnings": 0,
        "files": 2,
        "cases": 1,
        "baselined": 0,
        "fixed": 0,
        "suppressed": 0,
    }
    assert (doc["baselined"], doc["fixed"]) == ([], [])
    assert doc["findings"] == [
        {
            "code": "CG104",
            "severity": "error",
            "path": f"cases/empty_object/{GOLDEN}",
            "where": "$",
            "line": 1,
            "message": "empty object {}: no metric to compare",
        }
    ]
    assert doc["codes"]["CG104"]["severity"] == "error"
    assert res.returncode == 1


def test_paths_restrict_the_findings(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "empty_object", "nan_literal", "zero_byte_file")
    res = cli(
        "--test-cases",
        "cases",
        "validate",
        f"cases/nan_literal/{GOLDEN}",
        "cases/zero_byte_file",
        cwd=tmp_path,
    )
    assert res.stdout.splitlines() == [
        f'cases/nan_literal/{GOLDEN}:8: CG106 error: NaN is not valid JSON; write the string "nan"',
        f"cases/zero_byte_file/{GOLDEN}: CG101 error: zero-byte file: expected a JSON object",
        "2 errors, 0 warnings (4 files in 2 cases checked)",
    ]
    assert res.returncode == 1


def test_model_config_change_keeps_findings_it_causes(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    make_tree(tmp_path, "end_step_past_run")
    res = cli(
        "--test-cases",
        "cases",
        "validate",
        "cases/end_step_past_run/model_config.yaml",
        cwd=tmp_path,
    )
    assert [line.split(": ")[1] for line in res.stdout.splitlines()[:-1]] == ["CG113 error"]


def test_a_file_outside_the_tree_is_checked_on_its_own(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    make_tree(tmp_path, "legacy_layout")
    loose = tmp_path / "golden_values.json"
    loose.write_text(
        '{"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": "x"}}}'
    )
    res = cli("--test-cases", "cases", "validate", "golden_values.json", cwd=tmp_path)
    assert res.stdout.splitlines() == [
        'golden_values.json:1: CG110 error: $["lm loss"].values["1"]: '
        '"x" is a string other than "nan" (write numbers unquoted)',
        "1 errors, 0 warnings (1 files in 0 cases checked)",
    ]
    assert res.returncode == 1


def test_missing_path_is_a_usage_error(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "legacy_layout")
    res = cli("--test-cases", "cases", "validate", "nope.json", cwd=tmp_path)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == "ci-golden validate: error: nope.json: no such file or folder\n"


def test_a_path_validate_would_not_check_is_a_usage_error(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    make_tree(tmp_path, "legacy_layout")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "notes.txt").write_text("not a golden\n")
    folder = cli("--test-cases", "cases", "validate", "elsewhere", cwd=tmp_path)
    other = cli("--test-cases", "cases", "validate", "notes.txt", cwd=tmp_path)
    assert (folder.returncode, folder.stdout, other.returncode, other.stdout) == (2, "", 2, "")
    assert folder.stderr == (
        "ci-golden validate: error: elsewhere: folder outside the test-case root "
        f"{tmp_path / 'cases'}; pass --test-cases to check it\n"
    )
    assert other.stderr == (
        "ci-golden validate: error: notes.txt: not a golden_values*.json, model_config.yaml"
        " or the project config\n"
    )


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_changed_since(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    root = make_tree(tmp_path, "empty_object", "nan_literal", "legacy_layout")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    (root / "legacy_layout" / "model_config.yaml").write_text("METRICS: [lm loss]\n")  # changed
    (root / "nan_literal" / "golden_values_dev_dgx_a100.json").write_text("{}")  # untracked
    res = cli("--test-cases", "cases", "validate", "--changed-since", "HEAD", cwd=tmp_path)
    assert res.stdout.splitlines() == [
        "cases/nan_literal/golden_values_dev_dgx_a100.json:1: CG104 error: "
        "$: empty object {}: no metric to compare",
        "1 errors, 0 warnings (5 files in 2 cases checked)",
    ]
    assert res.returncode == 1
    bad = cli("--test-cases", "cases", "validate", "--changed-since", "no-such-ref", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr == (
        "ci-golden validate: error: --changed-since: git cannot compare with 'no-such-ref': "
        "fatal: Not a valid object name no-such-ref "
        "(in CI, fetch the history: fetch-depth: 0 / GIT_DEPTH: 0)\n"
    )


def test_changed_since_ignores_files_changed_only_on_the_base(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    """A PR checks what it changed since it left the base, not what the base changed since."""
    root = make_tree(tmp_path, "empty_object", "legacy_layout")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    _git(tmp_path, "checkout", "-q", "-b", "topic")
    (root / "legacy_layout" / "model_config.yaml").write_text("METRICS: [lm loss]\n")
    _git(tmp_path, "commit", "-q", "-am", "topic changes legacy_layout")
    _git(tmp_path, "checkout", "-q", "main")
    (root / "empty_object" / GOLDEN).write_text('{"lm loss": {}}')
    _git(tmp_path, "commit", "-q", "-am", "main moves on: empty_object")
    _git(tmp_path, "checkout", "-q", "topic")
    res = cli("--test-cases", "cases", "validate", "--changed-since", "main", cwd=tmp_path)
    assert (res.returncode, res.stderr, res.stdout.splitlines()) == (
        0,
        "",
        ["ok: 2 files in 1 cases checked, no problem found"],
    )


def test_changed_since_outside_git(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    make_tree(tmp_path, "legacy_layout")
    res = cli(
        "--test-cases",
        "cases",
        "validate",
        "--changed-since",
        "HEAD",
        cwd=tmp_path,
        env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )
    assert res.returncode == 2
    assert res.stderr.startswith(
        "ci-golden validate: error: --changed-since: git cannot compare with 'HEAD':"
        " fatal: not a git repository"
    )


def test_the_repository_tree(repo_root: Path, cli: t.Callable[..., t.Any]) -> None:
    res = cli("validate", cwd=repo_root)
    assert res.returncode == 0, res.stdout
    assert (
        "test_cases/gpt/gpt3_mcore_te_tp1_pp4_resume_torch_dist_untie_embeddings_and_outputs/"
        "golden_values_lts.json: "
        "CG132 warning: unreferenced: shadowed: every lts job has a more specific golden"
    ) in res.stdout.splitlines()


# --- renderers, on hand-built results --------------------------------------------------------

TRICKY = Finding("CG110", "error", "a,b:c%.json", '$["x"]', 3, "50% off\nnext\r line, a: b")


def test_github_escaping() -> None:
    assert escape_data("a%b\r\nc:d,e") == "a%25b%0D%0Ac:d,e"
    assert escape_property("a%b\r\nc:d,e") == "a%25b%0D%0Ac%3Ad%2Ce"
    out = render_github(ValidationResult((TRICKY,), 1, 1))
    assert out.splitlines()[0] == (
        '::error file=a%2Cb%3Ac%25.json,line=3,title=CG110::$["x"]: 50%25 off%0Anext%0D line, a: b'
    )


def test_text_and_json_renderers() -> None:
    warning = Finding("CG120", "warning", "g.json", None, None, "legacy")
    result = ValidationResult((TRICKY, warning), 2, 1)
    assert render_text(result).splitlines() == [
        'a,b:c%.json:3: CG110 error: $["x"]: 50% off\\nnext\\r line, a: b',
        "g.json: CG120 warning: legacy",
        "1 errors, 1 warnings (2 files in 1 cases checked)",
    ]
    assert json.loads(render_json(result))["findings"][1] == {
        "code": "CG120",
        "severity": "warning",
        "path": "g.json",
        "where": None,
        "line": None,
        "message": "legacy",
    }
    assert (result.exit_code(), result.exit_code(strict=True)) == (1, 1)
    only_warning = ValidationResult((warning,), 1, 1)
    assert (only_warning.exit_code(), only_warning.exit_code(strict=True)) == (0, 1)


@pytest.mark.parametrize("fmt", ["text", "github", "json"])
def test_no_traceback_on_every_bad_input(
    tmp_path: Path, cli: t.Callable[..., t.Any], fmt: str
) -> None:
    root = tmp_path / "cases"
    for d in sorted(INVALID.iterdir()):
        shutil.copytree(d, root / d.name, symlinks=True)
    res = cli("--test-cases", "cases", "validate", "--format", fmt, cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr == ""
    assert "Traceback" not in res.stdout


def test_pre_commit_hook_definition(
    repo_root: Path, tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    import re

    import yaml

    (hook,) = yaml.safe_load((repo_root / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["entry"], hook["pass_filenames"]) == (
        "ci-golden-validate",
        "ci-golden validate",
        True,
    )
    files = re.compile(hook["files"])
    names = [
        "cases/a/golden_values_dev_dgx_h100.json",
        "golden_values.json",
        "cases/a/model_config.yaml",
        "ci_golden.yaml",
        "cases/a/notes.json",
        "cases/a/model_config.yaml.orig",
        "golden_values/x.txt",
    ]
    assert [n for n in names if files.search(n)] == names[:4]
    # what pre-commit runs: the entry with the staged file names
    make_tree(tmp_path, "nan_literal", "legacy_layout")
    staged = [f"cases/nan_literal/{GOLDEN}", "cases/legacy_layout/model_config.yaml"]
    res = cli("--test-cases", "cases", *hook["entry"].split()[1:], *staged, cwd=tmp_path)
    assert res.returncode == 1
    assert res.stdout.splitlines()[-1] == "1 errors, 0 warnings (4 files in 2 cases checked)"


# ---- accepting today's findings: the baseline and the config's rules ------------------------


def test_a_baseline_accepts_todays_findings_and_fails_only_new_ones(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    make_tree(tmp_path, "steps_off_grid", "empty_object", "second_phase_golden")
    run = lambda *a: cli("--test-cases", "cases", "validate", *a, cwd=tmp_path)  # noqa: E731
    assert run().returncode == 1
    wrote = run("--write-baseline")
    assert wrote.returncode == 0
    assert wrote.stderr == "ci-golden validate: wrote .ci-golden-baseline.json: 3 findings\n"
    baseline = (tmp_path / ".ci-golden-baseline.json").read_text()
    assert json.loads(baseline)["findings"] == [
        {
            "code": "CG104",
            "file": f"cases/empty_object/{GOLDEN}",
            "location": "$",
            "message_hash": json.loads(baseline)["findings"][0]["message_hash"],
        },
        *json.loads(baseline)["findings"][1:],
    ]
    assert [e["code"] for e in json.loads(baseline)["findings"]] == ["CG104", "CG133", "CG111"]
    accepted = run()
    assert accepted.returncode == 0
    assert accepted.stdout.splitlines() == [
        f"cases/empty_object/{GOLDEN}:1: CG104 error (baselined): $: empty object {{}}: "
        "no metric to compare",
        "cases/second_phase_golden/golden_values_dev_dgx_h100_2nd.json: CG133 warning "
        "(baselined): unreferenced: second-phase golden of a resume run; no job reads it",
        f"cases/steps_off_grid/{GOLDEN}:9: CG111 error (baselined): "
        '$["lm loss"].values["7"]: step 7 is off the grid of start_step 1 and step_interval 5',
        "ok: 7 files in 3 cases checked, no new problem found; 3 baselined",
    ]
    assert run("--strict").returncode == 0  # a baselined warning does not fail either
    # a new problem fails; a fixed one is reported, and --write-baseline drops it
    (tmp_path / f"cases/empty_object/{GOLDEN}").write_text(
        (INVALID / "steps_off_grid/case" / GOLDEN).read_text()
    )
    changed = run()
    assert changed.returncode == 1
    assert changed.stdout.splitlines()[0] == (
        f"cases/empty_object/{GOLDEN}:9: CG111 error: "
        '$["lm loss"].values["7"]: step 7 is off the grid of start_step 1 and step_interval 5'
    )
    assert changed.stdout.splitlines()[-2:] == [
        f"cases/empty_object/{GOLDEN}: CG104 fixed ($): in the baseline, no longer found",
        "1 errors, 0 warnings; 2 baselined, 1 fixed (--write-baseline drops them) "
        "(7 files in 3 cases checked)",
    ]
    rewrote = run("--write-baseline")
    assert rewrote.stderr == (
        "ci-golden validate: wrote .ci-golden-baseline.json: 3 findings, 1 fixed ones dropped\n"
    )
    assert run().returncode == 0


def test_the_baseline_is_the_same_wherever_the_tree_is_checked_out(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    texts = []
    for where in ("one", "two/deeper"):
        work = tmp_path / where
        work.mkdir(parents=True)
        make_tree(work, "steps_off_grid", "goldens_without_model_config", "old_cluster_name")
        r = cli("--test-cases", "cases", "validate", "--write-baseline", cwd=work)
        assert r.returncode == 0, r.stderr
        texts.append((work / ".ci-golden-baseline.json").read_text())
        r = cli("validate", "--test-cases", work / "cases", cwd=tmp_path)
        assert r.returncode == 1  # the baseline lies beside the config (here: the folder run in)
        r = cli("--config", work / "ci_golden.yaml", "validate", cwd=tmp_path)
        assert r.returncode == 2  # no such config: named, not a silent pass
    assert texts[0] == texts[1]
    assert "/tmp" not in texts[0] and str(tmp_path) not in texts[0]


def test_write_baseline_needs_the_whole_tree_and_a_bad_baseline_is_exit_2(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    make_tree(tmp_path, "empty_object")
    r = cli("--test-cases", "cases", "validate", "--write-baseline", "cases", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden validate: error: --write-baseline records the findings of the whole tree: "
        "drop the PATHs and --changed-since\n",
    )
    assert not (tmp_path / ".ci-golden-baseline.json").exists()
    for text, message in (
        ("{", "::line 1 column 2: not JSON: Expecting property name enclosed in double quotes"),
        ('{"version": 7, "findings": []}', "::$.version: not a ci-golden baseline of version 1; "
         "rewrite it with `ci-golden validate --write-baseline`"),
        ('{"version": 1, "findings": [{"code": "CG104"}]}', "::$.findings[0]: expected an object "
         "with code, file, location, message_hash"),
    ):  # fmt: skip
        (tmp_path / ".ci-golden-baseline.json").write_text(text)
        for args in ((), ("--write-baseline",)):
            r = cli("--test-cases", "cases", "validate", *args, cwd=tmp_path)
            assert (r.returncode, r.stdout, r.stderr) == (
                2,
                "",
                f"ci-golden validate: error: {tmp_path / '.ci-golden-baseline.json'}{message}\n",
            )
        assert (tmp_path / ".ci-golden-baseline.json").read_text() == text


def test_the_config_ignores_codes_changes_severities_and_excludes_files(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    make_tree(tmp_path, "steps_off_grid", "second_phase_golden", "old_cluster_name", "empty_object")
    (tmp_path / "ci_golden.yaml").write_text(
        "test_cases: cases\n"
        "validate:\n"
        "  ignore: [CG133]\n"
        "  severity: {CG111: warning, CG134: error}\n"
        "  exclude: ['cases/empty_*/**']\n"
        "  baseline: ci/accepted.json\n"
    )
    r = cli("validate", cwd=tmp_path)
    assert r.stdout.splitlines() == [
        "cases/old_cluster_name/golden_values_lts_dgxa100_dracooci.json: CG134 error: "
        "unreferenced: unknown platform 'dgxa100_dracooci' (an old cluster name?)",
        f"cases/steps_off_grid/{GOLDEN}:9: CG111 warning: "
        '$["lm loss"].values["7"]: step 7 is off the grid of start_step 1 and step_interval 5',
        "1 errors, 1 warnings; 2 suppressed by the config (10 files in 4 cases checked)",
    ]
    assert r.returncode == 1
    r = cli("validate", "--write-baseline", cwd=tmp_path)
    assert r.stderr == "ci-golden validate: wrote ci/accepted.json: 2 findings\n"
    assert cli("validate", "--strict", cwd=tmp_path).returncode == 0


def test_github_format_annotates_errors_first_caps_them_and_summarizes_all(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    root = tmp_path / "cases"
    for i in range(12):
        shutil.copytree(INVALID / "second_phase_golden" / "case", root / f"w{i:02d}")
        shutil.copytree(INVALID / "empty_object" / "case", root / f"x{i:02d}")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    r = cli(
        "--test-cases", "cases", "validate", "--format", "github", cwd=tmp_path,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:20]] == ["::error"] * 10 + ["::warning"] * 10
    assert lines[0].startswith(f"::error file=cases/x00/{GOLDEN},line=1,title=CG104::")
    assert lines[20] == (
        "4 more new findings, not annotated (GitHub shows 10 errors and 10 warnings a step); "
        "the job summary lists them all"
    )
    assert lines[21:25] == [
        f"  cases/x10/{GOLDEN}:1: CG104 error: $: empty object {{}}: no metric to compare",
        f"  cases/x11/{GOLDEN}:1: CG104 error: $: empty object {{}}: no metric to compare",
        "  cases/w10/golden_values_dev_dgx_h100_2nd.json: CG133 warning: unreferenced: "
        "second-phase golden of a resume run; no job reads it",
        "  cases/w11/golden_values_dev_dgx_h100_2nd.json: CG133 warning: unreferenced: "
        "second-phase golden of a resume run; no job reads it",
    ]
    assert lines[25:] == ["12 errors, 12 warnings (60 files in 24 cases checked)"]
    text = summary.read_text()
    assert text.startswith("earlier step\n### ci-golden validate\n\n12 errors, 12 warnings")
    assert (
        "| CG104 | error | 12 | 0 | 0 | golden file is the empty object &#123;&#125;: no metric "
        "to compare |\n"
    ) in text
    assert "<details><summary>CG104 new: 12</summary>" in text
    assert (
        f"- cases/x03/{GOLDEN}:1: &#36;: empty object &#123;&#125;: no metric to compare\n" in text
    )
    assert text.count("- cases/x") == 12 and text.count("- cases/w") == 12


def test_the_readme_lists_every_code(repo_root: Path) -> None:
    from ci_golden.validate.findings import code_table

    assert code_table() in (repo_root / "README.md").read_text()
