"""validate.baseline (the baseline file and the config's rules) and the GitHub step summary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ci_golden.errors import InputError
from ci_golden.project.config import ValidateSettings
from ci_golden.validate.baseline import (
    apply_baseline,
    apply_settings,
    entry_for,
    read_baseline,
    render_baseline,
)
from ci_golden.validate.engine import ValidationResult
from ci_golden.validate.findings import BaselineEntry, Finding
from ci_golden.validate.render import render_step_summary, render_text


def _f(path: str, code: str = "CG104", line: int | None = 1, where: str | None = "$") -> Finding:
    return Finding(code, "error", path, where, line, "empty object {}: no metric to compare")


def test_an_entry_is_relative_to_the_config_folder_and_hashes_the_message(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    inside = entry_for(_f(str(root / "cases/a/g.json")), root)
    assert (inside.file, inside.code, inside.location) == ("cases/a/g.json", "CG104", "$")
    assert len(inside.message_hash) == 16
    moved = entry_for(_f(str(tmp_path / "elsewhere/cases/a/g.json")), tmp_path / "elsewhere")
    assert moved == inside
    naming_root = Finding("CG143", "error", str(root / "x.json"), None, 7, f"see {root}/x.json")
    other = Finding("CG143", "error", "/o/x.json", None, 7, "see /o/x.json")
    assert entry_for(naming_root, root) == entry_for(other, Path("/o"))
    assert entry_for(naming_root, root).location == "line 7"


def test_the_file_is_sorted_stable_and_reads_back(tmp_path: Path) -> None:
    findings = [
        _f(str(tmp_path / "b.json")),
        _f(str(tmp_path / "a.json")),
        _f(str(tmp_path / "a.json")),
    ]
    text = render_baseline(findings, tmp_path)
    assert text == render_baseline(list(reversed(findings)), tmp_path)
    assert text.splitlines()[4].startswith('    {"code": "CG104", "file": "a.json", ')
    path = tmp_path / ".ci-golden-baseline.json"
    path.write_text(text)
    assert read_baseline(path) == Counter(entry_for(f, tmp_path) for f in findings)
    assert read_baseline(tmp_path / "absent.json") is None
    path.write_text(render_baseline([], tmp_path))
    assert read_baseline(path) == Counter()
    path.write_text('{"version": 1, "findings": [{"code": 1, "file": "", "location": "", '
                    '"message_hash": ""}]}')  # fmt: skip
    with pytest.raises(InputError, match=r"::\$\.findings\[0\]: every value must be a string$"):
        read_baseline(path)


def test_each_entry_accepts_one_finding_and_fixed_ones_are_those_checked(tmp_path: Path) -> None:
    a, b = _f(str(tmp_path / "a.json")), _f(str(tmp_path / "b.json"))
    baseline = Counter([entry_for(a, tmp_path), entry_for(b, tmp_path)])
    result = apply_baseline(ValidationResult((a, a), 2, 1), baseline, tmp_path)
    assert (result.findings, result.baselined) == ((a,), (a,))  # the same finding twice: 1 new
    assert result.fixed == (entry_for(b, tmp_path),)
    assert result.exit_code() == 1
    partial = apply_baseline(ValidationResult((a,), 1, 1), baseline, tmp_path, "a.json".__eq__)
    assert (partial.findings, partial.baselined, partial.fixed) == ((), (a,), ())
    assert partial.exit_code(strict=True) == 0
    assert render_text(result).splitlines() == [
        f"{a.path}:1: CG104 error: $: empty object {{}}: no metric to compare",
        f"{a.path}:1: CG104 error (baselined): $: empty object {{}}: no metric to compare",
        "b.json: CG104 fixed ($): in the baseline, no longer found",
        "1 errors, 0 warnings; 1 baselined, 1 fixed (--write-baseline drops them) "
        "(2 files in 1 cases checked)",
    ]


def test_the_config_rules_ignore_exclude_and_change_severity(tmp_path: Path) -> None:
    findings = (
        _f(str(tmp_path / "cases/old/g.json")),
        _f(str(tmp_path / "cases/new/g.json"), code="CG111"),
        _f(str(tmp_path / "cases/new/h.json"), code="CG133"),
    )
    settings = ValidateSettings(
        ignore=frozenset({"CG133"}), severity={"CG111": "warning"}, exclude=("cases/old/**",)
    )
    result = apply_settings(ValidationResult(findings, 3, 2), settings, tmp_path)
    assert [(f.code, f.severity) for f in result.findings] == [("CG111", "warning")]
    assert result.suppressed == 2 and result.exit_code() == 0


def test_the_step_summary_escapes_every_path_and_is_cut_to_its_limit() -> None:
    hostile = Finding("CG110", "error", "<img src=x>@team/_g.json", "$", 2, "| `x` [a](b)")
    many = tuple(
        Finding("CG104", "error", f"cases/c{i:04d}/g.json", "$", 1, "empty") for i in range(3000)
    )
    result = ValidationResult(
        (hostile, *many), 3001, 3001, fixed=(BaselineEntry("f", "CG101", "", "h"),)
    )
    text = render_step_summary(result)
    assert "<img" not in text and "@team" not in text and "`x`" not in text
    assert (
        "- &lt;img src=x&gt;@\u200bteam/&#95;g.json:2: &#36;: &#124; &#96;x&#96; &#91;a&#93;(b)\n"
        in text
    )
    assert (
        "| CG101 | error | 0 | 0 | 1 | golden file is empty (zero bytes or only whitespace) |"
        in text
    )
    small = render_step_summary(result, limit=20_000)
    assert len(small.encode()) <= 20_000
    assert small.startswith(text[: text.index("<details>")])  # the table is never cut
    listed = small.count("\n- ")
    assert 100 < listed < 3000
    assert small.endswith(
        f"_{3002 - listed} more findings are not listed, to fit the summary; the job log has "
        "them all._\n"
    )
    assert small.count("<details>") == small.count("</details>") == 1
