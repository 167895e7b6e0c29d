"""`ci-golden migrate`: legacy list-layout goldens to the current layout, on real corpus files."""

from __future__ import annotations

import json
import shutil
import typing as t
from pathlib import Path

import pytest

from ci_golden.goldens.migrate import migrate
from ci_golden.goldens.model import detect_layout, load_golden, read_json

FP16_CASE = "gpt/gpt3_mcore_tp1_pp2_fp16"
NUM_ZEROS_REASON = (
    '$["num-zeros"]: the golden was cut from a series of 33 logged values (end_step) '
    "but the run logs 50 "
    "(--train-iters 50): some iterations logged nothing (fp16 loss-scale skips, an eval interval), "
    "so list positions do not map to steps"
)


def legacy_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("golden_values*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and data and detect_layout(data) == "legacy":
            out.append(path)
    return out


def copy_case(corpus: Path, case: str, dest: Path) -> Path:
    target = dest / "test_cases" / case
    shutil.copytree(corpus / case, target)
    shutil.copy(corpus.parent / "LICENSE.Megatron-LM.txt", dest / "LICENSE.Megatron-LM.txt")
    return target


def write_json(path: Path, data: t.Any) -> None:
    path.write_text(json.dumps(data))


def assert_same_values(source: dict[str, t.Any], converted: Path, tb_interval: int = 1) -> None:
    """Each legacy list value sits at the step its position maps to, and nothing else is there."""
    golden = load_golden(converted)
    assert golden.layout == "current"
    blocks = {k: v for k, v in source.items() if isinstance(v, dict)}
    assert list(golden.metrics) == list(blocks)
    for name, block in blocks.items():
        expected = {
            (block["start_step"] + i * block["step_interval"] + 1) * tb_interval: (
                None if v == "nan" else v
            )
            for i, v in enumerate(block["values"])
        }
        assert golden.metrics[name].as_dict() == expected


def test_every_legacy_corpus_file_is_converted_or_listed_with_its_reason(
    corpus: Path, cli: t.Any
) -> None:
    legacy = legacy_files(corpus)
    assert [p.relative_to(corpus).as_posix() for p in legacy] == [
        f"{FP16_CASE}/golden_values_dev_dgx_a100.json",
        f"{FP16_CASE}/golden_values_lts_dgx_a100.json",
    ]
    result = cli("migrate", *legacy)
    assert result.returncode == 1, result.stderr
    assert result.stdout == "".join(f"cannot convert {p}: {NUM_ZEROS_REASON}\n" for p in legacy) + (
        "0 legacy file(s) to convert, 2 cannot be converted, 0 unreadable, 0 already current\n"
    )


def test_whole_corpus_dry_run_writes_nothing_and_lists_the_unreadable(corpus: Path) -> None:
    migrations = migrate([corpus])
    by_status: dict[str, int] = {}
    for m in migrations:
        by_status[m.status] = by_status.get(m.status, 0) + 1
    assert by_status == {"current": 769, "cannot": 2, "unreadable": 6}
    assert all(m.reason for m in migrations if m.status in ("cannot", "unreadable"))
    assert not any(m.applied for m in migrations)


def test_apply_converts_the_real_loss_block_and_keeps_its_values(
    corpus: Path, tmp_path: Path, cli: t.Any
) -> None:
    case = copy_case(corpus, FP16_CASE, tmp_path)
    target = case / "golden_values_dev_dgx_a100.json"
    source = read_json(target)
    del source["num-zeros"]  # the block whose positions are unknown: the rest maps exactly
    write_json(target, source)
    untouched = (case / "golden_values_lts_dgx_a100.json").read_bytes()

    dry = cli("migrate", case)
    assert dry.returncode == 1
    assert dry.stdout.splitlines()[:2] == [
        f"would convert {target}: 'lm loss' 10 values, steps 1..46 every 5",
        "  note: drops top-level iteration_timing_avg=0.11905411764705882"
        " (the current layout holds only metric blocks)",
    ]
    assert json.loads(target.read_text()) == source

    applied = cli("migrate", case, "--apply")
    assert applied.returncode == 1, applied.stderr  # the sibling still cannot be converted
    assert (
        applied.stdout.splitlines()[0]
        == f"converted {target}: 'lm loss' 10 values, steps 1..46 every 5"
    )
    assert applied.stdout.splitlines()[-1] == (
        "1 legacy file(s) converted, 1 cannot be converted, 0 unreadable, 0 already current"
    )
    assert_same_values(source, target)
    validate_file(target)
    doc = json.loads(target.read_text())
    assert doc["lm loss"]["start_step"] == 1 and doc["lm loss"]["end_step"] == 46
    assert doc["lm loss"]["step_interval"] == 5
    assert list(doc["lm loss"]["values"])[:3] == ["1", "6", "11"]
    assert (case / "golden_values_lts_dgx_a100.json").read_bytes() == untouched
    assert list(tmp_path.rglob("*.tmp")) == []

    again = cli("migrate", target)
    assert (again.returncode, again.stdout) == (
        0,
        "0 legacy file(s) to convert, 0 cannot be converted, 0 unreadable, 1 already current\n",
    )


def test_every_corpus_legacy_block_that_maps_converts_and_validates(
    corpus: Path, tmp_path: Path
) -> None:
    """Each mappable block of each legacy corpus file, on its own, converts to equal values."""
    for n, legacy in enumerate(legacy_files(corpus)):
        source = read_json(legacy)
        for metric, block in source.items():
            if not isinstance(block, dict) or block["end_step"] != 50:
                continue
            folder = tmp_path / f"case{n}_{metric.replace(' ', '_')}"
            folder.mkdir()
            shutil.copy(legacy.parent / "model_config.yaml", folder)
            write_json(folder / legacy.name, {metric: block})
            [m] = migrate([folder], apply=True)
            assert (m.status, m.applied) == ("convert", True), m.reason
            assert_same_values({metric: block}, folder / legacy.name)
            validate_file(folder / legacy.name)


def validate_file(path: Path) -> None:
    """The project's validator, with the case's run length, finds nothing wrong in the file."""
    from ci_golden.goldens.discover import TestCase
    from ci_golden.validate.engine import check_golden_file
    from ci_golden.validate.semantics import run_length

    case = TestCase(id=path.parent.name, path=path.parent, has_config=True, golden_files=())
    _, findings = check_golden_file(path, run=run_length(case.model_config))
    assert findings == [], path


def test_tensorboard_log_interval_scales_the_steps(tmp_path: Path) -> None:
    (tmp_path / "model_config.yaml").write_text(
        "MODEL_ARGS:\n  --train-iters: 40\n  --log-interval: 100\n  --tensorboard-log-interval: 2\n"
    )
    source = {
        "lm loss": {
            "start_step": 0,
            "end_step": 20,
            "step_interval": 5,
            "values": [9.0, "nan", 8.5, 8.0],
        }
    }
    write_json(tmp_path / "golden_values_dev_dgx_h100.json", source)
    [m] = migrate([tmp_path], apply=True)
    assert m.status == "convert"
    assert_same_values(source, tmp_path / "golden_values_dev_dgx_h100.json", tb_interval=2)
    validate_file(tmp_path / "golden_values_dev_dgx_h100.json")
    doc = json.loads((tmp_path / "golden_values_dev_dgx_h100.json").read_text())
    assert doc == {
        "lm loss": {
            "start_step": 2,
            "end_step": 32,
            "step_interval": 10,
            "values": {"2": 9.0, "12": "nan", "22": 8.5, "32": 8.0},
        }
    }


@pytest.mark.parametrize(
    ("config", "block", "reason"),
    [
        (
            None,
            {"start_step": 0, "end_step": 10, "step_interval": 5, "values": [1.0, 2.0]},
            "{config}: no model_config.yaml beside the golden: the run length is unknown",
        ),
        (
            "MODEL_ARGS:\n  --train-samples: 1000\n",
            {"start_step": 0, "end_step": 10, "step_interval": 5, "values": [1.0, 2.0]},
            "{config}::$.MODEL_ARGS: no --train-iters in MODEL_ARGS: the run length is unknown",
        ),
        (
            "MODEL_ARGS:\n  --train-iters: ${ITERS}\n",
            {"start_step": 0, "end_step": 10, "step_interval": 5, "values": [1.0, 2.0]},
            "{config}::$.MODEL_ARGS: --train-iters '${ITERS}' is not a positive integer "
            "in MODEL_ARGS: "
            "the run length is unknown",
        ),
        (
            "MODEL_ARGS:\n  --train-iters: 10\n",
            {"start_step": 0, "end_step": 10, "step_interval": 5, "values": [1.0, 2.0, 3.0]},
            '$["lm loss"]: lists 3 values but start_step 0, end_step 10, step_interval 5 select 2',
        ),
        (
            "MODEL_ARGS:\n  --train-iters: 10\n",
            {"start_step": 0, "end_step": 100, "step_interval": 50, "values": [1.0, 2.0]},
            '$["lm loss"]: the golden was cut from a series of 100 logged values (end_step), '
            "more than the 10 "
            "the run logs (--train-iters 10): a longer or multi-phase run, positions unknown",
        ),
        (
            "MODEL_ARGS:\n  --train-iters: 10\n",
            {"start_step": 0, "end_step": 10, "step_interval": 0, "values": [1.0]},
            '$["lm loss"]: start_step 0, end_step 10, step_interval 0 select no slice',
        ),
    ],
)
def test_ambiguous_files_are_listed_with_the_reason_and_left_alone(
    tmp_path: Path, cli: t.Any, config: str | None, block: dict[str, t.Any], reason: str
) -> None:
    if config is not None:
        (tmp_path / "model_config.yaml").write_text(config)
    golden = tmp_path / "golden_values_dev_dgx_h100.json"
    write_json(golden, {"lm loss": block})
    before = golden.read_bytes()
    result = cli("migrate", tmp_path, "--apply")
    assert result.returncode == 1, result.stderr
    expected = reason.replace("{config}", str(tmp_path / "model_config.yaml"))
    assert result.stdout.splitlines()[0] == f"cannot convert {golden}: {expected}"
    assert golden.read_bytes() == before


def test_missing_path_is_an_input_error(tmp_path: Path, cli: t.Any) -> None:
    result = cli("migrate", tmp_path / "nope")
    assert (result.returncode, result.stdout) == (2, "")
    assert (
        result.stderr == f"ci-golden migrate: error: {tmp_path / 'nope'}: no such file or folder\n"
    )


def test_default_path_is_the_test_case_root(tmp_path: Path, cli: t.Any) -> None:
    cases = tmp_path / "cases" / "a"
    cases.mkdir(parents=True)
    (cases / "model_config.yaml").write_text("MODEL_ARGS:\n  --train-iters: 10\n")
    write_json(
        cases / "golden_values.json",
        {"lm loss": {"start_step": 0, "end_step": 10, "step_interval": 5, "values": [1.0, 2.0]}},
    )
    result = cli("migrate", "--test-cases", tmp_path / "cases", "--apply", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "converted cases/a/golden_values.json: 'lm loss' 2 values, steps 1..6 every 5\n"
        "1 legacy file(s) converted, 0 cannot be converted, 0 unreadable, 0 already current\n"
    )
