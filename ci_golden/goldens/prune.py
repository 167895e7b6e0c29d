"""Pruning: the golden files of the tree that no job reads, and their removal.

A plan is made for the whole tree before anything is deleted; a case whose config cannot be
read makes the plan incomplete, and an incomplete plan deletes nothing.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

from ci_golden.errors import InputError
from ci_golden.goldens.discover import Suite, Unreferenced, unreferenced_goldens


@dataclass(frozen=True)
class PrunePlan:
    """The unreferenced goldens of a suite, and the cases that could not be judged."""

    unreferenced: tuple[Unreferenced, ...]
    errors: tuple[InputError, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.errors


def plan_prune(suite: Suite) -> PrunePlan:
    """Every golden file no job of the config reads, with the reason; reads only."""
    found: list[Unreferenced] = []
    errors: list[InputError] = []
    for case in suite.cases:
        try:
            found.extend(unreferenced_goldens(case, suite.config))
        except InputError as e:
            errors.append(e)
    return PrunePlan(tuple(found), tuple(errors))


def apply_prune(plan: PrunePlan) -> list[Path]:
    """Delete the planned files; refuses an incomplete plan. Returns the deleted paths."""
    if not plan.complete:
        raise plan.errors[0]
    deleted = []
    for item in plan.unreferenced:
        item.path.unlink(missing_ok=True)
        deleted.append(item.path)
    return deleted


def render_prune(plan: PrunePlan, *, applied: bool, display: t.Callable[[Path], str] = str) -> str:
    """One line per unreferenced file with its reason, then the errors and a count."""
    verb = "deleted" if applied else "would delete"
    lines = [f"{verb} {display(u.path)}: {u.reason}" for u in plan.unreferenced]
    lines.extend(f"cannot judge: {e}" for e in plan.errors)
    n = len(plan.unreferenced)
    if not n and not plan.errors:
        lines.append("no unreferenced golden files")
    elif applied:
        lines.append(f"{n} unreferenced golden file(s) deleted")
    elif plan.errors:
        lines.append(f"{n} unreferenced golden file(s) found; fix the errors above before pruning")
    else:
        lines.append(f"{n} unreferenced golden file(s); run with --apply to delete them")
    return "\n".join(lines) + "\n"
