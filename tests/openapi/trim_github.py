"""Regenerate tests/openapi/github-subset.json from GitHub's official OpenAPI description.

    cd /tmp && npm install @octokit/openapi
    spec=/tmp/node_modules/@octokit/openapi/generated/api.github.com.json
    python tests/openapi/trim_github.py "$spec"

Keeps the operations the forge layer and the test servers use, with every component they
reference (transitively), and nothing else. The output is stable (sorted keys) so that a
regeneration shows as a small diff.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t
from pathlib import Path

OPERATIONS = (
    "issues/list-comments",
    "issues/create-comment",
    "issues/update-comment",
    "issues/delete-comment",
    "repos/create-commit-status",
    "actions/list-workflow-run-artifacts",
    "actions/download-artifact",
)
HERE = Path(__file__).resolve().parent


def _refs(node: t.Any) -> t.Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def trim(spec: dict[str, t.Any], operations: t.Sequence[str] = OPERATIONS) -> dict[str, t.Any]:
    paths: dict[str, t.Any] = {}
    found = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") in operations:
                paths.setdefault(path, {})[method] = op
                found.add(op["operationId"])
    missing = set(operations) - found
    if missing:
        raise SystemExit(f"operations not in the description: {sorted(missing)}")
    components: dict[str, dict[str, t.Any]] = {}
    todo = list(_refs(paths))
    while todo:
        ref = todo.pop()
        _, kind, name = ref.rsplit("/", 2)
        if name in components.get(kind, {}):
            continue
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        todo.extend(_refs(node))
    return {
        "openapi": spec["openapi"],
        "info": {
            **spec["info"],
            "description": "Trimmed by tests/openapi/trim_github.py: " + ", ".join(operations),
        },
        "servers": spec.get("servers", []),
        "paths": paths,
        "components": components,
    }


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="api.github.com.json from @octokit/openapi")
    parser.add_argument("--out", type=Path, default=HERE / "github-subset.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.source.read_text(encoding="utf-8"))
    subset = trim(spec)
    args.out.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"{args.out}: {len(subset['paths'])} paths, "
        f"{sum(len(v) for v in subset['components'].values())} components",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
