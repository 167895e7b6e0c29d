"""Accepting today's findings: the config's suppression rules and the baseline file.

``validate: {ignore, severity, exclude}`` in the project config drops codes, changes severities
and leaves out files. The baseline (``.ci-golden-baseline.json`` at the config's folder, or
``validate.baseline``) records the findings a tree had when it was written, by code, file
(relative to the config's folder), location and a hash of the message, sorted, so that the
file is the same on every machine. A baselined finding is still listed but does not fail; a new
one does; a baselined one that no longer occurs is reported as fixed, and
``ci-golden validate --write-baseline`` drops it.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing as t
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.goldens.model import MAX_GOLDEN_BYTES
from ci_golden.project.config import ValidateSettings
from ci_golden.project.files import UnreadableFile, read_regular
from ci_golden.project.globs import glob_match
from ci_golden.validate.engine import ValidationResult
from ci_golden.validate.findings import BaselineEntry, Finding

BASELINE_VERSION = 1
_KEYS = BaselineEntry.KEYS


def _relative(path: str, root: Path) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return Path(rel).as_posix()


def entry_for(f: Finding, root: Path) -> BaselineEntry:
    """The baseline entry of a finding. The message is hashed with the config's folder taken
    out, so that it does not depend on where the tree is checked out."""
    location = f.where or (f"line {f.line}" if f.line is not None else "")
    message = f.message.replace(os.path.abspath(root) + os.sep, "")
    digest = hashlib.sha256(message.encode()).hexdigest()[:16]
    return BaselineEntry(_relative(f.path, root), f.code, location, digest)


def apply_settings(
    result: ValidationResult, settings: ValidateSettings, root: Path
) -> ValidationResult:
    """``result`` with the config's ``validate:`` rules applied: ignored codes and excluded
    files left out (and counted), severities replaced."""
    kept: list[Finding] = []
    for f in result.findings:
        if f.code in settings.ignore or any(
            glob_match(_relative(f.path, root), pattern) for pattern in settings.exclude
        ):
            continue
        severity = settings.severity.get(f.code)
        kept.append(
            f if severity is None or severity == f.severity else replace(f, severity=severity)
        )
    return replace(
        result,
        findings=tuple(kept),
        suppressed=result.suppressed + len(result.findings) - len(kept),
    )


def read_baseline(path: Path) -> Counter[BaselineEntry] | None:
    """The entries of a baseline file (an entry may occur more than once), or None when there
    is no such file; :class:`InputError` naming the place of anything malformed."""
    name = str(path)
    if not os.path.lexists(name):
        return None
    try:  # a regular file only: a FIFO would wait for a writer
        text = read_regular(name, max_bytes=MAX_GOLDEN_BYTES).decode("utf-8")
    except UnreadableFile as e:
        raise InputError(name, f"cannot read the baseline: {e.reason}") from e
    except UnicodeDecodeError as e:
        raise InputError(name, f"cannot read the baseline: {e}") from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(name, f"not JSON: {e.msg}", f"line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise InputError(name, "not JSON: nested too deeply") from e
    except ValueError as e:  # an integer literal over Python's digit limit
        raise InputError(name, "not JSON: an integer literal too long to read") from e
    if not isinstance(doc, dict) or doc.get("version") != BASELINE_VERSION:
        raise InputError(
            name,
            f"not a ci-golden baseline of version {BASELINE_VERSION}; "
            "rewrite it with `ci-golden validate --write-baseline`",
            "$.version",
        )
    entries = doc.get("findings")
    if not isinstance(entries, list):
        raise InputError(name, "expected a list of findings", "$.findings")
    out: Counter[BaselineEntry] = Counter()
    for i, item in enumerate(entries):
        if not isinstance(item, dict) or sorted(item) != sorted(_KEYS):
            raise InputError(
                name, f"expected an object with {', '.join(_KEYS)}", f"$.findings[{i}]"
            )
        if not all(isinstance(item[key], str) for key in _KEYS):
            raise InputError(name, "every value must be a string", f"$.findings[{i}]")
        out[BaselineEntry(**{key: item[key] for key in _KEYS})] += 1
    return out


def render_baseline(findings: t.Iterable[Finding], root: Path) -> str:
    """The baseline file of ``findings``: sorted entries, no time stamp, one per line."""
    entries = sorted(entry_for(f, root) for f in findings)
    lines = ",\n".join(
        "    " + json.dumps(e.to_dict(), ensure_ascii=False, separators=(", ", ": "))
        for e in entries
    )
    body = f"[\n{lines}\n  ]" if entries else "[]"
    return (
        "{\n"
        f'  "version": {BASELINE_VERSION},\n'
        '  "about": "Findings of ci-golden validate accepted when this file was written; '
        '`ci-golden validate --write-baseline` rewrites it.",\n'
        f'  "findings": {body}\n'
        "}\n"
    )


def apply_baseline(
    result: ValidationResult,
    baseline: Counter[BaselineEntry],
    root: Path,
    checked: t.Callable[[str], bool] = lambda file: True,
) -> ValidationResult:
    """Split ``result`` into new and baselined findings; the baseline entries of ``checked``
    files (relative to ``root``) that no finding matched are the fixed ones."""
    left = Counter(baseline)
    new: list[Finding] = []
    accepted: list[Finding] = []
    for f in result.findings:
        entry = entry_for(f, root)
        if left[entry] > 0:
            left[entry] -= 1
            accepted.append(f)
        else:
            new.append(f)
    fixed = tuple(sorted(e for e in left.elements() if checked(e.file)))
    return replace(result, findings=tuple(new), baselined=tuple(accepted), fixed=fixed)
