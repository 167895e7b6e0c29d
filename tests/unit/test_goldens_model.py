"""Golden-value model: round trips over the real corpus and property tests."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_golden.goldens.discover import TestCase, golden_name
from ci_golden.goldens.model import (
    GoldenFormatError,
    GoldenValues,
    MetricSeries,
    dumps_golden,
    load_golden,
    parse_golden,
    read_json,
    write_golden,
)
from ci_golden.validate.engine import check_golden_file


def _current_layout_files(corpus: Path) -> list[Path]:
    out = []
    for path in sorted(corpus.rglob("golden_values*.json")):
        try:
            if load_golden(path).layout == "current":
                out.append(path)
        except GoldenFormatError:
            continue
    return out


def test_round_trip_of_every_current_layout_corpus_file(corpus: Path, tmp_path: Path) -> None:
    files = _current_layout_files(corpus)
    assert len(files) == 712
    for i, path in enumerate(files):
        first = load_golden(path)
        out = tmp_path / f"{i}.json"
        write_golden(out, first)
        again = load_golden(out)
        assert again.same_as(first), path
        assert read_json(out) == read_json(path), (
            path
        )  # Megatron-LM's loader sees the same document


def test_written_file_is_canonical(tmp_path: Path) -> None:
    series = MetricSeries.from_mapping("lm loss", {5: 1.5, 1: 2.0, 10: None}, step_interval=5)
    out = tmp_path / "golden_values_dev.json"
    write_golden(out, GoldenValues(layout="current", metrics={"lm loss": series}))
    assert out.read_text() == (
        '{\n    "lm loss": {\n        "start_step": 1,\n        "end_step": 10,\n'
        '        "step_interval": 5,\n'
        '        "values": {\n            "1": 2.0,\n            "5": 1.5,\n'
        '            "10": "nan"\n'
        "        }\n    }\n}\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["golden_values_dev.json"]  # no temp file left


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
by_step = st.dictionaries(
    st.integers(0, 10**9), st.one_of(st.none(), finite), min_size=1, max_size=30
)
names = st.text(alphabet=string.ascii_letters + string.digits + " -_/", min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names, by_step, min_size=1, max_size=4), st.booleans())
def test_write_then_load_is_identity(
    tmp_path_factory: pytest.TempPathFactory,
    metrics: dict[str, dict[int, float | None]],
    full: bool,
) -> None:
    golden = GoldenValues(
        layout="current",
        metrics={
            name: MetricSeries.from_mapping(name, values, value_precision="full" if full else None)
            for name, values in metrics.items()
        },
    )
    text = dumps_golden(golden)
    again = parse_golden(json.loads(text), "<text>")
    assert again.same_as(golden)
    assert dumps_golden(again) == text
    out = tmp_path_factory.mktemp("rt") / "golden_values.json"
    write_golden(out, golden)
    assert load_golden(out).same_as(golden)
    # what ci_golden writes, its validator accepts (grid and end_step aside: any steps here)
    _, findings = check_golden_file(out)
    assert [f for f in findings if f.code not in ("CG111", "CG112")] == []


ENVS = ["dev", "lts"]
PLATFORMS = ["dgx_h100", "dgx_a100"]
ALL_NAMES = [
    golden_name(),
    *(golden_name(e) for e in ENVS),
    *(golden_name(e, p) for e in ENVS for p in PLATFORMS),
]


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.sampled_from([*ALL_NAMES, "golden_values_dev_dgx_h100_2nd.json"])),
    st.sampled_from(ENVS),
    st.sampled_from(PLATFORMS),
)
def test_resolution_order_is_exact_then_environment_then_generic(
    present: set[str], env: str, platform: str
) -> None:
    case = TestCase(
        id="m/c", path=Path("/t/m/c"), has_config=True, golden_files=tuple(sorted(present))
    )
    expected = next(
        (
            n
            for n in (
                f"golden_values_{env}_{platform}.json",
                f"golden_values_{env}.json",
                "golden_values.json",
            )
            if n in present
        ),
        None,
    )
    got = case.golden_for(env, platform)
    assert (got.name if got else None) == expected
    if got is not None:
        assert got.parent == Path("/t/m/c")


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from ci_golden.project.files import atomic_write_text

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    new, kept = tmp_path / "new.json", tmp_path / "kept.json"
    kept.write_text("old")
    kept.chmod(0o640)
    old_umask = os.umask(0o027)
    try:
        atomic_write_text(new, "x")
        atomic_write_text(kept, "y")
    finally:
        os.umask(old_umask)
    assert (mode(new), mode(kept)) == (0o640, 0o640)  # 0666 less the umask; the replaced file's own
    assert kept.read_text() == "y"
