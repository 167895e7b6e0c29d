"""project.yamledit: one top-level block changed through ruamel.yaml, every other byte kept."""

from __future__ import annotations

import typing as t

import pytest

from ci_golden.errors import InputError
from ci_golden.project.yamledit import edit_block


def _add_jobs(block: t.Any) -> t.Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    block = CommentedMap() if block is None else block
    block.pop("platforms", None)
    job = CommentedMap(environment="dev", platform="dgx_h100", scope=["mr"])
    job.fa.set_flow_style()
    block["jobs"] = CommentedSeq([job])
    return block


def test_the_block_keeps_its_comments_order_and_quoting_and_the_rest_every_byte() -> None:
    text = (
        "# a case\n"
        "MODEL_ARGS:\n"
        "  --lr: 1e-4   # two spaces before\n"
        '  "--seed": 42\n'
        "CI_GOLDEN:\n"
        "  # how it runs\n"
        "  command: [python, 'train.py']  # quoted\n"
        "  platforms: [dgx_h100]\n"
        "\n"
        "# the metrics\n"
        "METRICS:\n"
        '  - "lm loss"\n'
    )
    assert edit_block(text, "m.yaml", "CI_GOLDEN", _add_jobs) == (
        "# a case\n"
        "MODEL_ARGS:\n"
        "  --lr: 1e-4   # two spaces before\n"
        '  "--seed": 42\n'
        "CI_GOLDEN:\n"
        "  # how it runs\n"
        "  command: [python, 'train.py']  # quoted\n"
        "  jobs:\n"
        "    - {environment: dev, platform: dgx_h100, scope: [mr]}\n"
        "\n"
        "# the metrics\n"
        "METRICS:\n"
        '  - "lm loss"\n'
    )


def test_a_new_block_goes_last_and_a_key_given_twice_elsewhere_stays_twice() -> None:
    text = "MODEL_ARGS:\n  --log-level: 0\n  --log-level: 1   # the one PyYAML reads\nLAUNCHER: x"
    new = edit_block(text, "m.yaml", "CI_GOLDEN", _add_jobs)
    assert new == (
        text + "\nCI_GOLDEN:\n  jobs:\n    - {environment: dev, platform: dgx_h100, scope: [mr]}\n"
    )
    assert edit_block(new, "m.yaml", "CI_GOLDEN", _add_jobs) == new  # nothing to change
    assert edit_block("", "m.yaml", "CI_GOLDEN", _add_jobs).startswith("CI_GOLDEN:\n  jobs:\n")


def test_a_scalar_or_list_value_is_replaced_in_place() -> None:
    text = "scopes: [mr, nightly]  # ours\ndefault_scope: mr\nplatforms: {}\n"
    new = edit_block(text, "c.yaml", "default_scope", lambda old: "unscheduled")
    assert new == "scopes: [mr, nightly]  # ours\ndefault_scope: unscheduled\nplatforms: {}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{a: 1}\n", "c.yaml::$: the top level is not a block-style mapping; edit it by hand"),
        ("- a\n", "c.yaml::$: the top level is not a block-style mapping; edit it by hand"),
        ("a: 1\n---\nb: 2\n", "c.yaml: holds more than one YAML document; edit it by hand"),
        (
            "CI_GOLDEN: {}\nx: 1\nCI_GOLDEN: {}\n",
            "c.yaml::$.CI_GOLDEN: CI_GOLDEN is given twice (lines 1 and 3); keep one",
        ),
        (
            "a: [1\n",
            "c.yaml::line 2 column 1: invalid YAML: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_files_it_cannot_edit_safely_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        edit_block(text, "c.yaml", "CI_GOLDEN", _add_jobs)
    assert str(e.value) == message
