"""Pure emitters: a selection of jobs as a GitHub matrix or a GitLab child pipeline.

Same input, byte-identical output. Forge limits are checked here and exceeded with a
:class:`MatrixLimitError` that names the fix, never by dropping jobs.
"""

from __future__ import annotations

import functools
import json
import math
import shlex
import typing as t
from collections import Counter

import yaml

from ci_golden.errors import UsageError
from ci_golden.plan.select import JobList, JobRow, MatrixJob, Selection

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
GITHUB_MAX_JOBS = 256  # per matrix
# all outputs of one job together, sized as UTF-16 (two bytes per character of a matrix)
GITHUB_MAX_OUTPUT_BYTES = 1024 * 1024
# the keys of a job in a chunk (matrix_chunks); the run job reads the rest from the plan file
CHUNK_KEYS = ("id", "name", "runs-on")
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


_json_str: t.Callable[[str], str] = json.encoder.encode_basestring_ascii


def to_yaml(doc: t.Mapping[str, t.Any]) -> str:
    """Block-style YAML through PyYAML's emitter (libyaml's when present), keys in order."""
    return yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=1 << 20,
        allow_unicode=False,
    )


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
    plain_rows: dict[int, bool] = {}  # per rows (the groups keep them alive): plain ints only
    for group in jobs.groups:
        case, label, folder, rows, n_repeat, time_limit, nodes, plain = group
        rows_plain = plain_rows.get(id(rows))
        if rows_plain is None:
            rows_plain = plain_rows[id(rows)] = all(
                row.nodes is None or type(row.nodes) is int for row in rows
            )
        # only plain ints go into a template (True == 1 as a key, but not in JSON)
        if not (
            plain
            and rows_plain
            and type(n_repeat) is int
            and type(time_limit) is int
            and type(nodes) is int
        ):
            for job in group.jobs():
                yield _json(job.entry())
            continue
        key = (id(rows), n_repeat, time_limit, nodes)  # the groups keep the rows alive
        template = templates.get(key)
        if template is None:
            template = templates[key] = _case_template(rows, n_repeat, time_limit, nodes)
        # a plain case's id, and so its label, needs no JSON escaping; its folder may
        yield template % (
            (case.replace("/", "__"), label, case, _json_str(folder)[1:-1]) * len(rows)
        )


@functools.lru_cache(maxsize=256)
def _case_template(rows: tuple[JobRow, ...], n_repeat: int, time_limit: int, nodes: int) -> str:
    """The entries of a plain case's jobs as a ``%`` template that takes, per job, the case's id
    prefix, label, id and folder (JSON-escaped); a job without a golden skips the folder."""

    def lit(value: t.Any) -> str:
        return _json(value).replace("%", "%%")

    def inner(text: str) -> str:  # escaping a part is the same in any string it is put into
        return lit(text)[1:-1]

    numbers = f',"n_repeat":{lit(n_repeat)},"time_limit":{lit(time_limit)},"nodes":'
    return ",".join(
        f'{{"id":"%s{inner(row.id_suffix)}","name":"%s{inner(row.name_suffix)}","case":"%s"'
        f',"environment":{lit(row.environment)},"platform":{lit(row.platform)}'
        f',"runs-on":{lit(list(row.runs_on))},"golden":'
        + ("null%.0s" if row.golden is None else f'"%s{inner("/" + row.golden)}"')
        + f'{numbers}{lit(nodes if row.nodes is None else row.nodes)},"gpus":{lit(row.gpus)}}}'
        for row in rows
    )


def _runners(jobs: t.Sequence[MatrixJob]) -> dict[tuple[str, tuple[str, ...]], None]:
    """The (platform, runs-on) pairs of the jobs, in order (a job list's from its cases' rows)."""
    if not isinstance(jobs, JobList):
        return dict.fromkeys((job.platform, job.runs_on) for job in jobs)
    rows = {id(group.rows): group.rows for group in jobs.groups}
    return dict.fromkeys((row.platform, row.runs_on) for each in rows.values() for row in each)


def _split_hint(selection: Selection, capacity: int) -> str:
    """How to run a selection in parts of at most ``capacity`` jobs: by shard, counted on the
    selection before any ``--shard`` (so the parts it names fit), or by platform."""
    total = selection.unsharded
    shards = max(math.ceil(total / max(capacity, 1)), 2)
    hint = (
        f"run them in parts: --shard K/{shards} for K = 1..{shards} "
        f"(at most {math.ceil(total / shards)} jobs each)"
    )
    if selection.shard is not None:
        k, n = selection.shard
        return hint + f" instead of --shard {k}/{n}"
    return hint + f", or one --platform at a time ({_platform_counts(selection.jobs)})"


def _check_runners(jobs: t.Sequence[MatrixJob]) -> None:
    for platform, runs_on in _runners(jobs):
        if not runs_on:
            raise MatrixLimitError(
                f"platform {platform!r} has no GitHub runner labels; "
                f"set platforms.{platform}.github.runs-on in the project config"
            )


def render_github(selection: Selection, *, chunks: int = 1) -> str:
    """``{"include":[...]}`` on one line (no trailing newline): every job, for ``--output`` and
    the report's ``--expect``. The selection must fit ``chunks`` matrices of
    :data:`GITHUB_MAX_JOBS` jobs (:func:`matrix_chunks`); with one, the text itself must fit
    GitHub's job outputs."""
    jobs = selection.jobs
    capacity = chunks * GITHUB_MAX_JOBS
    if len(jobs) > capacity:
        limit = f"GitHub's limit of {GITHUB_MAX_JOBS} jobs per matrix"
        if chunks > 1:
            limit = f"{chunks} matrices of {GITHUB_MAX_JOBS} jobs (--chunks {chunks})"
        raise MatrixLimitError(
            f"{len(jobs)} jobs exceed {limit}; {_split_hint(selection, capacity)}"
        )
    _check_runners(jobs)
    text = '{"include":[' + ",".join(_github_entries(jobs)) + "]}"
    size = 2 * len(text)  # ASCII, sized as UTF-16
    if chunks == 1 and size > GITHUB_MAX_OUTPUT_BYTES:
        fits = len(jobs) * GITHUB_MAX_OUTPUT_BYTES // size
        raise MatrixLimitError(
            f"the matrix takes {size} bytes (as UTF-16), over GitHub's job-output limit of "
            f"{GITHUB_MAX_OUTPUT_BYTES} bytes; write it with --chunks N (the outputs then hold "
            f"only {', '.join(CHUNK_KEYS)} of each job) or {_split_hint(selection, fits)}"
        )
    return text


def matrix_chunks(selection: Selection, chunks: int) -> list[tuple[str, int]]:
    """The jobs as ``chunks`` matrices of at most :data:`GITHUB_MAX_JOBS` jobs each, in order,
    the unused ones empty (``{"include":[]}``), each with its number of jobs. An entry holds
    only :data:`CHUNK_KEYS`: the run job reads the whole entry from the plan file
    (``ci-golden run --job PLAN --job-id ID``), so that a thousand jobs fit GitHub's 1 MB of
    outputs per job."""
    jobs = selection.jobs
    render_github(selection, chunks=chunks)  # the limits and runner labels, with the hints
    parts: list[list[str]] = [[] for _ in range(chunks)]
    for i, job in enumerate(jobs):
        parts[i // GITHUB_MAX_JOBS].append(
            _json({"id": job.id, "name": job.name, "runs-on": list(job.runs_on)})
        )
    out = [('{"include":[' + ",".join(part) + "]}", len(part)) for part in parts]
    size = 2 * sum(len(text) for text, _ in out)
    if size > GITHUB_MAX_OUTPUT_BYTES:
        fits = len(jobs) * GITHUB_MAX_OUTPUT_BYTES // size
        raise MatrixLimitError(
            f"the {chunks} matrices take {size} bytes (as UTF-16), over GitHub's job-output "
            f"limit of {GITHUB_MAX_OUTPUT_BYTES} bytes; {_split_hint(selection, fits)}"
        )
    return out


def github_output_lines(name: str, matrix: str, count: int) -> str:
    """The lines appended to ``$GITHUB_OUTPUT``: ``NAME=<matrix>`` and ``NAME_count=<n>``."""
    return f"{name}={matrix}\n{name}_count={count}\n"


def github_chunk_lines(name: str, chunks: t.Sequence[tuple[str, int]]) -> str:
    """The lines appended to ``$GITHUB_OUTPUT`` for :func:`matrix_chunks`: ``NAME_K=<matrix>``
    and ``NAME_K_count=<n>`` for K = 1..N, then ``NAME_count=<total>``."""
    lines = [
        f"{name}_{k}={text}\n{name}_{k}_count={n}\n" for k, (text, n) in enumerate(chunks, start=1)
    ]
    return "".join(lines) + f"{name}_count={sum(n for _, n in chunks)}\n"


def timeout_minutes(job: MatrixJob) -> int:
    return math.ceil((job.time_limit * job.n_repeat + SETUP_MARGIN_S) / 60)


EXPECT_FILE = "ci-golden-expect.json"
# where GitLab serves the HTML report once the report job's artifacts are kept
HTML_LINK = '${CI_JOB_URL:+--html-url "$CI_JOB_URL/artifacts/file/report.html"}'
REPORT_SCRIPT = (
    "status=0",
    f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format html --out report.html || true",
    (
        f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format markdown --out report.md"
        f" {HTML_LINK} || status=$?"
    ),
    (
        f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format json --out report.json"
        f" {HTML_LINK} || true"
    ),
    f"ci-golden report {OUT_DIR} --expect {EXPECT_FILE} --format junit --out report.xml || true",
    # merge-request variables reach a child pipeline only when the trigger job forwards them
    'mr="${CI_MERGE_REQUEST_IID:-${CI_GOLDEN_MR_IID:-}}"',
    (
        'if [ -n "$mr" ]; then '
        'CI_MERGE_REQUEST_IID="$mr" ci-golden comment report.json --forge gitlab; fi'
    ),
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
    return (
        f"cat > {EXPECT_FILE} <<'CI_GOLDEN_EXPECT'\n{{\"include\":[{entries}]}}\nCI_GOLDEN_EXPECT"
    )


def _gitlab_job(job: MatrixJob) -> dict[str, t.Any]:
    """One job of the child pipeline."""
    options = (
        f"--environment {shlex.quote(job.environment)} --platform {shlex.quote(job.platform)} "
        f"--n-repeat {job.n_repeat}"
    )
    command = (
        f"ci-golden run {shlex.quote(job.case)} {options} "
        f"--out {shlex.quote(f'{OUT_DIR}/{job.id}')}"
    )
    body: dict[str, t.Any] = {"stage": "golden"}
    if job.tags:
        body["tags"] = list(job.tags)
    body |= {
        "timeout": f"{timeout_minutes(job)}m",
        "interruptible": True,
        "retry": {"max": 2, "when": list(GITLAB_RETRY_WHEN)},
        "variables": {"CI_GOLDEN_JOB_ID": job.id},
        "script": [command],
        "artifacts": {
            "name": f"ci-golden-{job.id}",
            "when": "always",
            "expire_in": "30 days",
            "paths": [f"{OUT_DIR}/{job.id}/"],
        },
    }
    return body


def _check_gitlab_job(job: MatrixJob) -> None:
    if not job.tags and job.gpus > 0:
        raise MatrixLimitError(
            f"platform {job.platform!r} has GPUs but no GitLab runner tags, "
            "so its jobs could land on any runner; "
            f"set platforms.{job.platform}.gitlab.tags in the project config"
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
        doc = {"stages": ["golden", "report"], "default": default}
        for job in jobs:
            _check_gitlab_job(job)
            if job.name in doc:
                raise MatrixLimitError(f"two jobs are named {job.name!r}")
            doc[job.name] = _gitlab_job(job)
        report = {
            "stage": "report",
            "when": "always",
            "script": [expect_command(jobs), *REPORT_SCRIPT],
            "artifacts": {
                "name": "ci-golden-report",
                "when": "always",
                "expire_in": "30 days",
                "expose_as": "ci-golden report",  # a link in the merge request
                "paths": ["report.html", "report.md", "report.json", "report.xml"],
                "reports": {"junit": "report.xml"},
            },
        }
        doc[REPORT_JOB] = report
        header = f"# ci-golden child pipeline: {len(jobs)} jobs.\n"
        body = to_yaml(doc)
    text = header + "# Generated by `ci-golden matrix --ci gitlab`; do not edit.\n" + body
    size = len(text.encode())
    if size > GITLAB_MAX_BYTES:
        fits = len(jobs) * GITLAB_MAX_BYTES // size
        raise MatrixLimitError(
            f"the child pipeline is {size} bytes, over GitLab's limit of {GITLAB_MAX_BYTES}; "
            f"{_split_hint(selection, fits)}"
        )
    return text


RENDERERS_BY_NAME: dict[str, t.Callable[..., str]] = {
    "github": render_github,
    "gitlab": render_gitlab,
}
