"""Fetching results: the artifacts of a CI run, downloaded through the forge API and unpacked
safely.

GitHub: ``GET /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts`` (paginated), then
``GET /repos/{owner}/{repo}/actions/artifacts/{id}/zip``, which redirects to signed storage.
GitLab: ``GET /projects/:id/pipelines/:pipeline_id/jobs`` and ``.../bridges`` (each bridge names
its child pipeline, followed recursively), then ``GET /projects/:id/jobs/:job_id/artifacts``.

Archives come from CI jobs that ran the code of a pull request, so they are untrusted: an entry
whose path leaves its folder (``..``, an absolute path, a drive letter), a link or device entry,
duplicate names, and sizes over the limits (counted on the bytes actually decompressed, not on
the header's claim) make the whole fetch fail. Everything is unpacked into a staging folder
beside the output folder, which is renamed into place only when every archive was accepted.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import stat
import tempfile
import typing as t
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ci_golden.compare.result import RESULT_FILE, load_result
from ci_golden.errors import InputError, UsageError
from ci_golden.forge.checks import (
    MalformedAnswerError,
    describe,
    is_positive_int,
    optional,
    require_id,
)
from ci_golden.forge.http import AnswerTooLargeError

if t.TYPE_CHECKING:
    from ci_golden.forge.http import Client

MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_ENTRIES = 100_000
CHUNK = 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UnsafeArchiveError(InputError):
    """An archive refused for safety: a path escaping its folder, a link, or a size over the
    limit.
    """


@dataclass(frozen=True)
class Limits:
    entry: int = MAX_ENTRY_BYTES
    total: int = MAX_TOTAL_BYTES
    entries: int = MAX_ENTRIES


@dataclass(frozen=True)
class Artifact:
    """One downloadable archive: a GitHub artifact or a GitLab job's artifacts."""

    id: int
    name: str
    download: str
    skip: str | None = None  # why it is not downloaded (expired, no artifacts)


@dataclass(frozen=True)
class Fetched:
    """What became of one artifact in the output folder."""

    artifact: Artifact
    folder: str | None
    results: int = 0
    kept: int = 0
    note: str | None = None


# --- listing -----------------------------------------------------------------------------


def _artifact(item: t.Any) -> tuple[int, str, bool]:
    aid = require_id(item, "an artifact")
    name = optional(item, "name", str, "an artifact")
    if not name:
        raise MalformedAnswerError('the forge answered an artifact without a "name"')
    return aid, name, optional(item, "expired", bool, "an artifact") is True


def github_artifacts(client: Client, repo: str, run_id: int) -> list[Artifact]:
    owner, _, name = repo.partition("/")
    base = f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"
    out = []
    for page in client.pages(f"{base}/actions/runs/{run_id}/artifacts", key="artifacts",
                             parse=_artifact):  # fmt: skip
        for aid, artifact, expired in page:
            out.append(
                Artifact(
                    aid,
                    artifact,
                    f"{base}/actions/artifacts/{aid}/zip",
                    "expired" if expired else None,
                )
            )
    return out


def _job(item: t.Any) -> tuple[int, str, bool]:
    """(id, name, has an archive) of a GitLab job."""
    jid = require_id(item, "a job")
    name = optional(item, "name", str, "a job") or f"job {jid}"
    files = optional(item, "artifacts", list, "a job") or []
    has = bool(optional(item, "artifacts_file", dict, "a job")) or any(
        isinstance(a, dict) and a.get("file_type") == "archive" for a in files
    )
    return jid, name, has


def _downstream(item: t.Any) -> int | None:
    """The child pipeline a GitLab bridge (trigger job) started, if any."""
    require_id(item, "a bridge")
    downstream = optional(item, "downstream_pipeline", dict, "a bridge")
    if downstream is None:
        return None
    if downstream.get("id") is not None and not is_positive_int(downstream["id"]):
        raise MalformedAnswerError(
            'the forge answered a bridge whose "downstream_pipeline.id" is '
            f"{describe(downstream['id'])}, not a positive integer"
        )
    return downstream.get("id")


def gitlab_artifacts(client: Client, project: str, pipeline_id: int) -> list[Artifact]:
    """Jobs of the pipeline and of every child pipeline its bridges triggered, depth first."""
    pid = quote(project, safe="")
    out: list[Artifact] = []
    seen: set[int] = set()
    pending = [pipeline_id]
    while pending:
        pipeline = pending.pop(0)
        if pipeline in seen:
            continue
        seen.add(pipeline)
        base = f"projects/{pid}/pipelines/{pipeline}"
        for page in client.pages(f"{base}/jobs", parse=_job):
            for jid, name, has in page:
                out.append(
                    Artifact(
                        jid,
                        name,
                        f"projects/{pid}/jobs/{jid}/artifacts",
                        None if has else "no artifacts archive",
                    )
                )
        for children in client.pages(f"{base}/bridges", parse=_downstream):
            pending.extend(child for child in children if child is not None)
    return out


# --- unpacking ---------------------------------------------------------------------------


def _entry_path(name: str, archive: str) -> PurePosixPath | None:
    """The relative path of an entry, None for a folder entry; refuses any path that escapes."""
    if "\x00" in name:
        raise UnsafeArchiveError(archive, f"entry {name!r} has a NUL character in its name")
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise UnsafeArchiveError(archive, f"entry {name!r} has an absolute path; refused")
    if ".." in parts:
        raise UnsafeArchiveError(
            archive, f"entry {name!r} leaves the output folder ('..'); refused"
        )
    clean = [p for p in parts if p not in ("", ".")]
    if not clean:
        return None
    return PurePosixPath(*clean)


def safe_extract(data: bytes, dest: Path, *, archive: str, limits: Limits = Limits()) -> int:
    """Unpack a zip archive into the empty folder ``dest``; returns the number of files.

    Raises :class:`UnsafeArchiveError` (and leaves ``dest`` partly filled: callers unpack into a
    staging folder) for a path that escapes, a non-regular entry, a duplicate, or a size over
    ``limits``, counted on the decompressed bytes as they are read.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _CORRUPT as e:
        raise UnsafeArchiveError(archive, f"not a zip archive: {_one_line(e)}") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.entries:
            raise UnsafeArchiveError(
                archive, f"{len(infos)} entries, over the limit of {limits.entries}"
            )
        planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        seen: set[str] = set()
        declared = 0
        for info in infos:
            rel = _entry_path(info.filename, archive)
            mode = info.external_attr >> 16
            if rel is None or info.is_dir():
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no Unix type recorded
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise UnsafeArchiveError(archive, f"entry {info.filename!r} is {kind}; refused")
            key = rel.as_posix().lower()
            if key in seen:
                raise UnsafeArchiveError(archive, f"entry {info.filename!r} appears twice; refused")
            seen.add(key)
            if info.file_size > limits.entry:
                raise UnsafeArchiveError(
                    archive, _too_big(info.filename, info.file_size, limits.entry)
                )
            declared += info.file_size
            if declared > limits.total:
                raise UnsafeArchiveError(
                    archive, f"entries add up to over {limits.total} bytes; refused"
                )
            planned.append((info, rel))
        total = 0
        for info, rel in planned:
            target = dest.joinpath(*rel.parts)
            written = 0
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > limits.entry:
                            raise UnsafeArchiveError(
                                archive, _too_big(info.filename, written, limits.entry, actual=True)
                            )
                        if total > limits.total:
                            raise UnsafeArchiveError(
                                archive, f"entries decompress to over {limits.total} bytes; refused"
                            )
                        out.write(chunk)
            except _CORRUPT as e:
                raise UnsafeArchiveError(
                    archive, f"entry {info.filename!r} is corrupt: {_one_line(e)}"
                ) from e
            except (FileExistsError, NotADirectoryError) as e:  # "a" and "a/b", "a/" and "A"
                raise UnsafeArchiveError(
                    archive, f"entry {info.filename!r} collides with another entry"
                ) from e
            except OSError as e:  # a name too long, a full disk
                raise InputError(
                    archive, f"entry {info.filename!r} cannot be written: {e.strerror or e}"
                ) from e
    return len(planned)


# What zipfile raises on a damaged archive: its own errors, and those of the layers below it
# (a header that seeks before the start, a name that is not UTF-8, a broken deflate stream).
_CORRUPT = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    NotImplementedError,
    ValueError,  # UnicodeDecodeError included
    OverflowError,
    zlib.error,
)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _too_big(name: str, size: int, limit: int, *, actual: bool = False) -> str:
    how = "decompresses to over" if actual else "is"
    return f"entry {name!r} {how} {size} bytes, over the limit of {limit} per entry; refused"


# --- the whole fetch ---------------------------------------------------------------------


def folder_name(name: str, taken: t.Collection[str], artifact_id: int) -> str:
    """A safe single path component for an artifact, unique among ``taken``."""
    base = _UNSAFE_NAME.sub("_", name).strip("._") or f"artifact-{artifact_id}"
    return base if base not in taken else f"{base}-{artifact_id}"


def _keep_failing(folder: Path) -> tuple[int, int]:
    """Remove the results whose verdict is pass (their run folder, when it holds no other result);
    returns (results found, results kept)."""
    results = sorted(folder.rglob(RESULT_FILE))
    kept = 0
    for path in results:
        if load_result(path).verdict != "pass":
            kept += 1
            continue
        others = [p for p in path.parent.rglob(RESULT_FILE) if p != path]
        if others or path.parent == folder:
            path.unlink()
        else:
            shutil.rmtree(path.parent)
    return len(results), kept


def fetch(
    client: Client,
    artifacts: t.Sequence[Artifact],
    out: Path,
    *,
    only_failing: bool = False,
    limits: Limits = Limits(),
) -> list[Fetched]:
    """Download and unpack every artifact into ``out`` (which must be absent or empty).

    Artifacts without any result.json are not kept. Nothing appears in ``out`` unless every
    archive was accepted.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(
            f"{out} already exists and is not empty; remove it or choose another --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    done: list[Fetched] = []
    try:
        taken: set[str] = set()
        for artifact in artifacts:
            if artifact.skip:
                done.append(Fetched(artifact, None, note=artifact.skip))
                continue
            name = folder_name(artifact.name, taken, artifact.id)
            taken.add(name)
            label = f"artifact {artifact.name!r} (id {artifact.id})"
            try:
                data = client.download(artifact.download, max_bytes=limits.total)
            except AnswerTooLargeError as e:
                size = f"{e.size} bytes, over" if e.size is not None else "larger than"
                raise UnsafeArchiveError(
                    label, f"archive is {size} the limit of {limits.total}; refused"
                ) from None
            folder = staging / name
            folder.mkdir()
            safe_extract(data, folder, archive=label, limits=limits)
            n, kept = (
                _keep_failing(folder)
                if only_failing
                else (len(list(folder.rglob(RESULT_FILE))),) * 2
            )
            if kept == 0:
                shutil.rmtree(folder)
                why = "no result.json" if n == 0 else f"all {n} result(s) pass"
                done.append(Fetched(artifact, None, n, 0, f"not kept: {why}"))
                continue
            done.append(Fetched(artifact, name, n, kept))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return done


def render_fetched(fetched: t.Sequence[Fetched], out: str) -> str:
    lines = []
    for f in fetched:
        label = f"{f.artifact.name} (id {f.artifact.id})"
        if f.folder is None:
            lines.append(f"skipped {label}: {f.note}")
        elif f.kept != f.results:
            lines.append(
                f"fetched {label} -> {out}/{f.folder}: "
                f"{f.kept} of {f.results} result(s) kept (not pass)"
            )
        else:
            lines.append(f"fetched {label} -> {out}/{f.folder}: {f.results} result(s)")
    total = sum(f.kept for f in fetched)
    lines.append(
        f"{total} result(s) in {out}" + (f"; refresh with: ci-golden update {out}" if total else "")
    )
    return "\n".join(lines) + "\n"
