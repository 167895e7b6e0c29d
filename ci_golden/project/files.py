"""Files as commands show and write them: display paths, atomic writes, output files checked
before the work and written after it."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from ci_golden.errors import InputError


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename.

    A crash leaves either the old file or the new one, never a partial file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file stands where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def mode_for(path: Path) -> int:
    """The replaced file's permissions, else what ``open()`` would give a new file (0666 less
    the umask) -- not mkstemp's private 0600."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask
