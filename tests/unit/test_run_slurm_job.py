"""Following a Slurm job's output file while another process writes it."""

from __future__ import annotations

from pathlib import Path

from ci_golden.run.slurm_job import Tail


def test_tail_passes_on_whole_lines_as_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "slurm-7.out"
    seen: list[str] = []
    tail = Tail(path, seen.append)
    tail.pump()  # the job has not started: no file yet
    assert (seen, tail.last_line) == ([], "")
    with path.open("wb", buffering=0) as f:
        f.write(b"[case dev cpu phase1] iteration 1\n[case dev cpu phase1] itera")
        tail.pump()
        assert seen == ["[case dev cpu phase1] iteration 1"]
        f.write(b"tion 2\r\n\n caf\xc3\xa9 \xff\nlast, no newline")
        tail.pump()
        assert seen == [
            "[case dev cpu phase1] iteration 1",
            "[case dev cpu phase1] iteration 2",
            "",
            " café \ufffd",
        ]
        assert tail.last_line == "café \ufffd"
    tail.close()
    assert seen[-1] == "last, no newline"
    assert tail.last_line == "last, no newline"
    tail.close()
    assert len(seen) == 5


def test_tail_without_a_sink_keeps_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("one\ntwo\n\n")
    tail = Tail(path, None)
    tail.close()
    assert tail.last_line == "two"
