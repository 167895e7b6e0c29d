"""The validate stage: a :class:`~ci_golden.goldens.discover.Suite` in, findings out.

Every golden file and model_config.yaml of the selected cases is read once and checked
against its schema (through the fast checks of :mod:`ci_golden.validate.fast`) and against
the rules a schema cannot express: steps on the declared grid, start/end steps matching the
keys, end_step matching the run length, file names the config knows, files no job reads,
METRICS present in the goldens. Nothing here prints; codes are listed in
:mod:`ci_golden.validate.findings`.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass, replace
from pathlib import Path

from ci_golden.errors import ConfigError, InputError
from ci_golden.goldens.discover import (
    MODEL_CONFIG,
    SECOND_PHASE_SUFFIX,
    GoldenName,
    JobSlot,
    Suite,
    TestCase,
    case_jobs,
    close_platform,
    job_slots,
    unreferenced_goldens,
)
from ci_golden.goldens.model import GoldenFormatError, detect_layout, read_json
from ci_golden.goldens.nondeterminism import nondeterminism_ignored
from ci_golden.goldens.testkind import read_kind
from ci_golden.project.config import Config
from ci_golden.project.schema import did_you_mean, json_pointer
from ci_golden.project.yamlio import DuplicateKeyError, Repeat, load_yaml
from ci_golden.validate.fast import classify, model_config_ok, non_string_keys, schema_validator
from ci_golden.validate.findings import BaselineEntry, Finding, finding
from ci_golden.validate.locate import locate, read_text, schema_findings
from ci_golden.validate.semantics import check_current, check_legacy, missing_metrics, run_length

# Findings about one file that depend on the case's model_config.yaml: kept when that changed.
CROSS_FILE_CODES = frozenset({"CG113", "CG114", "CG143", "CG144", "CG145"})
_UNREFERENCED_CODE = {
    "shadowed": "CG132",
    "second-phase": "CG133",
    "unknown-platform": "CG134",
    "not-in-environment": "CG135",
    "not-listed": "CG136",
}


@dataclass(frozen=True)
class Selection:
    """The files and folders findings are restricted to (absolute paths)."""

    files: frozenset[Path] = frozenset()
    folders: tuple[Path, ...] = ()

    @classmethod
    def of(cls, paths: t.Iterable[Path]) -> Selection:
        resolved = [Path(os.path.abspath(p)) for p in paths]
        return cls(
            frozenset(p for p in resolved if not p.is_dir()),
            tuple(p for p in resolved if p.is_dir()),
        )

    def covers(self, path: Path) -> bool:
        return path in self.files or any(f == path or f in path.parents for f in self.folders)

    def touches_case(self, case_path: Path) -> bool:
        return (
            self.covers(case_path)
            or any(f.parent == case_path for f in self.files)
            or any(case_path in f.parents for f in self.folders)
        )


@dataclass(frozen=True)
class ValidationResult:
    """What validate found. ``findings`` fail (errors; with --strict, warnings too);
    ``baselined`` are accepted by the baseline file, ``fixed`` are the baseline's entries no
    longer found, ``suppressed`` counts findings the config's ``validate:`` rules left out."""

    findings: tuple[Finding, ...]
    files: int
    cases: int
    baselined: tuple[Finding, ...] = ()
    fixed: tuple[BaselineEntry, ...] = ()
    suppressed: int = 0

    @property
    def errors(self) -> int:
        return sum(f.is_error for f in self.findings)

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors

    def exit_code(self, *, strict: bool = False) -> int:
        """0 when clean, 1 when an error (or with ``strict`` a warning) was found."""
        return 1 if self.errors or (strict and self.warnings) else 0


def _line(where: str | None) -> int | None:
    """The line of a ``line N[ column M]`` place, else None."""
    return int(where.split()[1]) if where and where.startswith("line ") else None


def _load_model_config(path: Path) -> tuple[dict[str, t.Any] | None, list[Finding]]:
    repeats: list[Repeat] = []
    try:
        data = load_yaml(path, repeats)
    except InputError as e:
        code = "CG146" if isinstance(e, DuplicateKeyError) else "CG140"
        return None, [finding(code, str(path), e.detail, e.where, _line(e.where))]
    notes = [
        finding(
            "CG147",
            str(path),
            f"key {r.key!r} is given on lines {r.first_line} and {r.line} with the same value: "
            "remove one",
            f"line {r.line}",
            r.line,
        )
        for r in repeats
    ]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [
            finding("CG141", str(path), f"must be a mapping, got {type(data).__name__}", "$", 1),
            *notes,
        ]
    notes += [
        finding(
            "CG148",
            str(path),
            f"ENV_VARS.{var} is {data['ENV_VARS'][var]!r}: only 1 makes a case nondeterministic "
            "(as in Megatron-LM's run_ci_test.sh), so the exact check runs; write 1",
            f"$.ENV_VARS.{var}",
        )
        for var in nondeterminism_ignored(data)
    ]
    if model_config_ok(data):
        return data, notes
    keys = non_string_keys(data)
    if keys:
        message = (
            f"top-level key {keys[0]!r} is not a string (YAML reads on/off/yes/no/null/~ and "
            "numbers unquoted): quote it"
        )
        return None, [finding("CG141", str(path), message, "$"), *notes]
    errors = list(schema_validator("model_config").iter_errors(data))
    found = schema_findings("CG141", path, errors, yaml=True)
    found = found or [finding("CG141", str(path), "does not match the model_config schema")]
    return None, [*found, *notes]


def check_golden_file(
    path: Path, *, run: tuple[int, str] | None = None
) -> tuple[t.Any, list[Finding]]:
    """Check one golden file on its own; returns (parsed data or None when unusable, findings).

    ``run`` is the case's run length and the flag it comes from, for the end_step check.
    """
    try:
        data = read_json(path)
    except GoldenFormatError as e:
        return None, [finding(e.code, str(path), e.detail, e.where, _line(e.where))]
    if isinstance(data, dict) and not data:
        return None, [finding("CG104", str(path), "empty object {}: no metric to compare", "$", 1)]
    detected = detect_layout(data) if isinstance(data, dict) else "current"
    layout, steps = classify(data, detected)
    if layout is None:
        errors = list(schema_validator("golden_values", f"/$defs/{detected}").iter_errors(data))
        found = schema_findings("CG110", path, errors)
        return None, found or [
            finding("CG110", str(path), "does not match the golden-values schema", "$")
        ]
    if layout == "current":
        assert steps is not None
        problems = check_current(data, steps, run)
    elif layout == "legacy":
        problems = [
            (
                ["$"],
                "CG120",
                "legacy list layout; `ci-golden migrate` rewrites it in the current layout",
            ),
            *check_legacy(data),
        ]
    else:
        problems = []
    text = read_text(path) if problems else ""
    out = []
    for parts, code, message in problems:
        keys = parts if parts != ["$"] else []
        out.append(finding(code, str(path), message, json_pointer(keys), locate(text, keys) or 1))
    return data, out


def _name_findings(case: TestCase, config: Config) -> list[Finding]:
    out = []
    paths = case.golden_paths
    for filename in case.golden_files:
        path = str(paths[filename])
        parsed = GoldenName.parse(filename)
        if parsed is None:
            out.append(
                finding(
                    "CG130",
                    path,
                    "not a golden file name: expected golden_values[_<env>[_<platform>]].json",
                )
            )
        elif parsed.environment is not None and parsed.environment not in config.environments:
            hint = did_you_mean(parsed.environment, config.environments)
            out.append(
                finding(
                    "CG130",
                    path,
                    f"unknown environment {parsed.environment!r} in the file name{hint}",
                )
            )
        elif parsed.platform is not None:
            base = parsed.platform.removesuffix(SECOND_PHASE_SUFFIX)
            close = None if base in config.platforms else close_platform(base, config)
            if close:
                out.append(
                    finding(
                        "CG131",
                        path,
                        f"unknown platform {base!r} in the file name (did you mean {close!r}?)",
                    )
                )
    return out


def check_case(
    case: TestCase, config: Config, *, slots: t.Sequence[JobSlot] | None = None
) -> tuple[list[Finding], int]:
    """All findings of one case, and the number of files read (``slots``: ``job_slots(config)``,
    passed in when checking many cases)."""
    out: list[Finding] = []
    config_path = case.config_path
    model_config: dict[str, t.Any] | None = None
    if case.has_config:
        model_config, found = _load_model_config(config_path)
        out += found
    elif not os.path.lexists(config_path):  # one that is there but unusable is a tree problem
        first = case.golden_paths[case.golden_files[0]]
        out.append(
            finding(
                "CG143", str(first), f"folder {case.id} holds golden files but no {MODEL_CONFIG}"
            )
        )
    out += _name_findings(case, config)
    jobs, read = [], set()
    if model_config is not None or not case.has_config:
        try:
            jobs = case_jobs(case, config, slots)
            for u in unreferenced_goldens(case, config, jobs):
                out.append(
                    finding(_UNREFERENCED_CODE[u.kind], str(u.path), f"unreferenced: {u.reason}")
                )
        except ConfigError as e:
            line = locate(read_text(config_path), ["CI_GOLDEN"], yaml=True)
            out.append(finding("CG142", str(config_path), e.detail, "$.CI_GOLDEN", line))
            model_config = None  # its jobs are unknown: no job-based finding
        read = {j.golden.name for j in jobs if j.golden is not None}
        if case.has_config and not jobs and model_config is not None:
            why = (
                "no golden file"
                if not case.golden_files
                else "no golden resolves for any environment and platform"
            )
            out.append(
                finding(
                    "CG144",
                    str(config_path),
                    f"no job: {why} (add CI_GOLDEN.platforms to run it without one)",
                )
            )
        compares = model_config is None or read_kind(model_config).compares_values
        for job in jobs:
            if job.golden is None and compares:
                out.append(
                    finding(
                        "CG145",
                        str(config_path),
                        f"job {job.environment}/{job.platform} has no golden yet; "
                        "the first run proposes one",
                    )
                )
    run = run_length(model_config) if model_config else None
    loaded: dict[str, t.Any] = {}
    paths = case.golden_paths
    for filename in case.golden_files:
        data, found = check_golden_file(paths[filename], run=run)
        out += found
        if filename in read and data is not None:
            loaded[filename] = data
    metrics = model_config.get("METRICS") if model_config else None
    if metrics:
        text = ""
        for index, metric, files in missing_metrics(metrics, loaded):
            text = text or read_text(config_path)
            line = locate(text, ["METRICS"], yaml=True)
            message = f"METRICS names {metric!r}, missing from {', '.join(files)}"
            out.append(finding("CG115", str(config_path), message, f"$.METRICS[{index}]", line))
    return out, len(case.golden_files) + case.has_config


def _display(path: str, base: Path) -> str:
    rel = os.path.relpath(path, base)
    return (
        Path(rel).as_posix() if not rel.startswith("..") else Path(os.path.abspath(path)).as_posix()
    )


def _displayer(base: Path) -> t.Callable[[str], str]:
    """:func:`_display` for many paths against one base, by text: below the base the rest of
    the normalized absolute path is what relpath gives; elsewhere relpath would climb with
    "..", so the absolute path is shown. On POSIX these are already in POSIX form."""
    prefix = os.path.abspath(base) + os.sep
    if os.sep != "/" or prefix == "//":
        return lambda path: _display(path, base)

    def display(path: str) -> str:
        absolute = os.path.abspath(path)  # normalized: relpath's components, joined
        if absolute.startswith(prefix) and not absolute.endswith("/"):
            rel = absolute[len(prefix) :]
            return absolute if rel.startswith("..") else rel
        if absolute == prefix[:-1]:
            return "."
        return absolute  # not below the base: relpath would start with ".."

    return display


def validate(
    suite: Suite, selection: Selection | None = None, *, base: Path | None = None
) -> ValidationResult:
    """Check the suite (or the cases ``selection`` touches; findings restricted to it).

    Paths in findings are relative to ``base`` (default: the current folder) when under it.
    """
    base = base or Path.cwd()
    config = suite.config
    findings: list[Finding] = []
    files = cases = 0
    slots = job_slots(config)
    for problem in suite.problems:
        if selection is None or selection.covers(Path(os.path.abspath(problem.path))):
            findings.append(finding(problem.code, str(problem.path), problem.message))
    for case in suite.cases:
        case_path = Path(os.path.abspath(case.path)) if selection is not None else None
        if (
            selection is not None
            and case_path is not None
            and not selection.touches_case(case_path)
        ):
            continue
        found, n = check_case(case, config, slots=slots)
        cases += 1
        files += n
        if selection is not None and case_path is not None:
            config_selected = selection.covers(case_path / MODEL_CONFIG)
            found = [
                f
                for f in found
                if selection.covers(Path(os.path.abspath(f.path)))
                or (f.code in CROSS_FILE_CODES and config_selected)
            ]
        findings += found
    display = _displayer(base)
    findings = [replace(f, path=display(f.path)) for f in findings]
    findings.sort(key=lambda f: (f.path, f.line or 0, f.code))
    return ValidationResult(tuple(findings), files, cases)


def validate_files(paths: t.Iterable[Path], *, base: Path | None = None) -> ValidationResult:
    """Check golden files and model_config.yaml files that lie outside the test-case tree,
    each on its own (no run length, names or jobs)."""
    base = base or Path.cwd()
    findings: list[Finding] = []
    n = 0
    for path in paths:
        n += 1
        if path.name == MODEL_CONFIG:
            findings += _load_model_config(path)[1]
        else:
            findings += check_golden_file(path)[1]
    findings = [replace(f, path=_display(f.path, base)) for f in findings]
    return ValidationResult(tuple(findings), n, 0)
