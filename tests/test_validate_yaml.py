"""The fast model_config.yaml reader reads exactly what PyYAML reads, or steps aside."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_golden.errors import InputError
from ci_golden.validate_yaml import load_model_config, read_plain_yaml

DATA = Path(__file__).parent / "data"


def typed(x: t.Any) -> t.Any:
    """``x`` with the type of every scalar made explicit (1 == 1.0 == True otherwise)."""
    if isinstance(x, dict):
        return {(type(k).__name__, k): typed(v) for k, v in x.items()}
    if isinstance(x, list):
        return [typed(v) for v in x]
    return (type(x).__name__, repr(x))


def same_as_pyyaml(text: str) -> bool | None:
    """True when both agree, None when the fast reader stepped aside."""
    fast = read_plain_yaml(text)
    if fast is None:
        return None
    return typed(fast) == typed(yaml.load(text, Loader=yaml.CSafeLoader))


def _texts(paths: t.Iterable[Path]) -> list[tuple[Path, str]]:
    out = []
    for p in paths:
        try:
            out.append((p, p.read_bytes().decode("utf-8-sig")))
        except UnicodeDecodeError:
            continue
    return out


def test_corpus_model_configs(corpus: Path) -> None:
    results = {str(p): same_as_pyyaml(text) for p, text in _texts(sorted(corpus.rglob("model_config.yaml")))}
    assert [p for p, r in results.items() if r is False] == []
    assert sum(r is True for r in results.values()) >= 250  # the fast path is the common path


def test_test_data_and_bundled_cases(repo_root: Path) -> None:
    paths = sorted(DATA.rglob("model_config.yaml")) + sorted((repo_root / "test_cases").rglob("model_config.yaml"))
    results = {str(p): same_as_pyyaml(text) for p, text in _texts(paths)}
    assert [p for p, r in results.items() if r is False] == []


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: |\n  text\n",
        "a: 'it''s'\n",
        'a: "tab\\t"\n',
        "a: {b: 1}\n",
        "a: [b, [c]]\n",
        "a: x\n  b: y\n",
        "a:\n\tb: 1\n",
        "on: 1\n",
        "1: x\n",
        "? a\n: b\n",
        "---\na: 1\n",
        "- a\n- b\n",
        "a: b: c\n",
        "",
        "# only a comment\n",
        "a: x\x07\n",
        "a: x\u2028y\n",
        "<<: {a: 1}\n",
        "a: [b, ]\n",
        "a: [b: c]\n",
    ],
)
def test_steps_aside_for_anything_outside_the_subset(text: str) -> None:
    assert read_plain_yaml(text) is None


def test_reads_the_subset() -> None:
    text = (
        "ENV_VARS:\n  A: 1\n  B: :4096:8\n  C: on  # a comment\n  D: ~\nMODEL_ARGS:\n  --x: 1_000\n  --y: 1:30\n"
        "  --z: .inf\n  --w: 2024-01-02\n  --v: '${X}/y'\n  --u: [1, two, 3.5]\nMETRICS:\n- lm loss\n- \"num-zeros\"\n"
        "EMPTY:\nLAST: a#b\n"
    )
    assert same_as_pyyaml(text) is True
    doc = read_plain_yaml(text)
    assert doc is not None
    assert doc["ENV_VARS"] == {"A": 1, "B": ":4096:8", "C": True, "D": None}
    assert doc["MODEL_ARGS"]["--y"] == 90 and doc["METRICS"] == ["lm loss", "num-zeros"]
    assert doc["EMPTY"] is None and doc["LAST"] == "a#b"


SCALARS = st.one_of(
    st.sampled_from(
        ["1", "-1", "0x1F", "0o17", "017", "1_000", "1:30", "1.5", "1e3", "1.0e+3", ".5", ".inf", "-.Inf", ".nan",
         "yes", "No", "ON", "off", "true", "False", "~", "null", "Null", "2024-01-02", "2001-12-14t21:59:43.10-05:00",
         "abc", "a b", "a#b", "a #b", ":x", "-x", "?x", "x:", "'q'", '"q"', "[]", "[1, 2]", "=", "<<", "!x", "&a",
         "*a", "%x", "@x", "`x", "|", ">", "{}", "a, b", "- x", "0b101", "+1", "1__0", "12:30:45", "6.8523015e+5"]
    ),
    st.text(alphabet="ab1.-_:# $/{}[]'\"", min_size=1, max_size=8),
)
KEYS = st.sampled_from(["A", "--train-iters", "MODEL_ARGS", "x.y", "on", "1", "null", "-k", "k-", "K_2"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(KEYS, st.integers(0, 2), SCALARS, st.booleans()), min_size=1, max_size=8))
def test_random_documents_read_like_pyyaml(lines: list[tuple[str, int, str, bool]]) -> None:
    text = ""
    for key, depth, value, as_item in lines:
        pad = "  " * depth
        text += f"{pad}- {value}\n" if as_item else f"{pad}{key}: {value}\n"
    try:
        reference = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        assert read_plain_yaml(text) is None
        return
    fast = read_plain_yaml(text)
    if fast is not None:
        assert typed(fast) == typed(reference)


def test_load_model_config_keeps_the_limits(tmp_path: Path) -> None:
    big = tmp_path / "model_config.yaml"
    big.write_bytes(b"")
    import os

    os.truncate(big, 9 * 1024 * 1024)
    with pytest.raises(InputError, match="over the limit of 8388608"):
        load_model_config(big)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"A: caf\xe9\n")
    with pytest.raises(InputError, match=r"not UTF-8 \(byte 6\)"):
        load_model_config(bad)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfA: 1\n")
    assert load_model_config(bom) == {"A": 1}
