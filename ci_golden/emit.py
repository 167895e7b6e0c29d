"""Pure emitters: a selection of jobs as a GitHub matrix or a GitLab child pipeline.

Same input, byte-identical output. Forge limits are checked here and exceeded with a
:class:`MatrixLimitError` that names the fix, never by dropping jobs.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shlex
import typing as t
from collections import Counter

from ci_golden.errors import UsageError
from ci_golden.matrix import JobList, JobRow, MatrixJob, Selection

GITHUB_MAX_JOBS = 256
GITHUB_MAX_OUTPUT_BYTES = 1024 * 1024
GITLAB_MAX_BYTES = 5 * 1024 * 1024
GITLAB_MAX_NAME = 255
# runner-side failures worth a retry; a golden mismatch (script_failure) never is
GITLAB_RETRY_WHEN = ("runner_system_failure", "stuck_or_timeout_failure", "scheduler_failure")
SETUP_MARGIN_S = 900
OUT_DIR = "ci-golden-out"
REPORT_JOB = "ci-golden report"
EMPTY_JOB = "ci-golden no jobs"
_GITLAB_RESERVED = {
    "image", "services", "stages", "types", "before_script", "after_script", "variables",
    "cache", "include", "true", "false", "nil", "default", "workflow", "spec",
}  # fmt: skip


# a plain YAML scalar: no quoting needed (no ': ', ' #', leading indicator or trailing space)
_PLAIN = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_./ -]*[A-Za-z0-9_./-])?\Z")
_YAML11_WORDS = {
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
    "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
}  # fmt: skip


_json_str: t.Callable[[str], str] = json.encoder.encode_basestring_ascii


@functools.lru_cache(maxsize=4096, typed=True)  # typed: True and 1 are different scalars
def _scalar(value: t.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _yaml_str(value)
    raise TypeError(f"cannot write {type(value).__name__} as a YAML scalar")


def _yaml_str(value: str) -> str:
    """A string as a YAML scalar (uncached: for the values each job has its own of)."""
    if _PLAIN.match(value) and value not in _YAML11_WORDS:
        return value
    if "'" not in value and value.isascii() and value.isprintable():
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=True)  # a JSON string is a YAML double-quoted scalar


def _yaml_lines(
    value: t.Mapping[str, t.Any] | t.Sequence[t.Any], indent: str, out: list[str]
) -> None:
    if isinstance(value, t.Mapping):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{indent}{_scalar(key)}:")
                _yaml_lines(item, indent + "  ", out)
            elif isinstance(item, (dict, list)):
                out.append(f"{indent}{_scalar(key)}: {'{}' if isinstance(item, dict) else '[]'}")
            else:
                out.append(f"{indent}{_scalar(key)}: {_scalar(item)}")
    else:
        for item in value:
            out.append(f"{indent}- {_scalar(item)}")


def to_yaml(doc: t.Mapping[str, t.Any]) -> str:
    """Block-style YAML of mappings, lists of scalars and scalars; strings that need it are
    written as JSON strings (valid YAML double-quoted scalars). Fast and deterministic."""
    out: list[str] = []
    _yaml_lines(doc, "", out)
    return "\n".join(out) + "\n"


class MatrixLimitError(UsageError):
    """The selection does not fit a forge's limits."""


def _platform_counts(jobs: t.Sequence[MatrixJob]) -> str:
    counts = Counter(j.platform for j in jobs)
    return ", ".join(f"{p}: {n}" for p, n in sorted(counts.items()))


def _json(value: t.Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _github_entries(jobs: t.Sequence[MatrixJob]) -> t.Iterator[str]:
    """Each job's entry as ``_json(job.entry())`` gives it. A :class:`JobList` is written a case
    at a time: one template per (rows, numbers), filled with each case's values."""
    if not isinstance(jobs, JobList):
        for job in jobs:
            yield _json(job.entry())
        return
    templates: dict[tuple[int, int, int, int], str] = {}
    for group in jobs.groups:
        case, label, folder, rows, n_repeat, time_limit, nodes, plain = group
        # only plain ints go into a template (True == 1 as a key, but not in JSON)
        if not (plain and type(n_repeat) is int and type(time_limit) is int and type(nodes) is int):
            for job in group.jobs():
                yield _json(job.entry())
            continue
        key = (id(rows), n_repeat, time_limit, nodes)  # the groups keep the rows alive
        template = templates.get(key)
        if template is None:
            template = templates[key] = _case_template(rows, n_repeat, time_limit, nodes)
        # a plain case's id, and so its label, needs no JSON escaping; its folder may
        yield template % ((case.replace("/", "__"), label, case, _json_str(folder)[1:-1]) * len(rows))


@functools.lru_cache(maxsize=256)
def _case_template(rows: tuple[JobRow, ...], n_repeat: int, time_limit: int, nodes: int) -> str:
    """The entries of a plain case's jobs as a ``%`` template that takes, per job, the case's id
    prefix, label, id and folder (JSON-escaped); a job without a golden skips the folder."""

    def lit(value: t.Any) -> str:
        return _json(value).replace("%", "%%")

    def inner(text: str) -> str:  # escaping a part is the same in any string it is put into
        return lit(text)[1:-1]

    numbers = f',"n_repeat":{lit(n_repeat)},"time_limit":{lit(time_limit)},"nodes":{lit(nodes)}'
    return ",".join(
        f'{{"id":"%s{inner(row.id_suffix)}","name":"%s{inner(row.name_suffix)}","case":"%s"'
        f',"environment":{lit(row.environment)},"platform":{lit(row.platform)}'
        f',"runs-on":{lit(list(row.runs_on))},"golden":'
        + ("null%.0s" if row.golden is None else f'"%s{inner("/" + row.golden)}"')
        + f'{numbers},"gpus":{lit(row.gpus)}}}'
        for row in rows
    )


def _runners(jobs: t.Sequence[MatrixJob]) -> dict[tuple[str, tuple[str, ...]], None]:
    """The (platform, runs-on) pairs of the jobs, in order (a job list's from its cases' rows)."""
    if not isinstance(jobs, JobList):
        return dict.fromkeys((job.platform, job.runs_on) for job in jobs)
    rows = {id(group.rows): group.rows for group in jobs.groups}
    return dict.fromkeys((row.platform, row.runs_on) for each in rows.values() for row in each)


def render_github(selection: Selection) -> str:
    """``{"include":[...]}`` on one line (no trailing newline)."""
    jobs = selection.jobs
    if len(jobs) > GITHUB_MAX_JOBS:
        shards = math.ceil(len(jobs) / GITHUB_MAX_JOBS)
        raise MatrixLimitError(
            f"{len(jobs)} jobs exceed GitHub's limit of {GITHUB_MAX_JOBS} jobs per matrix; "
            f"split it into several matrix jobs, one per --platform ({_platform_counts(jobs)}), "
            f"or with --shard K/{shards} for K = 1..{shards}"
        )
    for platform, runs_on in _runners(jobs):
        if not runs_on:
            raise MatrixLimitError(
                f"platform {platform!r} has no GitHub runner labels; "
                f"set platforms.{platform}.github.runs-on in the project config"
            )
    text = '{"include":[' + ",".join(_github_entries(jobs)) + "]}"
    if len(text) > GITHUB_MAX_OUTPUT_BYTES:  # ASCII: as many bytes as characters
        raise MatrixLimitError(
            f"the matrix is {len(text)} bytes, over GitHub's job-output limit of "
            f"{GITHUB_MAX_OUTPUT_BYTES} bytes; split it with --platform or --shard K/N"
        )
    return text


def github_output_lines(name: str, matrix: str, count: int) -> str:
    """The lines appended to ``$GITHUB_OUTPUT``: ``NAME=<matrix>`` and ``NAME_count=<n>``."""
    return f"{name}={matrix}\n{name}_count={count}\n"


def timeout_minutes(job: MatrixJob) -> int:
    return math.ceil((job.time_limit * job.n_repeat + SETUP_MARGIN_S) / 60)


EXPECT_FILE = "ci-golden-expect.json"
REPORT_SCRIPT = (
    "status=0",
    f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format markdown --out report.md || status=$?",
    f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format json --out report.json || true",
    f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format junit --out report.xml || true",
    # merge-request variables reach a child pipeline only when the trigger job forwards them
    'mr="${CI_MERGE_REQUEST_IID:-${CI_GOLDEN_MR_IID:-}}"',
    'if [ -n "$mr" ]; then CI_MERGE_REQUEST_IID="$mr" ci-golden comment report.json --forge gitlab; fi',
    'exit "$status"',
)


def expect_command(jobs: t.Sequence[MatrixJob]) -> str:
    """The report job's first command: it writes the pipeline's jobs as a matrix file
    (``{"include": [{case, environment, platform}]}``) for ``ci-golden report --expect``, so a
    job that left no result is an error, not a silent pass. The pipeline carries the list itself
    (no artifact to fetch from the parent); a here-document keeps it out of the environment
    (no size limit) and out of the job log (GitLab shows a multi-line command's first line)."""
    entries = ",".join(
        f'{{"case":{_json_str(j.case)},"environment":{_json_str(j.environment)},"platform":{_json_str(j.platform)}}}'
        for j in jobs
    )
    return f"cat > {EXPECT_FILE} <<'CI_GOLDEN_EXPECT'\n{{\"include\":[{entries}]}}\nCI_GOLDEN_EXPECT"


_RETRY_LINES = "".join(f"\n      - {w}" for w in GITLAB_RETRY_WHEN)


def _gitlab_job(job: MatrixJob, shared: dict[tuple[t.Any, ...], tuple[str, str]] | None = None) -> str:
    """One job of the child pipeline, as YAML (written directly: suites have thousands).
    ``shared`` keeps, across the jobs of one pipeline, the parts that repeat."""
    key = (job.tags, job.time_limit, job.n_repeat, type(job.n_repeat), job.environment, job.platform)
    parts = None if shared is None else shared.get(key)
    if parts is None:
        q = _scalar
        tags = "".join(f"\n    - {q(tag)}" for tag in job.tags)
        head = (
            "  stage: golden\n"
            + (f"  tags:{tags}\n" if tags else "")
            + f"  timeout: {q(f'{timeout_minutes(job)}m')}\n"
            "  interruptible: true\n"
            f"  retry:\n    max: 2\n    when:{_RETRY_LINES}\n"
            "  variables:\n    CI_GOLDEN_JOB_ID: "
        )
        # the job's command is "ci-golden run <case> " + this + " --out <folder>"
        options = (
            f"--environment {shlex.quote(job.environment)} --platform {shlex.quote(job.platform)} "
            f"--n-repeat {job.n_repeat}"
        )
        parts = (head, options)
        if shared is not None:
            shared[key] = parts
    head, options = parts
    y = _yaml_str
    command = f"ci-golden run {shlex.quote(job.case)} {options} --out {shlex.quote(f'{OUT_DIR}/{job.id}')}"
    return (
        f"{y(job.name)}:\n{head}{y(job.id)}\n"
        f"  script:\n    - {y(command)}\n"
        "  artifacts:\n"
        f"    name: {y(f'ci-golden-{job.id}')}\n"
        "    when: always\n"
        "    expire_in: '30 days'\n"
        f"    paths:\n      - {y(f'{OUT_DIR}/{job.id}/')}\n"
    )


def _check_gitlab_job(job: MatrixJob) -> None:
    if not job.tags and job.gpus > 0:
        raise MatrixLimitError(
            f"platform {job.platform!r} has GPUs but no GitLab runner tags, so its jobs could land on "
            f"any runner; set platforms.{job.platform}.gitlab.tags in the project config"
        )
    if len(job.name) > GITLAB_MAX_NAME:
        raise MatrixLimitError(
            f"job name of {job.case} is {len(job.name)} characters, over GitLab's limit of "
            f"{GITLAB_MAX_NAME}: {job.name[:60]}..."
        )
    if (
        job.name in _GITLAB_RESERVED
        or job.name.startswith(".")
        or job.name in (REPORT_JOB, EMPTY_JOB)
    ):
        raise MatrixLimitError(f"job name {job.name!r} of {job.case} is reserved in GitLab CI")


def render_gitlab(
    selection: Selection,
    *,
    image: str | None = None,
    before_script: t.Sequence[str] = (),
) -> str:
    """A child-pipeline YAML: one job per matrix job, then one report job (``when: always``).

    With no job selected it is a valid pipeline whose one job says why.
    """
    jobs = selection.jobs
    doc: dict[str, t.Any]
    if not jobs:
        why = selection.why_empty or "no job selected"
        doc = {
            "stages": ["golden"],
            EMPTY_JOB: {
                "stage": "golden",
                "interruptible": True,
                "script": [f"echo {shlex.quote('ci-golden: no job to run: ' + why)}"],
            },
        }
        header = "# ci-golden child pipeline: no job selected.\n"
        body = to_yaml(doc)
    else:
        default: dict[str, t.Any] = {}
        if image:
            default["image"] = image
        if before_script:
            default["before_script"] = list(before_script)
        default["interruptible"] = True
        parts = [to_yaml({"stages": ["golden", "report"], "default": default})]
        seen: set[str] = set()
        shared: dict[tuple[t.Any, ...], tuple[str, str]] = {}
        for job in jobs:
            _check_gitlab_job(job)
            if job.name in seen:
                raise MatrixLimitError(f"two jobs are named {job.name!r}")
            seen.add(job.name)
            parts.append(_gitlab_job(job, shared))
        report = {
            "stage": "report",
            "when": "always",
            "script": [expect_command(jobs), *REPORT_SCRIPT],
            "artifacts": {
                "name": "ci-golden-report",
                "when": "always",
                "expire_in": "30 days",
                "paths": ["report.md", "report.json", "report.xml"],
                "reports": {"junit": "report.xml"},
            },
        }
        parts.append(to_yaml({REPORT_JOB: report}))
        header = f"# ci-golden child pipeline: {len(jobs)} jobs.\n"
        body = "".join(parts)
    text = header + "# Generated by `ci-golden matrix --ci gitlab`; do not edit.\n" + body
    size = len(text.encode())
    if size > GITLAB_MAX_BYTES:
        raise MatrixLimitError(
            f"the child pipeline is {size} bytes, over GitLab's limit of {GITLAB_MAX_BYTES}; "
            f"split it with --platform ({_platform_counts(jobs)}) or --shard K/N"
        )
    return text


RENDERERS_BY_NAME: dict[str, t.Callable[..., str]] = {
    "github": render_github,
    "gitlab": render_gitlab,
}
