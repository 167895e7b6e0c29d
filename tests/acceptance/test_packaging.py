"""The wheel ships the JSON Schemas and the package loads them from inside it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SCHEMAS = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "schemas").glob("*.schema.json")
)


def test_the_wheel_holds_every_schema_and_loads_them_from_the_zip(
    repo_root: Path, tmp_path: Path
) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(repo_root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("ci_golden-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("ci_golden/schemas/")) == SCHEMAS
    )
    assert "ci_golden/py.typed" in names
    assert {n for n in names if n.startswith("ci_golden/report/assets/")} == {
        f"ci_golden/report/assets/{a}"
        for a in (
            "html_report.css",
            "html_report.js",
            "plotly-basic.min.js",
            "plotly-basic.LICENSE",
        )
    }
    probe = (
        "import json, ci_golden, ci_golden.project.schema as s\n"
        "from ci_golden.report.html import PLOTLY_JS, asset\n"
        "ids = {n: s.validator(n).schema.get('$id') or s.load_schema(n)['$id']"
        " for n in s.SCHEMA_NAMES}\n"
        "assert asset(PLOTLY_JS).startswith('/**\\n* plotly.js (basic - minified)')\n"
        "print(json.dumps([ci_golden.__file__, ids]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(wheel)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    where, ids = json.loads(out)
    assert where.startswith(str(wheel))  # imported from the zip, not from the checkout
    assert sorted(ids) == sorted(n.removesuffix(".schema.json") for n in SCHEMAS)
    assert all(v.startswith("https://ci-golden.dev/schemas/") for v in ids.values())


def test_every_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from ci_golden.project.schema import SCHEMA_NAMES, load_schema

    invalid = []
    for name in SCHEMA_NAMES:
        try:
            Draft202012Validator.check_schema(load_schema(name))
        except SchemaError as e:
            invalid.append(f"{name}: {e.message}")
    assert invalid == []


def test_the_vendored_plotly_bundle_is_the_pinned_npm_package(repo_root: Path) -> None:
    """assets/plotly-basic.min.js and its licence are npm's plotly.js-basic-dist-min at the
    version package.json pins (refresh: `npm install`, then copy both files)."""
    package = repo_root / "node_modules" / "plotly.js-basic-dist-min"
    if not package.is_dir():
        pytest.skip("plotly.js-basic-dist-min is not installed (npm ci)")
    pinned = json.loads((repo_root / "package.json").read_text())["devDependencies"]
    assert (
        json.loads((package / "package.json").read_text())["version"]
        == pinned["plotly.js-basic-dist-min"]
    )
    assets = repo_root / "ci_golden" / "report" / "assets"
    assert (assets / "plotly-basic.min.js").read_bytes() == (
        package / "plotly-basic.min.js"
    ).read_bytes()
    assert (assets / "plotly-basic.LICENSE").read_bytes() == (package / "LICENSE").read_bytes()
