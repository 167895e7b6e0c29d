"""What ``ci-golden validate`` reports: the :class:`Finding` record and the table of codes.

Codes are stable: a code keeps its meaning once released, new checks get new codes. The
table below is the one place that lists them; the README's code table is generated from it
(``python -c "from ci_golden.validate.findings import code_table; print(code_table())"``).
"""

from __future__ import annotations

import typing as t
from dataclasses import asdict, dataclass

Severity = t.Literal["error", "warning"]

# code -> (severity, one-line description)
CODES: dict[str, tuple[Severity, str]] = {
    # reading a golden file (raised by ci_golden.goldens.model.read_json / parse_golden)
    "CG100": ("error", "golden file cannot be read (permissions, not a regular file)"),
    "CG101": ("error", "golden file is empty (zero bytes or only whitespace)"),
    "CG102": (
        "error",
        "golden file is not valid JSON (truncated, syntax error, nested too deeply)",
    ),
    "CG103": ("error", "golden file is not UTF-8, or starts with a byte-order mark"),
    "CG104": ("error", "golden file is the empty object {}: no metric to compare"),
    "CG105": ("error", "duplicate key in a JSON object (the last one would silently win)"),
    "CG106": ("error", 'NaN or Infinity literal, or a number out of range: write the string "nan"'),
    "CG107": ("error", "golden file too large; refused without reading it"),
    # golden values: schema and semantics
    "CG110": ("error", "golden file does not match schemas/golden_values.schema.json"),
    "CG111": ("error", "a step key is off the grid declared by start_step and step_interval"),
    "CG112": (
        "error",
        "start_step/end_step do not match the first/last step key (legacy: the list length)",
    ),
    "CG113": ("error", "end_step differs from the run length (--train-iters, or --exit-interval)"),
    "CG114": ("warning", 'the golden continues past the end of the run with only "nan" values'),
    "CG115": ("error", "METRICS in model_config.yaml names a metric a golden file does not have"),
    "CG120": (
        "warning",
        "legacy list layout: run `ci-golden migrate` to rewrite it in the current layout",
    ),
    # golden file names and the jobs that read them
    "CG130": (
        "error",
        "unknown environment in a golden file name, "
        "or a name not golden_values[_<env>[_<platform>]].json",
    ),
    "CG131": (
        "error",
        "unknown platform in a golden file name, close to a configured one (a typo?)",
    ),
    "CG132": ("warning", "unreferenced golden: shadowed by a more specific golden for every job"),
    "CG133": (
        "warning",
        "unreferenced golden: second phase of a resume run (*_2nd.json), no job reads it",
    ),
    "CG134": ("warning", "unreferenced golden: platform not in the config (an old cluster name?)"),
    "CG135": ("warning", "unreferenced golden: the platform is not in that environment"),
    "CG136": ("warning", "unreferenced golden: CI_GOLDEN.jobs lists no job in its environment"),
    # case configs
    "CG140": (
        "error",
        "model_config.yaml cannot be read as YAML (syntax, encoding, unsafe tag, alias bomb, size, "
        "not a regular file)",
    ),
    "CG141": ("error", "model_config.yaml does not match schemas/model_config.schema.json"),
    "CG142": (
        "error",
        "CI_GOLDEN names an unknown platform, environment or scope, or a job the config has not",
    ),
    "CG143": ("error", "a folder holds golden files but no model_config.yaml"),
    "CG144": ("error", "a case has no job: no golden resolves for any environment and platform"),
    "CG145": ("warning", "a job the case asks for has no golden yet (the first run proposes one)"),
    "CG146": ("error", "model_config.yaml gives a key twice with different values"),
    "CG147": ("warning", "model_config.yaml gives a key twice with the same value"),
    "CG148": (
        "warning",
        "a nondeterminism switch in ENV_VARS is not 1 (true, yes): the exact check still runs",
    ),
    # the tree
    "CG150": (
        "error",
        "case folder name unusable as a job name (whitespace, '..', control characters, not UTF-8)",
    ),
    "CG151": (
        "error",
        "tree problem: symlink loop, broken or folder symlink, a case file linked to a FIFO or "
        "device, unlistable folder",
    ),
}


@dataclass(frozen=True)
class Finding:
    """One problem. ``where`` is a JSON-pointer-like place (``$["lm loss"].end_step``) or
    ``line N``; ``line`` is the 1-based line when known."""

    code: str
    severity: Severity
    path: str
    where: str | None
    line: int | None
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, t.Any]:
        return asdict(self)


@dataclass(frozen=True, order=True)
class BaselineEntry:
    """One finding accepted by the baseline file (:mod:`ci_golden.validate.baseline`).
    ``file`` is relative to the config's folder (POSIX)."""

    file: str
    code: str
    location: str
    message_hash: str

    KEYS: t.ClassVar[tuple[str, ...]] = ("code", "file", "location", "message_hash")

    def to_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in self.KEYS}


def finding(
    code: str, path: str, message: str, where: str | None = None, line: int | None = None
) -> Finding:
    """A finding with the severity the code table gives ``code``."""
    return Finding(code, CODES[code][0], path, where, line, message)


def code_table() -> str:
    """The code table as Markdown (for the README)."""
    rows = ["| Code | Severity | Meaning |", "| --- | --- | --- |"]
    rows += [f"| {code} | {sev} | {text} |" for code, (sev, text) in CODES.items()]
    return "\n".join(rows)
