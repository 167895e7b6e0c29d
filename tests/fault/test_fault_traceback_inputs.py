"""The inputs that ended in a traceback (exit 3, "internal error"), one test each: now exit 2 (1
for validate's findings) with one line naming the file and the place.

Each row writes its hostile input into a copy of the demo project and runs one real command.
``{root}`` in an expected line is the project folder. (The forge's own inputs, event payloads and
HTTP answers, are tested with the hostile forge servers; sparse steps, which made collect loop,
in tests/unit/test_run_collect.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import typing as t
from pathlib import Path

import pytest
from conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
GOLDEN = "test_cases/demo/regular/golden_values_dev_cpu.json"
CONFIG = "test_cases/demo/regular/model_config.yaml"
RUN = ("run", "demo/regular", "--environment", "dev", "--platform", "cpu")
COMPARE = ("compare", "--golden", GOLDEN, "--actual", GOLDEN)
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000


class Row(t.NamedTuple):
    files: dict[str, str | bytes]  # path below the project -> content; "+" first: appended
    argv: tuple[str, ...]
    stderr: str  # the whole of stderr, "{root}" for the project folder
    code: int = 2
    stdout: str | None = None  # a line stdout must hold (validate's findings)


def golden_with(extra: str) -> str:
    """The demo golden with one more top-level entry."""
    return "{\n    " + extra + ",\n" + (Path(__file__).parents[2] / GOLDEN).read_text()[2:]


def result_json(**changes: t.Any) -> str:
    """A real result.json (the demo golden compared with itself) with some fields changed."""
    from ci_golden.compare.engine import compare_job
    from ci_golden.compare.result import dumps_result
    from ci_golden.goldens.discover import Job
    from ci_golden.goldens.model import load_golden

    path = Path(__file__).parents[2] / GOLDEN
    golden = load_golden(path)
    result = compare_job(
        Job("demo/regular", "dev", "cpu", path), golden, golden,
        policies={}, gated=["lm loss"], nondeterministic=False,
    )  # fmt: skip
    return json.dumps({**json.loads(dumps_result(result)), **changes})


def frame(payload: bytes) -> bytes:
    from ci_golden.run.tfevents import masked_crc32c

    header = struct.pack("<Q", len(payload))
    return b"".join(
        [header, struct.pack("<I", masked_crc32c(header)), payload,
         struct.pack("<I", masked_crc32c(payload))]
    )  # fmt: skip


def event(step: int, value: float) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="x", simple_value=value)])
    return frame(event_pb2.Event(step=step, wall_time=1.0, summary=summary).SerializeToString())


def flipped(data: bytes) -> bytes:
    """The last record's float value with one bit flipped: still a valid Event."""
    out = bytearray(data)
    out[-6] ^= 0x01
    return bytes(out)


ROWS: dict[str, Row] = {
    # tolerances: NaN passed validate, then crashed run (no result.json) and compare
    "config-rtol-nan-run": Row(
        {"ci_golden.yaml": "+metrics:\n  lm loss: {rtol: .nan}\n"},
        RUN,
        'ci-golden run: error: {root}/ci_golden.yaml::$.metrics["lm loss"].rtol: '
        "nan is not a finite number",
    ),
    "config-rtol-nan-compare": Row(
        {"ci_golden.yaml": "+metrics:\n  lm loss: {rtol: .nan}\n"},
        COMPARE,
        'ci-golden compare: error: {root}/ci_golden.yaml::$.metrics["lm loss"].rtol: '
        "nan is not a finite number",
    ),
    "config-atol-inf-run": Row(
        {"ci_golden.yaml": "+metrics:\n  '*': {atol: .inf}\n"},
        RUN,
        'ci-golden run: error: {root}/ci_golden.yaml::$.metrics["*"].atol: '
        "inf is not a finite number",
    ),
    "config-atol-inf-compare": Row(
        {"ci_golden.yaml": "+metrics:\n  '*': {atol: .inf}\n"},
        COMPARE,
        'ci-golden compare: error: {root}/ci_golden.yaml::$.metrics["*"].atol: '
        "inf is not a finite number",
    ),
    "case-rtol-nan-run": Row(
        {CONFIG: "+  metrics: {lm loss: {rtol: .nan}}\n"},
        RUN,
        "ci-golden run: error: {root}/" + CONFIG + '::$.CI_GOLDEN.metrics["lm loss"].rtol: '
        "nan is not a finite number",
    ),
    "case-rtol-nan-compare": Row(
        {CONFIG: "+  metrics: {lm loss: {rtol: .nan}}\n"},
        (*COMPARE, "--case", "test_cases/demo/regular"),
        "ci-golden compare: error: test_cases/demo/regular/model_config.yaml::"
        '$.CI_GOLDEN.metrics["lm loss"].rtol: nan is not a finite number',
    ),
    "policy-atol-minus-inf": Row(
        {"policy.yaml": "mem-*: {atol: -.inf}\n"},
        (*COMPARE, "--policy", "policy.yaml"),
        'ci-golden compare: error: policy.yaml::$["mem-*"].atol: -inf is not a finite number',
    ),
    "policy-rtol-nan": Row(
        {"policy.yaml": "lm loss: {rtol: .nan}\n"},
        (*COMPARE, "--policy", "policy.yaml"),
        'ci-golden compare: error: policy.yaml::$["lm loss"].rtol: nan is not a finite number',
    ),
    # JSONL lines: huge integers, deep nesting, lone surrogates, no newline
    "jsonl-huge-integer-value": Row(
        {"m.jsonl": '{"step": 1, "x": ' + HUGE + "}\n"},
        ("collect", "m.jsonl"),
        "ci-golden collect: error: m.jsonl::line 1: not JSON: an integer literal too long to read",
    ),
    "jsonl-huge-integer-step": Row(
        {"m.jsonl": '{"step": 100000000000000000000000, "x": 1}\n'},
        ("collect", "m.jsonl"),
        "ci-golden collect: error: m.jsonl::line 1: step 100000000000000000000000 is out of "
        "range (0 to 999999999999999999)",
    ),
    "jsonl-100k-nested-brackets": Row(
        {"m.jsonl": '{"step": 1, "x": ' + DEEP + "}\n"},
        ("collect", "m.jsonl"),
        "ci-golden collect: error: m.jsonl::line 1: not JSON: nested too deeply",
    ),
    "jsonl-lone-surrogate-name": Row(
        {"m.jsonl": '{"step": 1, "lm \\udc80loss": 1.5}\n'},
        ("collect", "m.jsonl"),
        'ci-golden collect: error: m.jsonl::line 1: metric name "lm \\udc80loss" holds half of '
        "a UTF-16 surrogate pair",
    ),
    "jsonl-line-without-newline": Row(
        {"m.jsonl": '{"step": 1, "x": "' + "a" * (5 << 20)},
        ("collect", "m.jsonl"),
        "ci-golden collect: error: m.jsonl::line 1: line over 4194304 bytes; refused",
    ),
    # Megatron log lines
    "log-huge-step-digits": Row(
        {"s.log": " iteration " + HUGE + "/ 10 | lm loss: 1.0 |\n"},
        ("collect", "s.log"),
        "ci-golden collect: error: s.log::line 1: step " + "9" * 30 + "... is out of range "
        "(0 to 999999999999999999)",
    ),
    # goldens: metric names with lone surrogates, huge integers, nesting
    "golden-lone-surrogate-metric": Row(
        {
            "g.json": golden_with(
                '"\\ud800": {"start_step": 1, "end_step": 1, "step_interval": 1, '
                '"values": {"1": 1.0}}'
            )
        },
        ("compare", "--golden", "g.json", "--actual", GOLDEN),
        "ci-golden compare: error: g.json::line 2: \\ud800 is half of a UTF-16 surrogate pair, "
        "not a character",
    ),
    "golden-lone-surrogate-validate": Row(
        {
            "test_cases/demo/regular/golden_values_lts_cpu.json": golden_with(
                '"m\\udfff": {"start_step": 1, "end_step": 1, "step_interval": 1, '
                '"values": {"1": 1}}'
            )
        },
        ("validate",),
        "",
        1,
        "test_cases/demo/regular/golden_values_lts_cpu.json:2: CG103 error: \\udfff is half of "
        "a UTF-16 surrogate pair, not a character",
    ),
    "golden-huge-integer": Row(
        {
            "g.json": golden_with(
                '"x": {"start_step": 1, "end_step": 1, "step_interval": 1, '
                '"values": {"1": ' + HUGE + "}}"
            )
        },
        ("compare", "--golden", "g.json", "--actual", GOLDEN),
        "ci-golden compare: error: g.json::line 2: number too long: an integer literal of 5000 "
        "digits",
    ),
    "golden-legacy-start-over-int64": Row(
        {
            "g.json": '{"lm loss": {"start_step": 100000000000000000000000000000, "end_step": 1, '
            '"step_interval": 1, "values": [1.0]}}'
        },
        ("compare", "--golden", "g.json", "--actual", GOLDEN),
        'ci-golden compare: error: g.json::$["lm loss"].start_step: start_step '
        "100000000000000000000000000000 is out of range (0 to 999999999999999999)",
    ),
    "golden-100k-nested": Row(
        {"g.json": '{"x": ' + DEEP + "}"},
        ("compare", "--golden", "g.json", "--actual", GOLDEN),
        "ci-golden compare: error: g.json: JSON nested too deeply",
    ),
    # result.json
    "result-lone-surrogate-case": Row(
        {"out/result.json": result_json(case="demo/\ud83d")},
        ("report", "out"),
        "ci-golden report: error: out/result.json::line 1: \\ud83d is half of a UTF-16 "
        "surrogate pair, not a character",
    ),
    "result-huge-integer": Row(
        {"out/result.json": result_json(version=int("9" * 4000)).replace("9" * 4000, HUGE)},
        ("report", "out"),
        "ci-golden report: error: out/result.json::line 1: number too long: an integer literal "
        "of 5000 digits",
    ),
    "result-100k-nested": Row(
        {"out/result.json": result_json(message=None).replace("null", DEEP, 1)},
        ("report", "out"),
        "ci-golden report: error: out/result.json: JSON nested too deeply",
    ),
    # case names that are not UTF-8 (printed, not crashed on)
    "case-name-not-utf8-validate": Row(
        {"test_cases/demo/bad\udcff/golden_values.json": "{}"},
        ("validate",),
        "",
        1,
        "test_cases/demo/bad\\udcff: CG150 error: case folder name is not UTF-8; it cannot be "
        "a job name",
    ),
    "case-name-not-utf8-list": Row(
        {"test_cases/demo/bad\udcff/golden_values.json": "{}"},
        ("list",),
        "ci-golden list: error: {root}/test_cases/demo/bad\\udcff: CG150: case folder name is "
        "not UTF-8; it cannot be a job name",
    ),
    # configs
    "case-config-huge-integer": Row(
        {CONFIG: "+  n_repeat: " + HUGE + "\n"},
        ("list",),
        "ci-golden list: error: {root}/" + CONFIG + ": invalid YAML: an integer literal too "
        "long to read",
    ),
    "case-config-integer-key": Row(
        {CONFIG: b"1: one\nENV_VARS: {}\n"},
        ("matrix", "--ci", "github"),
        "ci-golden matrix: error: {root}/" + CONFIG + "::$: top-level key 1 is not a string "
        "(YAML reads on/off/yes/no/null/~ and numbers unquoted): quote it",
    ),
    "project-config-control-character": Row(
        {"ci_golden.yaml": "+# a form feed \x0c or a bell \x07\n"},
        ("validate",),
        "ci-golden validate: error: {root}/ci_golden.yaml::line "
        + str(len((REPO / "ci_golden.yaml").read_text().splitlines()) + 1)
        + ": invalid YAML: character "
        "#x000c: control characters are not allowed",
    ),
    "project-config-huge-integer": Row(
        {"ci_golden.yaml": "+defaults: {nodes: " + HUGE + "}\n"},
        ("validate",),
        "ci-golden validate: error: {root}/ci_golden.yaml: invalid YAML: an integer literal too "
        "long to read",
    ),
    # TensorBoard event files
    "event-payload-not-an-event": Row(
        {"tb/events.out.tfevents.1.h": frame(b"\xff" * 9)},
        ("collect", "tb"),
        "ci-golden collect: error: tb/events.out.tfevents.1.h: record at byte 0 is not a "
        "TensorBoard Event: Error parsing message with type 'tensorboard.Event': Wire format was "
        "corrupt",
    ),
    "event-negative-step": Row(
        {"tb/events.out.tfevents.1.h": event(-1, 1.0)},
        ("collect", "tb"),
        "ci-golden collect: error: tb/events.out.tfevents.1.h: record at byte 0 logs step -1, "
        "out of range (0 to 999999999999999999)",
    ),
    "event-flipped-bit": Row(
        {"tb/events.out.tfevents.1.h": event(1, 1.0) + flipped(event(2, 2.0))},
        ("collect", "tb"),
        "ci-golden collect: error: tb/events.out.tfevents.1.h: record at byte 39 is damaged: "
        "its 23 bytes of data do not match their checksum",
    ),
    # a matrix entry given to run
    "job-100k-nested": Row(
        {"job.json": '{"case": ' + DEEP + "}"},
        ("run", "--job", "job.json", "--dry-run"),
        "ci-golden run: error: job.json: JSON nested too deeply",
    ),
    "job-huge-n-repeat": Row(
        {"job.json": '{"case": "demo/regular", "n_repeat": ' + HUGE + "}"},
        ("run", "--job", "job.json", "--dry-run"),
        "ci-golden run: error: job.json::line 1: number too long: an integer literal of 5000 "
        "digits",
    ),
    # numeric options
    "calibrate-safety-nan": Row(
        {},
        ("calibrate", GOLDEN, "--safety", "nan"),
        "ci-golden calibrate: error: --safety must be a finite number >= 1 and --floor a finite "
        "number >= 0",
    ),
    "run-grace-nan": Row(
        {},
        (*RUN, "--grace", "nan"),
        "ci-golden run: error: --grace nan: expected a finite number of seconds >= 0",
    ),
}


def test_there_are_at_least_35_rows() -> None:
    assert len(ROWS) >= 35, len(ROWS)


@pytest.fixture()
def project(tmp_path: Path, repo_root: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(repo_root / "ci_golden.yaml", root / "ci_golden.yaml")
    shutil.copytree(repo_root / "test_cases" / "demo", root / "test_cases" / "demo")
    return root


@pytest.mark.parametrize("name", ROWS)
def test_a_traceback_input_is_one_line(project: Path, name: str) -> None:
    pytest.importorskip("tensorboard")
    row = ROWS[name]
    for rel, content in row.files.items():
        path = os.path.join(os.fsencode(project), os.fsencode(rel))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, str) and content.startswith("+"):
            with open(path, "a", encoding="utf-8") as f:
                f.write(content[1:])
        else:
            data = content if isinstance(content, bytes) else content.encode()
            with open(path, "wb") as f:
                f.write(data)
    res = run_cli(*row.argv, cwd=project, timeout=120)
    assert "Traceback" not in res.stderr + res.stdout
    assert res.returncode == row.code, res
    expected = row.stderr.replace("{root}", str(project))
    assert res.stderr == (expected + "\n" if expected else ""), res.stderr
    if row.stdout is not None:
        assert row.stdout in res.stdout.splitlines(), res.stdout
    if name.endswith("-run"):
        assert not (project / "ci-golden-out").exists()  # refused before anything ran
