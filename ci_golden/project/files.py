"""Files as commands read, show and write them: regular files only (a FIFO, socket or device is
refused before it is opened), display paths, atomic writes, output files checked before the work
and written after it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import stat
import tempfile
import typing as t
from pathlib import Path

from ci_golden.errors import InputError

_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}
# O_NONBLOCK: should a FIFO take the place of the file between the check and the open, the open
# returns at once instead of waiting for a writer; O_NOCTTY: a terminal never becomes ours.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_APPEND_FLAGS = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | os.O_NONBLOCK
    | os.O_NOCTTY
    | getattr(os, "O_CLOEXEC", 0)
)


class UnreadableFile(InputError):
    """A file that cannot be read: missing, no permission, or not a regular file. ``reason`` is
    the why alone ("No such file or directory"), for callers that say what the file was."""

    def __init__(self, path: str, reason: str, verb: str | None = None) -> None:
        self.reason = reason
        super().__init__(path, f"cannot {verb}: {reason}" if verb else reason)


class FileTooLarge(InputError):
    """A file over the size limit of what reads it; refused before it is read."""


def not_regular(mode: int) -> str | None:
    """What a file of this ``st_mode`` is when it is not a regular file ("a FIFO", ...)."""
    return None if stat.S_ISREG(mode) else _NOT_REGULAR.get(stat.S_IFMT(mode), "not a file")


def _refused(name: str, kind: str) -> UnreadableFile:
    return UnreadableFile(name, f"not a regular file ({kind}); refused without opening it")


def _open_checked(name: str, flags: int, st: os.stat_result | None, verb: str) -> int:
    """``os.open`` and check that what was opened is the regular file ``st`` described."""
    try:
        fd = os.open(name, flags, 0o666)
    except OSError as e:
        raise UnreadableFile(name, str(e.strerror or e), verb) from None
    opened = os.fstat(fd)
    kind = not_regular(opened.st_mode)
    if kind is None and st is not None and (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
        kind = "replaced while being opened"
    if kind is not None:
        os.close(fd)
        raise _refused(name, kind)
    return fd


def open_regular(path: Path | str) -> t.BinaryIO:
    """Open a regular file for reading (binary).

    A FIFO, socket, device or folder is refused (:class:`UnreadableFile`) from its ``stat``,
    without being opened: opening a FIFO waits for a writer, opening a device may act on it.
    """
    name = str(path)
    try:
        st = os.stat(name)
    except OSError as e:
        raise UnreadableFile(name, str(e.strerror or e), "read file") from None
    kind = not_regular(st.st_mode)
    if kind is not None:
        raise _refused(name, kind)
    return os.fdopen(_open_checked(name, _READ_FLAGS, st, "read file"), "rb")


def read_regular(path: Path | str, *, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; :class:`FileTooLarge` otherwise,
    decided before reading (and again after, for a file that grew meanwhile)."""
    name = str(path)
    with open_regular(name) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise FileTooLarge(
                name, f"file is {size} bytes, over the limit of {max_bytes} bytes; not read"
            )
        try:
            data = f.read(size + 1)  # one byte more shows a file that grows while it is read
            if len(data) > size:
                data += f.read(max_bytes + 1 - len(data))
        except OSError as e:
            raise UnreadableFile(name, str(e.strerror or e), "read file") from None
    if len(data) > max_bytes:
        raise FileTooLarge(name, f"file grew over the limit of {max_bytes} bytes while being read")
    return data


def append_text(path: Path | str, text: str) -> None:
    """Append ``text`` to a file (created when absent), such as ``$GITHUB_STEP_SUMMARY``: all of
    it or, on a full disk, none of it (the file is cut back to its old size). An existing FIFO,
    socket, device or folder is refused without being opened."""
    name = str(path)
    existed = os.path.lexists(name)
    fd = _open_append(name)
    try:
        size = os.fstat(fd).st_size
        data = memoryview(text.encode("utf-8"))
        while data:  # a write cut short by a full disk returns less; the next one fails
            data = data[os.write(fd, data) :]
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
            if not existed:
                os.unlink(name)
        raise InputError(name, f"cannot write: {e.strerror or e}") from None
    finally:
        os.close(fd)


def _open_append(name: str) -> int:
    st: os.stat_result | None
    try:
        st = os.stat(name)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UnreadableFile(name, str(e.strerror or e), "write") from None
    if st is not None and (kind := not_regular(st.st_mode)) is not None:
        raise _refused(name, kind)
    return _open_checked(name, _APPEND_FLAGS, st, "write")


def display_path(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it."""
    try:
        return (
            os.path.relpath(path)
            if path.resolve().is_relative_to(Path.cwd().resolve())
            else str(path)
        )
    except ValueError:
        return str(path)


class PendingFile:
    """An output file that a command writes last but must be able to write before it starts.

    Making one creates the missing folders and an empty temp file beside ``path``, so a path
    that cannot be written raises :class:`InputError` before any other file is touched.
    :meth:`write` fills the temp file and renames it over ``path`` (a crash leaves the old
    file or the new one); :meth:`discard` removes what was made when it is not written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            raise InputError(str(path), "is a folder")
        missing = []
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        if not folder.is_dir():
            raise InputError(str(path), f"{folder} is not a folder")
        self._made: list[Path] = []
        self._tmp: Path | None = None
        try:
            for d in reversed(missing):
                d.mkdir()
                self._made.append(d)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as e:
            self.discard()
            raise InputError(
                str(path), f"cannot write in {e.filename or path.parent}: {e.strerror}"
            ) from None
        os.close(fd)
        self._tmp = Path(name)

    def write(self, text: str) -> None:
        """Write ``text`` to the file, atomically."""
        assert self._tmp is not None, "written or discarded already"
        try:
            os.chmod(self._tmp, mode_for(self.path))  # as atomic_write_text: not mkstemp's 0600
            with open(self._tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.discard()
            raise InputError(str(self.path), f"cannot write: {e.strerror}") from None
        self._tmp = None
        self._made = []

    def discard(self) -> None:
        """Remove the temp file and the folders made for it; nothing once written."""
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None
        for d in reversed(self._made):
            with contextlib.suppress(OSError):
                d.rmdir()
        self._made = []


class TempBeside:
    """A temp file beside ``target`` (``.<name>.XXXXXXXX.tmp``, same file system, the target's
    permissions), to be renamed over it with :meth:`replace`.

    It is locked (``flock``) for as long as this object is open, so :func:`remove_stale_temps`
    never takes the file of a writer still at work; the lock dies with the process, so what a
    killed writer left is removed by the next one. Leaving the ``with`` block without
    :meth:`replace` removes the file.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        while True:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            lock = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.fstat(lock).st_nlink:  # not taken for stale between mkstemp and flock
                break
            os.close(lock)
            os.close(fd)
        self.path, self._fd, self._lock, self._replaced = Path(name), fd, lock, False

    def write(self, text: str) -> None:
        """Fill the file with ``text`` (UTF-8, ``\\n`` line ends) and flush it to disk."""
        os.fchmod(self._fd, mode_for(self.target))
        with os.fdopen(self._fd, "w", encoding="utf-8", newline="\n", closefd=False) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def replace(self) -> None:
        os.replace(self.path, self.target)
        self._replaced = True

    def __enter__(self) -> TempBeside:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._replaced:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)
        os.close(self._lock)


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temp files of :class:`TempBeside` that writers killed before their rename
    left beside ``target``; returns them. A file still locked by a live writer is kept."""
    removed = []
    for tmp in sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp")):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename.

    A crash leaves either the old file or the new one, never a partial file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file stands where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None
    try:
        with TempBeside(path) as tmp:
            tmp.write(text)
            tmp.replace()
    except OSError as e:  # a full disk, a read-only folder: the file keeps its old content
        raise InputError(str(path), f"cannot write: {e.strerror or e}") from None


def mode_for(path: Path) -> int:
    """The replaced file's permissions, else what ``open()`` would give a new file (0666 less
    the umask) -- not mkstemp's private 0600."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask
