"""Paths as commands show them, and output files checked before the work and written after it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ci_golden.errors import InputError


def display_path(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
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
            raise InputError(str(path), f"cannot write in {e.filename or path.parent}: {e.strerror}") from None
        os.close(fd)
        self._tmp = Path(name)

    def write(self, text: str) -> None:
        """Write ``text`` to the file, atomically."""
        assert self._tmp is not None, "written or discarded already"
        from ci_golden.golden import mode_for

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
