"""Globs over repository paths (POSIX, relative), for global_paths, ignore_paths and the
validate section's exclude."""

from __future__ import annotations

import functools
import re


def glob_match(path: str, pattern: str) -> bool:
    """Match a repository path against a glob: ``**`` spans folders, ``*`` and ``?`` do not."""
    return _glob_regex(pattern).fullmatch(path) is not None


@functools.lru_cache(maxsize=256)  # matched against every changed path
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
