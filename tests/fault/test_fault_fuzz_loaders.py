"""Every loader of untrusted input, fuzzed: goldens, configs, policy files, JSONL and log metrics,
TensorBoard event files, result.json and report JSON, the GitHub event payload and zip artifacts.

Each test writes what hypothesis draws to a real file and runs the loader on it (and, where the
CLI would go on, the next step: sampling, validating, planning the jobs, writing the golden).
The only exceptions allowed out are the package's own :class:`CiGoldenError` subclasses, which the
CLI turns into exit 2 and one line. Inputs are drawn both from structure (documents shaped like
the real thing, with hostile values: NaN, huge integers, lone surrogates, wrong types) and from
bytes (random, or a real file with bytes flipped, cut or inserted). The examples add up to
:data:`TOTAL_EXAMPLES` (at least 10,000).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import shutil
import struct
import tempfile
import typing as t
import warnings
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import load_policy_file, resolve_policies
from ci_golden.compare.result import dumps_result
from ci_golden.errors import CiGoldenError
from ci_golden.forge.context import github_context
from ci_golden.forge.fetch import Limits, safe_extract
from ci_golden.goldens.discover import Job, case_jobs, discover
from ci_golden.goldens.model import dumps_golden, load_golden
from ci_golden.project.config import load_config
from ci_golden.report.aggregate import collect_results, load_expected
from ci_golden.run.collect import collect
from ci_golden.run.execute import plan, spec_for
from ci_golden.run.tfevents import masked_crc32c
from ci_golden.validate.engine import check_case, check_golden_file

pytest.importorskip("tensorboard")
from tensorboard.compat.proto import event_pb2, summary_pb2

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "test_cases" / "demo" / "regular"
EXAMPLES = {
    "golden": 1800,
    "project_config": 800,
    "model_config": 1000,
    "policy_file": 400,
    "jsonl": 1400,
    "log": 1200,
    "events": 1800,
    "results": 1000,
    "webhook": 500,
    "zip": 1000,
}
TOTAL_EXAMPLES = sum(EXAMPLES.values())


def fuzz(name: str) -> t.Callable[[t.Callable[..., None]], t.Callable[..., None]]:
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # Scratch empties itself per example
        ],
    )


class Scratch:
    """One folder per test, emptied before each example (a function-scoped tmp_path is not
    renewed between hypothesis examples)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ci-golden-fuzz-"))

    def fresh(self) -> Path:
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return self.root

    def write(self, name: str, data: bytes) -> Path:
        path = self.fresh() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@pytest.fixture()
def scratch() -> t.Iterator[Scratch]:
    s = Scratch()
    yield s
    shutil.rmtree(s.root, ignore_errors=True)


def expect_clean(fn: t.Callable[[], t.Any]) -> t.Any:
    """Run ``fn``; a CiGoldenError is a clean refusal, anything else fails the test."""
    try:
        return fn()
    except CiGoldenError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


# --- building blocks ---------------------------------------------------------------------

HOSTILE_TEXT = st.sampled_from(
    ["", "nan", "NaN", "Infinity", "inf", "\ud800", "a\udfff", "\x00", "\u2028", "٣", "1" * 30]
)
TEXT = st.one_of(st.text(max_size=12), HOSTILE_TEXT)
INTEGERS = st.one_of(
    st.integers(-5, 200),
    st.integers(),
    st.integers(min_value=10**17, max_value=10**19),
    st.sampled_from([-(2**63), 2**63 - 1, 2**64, 10**18, 10**18 - 1, 10**400]),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SCALARS = st.one_of(st.none(), st.booleans(), INTEGERS, FLOATS, TEXT)


@functools.cache
def documents(keys: tuple[str, ...]) -> st.SearchStrategy[t.Any]:
    """JSON-like documents whose keys are often the ones the loader looks for."""
    key = st.one_of(st.sampled_from(keys), TEXT)
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(key, inner, max_size=6),
        max_leaves=30,
    )


def encoded_json(doc: t.Any, how: str) -> bytes:
    """``doc`` as JSON bytes: escaped, raw UTF-8 (a lone surrogate becomes invalid UTF-8), or
    with a byte-order mark."""
    text = json.dumps(doc, ensure_ascii=how != "raw", allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")
    return b"\xef\xbb\xbf" + data if how == "bom" else data


@st.composite
def damaged(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes flipped, a cut, or bytes inserted."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(max_size=16))
    return bytes(data)


def json_inputs(keys: t.Sequence[str], valid: t.Sequence[bytes]) -> st.SearchStrategy[bytes]:
    shaped = st.builds(
        encoded_json, documents(tuple(keys)), st.sampled_from(["ascii", "raw", "raw", "bom"])
    )
    return st.one_of(shaped, st.sampled_from(list(valid)).flatmap(damaged), st.binary(max_size=200))


# --- goldens -----------------------------------------------------------------------------

GOLDEN_KEYS = (
    "lm loss", "num-zeros", "iteration-time", "start_step", "end_step", "step_interval",
    "values", "value_precision", "1", "5", "0", "generated_tokens", "logprobs", "throughput",
    "mem-max-allocated-bytes", "iteration_timing_avg",
)  # fmt: skip
VALID_GOLDENS = [p.read_bytes() for p in sorted(DEMO.glob("golden_values*.json"))]


GOLDEN_VALUES = st.one_of(
    st.dictionaries(st.one_of(st.integers(-3, 10**19).map(str), TEXT), SCALARS, max_size=6),
    st.lists(SCALARS, max_size=6),
    SCALARS,
)
GOLDEN_NAMES = TEXT | st.sampled_from(GOLDEN_KEYS)


@st.composite
def golden_documents(draw: st.DrawFn) -> bytes:
    """A golden shaped like the current layout, with each field possibly hostile."""
    values = draw(GOLDEN_VALUES)
    block = {
        "start_step": draw(st.one_of(INTEGERS, SCALARS)),
        "end_step": draw(st.one_of(INTEGERS, SCALARS)),
        "step_interval": draw(st.one_of(INTEGERS, SCALARS)),
        "values": values,
    }
    if draw(st.booleans()):
        block["value_precision"] = draw(SCALARS)
    doc = {draw(GOLDEN_NAMES): block for _ in range(draw(st.integers(1, 3)))}
    return encoded_json(doc, draw(st.sampled_from(["ascii", "raw"])))


@fuzz("golden")
@given(data=st.one_of(golden_documents(), json_inputs(GOLDEN_KEYS, VALID_GOLDENS)))
def test_golden_files(scratch: Scratch, data: bytes) -> None:
    path = scratch.write("golden_values_dev_cpu.json", data)
    golden = expect_clean(lambda: load_golden(path))
    if golden is not None:
        json.loads(dumps_golden(golden))  # what update and migrate write
    expect_clean(lambda: check_golden_file(path, run=(50, "--train-iters")))


# --- configs -----------------------------------------------------------------------------

CONFIG_KEYS = (
    "test_cases", "platforms", "environments", "scopes", "default_scope", "gated_metrics",
    "metrics", "global_paths", "defaults", "gpu", "gpus_per_node", "opt_in", "github",
    "gitlab", "runs-on", "tags", "n_repeat", "time_limit", "nodes", "rtol", "atol", "kind",
    "window", "budget", "gated", "exact", "dgx_h100", "dev", "mr", "lm loss",
)  # fmt: skip
CASE_KEYS = (
    "ENV_VARS", "MODEL_ARGS", "MODEL_ARGS_2", "TEST_TYPE", "METRICS", "LAUNCHER", "N_REPEAT",
    "CI_GOLDEN", "scope", "platforms", "environments", "n_repeat", "time_limit", "nodes",
    "nondeterministic", "script", "command", "metrics", "--train-iters", "--log-interval",
    "--save-interval", "cpu", "dev", "lm loss", "rtol", "atol", "kind", "window", "budget",
)  # fmt: skip
VALID_PROJECT = (REPO / "ci_golden.yaml").read_bytes()
VALID_CASE = (DEMO / "model_config.yaml").read_bytes()


def yaml_inputs(keys: t.Sequence[str], valid: bytes) -> st.SearchStrategy[bytes]:
    def dump(doc: t.Any, flow: bool) -> bytes:
        try:
            text = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True)
        except (yaml.YAMLError, UnicodeEncodeError):
            text = json.dumps(doc, allow_nan=True)  # JSON is YAML too
        return text.encode("utf-8", "surrogatepass")

    hostile = st.sampled_from(
        [
            b"- a\n- b\n",
            b"just a string\n",
            b"a: &a [*a]\n",
            b"a: !!python/object:os.system {}\n",
            b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n",
            b"n: " + b"9" * 5000 + b"\n",
            b'm: "\\ud800"\n',
            b"k: 1\nk: 2\n",
            b"\xff\xfe",
        ]
    )
    return st.one_of(
        st.builds(dump, documents(tuple(keys)), st.booleans()),
        st.builds(lambda v: valid + v, st.binary(max_size=40)),
        st.just(valid).flatmap(damaged),
        hostile,
        st.binary(max_size=120),
    )


@fuzz("project_config")
@given(data=yaml_inputs(CONFIG_KEYS, VALID_PROJECT))
def test_project_config(scratch: Scratch, data: bytes) -> None:
    path = scratch.write("ci_golden.yaml", data)
    (scratch.root / "test_cases").mkdir()
    config = expect_clean(lambda: load_config(path))
    if config is not None:
        expect_clean(lambda: [case_jobs(c, config) for c in discover(config).cases])


@fuzz("model_config")
@given(data=yaml_inputs(CASE_KEYS, VALID_CASE))
def test_model_config(scratch: Scratch, data: bytes) -> None:
    root = scratch.fresh()
    shutil.copy(REPO / "ci_golden.yaml", root / "ci_golden.yaml")
    case_dir = root / "test_cases" / "demo" / "case"
    case_dir.mkdir(parents=True)
    (case_dir / "model_config.yaml").write_bytes(data)
    for golden in DEMO.glob("golden_values*.json"):
        shutil.copy(golden, case_dir / golden.name)
    config = load_config(root / "ci_golden.yaml")
    (case,) = discover(config).cases
    expect_clean(lambda: case.settings)
    jobs = expect_clean(lambda: case_jobs(case, config))
    expect_clean(lambda: check_case(case, config))
    expect_clean(lambda: resolve_policies(config, case))
    if jobs:  # the commands a runner would run (as `run --dry-run` prints them)
        expect_clean(lambda: plan(spec_for(case, jobs[0], config, root / "out"), config, {}))


@fuzz("policy_file")
@given(data=yaml_inputs((*CASE_KEYS[-5:], "metrics", "mem-*"), b"lm loss: {rtol: 0.1}\n"))
def test_policy_file(scratch: Scratch, data: bytes) -> None:
    path = scratch.write("policy.yaml", data)
    expect_clean(lambda: load_policy_file(path))


# --- metrics logs ------------------------------------------------------------------------

INTERVALS = st.integers(1, 10**6) | st.sampled_from([1, 5, 10**17])
LAST_STEPS = st.none() | st.integers(1, 1000) | st.just(10**18 - 1)

JSONL_LINE = st.one_of(
    st.builds(
        encoded_json,
        st.dictionaries(
            st.one_of(st.sampled_from(["step", "iteration", "lm loss", "num-zeros"]), TEXT),
            st.one_of(SCALARS, documents(("step",))),
            max_size=5,
        ),
        st.sampled_from(["ascii", "raw"]),
    ),
    st.sampled_from(
        [
            b'{"step": 1, "lm loss": 1.5}',
            b'{"step": 1000000000000000, "lm loss": 2.0}',
            b'{"step": 999999999999999999, "lm loss": 2.0}',
            b'{"step": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            b'{"step": 1, "x": ' + b"9" * 5000 + b"}",
            b'{"step": 1, "\\ud800": 1}',
            b"",
            b"   ",
        ]
    ),
    st.binary(max_size=40),
)


@fuzz("jsonl")
@given(lines=st.lists(JSONL_LINE, min_size=1, max_size=6), interval=INTERVALS, last=LAST_STEPS)
def test_jsonl_metrics(
    scratch: Scratch, lines: list[bytes], interval: int, last: int | None
) -> None:
    path = scratch.write("metrics.jsonl", b"\n".join(lines) + b"\n")
    golden = expect_clean(lambda: collect([path], step_size=interval, train_iters=last)[0])
    if golden is not None:
        json.loads(dumps_golden(golden))


LOG_PIECES = st.sampled_from(
    [
        " iteration ", "iteration", "/", " | ", "|", ": ", ":", "lm loss", "num zeros",
        "elapsed time per iteration (ms)", "mem-allocated-bytes-avg(MB)", "1", "10", "100",
        "1000000000000000", "999999999999999999", "9" * 30, "٣", "nan", "inf", "-inf",
        "1.5E+01", "\n", "\r", "[default0]:", "\x00", "\ud800",
    ]
)  # fmt: skip
LOG_LINE = st.one_of(
    st.builds(
        "iteration {}/ {} | lm loss: {} | num zeros: {} |".format,
        INTEGERS, INTEGERS, FLOATS, TEXT,
    ),
    st.lists(LOG_PIECES | TEXT, max_size=12).map("".join),
)  # fmt: skip


@fuzz("log")
@given(lines=st.lists(LOG_LINE, min_size=1, max_size=6), interval=INTERVALS, last=LAST_STEPS)
def test_megatron_logs(scratch: Scratch, lines: list[str], interval: int, last: int | None) -> None:
    text = "\n".join(lines) + "\n"
    path = scratch.write("stdout.log", text.encode("utf-8", "surrogatepass"))
    golden = expect_clean(
        lambda: collect([path], fmt="log", step_size=interval, train_iters=last)[0]
    )
    if golden is not None:
        json.loads(dumps_golden(golden))


# --- TensorBoard event files -------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """A well-formed Event: any step, scalars as simple values or tensors of any dtype/shape."""
    event = event_pb2.Event(
        wall_time=draw(st.floats(allow_nan=True)),
        step=draw(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 100)),
    )
    for _ in range(draw(st.integers(0, 3))):
        value = event.summary.value.add(tag=draw(st.text(max_size=10)))
        if draw(st.booleans()):
            value.simple_value = draw(FLOATS)
        else:
            tensor = value.tensor
            tensor.dtype = draw(st.sampled_from([0, 1, 2, 3, 9, 14, 19, 7, 99]))
            for _ in range(draw(st.integers(0, 2))):
                tensor.tensor_shape.dim.add(size=draw(st.integers(-1, 3)))
            field = draw(
                st.sampled_from(["float_val", "double_val", "int_val", "int64_val", "half_val"])
            )
            bound = {"float_val": 3e38, "double_val": 1e308}.get(field)
            items = (
                st.floats(-bound, bound) | st.just(math.nan)
                if bound
                else st.integers(-(2**31), 2**31 - 1)
            )
            getattr(tensor, field).extend(draw(st.lists(items, max_size=2)))
            if draw(st.booleans()):
                tensor.tensor_content = draw(st.binary(max_size=9))
            if draw(st.booleans()):
                value.metadata.plugin_data.plugin_name = draw(
                    st.sampled_from(["scalars", "text", "", "histograms"])
                )
    return event.SerializeToString()


VERSION = frame(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
VALID_EVENTS = VERSION + b"".join(
    frame(
        event_pb2.Event(
            step=s,
            summary=summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag="lm loss", simple_value=1.0 / s)]
            ),
        ).SerializeToString()
    )
    for s in (1, 5, 10)
)
EVENT_FILES = st.one_of(
    st.lists(events(), max_size=4).map(lambda ps: VERSION + b"".join(map(frame, ps))),
    st.lists(st.binary(max_size=30), max_size=4).map(lambda ps: b"".join(map(frame, ps))),
    st.just(VALID_EVENTS).flatmap(damaged),
    st.binary(max_size=120),
)


@fuzz("events")
@given(data=EVENT_FILES, interval=INTERVALS, last=LAST_STEPS)
def test_event_files(scratch: Scratch, data: bytes, interval: int, last: int | None) -> None:
    path = scratch.write("tb/events.out.tfevents.1.host", data)
    golden = expect_clean(lambda: collect([path.parent], step_size=interval, train_iters=last)[0])
    if golden is not None:
        json.loads(dumps_golden(golden))


# --- results, reports and plans ----------------------------------------------------------

RESULT_KEYS = (
    "version", "verdict", "case", "environment", "platform", "golden", "actual", "message",
    "nondeterministic", "gated", "metrics", "policy", "kind", "rtol", "n_compared", "n_failed",
    "budget", "steps", "golden_stat", "max_rel_diff", "phases", "repeats", "results", "include",
    "pass", "fail", "drift", "lm loss", "id", "name", "runs-on",
)  # fmt: skip


@functools.cache
def valid_result() -> bytes:
    """A real result.json: the demo golden compared with itself."""
    path = DEMO / "golden_values_dev_cpu.json"
    golden = load_golden(path)
    job = Job("demo/regular", "dev", "cpu", path)
    result = compare_job(
        job, golden, golden, policies={}, gated=["lm loss"], nondeterministic=False
    )
    return dumps_result(result).encode()


def paths_in(doc: t.Any, prefix: tuple[t.Any, ...] = ()) -> t.Iterator[tuple[t.Any, ...]]:
    """The path of every node below the root of a JSON document."""
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield (*prefix, key)
        yield from paths_in(value, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, bases: t.Sequence[bytes], keys: t.Sequence[str]) -> bytes:
    """A real document with one node replaced by a hostile value; mostly a node the loader
    reads (its key is in ``keys``), sometimes any."""
    doc = json.loads(draw(st.sampled_from(list(bases))))
    paths = list(paths_in(doc))
    read = [p for p in paths if p[-1] in keys]
    path = draw(st.sampled_from(read if read and draw(st.booleans()) else paths))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(documents(tuple(keys)))
    return encoded_json(doc, draw(st.sampled_from(["ascii", "raw"])))


@fuzz("results")
@given(
    data=st.one_of(
        mutated([valid_result()], RESULT_KEYS),
        json_inputs(RESULT_KEYS, [valid_result()]),
    )
)
def test_results_and_reports(scratch: Scratch, data: bytes) -> None:
    path = scratch.write("out/result.json", data)
    expect_clean(lambda: collect_results([path.parent]))
    plan = scratch.root / "plan.json"
    plan.write_bytes(data)
    expect_clean(lambda: load_expected(plan))


# --- the GitHub event payload ------------------------------------------------------------

PAYLOAD_KEYS = (
    "pull_request", "number", "head", "base", "repo", "full_name", "sha", "merge_group",
    "head_sha", "head_ref", "workflow_run", "pull_requests", "head_repository", "html_url",
    "repository",
)  # fmt: skip
VALID_PAYLOADS = [
    p.read_bytes() for p in sorted((REPO / "tests" / "data" / "webhook_payloads").glob("*.json"))
]


@fuzz("webhook")
@given(
    data=st.one_of(
        mutated(VALID_PAYLOADS, PAYLOAD_KEYS), json_inputs(PAYLOAD_KEYS, VALID_PAYLOADS)
    ),
    event=st.sampled_from(["pull_request", "pull_request_target", "merge_group", "workflow_run"]),
)
def test_github_event_payload(scratch: Scratch, data: bytes, event: str) -> None:
    path = scratch.write("event.json", data)
    environ = {
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REPOSITORY": "octo/repo",
    }
    expect_clean(lambda: github_context(environ))


# --- zip artifacts -----------------------------------------------------------------------

ZIP_NAMES = st.one_of(
    st.sampled_from(
        [
            "result.json", "a/result.json", "../x", "/abs", "C:x", "a\\..\\b", "a/", "a/b/../c",
            "dup", "DUP", "a" * 300, "x/" * 60 + "y", "\x00", "ü", "a//b", ".", "./a",
        ]
    ),
    st.text(min_size=1, max_size=20),
)  # fmt: skip


def build_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are wanted here
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            try:
                zf.writestr(info, content)
            except (UnicodeEncodeError, ValueError):
                continue
    return buf.getvalue()


ZIPS = st.lists(
    st.tuples(
        ZIP_NAMES,
        st.binary(max_size=64),
        st.sampled_from([0, 0o100644, 0o120777, 0o040755, 0o010644, 0o020644]),
    ),
    max_size=5,
).map(build_zip)
VALID_ZIP = build_zip([("job/result.json", b"{}", 0o100644)])


@fuzz("zip")
@given(data=st.one_of(ZIPS, st.just(VALID_ZIP).flatmap(damaged), ZIPS.flatmap(damaged)))
def test_zip_artifacts(scratch: Scratch, data: bytes) -> None:
    dest = scratch.fresh() / "out"
    dest.mkdir()
    limits = Limits(entry=1024, total=4096, entries=50)
    expect_clean(lambda: safe_extract(data, dest, archive="artifact", limits=limits))
    for path in dest.rglob("*"):  # nothing written outside the folder, no links
        assert not path.is_symlink()
        assert os.path.commonpath([path.resolve(), dest.resolve()]) == str(dest.resolve())


def test_the_fuzzing_runs_ten_thousand_examples() -> None:
    assert TOTAL_EXAMPLES >= 10_000
