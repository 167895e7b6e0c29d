"""The validate stage on hand-made bad inputs, the real corpus, and the fast path vs the schema."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import typing as t
from pathlib import Path

import pytest

from ci_golden.goldens.discover import discover
from ci_golden.goldens.model import GoldenFormatError, load_golden, read_json
from ci_golden.project.config import load_config
from ci_golden.project.yamlio import DuplicateKeyError, load_yaml
from ci_golden.validate.engine import ValidationResult, validate
from ci_golden.validate.fast import golden_ok, model_config_ok, schema_validator
from ci_golden.validate.render import render_text

DATA = Path(__file__).parents[1] / "data"
INVALID = DATA / "invalid"
VALID = DATA / "valid"


def check_tree(root: Path) -> ValidationResult:
    """Validate a test-case root under the built-in config; paths relative to the root."""
    config = load_config(cwd=root, test_cases=root)
    return validate(discover(config), base=root)


def finding_lines(root: Path) -> list[str]:
    return render_text(check_tree(root)).splitlines()[:-1]


EXPECTED: dict[str, list[str]] = {
    "block_not_an_object": [
        "case/golden_values_dev_dgx_h100.json:2: CG110 error: "
        '$["lm loss"]: 10.5 is not of type "object"',
    ],
    "byte_order_mark": [
        "case/golden_values_dev_dgx_h100.json:1: CG103 error: "
        "file starts with a UTF-8 byte-order mark",
    ],
    "case_folder_with_dotdot": [
        "a..b: CG150 error: case folder name contains '..'; it cannot be a job name",
    ],
    "case_folder_with_spaces": [
        "my case: CG150 error: case folder name has whitespace; it cannot be a job name",
    ],
    "ci_golden_misspelt_key": [
        "case/model_config.yaml:7: CG141 error: "
        "$.CI_GOLDEN: unknown key \"platfroms\" (did you mean 'platforms'?)",
    ],
    "ci_golden_unknown_platform": [
        "case/model_config.yaml:7: CG142 error: "
        "$.CI_GOLDEN: unknown platform 'dgx_h10' (did you mean 'dgx_h100'?)",
    ],
    "duplicate_metric_key": [
        'case/golden_values_dev_dgx_h100.json:20: CG105 error: duplicate key "lm loss"',
    ],
    "duplicate_step_key": [
        'case/golden_values_dev_dgx_h100.json:9: CG105 error: duplicate key "2"',
    ],
    "empty_object": [
        "case/golden_values_dev_dgx_h100.json:1: CG104 error: "
        "$: empty object {}: no metric to compare",
    ],
    "empty_values": [
        'case/golden_values_dev_dgx_h100.json:6: CG110 error: $["lm loss"].values: {} is empty',
    ],
    "end_step_past_run": [
        'case/golden_values_dev_dgx_h100.json:4: CG113 error: $["lm loss"].end_step: end_step 12 '
        "is past the end of the run (--train-iters 10): steps up to 12 can never be compared",
    ],
    "end_step_short_of_run": [
        'case/golden_values_dev_dgx_h100.json:4: CG113 error: $["lm loss"].end_step: end_step 5 '
        "stops short of the run (--train-iters 10): steps 6..10 are not checked",
    ],
    "exit_interval_shorter_than_golden": [
        'case/golden_values_dev_dgx_h100.json:4: CG113 error: $["lm loss"].end_step: end_step 10 '
        "is past the end of the run (--exit-interval 8): steps up to 10 can never be compared",
    ],
    "extra_top_level_number": [
        "case/golden_values_dev_dgx_h100.json:19: CG110 error: "
        '$.iteration_timing_avg: 0.5 is not of type "object"',
    ],
    "goldens_without_model_config": [
        "case/golden_values_dev_dgx_h100.json: CG143 error: "
        "folder case holds golden files but no model_config.yaml",
    ],
    "huge_integer_value": [
        'case/golden_values_dev_dgx_h100.json:8: CG110 error: $["lm loss"].values["2"]: '
        "100000000000000000000000000000000000000… is greater than the maximum "
        "1.7976931348623157e+308",
    ],
    "huge_step_key": [
        "case/golden_values_dev_dgx_h100.json:6: CG110 error: "
        '$["lm loss"].values: "2000000000000000000000000" does not match ^(0|[1-9][0-9]{0,17})$',
    ],
    "inference_tokens_not_integers": [
        "case/golden_values_dev_dgx_h100.json:4: CG110 error: "
        '$["0"].generated_tokens[0]: "a" is not of type "integer"',
    ],
    "infinity_literal": [
        "case/golden_values_dev_dgx_h100.json:8: CG106 error: "
        '-Infinity is not valid JSON; write the string "nan"',
    ],
    "integer_literal_too_long": [
        "case/golden_values_dev_dgx_h100.json:8: CG102 error: "
        "number too long: an integer literal of 5000 digits",
    ],
    "job_without_golden_yet": [
        "case/model_config.yaml: CG145 warning: "
        "job dev/dgx_a100 has no golden yet; the first run proposes one",
        "case/model_config.yaml: CG145 warning: "
        "job lts/dgx_a100 has no golden yet; the first run proposes one",
    ],
    "legacy_layout": [
        "case/golden_values_dev_dgx_h100.json:1: CG120 warning: "
        "$: legacy list layout; `ci-golden migrate` rewrites it in the current layout",
    ],
    "legacy_length_mismatch": [
        "case/golden_values_dev_dgx_h100.json:1: CG120 warning: "
        "$: legacy list layout; `ci-golden migrate` rewrites it in the current layout",
        "case/golden_values_dev_dgx_h100.json:6: CG112 error: "
        '$["lm loss"].values: 3 values, but start_step/end_step/step_interval select 2',
    ],
    "metric_missing_from_golden": [
        "case/model_config.yaml:5: CG115 error: "
        "$.METRICS[1]: METRICS names 'num-zeros', missing from golden_values_dev_dgx_h100.json",
    ],
    "metrics_not_strings": [
        'case/model_config.yaml:5: CG141 error: $.METRICS[1]: 5 is not of type "string"',
    ],
    "missing_end_step": [
        "case/golden_values_dev_dgx_h100.json:2: CG110 error: "
        '$["lm loss"]: object lacks the required key "end_step"',
    ],
    "misspelt_block_key": [
        "case/golden_values_dev_dgx_h100.json:2: CG110 error: "
        '$["lm loss"]: unknown key "step_intervall" (did you mean \'step_interval\'?)',
        "case/golden_values_dev_dgx_h100.json:2: CG110 error: "
        '$["lm loss"]: object lacks the required key "step_interval"',
    ],
    "mixed_layouts": [
        "case/golden_values_dev_dgx_h100.json:6: CG110 error: "
        '$["lm loss"].values: {"1": 9.9, "2": 9.8, "3": 9.7, "4": 9.6… is not of type "array"',
    ],
    "model_args_wrong_type": [
        "case/model_config.yaml:1: CG141 error: "
        '$.MODEL_ARGS: ["--train-iters 10"] is not of type ["object", "null"]',
    ],
    "model_config_not_a_mapping": [
        "case/model_config.yaml:1: CG141 error: $: must be a mapping, got list",
    ],
    "model_config_without_golden": [
        "case/model_config.yaml: CG144 error: "
        "no job: no golden file (add CI_GOLDEN.platforms to run it without one)",
    ],
    "nan_literal": [
        "case/golden_values_dev_dgx_h100.json:8: CG106 error: "
        'NaN is not valid JSON; write the string "nan"',
    ],
    "nan_padding_past_run": [
        'case/golden_values_dev_dgx_h100.json:4: CG114 warning: $["lm loss"].end_step: end_step 12 '
        'is past the end of the run (--train-iters 10); the steps after it are all "nan"',
    ],
    "negative_step_key": [
        "case/golden_values_dev_dgx_h100.json:6: CG110 error: "
        '$["lm loss"].values: "-1" does not match ^(0|[1-9][0-9]{0,17})$',
    ],
    "non_integer_step_key": [
        "case/golden_values_dev_dgx_h100.json:6: CG110 error: "
        '$["lm loss"].values: "2.5" does not match ^(0|[1-9][0-9]{0,17})$',
    ],
    "not_a_golden_name": [
        "case/golden_values-dev.json: CG130 error: "
        "not a golden file name: expected golden_values[_<env>[_<platform>]].json",
    ],
    "not_json_text": [
        "case/golden_values_dev_dgx_h100.json:1: CG102 error: "
        "line 1 column 1: not valid JSON: Expecting value",
    ],
    "not_utf8": [
        "case/golden_values_dev_dgx_h100.json:2: CG103 error: not UTF-8 (byte 15)",
    ],
    "number_overflows_double": [
        'case/golden_values_dev_dgx_h100.json:8: CG106 error: $["lm loss"].values["2"]: Infinity: '
        'a number out of the range of a double; write a finite number or "nan"',
    ],
    "old_cluster_name": [
        "case/golden_values_lts_dgxa100_dracooci.json: CG134 warning: "
        "unreferenced: unknown platform 'dgxa100_dracooci' (an old cluster name?)",
    ],
    "platform_not_in_environment": [
        "case/golden_values_lts_dgx_h100.json: CG135 warning: "
        "unreferenced: platform 'dgx_h100' is not in environment 'lts' of the config",
    ],
    "platform_typo_in_name": [
        "case/golden_values_dev_dgx_h10.json: CG131 error: "
        "unknown platform 'dgx_h10' in the file name (did you mean 'dgx_h100'?)",
    ],
    "second_phase_golden": [
        "case/golden_values_dev_dgx_h100_2nd.json: CG133 warning: "
        "unreferenced: second-phase golden of a resume run; no job reads it",
    ],
    "shadowed_golden": [
        "case/golden_values_lts.json: CG132 warning: "
        "unreferenced: shadowed: every lts job has a more specific golden",
    ],
    "start_step_mismatch": [
        "case/golden_values_dev_dgx_h100.json:3: CG112 error: "
        '$["lm loss"].start_step: start_step is 0 but the first step key is 1',
    ],
    "start_step_negative": [
        "case/golden_values_dev_dgx_h100.json:3: CG110 error: "
        '$["lm loss"].start_step: -1 is less than the minimum 0',
    ],
    "start_step_not_an_integer": [
        "case/golden_values_dev_dgx_h100.json:3: CG110 error: "
        '$["lm loss"].start_step: 1.0 is not of type "integer"',
    ],
    "step_interval_zero": [
        "case/golden_values_dev_dgx_h100.json:5: CG110 error: "
        '$["lm loss"].step_interval: 0 is less than the minimum 1',
    ],
    "step_key_leading_zero": [
        "case/golden_values_dev_dgx_h100.json:6: CG110 error: "
        '$["lm loss"].values: "02" does not match ^(0|[1-9][0-9]{0,17})$',
    ],
    "steps_off_grid": [
        "case/golden_values_dev_dgx_h100.json:9: CG111 error: "
        '$["lm loss"].values["7"]: step 7 is off the grid of start_step 1 and step_interval 5',
    ],
    "top_level_array": [
        'case/golden_values_dev_dgx_h100.json:1: CG110 error: $: [1, 2, 3] is not of type "object"',
    ],
    "truncated_json": [
        "case/golden_values_dev_dgx_h100.json:9: CG102 error: "
        "line 9 column 18: not valid JSON: Expecting value",
    ],
    "unknown_environment_in_name": [
        "case/golden_values_deb_dgx_h100.json: CG130 error: "
        "unknown environment 'deb' in the file name (did you mean 'dev'?)",
    ],
    "unquoted_boolean_key": [
        "case/model_config.yaml: CG141 error: $: top-level key True is not a string (YAML reads "
        "on/off/yes/no/null/~ and numbers unquoted): quote it",
    ],
    "value_is_a_boolean": [
        "case/golden_values_dev_dgx_h100.json:8: CG110 error: "
        '$["lm loss"].values["2"]: true is not of type ["number", "string"]',
    ],
    "value_is_a_string": [
        "case/golden_values_dev_dgx_h100.json:8: CG110 error: "
        '$["lm loss"].values["2"]: "9.8" is a string other than "nan" (write numbers unquoted)',
    ],
    "value_precision_unknown": [
        "case/golden_values_dev_dgx_h100.json:6: CG110 error: "
        '$["lm loss"].value_precision: "high" is not "full"',
    ],
    "whitespace_only": [
        "case/golden_values_dev_dgx_h100.json: CG101 error: "
        "file holds only whitespace: expected a JSON object",
    ],
    "yaml_recursive_alias": [
        "case/model_config.yaml: CG140 error: "
        "a YAML alias refers to a node that contains it (recursive alias); refused",
    ],
    "yaml_alias_bomb": [
        "case/model_config.yaml: CG140 error: "
        "YAML aliases expand to over 1000000 nodes (alias bomb); refused",
    ],
    "yaml_not_utf8": [
        "case/model_config.yaml: CG140 error: not UTF-8 (byte 105)",
    ],
    "yaml_python_object_tag": [
        "case/model_config.yaml:7: CG140 error: line 7 column 8: invalid YAML: unsafe or unknown "
        "YAML tag (could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system')",
    ],
    "yaml_syntax_error": [
        "case/model_config.yaml:8: CG140 error: "
        "line 8 column 1: invalid YAML: did not find expected ',' or ']'",
    ],
    "zero_byte_file": [
        "case/golden_values_dev_dgx_h100.json: CG101 error: zero-byte file: expected a JSON object",
    ],
}


def test_every_bad_input_has_an_expectation() -> None:
    names = sorted(p.name for p in INVALID.iterdir() if p.is_dir())
    assert names == sorted(EXPECTED)
    assert len(names) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input(name: str) -> None:
    assert finding_lines(INVALID / name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(p.name for p in VALID.iterdir()))
def test_valid_tree_has_no_finding(name: str) -> None:
    result = check_tree(VALID / name)
    assert result.findings == ()
    assert result.cases == 1


def _one_case(tmp_path: Path) -> Path:
    case = tmp_path / "case"
    case.mkdir()
    src = INVALID / "second_phase_golden" / "case"
    for name in ("model_config.yaml", "golden_values_dev_dgx_h100.json"):
        (case / name).write_bytes((src / name).read_bytes())
    return case


def test_symlink_loop(tmp_path: Path) -> None:
    case = _one_case(tmp_path)
    os.symlink("loop_b", case / "loop_a")
    os.symlink("loop_a", case / "loop_b")
    assert finding_lines(tmp_path) == [
        "case/loop_a: CG151 error: broken symlink or symlink loop",
        "case/loop_b: CG151 error: broken symlink or symlink loop",
    ]


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(
    not Path("/proc/self/io").exists(), reason="needs /proc/self/io to count bytes read"
)
def test_200_mb_golden_is_refused_without_reading_it(tmp_path: Path) -> None:
    case = _one_case(tmp_path)
    big = case / "golden_values_dev_dgx_h100.json"
    os.truncate(big, 200 * 1024 * 1024)  # sparse: no disk space used
    before = _bytes_read()
    lines = finding_lines(tmp_path)
    assert _bytes_read() - before < 1024 * 1024
    assert lines == [
        "case/golden_values_dev_dgx_h100.json: CG107 error: file is 209715200 bytes, "
        "over the limit of 67108864 bytes; not read"
    ]


# --- the fast path and the schema agree ---------------------------------------------------

ADVERSARIAL: list[t.Any] = [
    {},
    [],
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": 1.0}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": True}}},
    {"lm loss": {"start_step": True, "end_step": 1, "step_interval": 1, "values": {"1": 1.0}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"+1": 1.0}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {" 1": 1.0}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1_0": 1.0}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"\u0661": 1.0}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": None}}},
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": "NaN"}}},
    {
        "lm loss": {
            "start_step": 1,
            "end_step": 1,
            "step_interval": 1,
            "values": {"1": float("inf")},
        }
    },
    {"lm loss": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": -(10**309)}}},
    {"lm loss": {"start_step": 1, "end_step": 10**18, "step_interval": 1, "values": {"1": 1}}},
    {
        "lm loss": {
            "start_step": 1,
            "end_step": 1,
            "step_interval": 1,
            "values": {"1": 1},
            "value_precision": "full",
        }
    },
    {"": {"start_step": 1, "end_step": 1, "step_interval": 1, "values": {"1": 1}}},
    {
        "lm loss": {"start_step": 0, "end_step": 5, "step_interval": 5, "values": [1.0]},
        "x": float("inf"),
    },
    {"lm loss": {"start_step": 0, "end_step": 5, "step_interval": 5, "values": []}},
    {"x": 1.0},
    {"throughput": [1.0]},
    {"0": {"generated_text": "a", "values": {}}},
    {"0": {"generated_text": "a"}, "throughput": 1.0},
    {"0": {"generated_text": "a"}, "mem-max-allocated-bytes": -1},
    {"0": {"generated_text": "a"}, "lifetime_prefill_token_count": [1, 2.5]},
    {"0": {"generated_text": "a", "latency": None, "step_count": -1}},
    {"generated_tokens": [1], "generated_text": "a", "0": {"generated_text": "b"}},
    {"generated_tokens": [1.0], "generated_text": "a"},
    {"generated_tokens": [1], "generated_text": "a", "logprobs": [True]},
]


def _corpus_documents(corpus: Path) -> t.Iterator[tuple[Path, t.Any]]:
    for path in sorted(corpus.rglob("golden_values*.json")):
        try:
            yield path, read_json(path)
        except GoldenFormatError:
            continue


def _data_documents() -> t.Iterator[tuple[Path, t.Any]]:
    for path in sorted(DATA.glob("*/*/**/golden_values*.json")):
        try:
            yield path, read_json(path)
        except GoldenFormatError:
            continue


def test_fast_path_agrees_with_schema_on_bad_and_adversarial_inputs() -> None:
    schema = schema_validator("golden_values")
    docs = [d for _, d in _data_documents()] + ADVERSARIAL
    disagree = [d for d in docs if golden_ok(d) != schema.is_valid(d)]
    assert disagree == []
    assert sum(golden_ok(d) for d in docs) >= 10 and sum(not golden_ok(d) for d in docs) >= 30


def test_fast_path_agrees_with_schema_on_the_corpus(corpus: Path) -> None:
    schema = schema_validator("golden_values")
    results = {str(p): (golden_ok(d), schema.is_valid(d)) for p, d in _corpus_documents(corpus)}
    assert {p: r for p, r in results.items() if r[0] != r[1]} == {}
    assert len(results) == 775  # every file but the two zero-byte ones


CONFIG_ADVERSARIAL: list[t.Any] = [
    {"MODEL_ARGS": {"--x": [1, "a", None]}},
    {"MODEL_ARGS": {"": 1}},
    {"MODEL_ARGS": {5: 1}},
    {"MODEL_ARGS": {"--x": {"nested": 1}}},
    {"MODEL_ARGS_7": {"--x": [{"a": 1}]}},
    {"MODEL_ARGS_7x": {"--x": [{"a": 1}]}},
    {"MODEL_ENV_VARS": {"MODEL_ARGS": {"GPUS_PER_NODE": [1]}}},
    {"ENV_VARS": {"A": [1]}},
    {"ENV_VARS": None, "METRICS": None, "TEST_TYPE": ""},
    {"METRICS": ["lm loss", ""]},
    {"N_REPEAT": True},
    {"N_REPEAT": 0},
    {"BEFORE_SCRIPT": {"a": 1}},
    {"CI_GOLDEN": {"platforms": ["dgx_h100"], "n_repeat": 3}},
    {"CI_GOLDEN": {"n_repeat": 3.0}},
    {"CI_GOLDEN": {"metrics": {"lm loss": {"kind": "approx", "rtol": 0.1}}}},
    {"CI_GOLDEN": {"metrics": {"lm loss": {"kind": "aprox"}}}},
]


def _data_configs() -> t.Iterator[t.Any]:
    for path in sorted(DATA.glob("*/*/**/model_config.yaml")):
        try:
            yield load_yaml(path)
        except Exception:
            continue


def test_model_config_fast_path_agrees_with_schema() -> None:
    schema = schema_validator("model_config")
    docs = [d for d in _data_configs() if isinstance(d, dict)] + CONFIG_ADVERSARIAL
    string_keyed = [d for d in docs if all(isinstance(k, str) for k in d)]
    assert [d for d in string_keyed if model_config_ok(d) != schema.is_valid(d)] == []
    assert not model_config_ok({True: "push"})


def test_model_config_fast_path_agrees_with_schema_on_the_corpus(corpus: Path) -> None:
    schema = schema_validator("model_config")
    docs = {}
    for p in sorted(corpus.rglob("model_config.yaml")):
        with contextlib.suppress(DuplicateKeyError):  # two corpus configs give a key twice
            docs[str(p)] = load_yaml(p)
    assert len(docs) == 269
    assert {p: d for p, d in docs.items() if model_config_ok(d) != schema.is_valid(d)} == {}
    assert all(model_config_ok(d) for d in docs.values())


def test_what_validates_also_loads(corpus: Path) -> None:
    for path, data in [*_corpus_documents(corpus), *_data_documents()]:
        if golden_ok(data):
            load_golden(path)  # raises when the loader disagrees


# --- the whole corpus through the CLI, once ------------------------------------------------


def test_corpus_end_to_end(corpus: Path, cli: t.Callable[..., t.Any], tmp_path: Path) -> None:
    res = cli("--test-cases", corpus, "validate", "--format", "json", cwd=tmp_path)
    assert res.stderr == ""
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    findings = doc["findings"]
    assert doc["summary"] == {
        "errors": 31, "warnings": 278, "files": 1048, "cases": 272,
        "baselined": 0, "fixed": 0, "suppressed": 0,
    }  # fmt: skip
    codes = collections.Counter(f["code"] for f in findings)
    assert codes == {
        "CG101": 2,
        "CG104": 4,
        "CG114": 5,
        "CG120": 2,
        "CG132": 39,
        "CG133": 95,
        "CG134": 124,
        "CG143": 1,
        "CG144": 22,
        "CG146": 2,  # --timing-log-level given as 0, then as 1
        "CG147": 13,  # --ffn-hidden-size given twice with the same value
    }
    rel = {f["path"].split("test_cases/", 1)[1] for f in findings if f["code"] == "CG101"}
    assert rel == {
        "moe/gpt3_moe_mcore_te_ep8_resume_torch_dist_dist_optimizer/golden_values_lts_dgx_a100.json",
        "gpt/gpt3_mcore_te_tp2_pp2_ep4_etp1_memory_speed/golden_values_dev_dgxh100_dgxc.json",
    }
    # every current-layout golden that loads has no error
    errors_by_file = {f["path"] for f in findings if f["severity"] == "error"}
    current = [
        p
        for p, d in _corpus_documents(corpus)
        if d and golden_ok(d) and load_golden(p).layout == "current"
    ]
    assert len(current) == 712
    assert [p for p in current if str(p) in errors_by_file] == []


def test_huge_end_step_is_not_expanded(tmp_path: Path) -> None:
    case = tmp_path / "case"
    case.mkdir()
    (case / "model_config.yaml").write_text("METRICS: [lm loss]\n")
    block = {
        "start_step": 1,
        "end_step": 10**17,
        "step_interval": 1,
        "values": {"1": 1.0, "3": 2.0},
    }
    (case / "golden_values_dev_dgx_h100.json").write_text(json.dumps({"lm loss": block}, indent=4))
    assert finding_lines(tmp_path) == [
        'case/golden_values_dev_dgx_h100.json:4: CG112 error: $["lm loss"].end_step: '
        "end_step is 100000000000000000 but the last step key is 3",
    ]
