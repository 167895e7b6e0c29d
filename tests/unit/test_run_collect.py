"""Collecting metrics: real TensorBoard files (tensorboardX and tensorboard's own writer),
Megatron-LM log lines in their real format, JSONL logs, and the `ci-golden collect` command."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from ci_golden.compare.engine import compare_values
from ci_golden.errors import InputError
from ci_golden.goldens.model import GoldenValues, MetricSeries, load_golden
from ci_golden.run import tfevents
from ci_golden.run.collect import (
    grid_interval,
    on_golden_grid,
    read_jsonl,
    read_megatron_log,
    read_source,
    sampled_steps,
)
from ci_golden.run.tfevents import read_event_file, read_event_folder

tensorboardX = pytest.importorskip("tensorboardX")
pytest.importorskip("tensorboard")


def write_tbx(folder: Path, scalars: dict[str, dict[int, float]], suffix: str = "") -> Path:
    """An event file written by tensorboardX (simple_value scalars, as Megatron-LM writes them).

    tensorboardX turns spaces in tags into underscores, so these tests use tags without spaces.
    """
    writer = tensorboardX.SummaryWriter(str(folder), filename_suffix=suffix)
    for tag, series in scalars.items():
        for step, value in series.items():
            writer.add_scalar(tag, value, step)
    writer.add_text("args", "--train-iters 20", 0)
    writer.add_histogram("weights", [1.0, 2.0, 3.0], 1)
    writer.close()
    return max(folder.glob("events*tfevents*"), key=lambda p: p.stat().st_mtime_ns)


def write_tensorboard(
    folder: Path, events: t.Sequence[tuple[int, t.Any]], suffix: str = ""
) -> Path:
    """An event file written by tensorboard's own (TensorFlow-free) writer: tensor summaries."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder), filename_suffix=suffix)
    for step, value in events:
        writer.add_event(
            event_pb2.Event(step=step, wall_time=1.0, summary=summary_pb2.Summary(value=[value]))
        )
    writer.close()
    return next(p for p in folder.glob(f"events*tfevents*{suffix}"))


def tensor_value(tag: str, number: float, *, first: bool = False, content: bool = False) -> t.Any:
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2
    from tensorboard.plugins.scalar import metadata
    from tensorboard.util import tensor_util

    if content:  # a double scalar stored as raw bytes
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE, tensor_content=struct.pack("<d", number)
        )
    else:
        tensor = tensor_util.make_tensor_proto(number)
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if first:
        value.metadata.CopyFrom(metadata.create_summary_metadata(display_name=tag, description=""))
    return value


def text_value(tag: str, text: str) -> t.Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(text))
    value.metadata.plugin_data.plugin_name = "text"
    return value


def accumulator_scalars(path: Path) -> dict[str, dict[int, float]]:
    """TensorBoard's own reading of a file.

    Scalars plus single-value tensors of the scalars plugin.
    """
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    out = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            out[tag] = {
                e.step: float(tensor_util.make_ndarray(e.tensor_proto).item())
                for e in acc.Tensors(tag)
            }
    return out


LOSS = {step: 10.0 - step * 0.25 for step in range(1, 21)}
TIME = {step: 0.5 + step / 1000 for step in range(1, 21)}


def test_tensorboardx_file_reads_like_event_accumulator(tmp_path: Path) -> None:
    path = write_tbx(tmp_path, {"grad-norm": LOSS, "iteration-time": TIME})
    ours = read_event_file(path)
    assert ours.notes == []
    assert ours.scalars == accumulator_scalars(path)
    assert list(ours.scalars) == ["grad-norm", "iteration-time"]  # text and histogram left out
    assert ours.scalars["grad-norm"][5] == 8.75


def test_tensorboard_writer_tensor_scalars(tmp_path: Path) -> None:
    events = [(1, tensor_value("lm loss", 2.5, first=True)), (2, tensor_value("lm loss", 2.25))]
    events += [
        (1, tensor_value("grad-norm", 0.1, first=True, content=True)),
        (2, tensor_value("grad-norm", 0.2, content=True)),
    ]
    events += [(1, text_value("notes", "hello"))]
    path = write_tensorboard(tmp_path, events)
    ours = read_event_file(path).scalars
    assert ours == {"lm loss": {1: 2.5, 2: 2.25}, "grad-norm": {1: 0.1, 2: 0.2}}
    theirs = accumulator_scalars(path)
    assert ours["lm loss"] == theirs["lm loss"]
    assert ours["grad-norm"] == pytest.approx(theirs["grad-norm"])


def test_folder_merges_files_in_name_order_first_wins_header_only_skipped(tmp_path: Path) -> None:
    first = write_tensorboard(
        tmp_path,
        [(s, tensor_value("lm loss", v, first=s == 1)) for s, v in [(1, 1.0), (2, 2.0)]],
        ".a",
    )
    write_tensorboard(tmp_path, [], ".b")  # header only: a run that died at start
    write_tensorboard(
        tmp_path,
        [(s, tensor_value("lm loss", v, first=s == 2)) for s, v in [(2, 99.0), (3, 3.0)]],
        ".c",
    )
    # a resumed run in the same folder repeats step 2: the earlier file's value is kept
    scalars, notes = read_event_folder(tmp_path)
    assert scalars == {"lm loss": {1: 1.0, 2: 2.0, 3: 3.0}}
    assert notes == []
    assert first.name < sorted(p.name for p in tmp_path.iterdir())[-1]


def test_truncated_file_is_read_up_to_the_cut(tmp_path: Path) -> None:
    path = write_tbx(tmp_path, {"grad-norm": LOSS})
    whole = read_event_file(path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    cut = read_event_file(path)
    assert cut.records == whole.records - 1
    assert len(cut.notes) == 1
    assert cut.notes[0].startswith(f"{path}: truncated at byte ")
    assert cut.notes[0].endswith(f"cut short); read {cut.records} records up to the cut")
    # the cut record is the histogram written last: all scalars survive
    assert cut.scalars == whole.scalars


def test_corrupt_header_stops_with_a_note(tmp_path: Path) -> None:
    path = write_tbx(tmp_path, {"grad-norm": {1: 1.0, 2: 2.0}})
    data = bytearray(path.read_bytes())
    first_len = struct.unpack_from("<Q", data, 0)[0]
    second = 16 + first_len
    data[second + 8] ^= 0xFF  # damage the second record's header checksum
    path.write_bytes(bytes(data))
    got = read_event_file(path)
    assert got.scalars == {}
    assert got.notes == [
        f"{path}: corrupt record header at byte {second}; read 1 records up to there"
    ]


def test_cli_collect_tensorboard_sampled_like_megatron(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    write_tbx(
        tmp_path, {"num-zeros": {k: v for k, v in LOSS.items() if k != 10}, "iteration-time": TIME}
    )
    out = tmp_path / "golden.json"
    res = cli(
        "collect",
        tmp_path,
        "--step-size",
        "5",
        "--train-iters",
        "25",
        "--metric",
        "num-zeros",
        "--out",
        out,
    )
    assert (res.returncode, res.stdout, res.stderr) == (
        0,
        "",
        f"ci-golden collect: wrote 1 metrics to {out}\n",
    )
    doc = json.loads(out.read_text())
    # as get_test_results_from_tensorboard_logs.py writes it: steps not logged left out, and
    # the interval the gcd of the gaps between the steps kept
    assert doc == {
        "num-zeros": {
            "start_step": 1,
            "end_step": 20,
            "step_interval": 5,
            "values": {"1": 9.75, "5": 8.75, "15": 6.25, "20": 5.0},
        }
    }


def test_tensorboard_values_are_rounded_like_megatron(tmp_path: Path) -> None:
    # TensorBoard holds float32: Megatron-LM's reader rounds what it reads to 5 decimals
    write_tbx(tmp_path, {"lm-loss": {1: 10.148325920, 2: 1e-7, 3: float("nan")}})
    got = read_source(tmp_path)
    assert got.series["lm-loss"][1] == 10.14833
    assert got.series["lm-loss"][2] == 0.0
    assert math.isnan(got.series["lm-loss"][3])


def test_the_golden_grid_is_used_for_the_metrics_it_has(tmp_path: Path) -> None:
    golden = GoldenValues(
        "current",
        {
            "lm-loss": MetricSeries.from_mapping(
                "lm-loss", {1: 9.0, 5: 8.0, 10: 7.0, 15: 6.0}, step_interval=5
            )
        },
    )
    series = {"lm-loss": {k: float(k) for k in range(1, 13)}, "time": {2: 0.5, 3: 0.25}}
    values = on_golden_grid(series, golden, train_iters=12)
    assert values.metrics["lm-loss"].as_dict() == {1: 1.0, 5: 5.0, 10: 10.0}  # 15 not logged
    assert values.metrics["lm-loss"].end_step == 15  # the golden's block, kept
    assert values.metrics["time"].as_dict() == {2: 0.5, 3: 0.25}  # Megatron-LM's grid


def test_cli_collect_truncated_file_warns(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    path = write_tbx(tmp_path, {"num-zeros": {1: 1.0}})
    path.write_bytes(path.read_bytes()[:-3])
    res = cli("collect", tmp_path)
    assert res.returncode == 0
    assert res.stderr.startswith(f"ci-golden collect: warning: {path}: truncated at byte ")
    assert json.loads(res.stdout)["num-zeros"]["values"] == {"1": 1.0}


def test_cli_without_tensorboard_says_how_to_install(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    write_tbx(tmp_path / "tb", {"num-zeros": {1: 1.0}})
    blockers = tmp_path / "block"
    for package in ("tensorboard", "tensorboardX"):  # either one's compiled Event would do
        (blockers / package).mkdir(parents=True)
        (blockers / package / "__init__.py").write_text(f"raise ImportError('no {package}')\n")
    pythonpath = os.pathsep.join(filter(None, (str(blockers), os.environ.get("PYTHONPATH"))))
    res = cli("collect", tmp_path / "tb", env={"PYTHONPATH": pythonpath})
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        "ci-golden collect: error: reading TensorBoard event files needs the optional tensorboard "
        "extra (tensorboard, google-crc32c): pip install 'ci-golden[tensorboard]'\n"
    )


def test_cli_folder_without_event_files(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    res = cli("collect", tmp_path, "--from", "tensorboard")
    assert (res.returncode, res.stderr) == (
        2,
        f"ci-golden collect: error: {tmp_path}: no events*tfevents* file in this folder\n",
    )


# Megatron-LM training_log lines, as megatron/training/training.py prints them (print_rank_last),
# with torchrun's rank prefix on one, a NaN loss, and a step whose loss Megatron left out
# (the long lines are continued with a backslash).
MEGATRON_LOG = """\
using world size: 8, data-parallel size: 2
 [2025-01-01 10:00:00] iteration        1/      20 | consumed samples:           32 | \
elapsed time per iteration (ms): 2345.6 | throughput (token/sec/GPU): 1234.5 | \
learning rate: 1.500000E-04 | global batch size:    32 | lm loss: 1.085000E+01 | loss scale: 1.0 | \
grad norm: 12.345678 | num zeros: 0 | number of skipped iterations:   0 | \
number of nan iterations:   0 |
[after training is done] datetime: 2025-01-01 10:00:01
[default7]: [2025-01-01 10:00:02] iteration        2/      20 | consumed samples:           64 | \
elapsed time per iteration (ms): 1500.0 | learning rate: 1.500000E-04 | global batch size:    32 | \
lm loss: 1.034000E+01 | loss scale: 1.0 | grad norm: 3.500000 | num zeros: 12 | \
number of skipped iterations:   0 | number of nan iterations:   0 |
[Rank 0] (after 2 iterations) memory (MB) | allocated: 2.00 | max allocated: 3.5 | \
reserved: 4.00 | max reserved: 4.00
 [2025-01-01 10:00:03] iteration        3/      20 | consumed samples:           96 | \
elapsed time per iteration (ms): 1400.0 | learning rate: 1.500000E-04 | global batch size:    32 | \
lm loss: NAN | loss scale: 1.0 | grad norm: nan | number of skipped iterations:   0 | \
number of nan iterations:   1 |
 [2025-01-01 10:00:04] iteration        4/      20 | consumed samples:          128 | \
elapsed time per iteration (ms): 1300.0 | learning rate: 1.500000E-04 | global batch size:    32 | \
loss scale: 1.0 | number of skipped iterations:   1 | number of nan iterations:   0 |
 [2025-01-01 10:00:05] iteration        5/      20 | consumed samples:          160 | \
elapsed time per iteration (ms): 1250.0 | learning rate: 1.500000E-04 | global batch size:    32 | \
lm loss: 9.876543E+00 | loss scale: 1.0 | grad norm: 2.000000 | num zeros: 7 | \
number of skipped iterations:   0 | number of nan iterations:   0 |
"""


def test_megatron_log_fields(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_text(MEGATRON_LOG)
    got = read_megatron_log(log)
    assert got.train_iters == 20
    assert got.series["lm loss"] == {1: 10.85, 2: 10.34, 3: got.series["lm loss"][3], 5: 9.876543}
    assert math.isnan(got.series["lm loss"][3])
    assert 4 not in got.series["lm loss"]  # Megatron omits a loss it cannot average
    assert got.series["iteration-time"] == {1: 2.3456, 2: 1.5, 3: 1.4, 4: 1.3, 5: 1.25}
    assert got.series["num-zeros"] == {1: 0.0, 2: 12.0, 5: 7.0}
    # report_memory's line, MB to bytes
    assert got.series["mem-allocated-bytes"] == {2: 2.0 * 1024 * 1024}
    assert got.series["mem-max-allocated-bytes"] == {2: 3.5 * 1024 * 1024}
    assert got.series["mem-reserved-bytes"] == {2: 4.0 * 1024 * 1024}
    assert got.series["batch-size"][1] == 32.0
    assert got.series["number of nan iterations"] == {1: 0, 2: 0, 3: 1, 4: 0, 5: 0}


def test_cli_collect_megatron_log_takes_train_iters_from_the_log(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    log = tmp_path / "stdout.log"
    log.write_text(MEGATRON_LOG)
    res = cli("collect", log, "--metric", "lm loss", "--metric", "num-zeros", "--step-size", "5")
    assert (res.returncode, res.stderr) == (0, "")
    doc = json.loads(res.stdout)
    assert list(doc) == ["lm loss", "num-zeros"]
    assert doc["lm loss"]["values"] == {"1": 10.85, "5": 9.876543}
    assert (
        doc["lm loss"]["start_step"],
        doc["lm loss"]["end_step"],
        doc["lm loss"]["step_interval"],
    ) == (1, 5, 5)
    assert doc["num-zeros"]["values"] == {"1": 0.0, "5": 7.0}


def test_cli_collect_unknown_metric_names_what_was_logged(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    log = tmp_path / "stdout.log"
    log.write_text(MEGATRON_LOG.splitlines()[1] + "\n")
    res = cli("collect", log, "--metric", "lm-loss")
    assert res.returncode == 2
    assert res.stderr == (
        f"ci-golden collect: error: {log}: none of the metrics ['lm-loss'] was logged on the "
        "step grid (found: batch-size, consumed samples, grad-norm, iteration-time, learning-rate, "
        "lm loss, loss-scale, num-zeros, "
        "number of nan iterations, number of skipped iterations, throughput (token/sec/GPU))\n"
    )


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"step": 1, "lm loss": 2.5, "num-zeros": 3, "host": "a"}\n'
        "\n"
        '{"iteration": 2, "lm loss": null, "num-zeros": 4, "ok": true}\n'
        '{"step": 3, "lm loss": "nan"}\n'
    )
    got = read_jsonl(path).series
    assert list(got) == ["lm loss", "num-zeros"]
    assert got["num-zeros"] == {1: 3.0, 2: 4.0}
    assert (
        got["lm loss"][1] == 2.5 and math.isnan(got["lm loss"][2]) and math.isnan(got["lm loss"][3])
    )


def test_jsonl_cut_short_by_a_stopped_run(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "lm loss": 2.5}\n{"step": 2, "lm loss": 2.4}\n{"step": 3, "lm l')
    got = read_jsonl(path)
    assert got.series == {"lm loss": {1: 2.5, 2: 2.4}}
    assert got.notes == (f"{path}: line 3 is cut short (the run stopped while writing it)",)
    path.write_text('{"step": 1, "lm loss": 2.5}\n{"step": 3, "lm l\n')  # ended: a real error
    with pytest.raises(InputError, match="not JSON"):
        read_jsonl(path)


def test_cli_jsonl_bad_line(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "lm loss": 2.5}\n{"lm loss": 2.0}\n')
    res = cli("collect", path)
    assert (res.returncode, res.stderr) == (
        2,
        f"ci-golden collect: error: {path}::line 2: expected an object with an integer 'step'\n",
    )


def test_sampled_steps_match_megatron() -> None:
    # tests/functional_tests/python_test_utils/common.py: 1 <= step <= train_iters, and
    # step == 1 or step % step_size == 0, over the steps logged
    assert sampled_steps(5, range(0, 30), 20) == [1, 5, 10, 15, 20]
    assert sampled_steps(1, [3, 1, 2, 7], 3) == [1, 2, 3]
    assert sampled_steps(5, [2, 3, 10, 12], None) == [10]
    assert grid_interval([1, 5, 10, 20], 5) == 5
    assert grid_interval([2, 4, 10], 1) == 2
    assert grid_interval([1, 10], 5) == 5


# --- the real corpus: a run whose values equal the golden passes, whichever source -----------


def corpus_goldens(corpus: Path) -> list[tuple[Path, GoldenValues]]:
    """Every current-layout golden of the corpus that can be read."""
    found = []
    for path in sorted(corpus.rglob("golden_values*.json")):
        try:
            golden = load_golden(path)
        except InputError:
            continue  # the corpus's broken files (empty, {}, NaN literals): validate's business
        if golden.layout == "current" and golden.metrics:
            found.append((path, golden))
    return found


def write_float32_events(folder: Path, golden: GoldenValues) -> None:
    """The golden's values as TensorBoard scalars (float32) under their exact tags, written by
    tensorboardX's record writer (its FileWriter's background thread costs more than the data)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.record_writer import RecordWriter

    writer = RecordWriter(str(folder / "events.out.tfevents.1700000000.host"))
    writer.write(Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
    for name, series in golden.metrics.items():
        for step, value in series.as_dict().items():
            if value is not None:  # a "nan" step logged nothing
                summary = Summary(value=[Summary.Value(tag=name, simple_value=value)])
                writer.write(Event(wall_time=1.0, step=step, summary=summary).SerializeToString())
    writer.close()


def write_jsonl(path: Path, golden: GoldenValues) -> None:
    with path.open("w") as f:
        for name, series in golden.metrics.items():
            for step, value in series.as_dict().items():
                if value is not None:
                    f.write(json.dumps({"step": step, name: value}) + "\n")


def write_megatron_log(path: Path, golden: GoldenValues) -> None:
    """Megatron-LM's training_log lines (losses `.6E`, num zeros as a float, elapsed time in ms
    `.1f`) and report_memory lines (MB, unrounded as older versions print them)."""
    by_step: dict[int, dict[str, float]] = {}
    for name, series in golden.metrics.items():
        for step, value in series.as_dict().items():
            if value is not None:
                by_step.setdefault(step, {})[name] = value
    last = max(by_step)
    lines = []
    for step, row in sorted(by_step.items()):
        fields = [f" [2026-01-01 00:00:00.000000] iteration {step:8d}/{last:8d} |",
                  f" consumed samples: {step * 32:12d} |"]  # fmt: skip
        if "iteration-time" in row:
            fields.append(f" elapsed time per iteration (ms): {row['iteration-time'] * 1000:.1f} |")
        fields.append(" learning rate: 1.000000E-04 | global batch size:    32 |")
        fields += [f" {n}: {v:.6E} |" for n, v in row.items() if n.endswith("loss")]
        fields.append(" loss scale: 1.0 | grad norm: 1.000 |")
        if "num-zeros" in row:
            fields.append(f" num zeros: {row['num-zeros']!r} |")
        lines.append("".join(fields))
        if "mem-allocated-bytes" in row or "mem-max-allocated-bytes" in row:
            allocated = row.get("mem-allocated-bytes", 0.0) / 1048576
            peak = row.get("mem-max-allocated-bytes", 0.0) / 1048576
            lines.append(
                f"[Rank 0] (after {step} iterations) memory (MB) | allocated: {allocated!r} | "
                f"max allocated: {peak!r} | reserved: {peak!r} | max reserved: {peak!r}"
            )
    path.write_text("\n".join(lines) + "\n")


def verdicts(golden: GoldenValues, series: dict[str, dict[int, float]]) -> dict[str, str]:
    """Every metric of the golden gated, deterministic (the exact check on): each one's verdict."""
    actual = on_golden_grid(series, golden)
    metrics = compare_values(
        golden, actual, policies={}, gated=list(golden.metrics), nondeterministic=False
    )
    return {name: m.verdict for name, m in metrics.items()}


@pytest.mark.parametrize("source", ["tensorboard", "jsonl", "log"])
def test_every_corpus_golden_passes_against_its_own_values(
    corpus: Path, tmp_path: Path, source: str
) -> None:
    goldens = corpus_goldens(corpus)
    assert len(goldens) > 700
    failing = {}
    for n, (path, golden) in enumerate(goldens):
        folder = tmp_path / str(n)
        folder.mkdir()
        if source == "tensorboard":
            write_float32_events(folder, golden)
            series = read_source(folder, "tensorboard").series
        elif source == "jsonl":
            write_jsonl(folder / "metrics.jsonl", golden)
            series = read_source(folder / "metrics.jsonl").series
        else:
            write_megatron_log(folder / "stdout.log", golden)
            series = read_source(folder / "stdout.log").series
        got = verdicts(golden, series)
        if set(got.values()) != {"pass"}:
            failing[path.relative_to(corpus).as_posix()] = got
    assert failing == {}


# --- bounded work on any input: cost follows the steps present, never their numbers -------


def test_sparse_jsonl_steps_up_to_1e18_cost_what_is_present(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    path = tmp_path / "metrics.jsonl"
    big = 10**17
    path.write_text(
        f'{{"step": {big}, "lm loss": 1.0}}\n{{"step": {5 * big}, "lm loss": 2.0}}\n'
        f'{{"step": {10**18 - 1}, "lm loss": 3.0}}\n'
    )
    res = cli("collect", path, "--step-size", big, timeout=30)
    assert (res.returncode, res.stderr) == (0, "")
    assert json.loads(res.stdout)["lm loss"]["values"] == {str(big): 1.0, str(5 * big): 2.0}
    # before: a loop over every step number up to 10^15
    path.write_text('{"step": 1, "lm loss": 1.5}\n{"step": 1000000000000000, "lm loss": 2.0}\n')
    res = cli("collect", path, timeout=30)
    assert json.loads(res.stdout)["lm loss"]["values"] == {"1": 1.5, "1000000000000000": 2.0}
    res = cli("collect", path, "--train-iters", "3", timeout=30)
    assert json.loads(res.stdout)["lm loss"]["values"] == {"1": 1.5}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"step": 1000000000000000000, "x": 1}', "step 1000000000000000000 is out of range"),
        ('{"step": -1, "x": 1}', "step -1 is out of range"),
        ('{"step": 100000000000000000000000, "x": 1}', "step 100000000000000000000000 is out"),
    ],
)
def test_jsonl_steps_out_of_range(
    tmp_path: Path, cli: t.Callable[..., t.Any], line: str, message: str
) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "x": 1}\n' + line + "\n")
    res = cli("collect", path, timeout=30)
    assert res.returncode == 2
    assert res.stderr.startswith(f"ci-golden collect: error: {path}::line 2: {message}")
    assert res.stderr.endswith("(0 to 999999999999999999)\n")


def test_a_log_with_a_huge_run_length(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    path = tmp_path / "stdout.log"
    path.write_text(" iteration 1000000000000000/ 1000000000000000 | lm loss: 1.5 |\n")
    res = cli("collect", path, timeout=30)
    assert json.loads(res.stdout)["lm loss"]["values"] == {"1000000000000000": 1.5}
    path.write_text(" iteration " + "9" * 5000 + "/ 10 | lm loss: 1.5 |\n")
    res = cli("collect", path, timeout=30)
    assert res.stderr == (
        f"ci-golden collect: error: {path}::line 1: step {'9' * 30}... is out of range "
        "(0 to 999999999999999999)\n"
    )


def test_log_steps_are_ascii_digits(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_text(" iteration ٣/ 10 | lm loss: 1.5 |\n iteration 4/ 10 | lm loss: 2.5 |\n")
    assert read_megatron_log(path).series == {"lm loss": {4: 2.5}}


@pytest.mark.parametrize("name", ["metrics.jsonl", "stdout.log"])
def test_a_400_mb_line_without_a_newline_in_bounded_memory(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with path.open("wb") as f:
        f.truncate(400 * 1024 * 1024)  # sparse: 400 MB of NUL bytes, no newline, no disk used
    # a fresh interpreter whose only child is the CLI, so that its peak memory is the CLI's
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'ci_golden', 'collect', sys.argv[1]],"
        " capture_output=True, text=True)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stdout.write(p.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120
    ).stdout.splitlines()
    code, peak_kib = map(int, out[0].split())
    assert code == 2
    assert out[1:] == [
        f"ci-golden collect: error: {path}::line 1: line over 4194304 bytes; refused"
    ]
    assert peak_kib < 150 * 1024  # the line is 400 MB; the reader keeps at most 4 MiB of it


def test_sparse_event_steps_and_their_range(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    write_tbx(tmp_path / "tb", {"grad-norm": {1: 1.0, 10**15: 2.0, 10**18 - 1: 3.0}})
    res = cli("collect", tmp_path / "tb", "--train-iters", "2", timeout=30)
    assert json.loads(res.stdout)["grad-norm"]["values"] == {"1": 1.0}
    res = cli("collect", tmp_path / "tb", "--step-size", 10**15, "--metric", "grad-norm",
              "--train-iters", 3 * 10**15, timeout=30)  # fmt: skip
    assert json.loads(res.stdout)["grad-norm"]["values"] == {"1": 1.0, str(10**15): 2.0}
    path = write_tensorboard(tmp_path / "neg", [(-3, tensor_value("x", 1.0))])
    res = cli("collect", path.parent, timeout=30)
    assert res.returncode == 2
    assert res.stderr.startswith(f"ci-golden collect: error: {path}: record at byte ")
    assert res.stderr.endswith(" logs step -3, out of range (0 to 999999999999999999)\n")


def record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<Q", data, pos)[0]
    return offsets


def test_a_flipped_bit_in_a_value_is_an_error_with_the_offset(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    path = write_tbx(tmp_path, {"grad-norm": {1: 1.0, 2: 2.0}})
    data = bytearray(path.read_bytes())
    second = record_offsets(bytes(data))[2]  # the version record, then the first scalar
    length = struct.unpack_from("<Q", data, second)[0]
    value_at = second + 12 + length - 4  # the last 4 bytes of the Event: the float 2.0
    assert struct.unpack_from("<f", data, value_at)[0] == 2.0
    data[value_at + 2] ^= 0x01  # 2.0 becomes 2.0000002: still a valid Event, a wrong value
    path.write_bytes(bytes(data))
    res = cli("collect", tmp_path, timeout=30)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        f"ci-golden collect: error: {path}: record at byte {second} is damaged: its {length} "
        "bytes of data do not match their checksum\n"
    )


def test_records_over_the_size_limit_are_checked_in_chunks_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tbx(tmp_path, {"grad-norm": {1: 1.0}})
    monkeypatch.setattr(tfevents, "MAX_RECORD_BYTES", 7)
    got = read_event_file(path)
    assert got.scalars == {}
    assert got.records == len(record_offsets(path.read_bytes()))
    assert got.notes[0] == (
        f"{path}: record at byte 0 of 24 bytes skipped (over 7 bytes, so not a scalar)"
    )
    data = bytearray(path.read_bytes())
    data[20] ^= 0x40  # inside the first record's data, past the first 7-byte chunk
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="record at byte 0 is damaged"):
        read_event_file(path)
