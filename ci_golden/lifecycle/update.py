"""Refreshing goldens: new golden files from the actual values behind job results.

Each ``result.json`` updates the golden of its own (case, environment, platform) only. The
target is the file the job read, found again through discovery (never a path taken from the
result, which may come from a downloaded artifact); a job without a golden gets
``golden_values_<env>_<platform>.json``, and so does a job that read a shared file
(``golden_values_<env>.json``, ``golden_values.json``) other jobs also read, so that their
goldens stay as they are. Every new file is checked by
the validator before it replaces the old one through a rename in the same folder, so a crash
leaves each golden old or new, never partial. A golden keeps the metric set of the one the job read.

A refresh changes values and nothing else: the golden's text is kept (its step grid, one-line or
indented layout, key order, number formatting) and only the value tokens that changed are
rewritten, located by ``json-source-map``; so a refreshed file's diff shows the changed steps
alone. A golden step the run did not log becomes ``"nan"``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import typing as t
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from json_source_map import calculate

from ci_golden.compare.result import RESULT_FILE, CaseResult, load_result
from ci_golden.errors import InputError, UsageError
from ci_golden.goldens.discover import Suite, TestCase, case_jobs, golden_name
from ci_golden.goldens.model import GoldenValues, MetricSeries, dumps_golden, load_golden
from ci_golden.project.files import PendingFile, TempBeside, remove_stale_temps
from ci_golden.report.render import CONTROL_CHARS, REFRESH_VERDICTS
from ci_golden.report.render import escape_md as _md
from ci_golden.run.collect import load_actual
from ci_golden.validate.engine import check_golden_file
from ci_golden.validate.semantics import run_length

Status = t.Literal["changed", "added", "removed", "unchanged"]


@dataclass(frozen=True)
class MetricChange:
    """How one metric's golden values move: signed mean relative diff, max abs diff, steps
    changed.
    """

    name: str
    status: Status
    n_steps: int
    steps_changed: int
    mean_rel_diff: float | None = None
    max_abs_diff: float | None = None


@dataclass(frozen=True)
class Update:
    """One golden file to write from one result (``text`` None when nothing can be written)."""

    result_path: Path
    case: str
    environment: str
    platform: str
    verdict: str
    target: Path | None = None
    text: str | None = None
    existed: bool = False
    changes: tuple[MetricChange, ...] = ()
    notes: tuple[str, ...] = ()
    problem: str | None = None
    cleaned: tuple[Path, ...] = ()  # temp files an interrupted update left, removed

    @property
    def changed(self) -> bool:
        return self.text is not None and any(c.status != "unchanged" for c in self.changes)


def find_results(paths: t.Sequence[Path]) -> list[Path]:
    """result.json files: given directly, or anywhere below a given folder."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(path.rglob(RESULT_FILE))
            if not files:
                raise InputError(str(path), f"no {RESULT_FILE} in this folder or below")
            found.extend(files)
        elif path.exists():  # a file; reading refuses a FIFO, socket or device
            found.append(path)
        else:
            raise InputError(str(path), "no such file or folder")
    return list(dict.fromkeys(p.resolve() for p in found))


def selected(
    result: CaseResult, *, only_failing: bool, only_drift: bool, cases: t.Sequence[str]
) -> bool:
    """``--only-failing``: any verdict but pass (drift included); ``--only-drift``: drift only;
    ``--case``: the case id matches one of the globs. The failing verdicts are those the report's
    refresh command names (:data:`ci_golden.report.render.REFRESH_VERDICTS`)."""
    if cases and not any(fnmatch.fnmatchcase(result.case, g) for g in cases):
        return False
    if only_failing or only_drift:
        return (only_failing and result.verdict in REFRESH_VERDICTS) or (
            only_drift and result.verdict == "drift"
        )
    return True


def target_for(
    case: TestCase, suite: Suite, environment: str, platform: str
) -> tuple[Path, tuple[str, ...]]:
    """The golden file this job's refresh writes, and a note when it is not the one it read."""
    read = case.golden_for(environment, platform)
    exact = case.path / golden_name(environment, platform)
    if read is None or read == exact:
        return exact, ()
    others = [
        f"{j.environment}/{j.platform}"
        for j in case_jobs(case, suite.config)
        if j.golden == read and (j.environment, j.platform) != (environment, platform)
    ]
    if not others:
        return read, ()
    note = (
        f"{read.name} is also read by {', '.join(others)}: "
        f"writing {exact.name} so their golden stays"
    )
    return exact, (note,)


def _metric_change(name: str, old: MetricSeries | None, new: MetricSeries | None) -> MetricChange:
    if old is None or new is None:
        series = t.cast(MetricSeries, new or old)
        return MetricChange(name, "added" if old is None else "removed", len(series), len(series))
    steps = np.union1d(old.steps, new.steps)
    in_old, in_new = np.isin(steps, old.steps), np.isin(steps, new.steps)
    both = np.intersect1d(old.steps, new.steps)
    o = old.values[np.searchsorted(old.steps, both)]
    n = new.values[np.searchsorted(new.steps, both)]
    same = (o == n) | (np.isnan(o) & np.isnan(n))
    changed = int(np.sum(in_old != in_new)) + int(np.sum(~same))
    finite = np.isfinite(o) & np.isfinite(n)
    rel_ok = finite & (o != 0)
    mean_rel = (
        float(np.mean((n[rel_ok] - o[rel_ok]) / np.abs(o[rel_ok]))) if np.any(rel_ok) else None
    )
    max_abs = float(np.max(np.abs(n[finite] - o[finite]))) if np.any(finite) else None
    return MetricChange(
        name, "changed" if changed else "unchanged", len(steps), changed, mean_rel, max_abs
    )


def diff_goldens(old: GoldenValues | None, new: GoldenValues) -> tuple[MetricChange, ...]:
    """Per metric of ``new`` (and of ``old`` it drops) how the values change."""
    if new.layout == "inference" or (old is not None and old.layout == "inference"):
        same = old is not None and old.same_as(new)
        return (
            MetricChange(
                "(inference requests)",
                "unchanged" if same else ("changed" if old else "added"),
                0,
                0,
            ),
        )
    before = old.metrics if old is not None else {}
    names = list(dict.fromkeys([*new.metrics, *before]))
    return tuple(_metric_change(n, before.get(n), new.metrics.get(n)) for n in names)


def _keep_metrics(old: GoldenValues, new: GoldenValues) -> GoldenValues:
    if old.layout != "current" or new.layout != "current":
        return new
    missing = [n for n in old.metrics if n not in new.metrics]
    if missing:
        raise ValueError(
            f"the run logged no {', '.join(repr(n) for n in missing)}; "
            "refusing to drop it from the golden"
        )
    return GoldenValues(layout="current", metrics={n: new.metrics[n] for n in old.metrics})


def _number_text(old_token: str, value: float | None) -> str:
    """A new value written the way the old token was: an integer stays an integer when the new
    value is integral, anything else is Python's shortest float text (as json.dumps writes)."""
    if value is None or not np.isfinite(value):
        return '"nan"'
    is_int = old_token.lstrip("-").isdigit()
    if is_int and float(value).is_integer():
        return str(int(value))
    return json.dumps(float(value))


def refreshed_text(text: str, old: GoldenValues, new: GoldenValues) -> str:
    """``text`` (the golden ``old`` was read from) with the values of ``new`` at the golden's own
    steps, every other character kept. ``new`` must hold every metric of ``old``."""
    spans = calculate(text)
    edits: list[tuple[int, int, str]] = []
    for name, series in old.metrics.items():
        fresh = new.metrics[name].as_dict()
        for step, before in series.as_dict().items():
            after = fresh.get(step)
            if before == after or (before is None and after is None):
                continue
            entry = spans.get(f"/{name}/values/{step}")
            if entry is None:
                raise ValueError(f"cannot locate {name!r} step {step} in the golden's text")
            start, end = entry.value_start.position, entry.value_end.position
            edits.append((start, end, _number_text(text[start:end], after)))
    for start, end, token in sorted(edits, reverse=True):
        text = text[:start] + token + text[end:]
    return text


def _on_grid(old: GoldenValues, new: GoldenValues) -> GoldenValues:
    """``new`` with each metric on the golden's own steps (``"nan"`` where the run has none)."""
    metrics = {}
    for name, series in old.metrics.items():
        fresh = new.metrics[name].as_dict()
        metrics[name] = MetricSeries.from_mapping(
            name,
            {int(k): fresh.get(int(k)) for k in series.steps},
            start_step=series.start_step,
            end_step=series.end_step,
            step_interval=series.step_interval,
            value_precision=series.value_precision,
        )
    return GoldenValues(layout="current", metrics=metrics)


def plan_update(
    path: Path, result: CaseResult, suite: Suite, *, actual: Path | None = None
) -> Update:
    """What refreshing from one result writes; reads only. ``actual``: values given explicitly
    (any folder, any format ``compare --actual`` reads) instead of the result's own."""
    base = Update(path, result.case, result.environment, result.platform, result.verdict)

    def refuse(problem: str, **kw: t.Any) -> Update:
        return replace(base, problem=problem, **kw)

    if result.fail_fast is not None:
        return refuse(
            f"the run was stopped at step {result.fail_fast.aborted_at_step} as failing "
            "(fail-fast), so its values are partial; rerun the job with --no-fail-fast "
            "(in CI: CI_GOLDEN_FAIL_FAST=false) "
            "to refresh its golden"
        )
    if result.verdict == "error":
        return refuse(
            "the run failed (verdict error"
            f"{': ' + result.message if result.message else ''}); its values are no golden"
        )
    if actual is None and result.actual is None:
        return refuse(
            f"no actual values (verdict {result.verdict}"
            f"{': ' + result.message if result.message else ''})"
        )
    if actual is None:
        assert result.actual is not None
        actual_path = (path.parent / result.actual).resolve()
        if not actual_path.is_relative_to(path.parent):
            return refuse(
                f"actual values path {result.actual!r} leaves the result's folder; "
                "to use it, pass it explicitly: --actual FILE"
            )
    else:
        actual_path = actual
    try:
        case = suite.case(result.case)
        suite.config.check_names("environment", [result.environment], str(path))
        suite.config.check_names("platform", [result.platform], str(path))
        target, notes = target_for(case, suite, result.environment, result.platform)
        read = case.golden_for(result.environment, result.platform)
        old = load_golden(read) if read is not None else None
        new = load_actual(actual_path, old)[0] if actual is not None else load_golden(actual_path)
    except InputError as e:
        return refuse(str(e))
    text = dumps_golden(new)
    if old is not None:
        try:
            new = _keep_metrics(old, new)
            if old.layout == "current" and new.layout == "current":
                assert read is not None
                new = _on_grid(old, new)
                text = refreshed_text(read.read_text(encoding="utf-8"), old, new)
            else:
                text = dumps_golden(new)
        except ValueError as e:
            return refuse(str(e), target=target)
    return replace(
        base,
        target=target,
        text=text,
        existed=target.is_file(),
        changes=diff_goldens(old, new),
        notes=notes,
    )


def plan_updates(
    paths: t.Sequence[Path],
    suite: Suite,
    *,
    only_failing: bool = False,
    only_drift: bool = False,
    cases: t.Sequence[str] = (),
    actual: Path | None = None,
) -> list[Update]:
    """One :class:`Update` per selected result; two results aimed at one file are both refused.
    ``actual`` (values given explicitly) needs exactly one result."""
    updates = []
    found = find_results(paths)
    if actual is not None and len(found) != 1:
        raise UsageError(f"--actual needs exactly one result, got {len(found)}")
    for path in found:
        result = load_result(path)
        if selected(result, only_failing=only_failing, only_drift=only_drift, cases=cases):
            updates.append(plan_update(path, result, suite, actual=actual))
    by_target: dict[Path, list[int]] = {}
    for i, u in enumerate(updates):
        if u.target is not None and u.problem is None:
            by_target.setdefault(u.target, []).append(i)
    for indices in by_target.values():
        if len(indices) > 1:
            names = ", ".join(str(updates[i].result_path) for i in indices)
            for i in indices:
                u = updates[i]
                updates[i] = Update(
                    u.result_path, u.case, u.environment, u.platform, u.verdict, target=u.target,
                    problem=f"{len(indices)} results update this file ({names}); pass only one",
                )  # fmt: skip
    return updates


class InvalidGolden(InputError):
    """A new golden the validator refuses: that file is not written, the others still are."""


def write_checked(target: Path, text: str, run: tuple[int, str] | None) -> None:
    """Write ``text`` to a temp file beside ``target`` (same file system), check it with the
    validator, then rename it over ``target``, leaving nothing behind on failure. Raises
    :class:`InvalidGolden` when the validator finds an error, :class:`InputError` when the file
    cannot be written (a full disk: no other golden can be either)."""

    try:
        with TempBeside(target) as tmp:
            tmp.write(text)
            errors = [f for f in check_golden_file(tmp.path, run=run)[1] if f.is_error]
            if errors:
                e = errors[0]
                raise InvalidGolden(
                    str(target), f"the new golden fails validation ({e.code}): {e.message}", e.where
                )
            tmp.replace()
    except OSError as e:
        raise InputError(str(target), f"cannot write: {e.strerror or e}") from None


def apply_updates(updates: t.Sequence[Update], suite: Suite) -> list[Update]:
    """Write every changed file in turn: staged, validated, then renamed over its golden. A file
    that fails validation is not written and gets a problem; the others are still written.
    Temp files that an interrupted update left beside a golden are removed first, and listed in
    the update's ``cleaned``."""

    out = list(updates)
    for i, u in enumerate(updates):
        target, text = u.target, u.text
        if u.problem is not None or text is None or target is None:
            continue
        cleaned = tuple(remove_stale_temps(target))
        if cleaned:
            out[i] = replace(u, cleaned=cleaned)
        if not u.changed:
            continue
        try:
            write_checked(target, text, run_length(suite.case(u.case).model_config))
        except InvalidGolden as e:
            out[i] = Update(
                u.result_path,
                u.case,
                u.environment,
                u.platform,
                u.verdict,
                target=target,
                problem=str(e),
                cleaned=cleaned,
            )
    return out


def refresh(
    updates: t.Sequence[Update],
    suite: Suite,
    *,
    dry_run: bool,
    summary: Path | None = None,
    display: t.Callable[[Path], str] = str,
) -> tuple[list[Update], str]:
    """Apply ``updates`` (unless ``dry_run``) and render their summary.

    The ``summary`` file is made ready before any golden is written, so a path that cannot be
    written is refused (:class:`InputError`) with nothing written; it is written last, atomically.
    """

    pending = PendingFile(summary) if summary is not None else None
    try:
        done = list(updates) if dry_run else apply_updates(updates, suite)
        text = render_summary(done, dry_run=dry_run, display=display)
        if pending is not None:
            pending.write(text)
    finally:
        if pending is not None:
            pending.discard()
    return done, text


# --- rendering ---------------------------------------------------------------------------


def _code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds (CommonMark: a fence longer
    than every run of backticks inside, and a space inside each end when the text starts or ends
    with a backtick or a space); line breaks and control characters become spaces."""
    s = CONTROL_CHARS.sub(" ", text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[:1] in ("`", " ") or s[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _signed_pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.3g}%"


def _abs(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def render_summary(
    updates: t.Sequence[Update], *, dry_run: bool, display: t.Callable[[Path], str] = str
) -> str:
    """Markdown for a PR description: one section per golden file, one row per metric."""
    written = [u for u in updates if u.problem is None and u.changed]
    unchanged = [u for u in updates if u.problem is None and not u.changed]
    refused = [u for u in updates if u.problem is not None]
    verb = "would be updated" if dry_run else "updated"
    out = [f"## Golden values {verb}: {len(written)} file(s)\n"]
    for u in written:
        assert u.target is not None
        action = ("would create" if dry_run else "created") if not u.existed else ""
        out.append(f"### {_code(display(u.target))}{' (' + action + ')' if action else ''}\n")
        out.append(
            f"{_md(u.case)} \\[{_md(u.environment)}, {_md(u.platform)}\\], "
            f"verdict **{u.verdict}**, from {_code(display(u.result_path))}\n"
        )
        out.extend(f"> {_md(note)}\n" for note in u.notes)
        out.append("| metric | change | mean rel diff | max abs diff | steps changed |")
        out.append("|---|---|---:|---:|---:|")
        for c in u.changes:
            out.append(
                f"| {_md(c.name)} | {c.status} | {_signed_pct(c.mean_rel_diff)} "
                f"| {_abs(c.max_abs_diff)} | {c.steps_changed}/{c.n_steps} |"
            )
        out.append("")
    if unchanged:
        out.append(
            f"Unchanged ({len(unchanged)}): "
            + ", ".join(_code(display(u.target)) for u in unchanged if u.target)
            + "\n"
        )
    if refused:
        out.append(f"### Not updated: {len(refused)} result(s)\n")
        out.extend(
            (
                f"- {_md(u.case)} \\[{_md(u.environment)}, {_md(u.platform)}\\] "
                f"from {_code(display(u.result_path))}: {_md(u.problem)}"
            )
            for u in refused
        )
        out.append("")
    return "\n".join(out)


def render_summary_text(
    updates: t.Sequence[Update], *, dry_run: bool, display: t.Callable[[Path], str] = str
) -> str:
    """The same summary as plain text, for the console."""
    written = [u for u in updates if u.problem is None and u.changed]
    unchanged = [u for u in updates if u.problem is None and not u.changed]
    refused = [u for u in updates if u.problem is not None]
    verb = "would be updated" if dry_run else "updated"
    out = [f"Golden values {verb}: {len(written)} file(s)"]
    for u in written:
        assert u.target is not None
        action = ("would create" if dry_run else "created") if not u.existed else ""
        out.append(f"  {display(u.target)}{' (' + action + ')' if action else ''}")
        out.append(
            f"    {u.case} [{u.environment}, {u.platform}], verdict {u.verdict}, "
            f"from {display(u.result_path)}"
        )
        out.extend(f"    note: {note}" for note in u.notes)
        out.extend(
            f"    {c.name}: {c.status}, mean rel diff {_signed_pct(c.mean_rel_diff)}, "
            f"max abs diff {_abs(c.max_abs_diff)}, {c.steps_changed}/{c.n_steps} steps changed"
            for c in u.changes
        )
    if unchanged:
        out.append(
            f"Unchanged ({len(unchanged)}): "
            + ", ".join(display(u.target) for u in unchanged if u.target)
        )
    if refused:
        out.append(f"Not updated: {len(refused)} result(s)")
        out.extend(
            f"  {u.case} [{u.environment}, {u.platform}] from {display(u.result_path)}: {u.problem}"
            for u in refused
        )
    return "\n".join(CONTROL_CHARS.sub(" ", line) for line in out) + "\n"
