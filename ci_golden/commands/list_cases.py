from __future__ import annotations

import argparse
import json
import typing as t

from ci_golden.commands import load_suite
from ci_golden.goldens.discover import case_jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:

    suite = load_suite(args)
    suite.require_readable()
    rows: list[dict[str, t.Any]] = []
    for case in suite.cases:
        jobs = case_jobs(case, suite.config)
        rows.append(
            {
                "case": case.id,
                "jobs": [
                    {
                        "environment": j.environment,
                        "platform": j.platform,
                        "golden": j.golden.relative_to(suite.root).as_posix() if j.golden else None,
                    }
                    for j in jobs
                ],
            }
        )
    if args.format == "json":
        print(json.dumps({"root": str(suite.root), "cases": rows}, indent=2))
        return 0
    for row in rows:
        print(row["case"])
        if not row["jobs"]:
            print("  (no job: no golden resolves for any environment and platform)")
        for job in row["jobs"]:
            golden = job["golden"].rsplit("/", 1)[-1] if job["golden"] else "(no golden yet)"
            print(f"  {job['environment']:<8} {job['platform']:<12} {golden}")
    n_jobs = sum(len(r["jobs"]) for r in rows)
    print(f"{len(rows)} cases, {n_jobs} jobs")
    return 0
