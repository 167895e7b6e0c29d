from __future__ import annotations

import argparse
import json
import typing as t

from ci_golden.commands import add_selection_arguments, explain, load_suite, selection_filters
from ci_golden.plan.select import select


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_selection_arguments(parser, scope_default="every scope")


def run(args: argparse.Namespace) -> int:

    suite = load_suite(args)
    suite.require_readable()
    selection = select(suite, selection_filters(args, suite.config, any_scope=args.scope is None))
    if args.explain:
        explain(selection)
    jobs: dict[str, list[dict[str, t.Any]]] = {case: [] for case, _ in selection.selected}
    jobs.update((case, []) for case in selection.jobless)
    for job in selection.jobs:
        golden = job.golden.rpartition("/")[2] if job.golden else None
        jobs[job.case].append(
            {
                "environment": job.environment,
                "platform": job.platform,
                "golden": f"{job.case}/{golden}" if golden else None,
            }
        )
    rows: list[dict[str, t.Any]] = [
        {"case": case.id, "jobs": jobs[case.id]} for case in suite.cases if case.id in jobs
    ]
    if args.format == "json":
        print(json.dumps({"root": str(suite.root), "cases": rows}, indent=2))
        return 0
    for row in rows:
        print(row["case"])
        if not row["jobs"]:
            print("  (no job: no golden resolves for any environment and platform)")
        for entry in row["jobs"]:
            golden = entry["golden"].rsplit("/", 1)[-1] if entry["golden"] else "(no golden yet)"
            print(f"  {entry['environment']:<8} {entry['platform']:<12} {golden}")
    n_jobs = sum(len(r["jobs"]) for r in rows)
    left_out = len(suite.cases) - len(rows)
    more = f"; {left_out} not selected (--explain says why)" if left_out else ""
    print(f"{len(rows)} cases, {n_jobs} jobs{more}")
    return 0
