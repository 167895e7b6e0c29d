"""Reading and writing files: FIFOs, sockets and devices refused unopened, bounded reads, appends
that are all or nothing, and temp files that a killed writer leaves behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from ci_golden.errors import InputError
from ci_golden.project.files import (
    FileTooLarge,
    TempBeside,
    UnreadableFile,
    append_text,
    atomic_write_text,
    open_regular,
    read_regular,
    remove_stale_temps,
)


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture()
def unix_socket(tmp_path: Path) -> t.Iterator[Path]:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        yield path


def test_a_fifo_is_refused_without_being_opened(fifo: Path) -> None:
    # Opening a FIFO to read waits for a writer: reaching the assertion at all shows it was not.
    with pytest.raises(UnreadableFile) as e:
        read_regular(fifo, max_bytes=100)
    assert str(e.value) == f"{fifo}: not a regular file (a FIFO); refused without opening it"


def test_a_socket_a_device_and_a_folder_are_refused(unix_socket: Path, tmp_path: Path) -> None:
    for path, kind in ((unix_socket, "a socket"), (Path("/dev/null"), "a character device")):
        with pytest.raises(UnreadableFile, match=rf"not a regular file \({kind}\)"):
            open_regular(path)
    with pytest.raises(UnreadableFile, match=r"not a regular file \(a folder\)"):
        read_regular(tmp_path, max_bytes=10)


def test_a_symlink_is_judged_by_its_target(tmp_path: Path, fifo: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(UnreadableFile, match=r"\(a FIFO\)"):
        read_regular(link, max_bytes=10)
    (tmp_path / "real").write_bytes(b"abc")
    (tmp_path / "good").symlink_to(tmp_path / "real")
    assert read_regular(tmp_path / "good", max_bytes=10) == b"abc"


def test_read_regular_reads_up_to_the_limit_and_refuses_more(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular(path, max_bytes=10) == b"x" * 10
    with pytest.raises(FileTooLarge) as e:
        read_regular(path, max_bytes=9)
    assert str(e.value) == f"{path}: file is 10 bytes, over the limit of 9 bytes; not read"
    with pytest.raises(UnreadableFile, match="No such file or directory"):
        read_regular(tmp_path / "missing", max_bytes=9)


def test_append_text_creates_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    append_text(path, "one\n")
    append_text(path, "two\n")
    assert path.read_text() == "one\ntwo\n"


def test_append_text_refuses_a_fifo(fifo: Path) -> None:
    # with no reader, opening the FIFO to write would wait forever
    with pytest.raises(InputError, match=r"not a regular file \(a FIFO\)"):
        append_text(fifo, "text")


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "golden_values.json"
    atomic_write_text(path, "{}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["golden_values.json"]
    assert path.read_text() == "{}\n"


def test_a_temp_file_without_a_writer_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    target = tmp_path / "golden_values_dev.json"
    target.write_text("{}\n")
    stale = tmp_path / ".golden_values_dev.json.k1ll3d00.tmp"  # what a killed update leaves
    stale.write_text('{"lm lo')
    unrelated = tmp_path / ".golden_values_lts.json.k1ll3d00.tmp"
    unrelated.write_text("")
    with TempBeside(target) as live:
        live.write("{}\n")
        assert remove_stale_temps(target) == [stale]
        assert live.path.exists() and not stale.exists() and unrelated.exists()
        live.replace()
    assert remove_stale_temps(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [unrelated.name, target.name]


def test_a_temp_file_locked_by_another_process_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "golden_values.json"
    held = tmp_path / ".golden_values.json.w0rk1ng0.tmp"
    held.write_text("")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(held),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert remove_stale_temps(target) == []
        assert held.exists()
    finally:
        holder.communicate("")
    assert remove_stale_temps(target) == [held]


def test_temp_beside_removes_its_file_when_not_renamed(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with TempBeside(target) as tmp:
        tmp.write("partial")
        assert tmp.path.read_text() == "partial"
    assert list(tmp_path.iterdir()) == []
