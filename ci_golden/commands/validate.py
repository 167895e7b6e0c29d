from __future__ import annotations

import argparse
import os
import sys
import typing as t
from collections import Counter
from pathlib import Path

from ci_golden.commands import load_project
from ci_golden.errors import InputError, UsageError
from ci_golden.goldens.discover import discover, is_golden_name
from ci_golden.project.files import PendingFile, append_text, display_path
from ci_golden.project.git import changed_files
from ci_golden.validate.baseline import (
    apply_baseline,
    apply_settings,
    entry_for,
    read_baseline,
    render_baseline,
)
from ci_golden.validate.engine import Selection, ValidationResult, validate, validate_files
from ci_golden.validate.render import RENDERERS_BY_NAME, render_step_summary

if t.TYPE_CHECKING:
    from ci_golden.project.config import Config

CHECKED_NAMES = ("model_config.yaml",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or folders to check (default: the whole tree)",
    )
    parser.add_argument(
        "--changed-since", metavar="GIT_REF", help="only files changed since this git ref"
    )
    parser.add_argument(
        "--format",
        choices=("text", "github", "json"),
        default="text",
        help="github: annotations for the first 10 errors and 10 warnings, and every finding, "
        "grouped by code, in $GITHUB_STEP_SUMMARY",
    )
    parser.add_argument("--strict", action="store_true", help="warnings fail too")
    parser.add_argument(
        "--write-baseline",
        action="store_true",
        help="record today's findings in the baseline file, so that only new ones fail",
    )


def _is_checked(path: Path) -> bool:

    return path.name in CHECKED_NAMES or is_golden_name(path.name)


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(path))


def _inside(root: Path, path: Path | str) -> bool:
    """Whether ``path`` is the (absolute) test-case ``root`` or lies below it."""
    full = _absolute(path)
    return full == root or root in full.parents


def _check_given(given: list[Path], config_source: str | None, root: Path) -> None:
    """A PATH the user names must be something validate checks: never a silent pass."""
    config = _absolute(config_source) if config_source else None
    for p in given:
        if p.is_dir() and not _inside(root, p):
            raise InputError(
                str(p), f"folder outside the test-case root {root}; pass --test-cases to check it"
            )
        if p.is_file() and _absolute(p) != config and not _is_checked(p):
            raise InputError(
                str(p), "not a golden_values*.json, model_config.yaml or the project config"
            )


def _selected_paths(
    args: argparse.Namespace, config_source: str | None, root: Path
) -> list[Path] | None:
    """The files and folders to check, or None for the whole tree."""
    given = [Path(p) for p in args.paths]
    for p in given:
        if not os.path.lexists(p):
            raise InputError(str(p), "no such file or folder")
    if args.changed_since:
        selected = [p for p in changed_files(args.changed_since, Path.cwd()) if p.exists()]
        if given:
            chosen = Selection.of(given)
            selected = [p for p in selected if chosen.covers(_absolute(p))]
    elif given:
        selected = given
        _check_given(given, config_source, root)
    else:
        return None
    if config_source is not None and _absolute(config_source) in {_absolute(p) for p in selected}:
        return None  # the project config changed: every case may have other jobs now
    return selected


def run(args: argparse.Namespace, environ: t.Mapping[str, str] = os.environ) -> int:

    config = load_project(args)
    root = _absolute(config.test_cases)
    selected = _selected_paths(args, config.source, root)
    if args.write_baseline and selected is not None:
        raise UsageError(
            "--write-baseline records the findings of the whole tree: drop the PATHs and "
            "--changed-since"
        )
    baseline_path = config.validate.baseline
    baseline = read_baseline(baseline_path)  # a bad baseline is refused before any work
    summary_file = environ.get("GITHUB_STEP_SUMMARY") if args.format == "github" else None
    pending = PendingFile(baseline_path) if args.write_baseline else None
    try:
        result = apply_settings(_validate(config, root, selected), config.validate, config.root)
        if pending is not None:
            pending.write(render_baseline(result.findings, config.root))
            pending = None
            accepted = Counter(entry_for(f, config.root) for f in result.findings)
            dropped = sum(((baseline or Counter()) - accepted).values())
            result = apply_baseline(result, accepted, config.root)
            print(
                f"ci-golden validate: wrote {display_path(baseline_path)}: "
                f"{len(result.baselined)} findings"
                + (f", {dropped} fixed ones dropped" if dropped else ""),
                file=sys.stderr,
            )
        elif baseline is not None:
            chosen = Selection.of(selected) if selected is not None else None
            result = apply_baseline(
                result,
                baseline,
                config.root,
                lambda file: chosen is None or chosen.covers(_absolute(config.root / file)),
            )
    finally:
        if pending is not None:
            pending.discard()
    sys.stdout.write(RENDERERS_BY_NAME[args.format](result))
    if summary_file:
        append_text(summary_file, render_step_summary(result))
    return result.exit_code(strict=args.strict)


def _validate(config: Config, root: Path, selected: list[Path] | None) -> ValidationResult:
    suite = discover(config)
    cwd = Path.cwd()
    if selected is None:
        return validate(suite, base=cwd)
    inside = [p for p in selected if _inside(root, p)]
    outside = [p for p in selected if p not in inside and p.is_file() and _is_checked(p)]
    result = ValidationResult((), 0, 0)
    if inside:
        result = validate(suite, Selection.of(inside), base=cwd)
    if outside:
        extra = validate_files(outside, base=cwd)
        result = ValidationResult(
            result.findings + extra.findings, result.files + extra.files, result.cases
        )
    return result
