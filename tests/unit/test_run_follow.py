"""Following a run: files read as they grow give what the final read gives, the last step
counted final only once it is complete, and the progress line."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_golden.compare.bound import Outlook
from ci_golden.compare.policy import Policy
from ci_golden.compare.result import MetricResult
from ci_golden.errors import InputError
from ci_golden.run.collect import (
    MAX_LINE_BYTES,
    Collected,
    read_jsonl,
    read_megatron_log,
    read_tensorboard,
)
from ci_golden.run.follow import Follower, Reader, Status, judged_sources, worst_so_far
from ci_golden.run.progress import Display, render_status

LOG_LINE = (
    " [2026-01-01 10:00:00] iteration {step:8d}/{total:8d} | consumed samples: {samples:12d} |"
    " elapsed time per iteration (ms): 1400.0 | learning rate: 1.0E-04 |"
    " lm loss: {loss:.6E} | loss scale: 1.0 | num zeros: {zeros} |\n"
)


def log_text(steps: int) -> bytes:
    lines = ["Setting up the model\n"]
    for s in range(1, steps + 1):
        lines.append(LOG_LINE.format(step=s, total=steps, samples=16 * s, loss=10 - s / 10,
                                     zeros=100 + s))  # fmt: skip
    return "".join(lines).encode()


def jsonl_text(steps: int) -> bytes:
    rows = [json.dumps({"step": s, "lm loss": 10 - s / 10, "num-zeros": 100 + s}) + "\n"
            for s in range(1, steps + 1)]  # fmt: skip
    return "".join(rows).encode()


def grow(path: Path, data: bytes, cuts: list[int], reader: Reader) -> None:
    """Write ``data`` to ``path`` in pieces, reading after each one."""
    bounds = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    start = 0
    with path.open("wb") as f:
        for end in bounds:
            f.write(data[start:end])
            f.flush()
            start = end
            reader.update()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4000), max_size=12))
def test_a_log_read_as_it_grows_equals_the_final_read(tmp_path_factory: pytest.TempPathFactory,
                                                      cuts: list[int]) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("log")
    log = folder / "stdout.log"
    reader = Reader("log", folder, folder / "tensorboard", log)
    grow(log, log_text(20), cuts, reader)
    final = read_megatron_log(log)
    assert reader.series == final.series
    assert reader.train_iters == final.train_iters == 20
    assert reader.last_step == 20


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 1500), max_size=12))
def test_jsonl_read_as_it_grows_equals_the_final_read(tmp_path_factory: pytest.TempPathFactory,
                                                      cuts: list[int]) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("jsonl")
    reader = Reader("jsonl", folder, folder / "tensorboard", folder / "stdout.log")
    grow(folder / "metrics.jsonl", jsonl_text(20), cuts, reader)
    assert reader.series == read_jsonl(folder / "metrics.jsonl").series


def event_bytes(tmp: Path, steps: int) -> bytes:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp))
    for s in range(1, steps + 1):
        writer.add_scalar("lm loss", 10 - s / 10, s)
        writer.add_scalar("lm loss vs samples", 10 - s / 10, 16 * s)
        writer.add_scalar("num-zeros", 100 + s, s)
    writer.close()
    (path,) = tmp.glob("events*")
    return path.read_bytes()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=12))
def test_events_read_as_they_grow_equal_the_final_read(tmp_path_factory: pytest.TempPathFactory,
                                                       cuts: list[int]) -> None:  # fmt: skip
    data = event_bytes(tmp_path_factory.mktemp("written"), 20)
    folder = tmp_path_factory.mktemp("phase")
    tb = folder / "tensorboard"
    tb.mkdir()
    reader = Reader("tensorboard", folder, tb, folder / "stdout.log")
    grow(tb / "events.out.tfevents.1.host", data, cuts, reader)
    assert reader.series == read_tensorboard(tb, merge_all=False).series


def test_the_newest_step_is_left_for_the_next_round(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    # lm loss is not logged from step 3 on: the iteration lines still say how far training is
    text = log_text(2) + b"".join(
        LOG_LINE.format(step=s, total=5, samples=1, loss=1.0, zeros=1).replace("lm loss", "x")
        .encode() for s in (3, 4, 5)
    )  # fmt: skip
    log.write_bytes(text)
    reader = Reader("log", tmp_path, tmp_path / "tensorboard", log)
    reader.update()
    assert (reader.newest(["lm loss"]), reader.frontier(["lm loss"])) == (5, 4)
    (tmp_path / "metrics.jsonl").write_bytes(jsonl_text(3))
    jsonl = Reader("jsonl", tmp_path, tmp_path / "tensorboard", log)
    jsonl.update()
    assert (jsonl.newest(["lm loss"]), jsonl.frontier(["lm loss"])) == (3, 2)
    events = Reader("tensorboard", tmp_path, tmp_path / "tensorboard", log)
    assert events.frontier(["lm loss"]) is None
    # tags per sample are not steps: only the compared metrics count
    events.series = {"lm loss": {1: 1.0, 2: 1.0, 3: 1.0}, "lm loss vs samples": {16: 1.0, 48: 1.0}}
    assert (events.newest(["lm loss", "num-zeros"]), events.frontier(["lm loss"])) == (3, 2)


def metric(name: str, verdict: str, n_failed: int, budget: int | None, rel: float) -> MetricResult:
    return MetricResult(name, verdict, True, Policy("approx", rtol=0.05), n_failed=n_failed,  # type: ignore[arg-type]
                        budget=budget, max_rel_diff=rel)  # fmt: skip


def test_the_worst_metric_so_far_is_the_one_nearest_to_failing() -> None:
    loss = metric("lm loss", "pass", 2, 4, 0.5)
    zeros = metric("num-zeros", "pass", 0, 4, 0.9)
    assert worst_so_far([zeros, loss]) is loss
    assert worst_so_far([zeros, metric("mem", "pass", 0, 4, 0.1)]) is zeros
    failing = metric("x", "fail", 1, 0, 0.0)
    assert worst_so_far([loss, failing]) is failing


def test_a_status_line_says_step_elapsed_eta_and_the_worst_metric() -> None:
    status = Status("phase1", 120, 2000, 62.0, 930.0, metric("lm loss", "pass", 3, 20, 0.041))
    assert render_status(status) == (
        "phase1: step 120/2,000 · 1m02s elapsed · ETA 15m30s · "
        "worst: lm loss 3 of 20 allowed misses, max 4.1%"
    )
    assert render_status(Status("repeat-2/phase1", None, None, 3.0, None)) == (
        "repeat-2/phase1: starting · 3s elapsed"
    )
    stopped = Status("phase1", 212, 2000, 7300.0, None, metric("lm loss", "fail", 9, 8, 0.08),
                     stopped=True)  # fmt: skip
    assert render_status(stopped) == (
        "phase1: step 212/2,000 · 2h01m elapsed · worst: lm loss 9 of 8 allowed misses, "
        "max 8% (fail) · stopping: the verdict can no longer be pass"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ci_logs_get_a_plain_line_every_30_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    display = Display(out, live=False, prefix="ci-golden run: ", clock=clock)
    for second in range(0, 95, 5):
        clock.now = float(second)
        display.update(Status("phase1", second, 100, float(second), None))
    assert out.getvalue().splitlines() == [
        "ci-golden run: phase1: step 30/100 · 30s elapsed",
        "ci-golden run: phase1: step 60/100 · 1m00s elapsed",
        "ci-golden run: phase1: step 90/100 · 1m30s elapsed",
    ]
    assert display.wrap(print) is print  # the training log goes out untouched


def test_a_terminal_gets_one_live_line_below_the_training_log() -> None:
    out, clock = io.StringIO(), Clock()
    display = Display(out, live=True, clock=clock, width=40)
    display.update(Status("phase1", 5, 100, 1.0, None))
    display.wrap(lambda line: out.write(line + "\n"))("iteration 6")
    clock.now = 1.0
    display.update(Status("phase1", 6, 100, 2.0, None))
    display.close()
    assert out.getvalue() == (
        "\r\x1b[2Kphase1: step 5/100 · 1s elapsed"
        "\r\x1b[2Kiteration 6\nphase1: step 5/100 · 1s elapsed"
        "\r\x1b[2Kphase1: step 6/100 · 2s elapsed"
        "\r\x1b[2K"
    )


def test_a_follower_reads_a_growing_log_and_reports_progress(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    seen: list[Status] = []
    follower = Follower("phase1", tmp_path, tmp_path / "tensorboard", log, metrics=["lm loss"],
                        assess=None, planned=20, on_status=seen.append, poll=0.05)  # fmt: skip
    data = log_text(20)
    with follower:
        with log.open("wb") as f:
            for line in data.splitlines(keepends=True):
                f.write(line)
                f.flush()
                time.sleep(0.005)
        deadline = time.monotonic() + 30
        while (not seen or seen[-1].step != 20) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert seen[-1].step == 20 and seen[-1].planned == 20
    assert follower.decision is None and not follower.stop.is_set()


def test_a_run_that_names_its_metrics_file_is_never_judged_from_its_log(tmp_path: Path) -> None:
    # the trainer's log comes line by line while its buffered metrics.jsonl is still empty:
    # the log leaves out most memory values, which the final read of the JSON lines has
    log, jsonl = tmp_path / "stdout.log", tmp_path / "metrics.jsonl"
    argv = ["python", "train.py", "--log-jsonl", str(jsonl)]
    judged = judged_sources(argv, tmp_path, tmp_path / "tensorboard")
    assert judged == ("tensorboard", "jsonl")
    assert judged_sources(["--tensorboard-dir", str(tmp_path / "tensorboard")], tmp_path,
                          tmp_path / "tensorboard") == judged  # fmt: skip
    assert "log" in judged_sources(["python", "train.py"], tmp_path, tmp_path / "tensorboard")
    throughs: list[int] = []
    seen: list[Status] = []

    def assess(c: Collected, through: int) -> Outlook:
        throughs.append(through)
        return Outlook(through, {})

    jsonl.touch()
    follower = Follower("phase1", tmp_path, tmp_path / "tensorboard", log, metrics=["lm loss"],
                        assess=assess, planned=20, on_status=seen.append, poll=0.05,
                        min_interval=0.01, judged=judged)  # fmt: skip
    with follower:
        log.write_bytes(log_text(20))
        deadline = time.monotonic() + 30
        while (not seen or seen[-1].step != 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen[-1].step == 20 and throughs == []  # progress from the log, no judgement
        jsonl.write_bytes(jsonl_text(20))
        while not throughs and time.monotonic() < deadline:
            time.sleep(0.05)
    assert throughs == [19]


def test_a_run_that_names_no_metrics_file_is_judged_from_its_log(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    throughs: list[int] = []

    def assess(c: Collected, through: int) -> Outlook:
        throughs.append(through)
        return Outlook(through, {})

    judged = judged_sources(["train.py"], tmp_path, tmp_path / "tensorboard")
    follower = Follower("phase1", tmp_path, tmp_path / "tensorboard", log, metrics=["lm loss"],
                        assess=assess, planned=20, poll=0.05, min_interval=0.01,
                        judged=judged)  # fmt: skip
    with follower:
        log.write_bytes(log_text(20))
        deadline = time.monotonic() + 30
        while (not throughs or throughs[-1] != 19) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert throughs[-1] == 19


def test_a_followed_file_is_read_line_by_line_as_the_final_read_reads_it(tmp_path: Path) -> None:
    # one line reader for both: a carriage return does not end a line, an overlong one is
    # refused with the same message (not read whole, round after round, while it grows)
    log = tmp_path / "stdout.log"
    log.write_bytes(log_text(2).replace(b"Setting up", b"progress 10%\rSetting up"))
    reader = Reader("log", tmp_path, tmp_path / "tensorboard", log)
    reader.update()
    assert reader.series == read_megatron_log(log).series
    assert reader._tail.number == 3
    with log.open("ab") as f:
        f.write(b"x" * (MAX_LINE_BYTES + 1))
    with pytest.raises(InputError) as followed:
        reader.update()
    with pytest.raises(InputError) as final:
        read_megatron_log(log)
    assert (
        str(followed.value)
        == str(final.value)
        == (f"{log}::line 4: line over {MAX_LINE_BYTES} bytes; refused")
    )
