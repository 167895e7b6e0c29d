"""How Megatron-LM's ``run_ci_test.sh`` reads a case's model_config.yaml: its kind of test.

Every setting is read from the file, as the script reads it with ``yq``; only
``ENABLE_LIGHTWEIGHT_MODE`` and ``N_REPEAT`` may also come from the caller's environment.
``yq`` prints a scalar as YAML does (``true``, ``1``, ``null``), and the script compares that
text, so a YAML ``true`` is not the string ``1``; :func:`yq_text` gives that text.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

TestType = t.Literal[
    "regular", "ckpt-resume", "frozen-resume", "frozen-start", "checkpoint-consistency", "release"
]
Mode = t.Literal["pretraining", "inference", "rl"]
Evaluation = t.Literal["pass", "xpass"]
TEST_TYPES: tuple[TestType, ...] = t.get_args(TestType)
MODES: tuple[Mode, ...] = t.get_args(Mode)
EVALUATIONS: tuple[Evaluation, ...] = t.get_args(Evaluation)
# the test types whose second phase resumes and is compared with the first
RESUMING: frozenset[str] = frozenset({"ckpt-resume", "frozen-resume"})


def yq_text(value: t.Any) -> str:
    """A YAML scalar as ``yq`` prints it: ``null``, ``true``/``false``, numbers as written."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class TestKind:
    """What ``run_ci_test.sh`` derives from a case's config (and the caller's environment).

    ``n_repeat`` is None when neither the config's ``ENV_VARS.N_REPEAT`` nor lightweight mode
    decides it (the caller's value then holds). ``skip_pytest``: the values are not compared
    (``ENV_VARS.SKIP_PYTEST: 1``, or lightweight mode). ``nemo``: the training script is NeMo's.
    """

    __test__ = False  # not a pytest class

    test_type: TestType = "regular"
    mode: Mode = "pretraining"
    evaluation: Evaluation = "pass"
    lightweight: bool = False
    skip_pytest: bool = False
    n_repeat: int | None = None
    nemo: bool = False

    @property
    def compares_values(self) -> bool:
        """Whether a job of this kind compares its values with a golden file at all."""
        return not self.skip_pytest and self.test_type != "checkpoint-consistency"


def _env_vars(model_config: t.Mapping[str, t.Any]) -> t.Mapping[str, t.Any]:
    block = model_config.get("ENV_VARS")
    return block if isinstance(block, t.Mapping) else {}


def _positive_int(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) > 0 else None


def read_kind(
    model_config: t.Mapping[str, t.Any],
    environ: t.Mapping[str, str] | None = None,
    *,
    script: str = "",
) -> TestKind:
    """The kind of test ``model_config`` describes (checked by its schema, so the names are
    known). ``environ`` is the caller's environment (``ENABLE_LIGHTWEIGHT_MODE``); ``script``
    the training script's path, which makes a NeMo test when it names nemo."""
    env = _env_vars(model_config)
    test_type = t.cast(TestType, model_config.get("TEST_TYPE") or "regular")
    mode = t.cast(Mode, model_config.get("MODE") or "pretraining")
    evaluation = t.cast(Evaluation, model_config.get("TEST_EVALUATION") or "pass")
    lightweight = "true" in (
        yq_text(env.get("ENABLE_LIGHTWEIGHT_MODE", False)),
        (environ or {}).get("ENABLE_LIGHTWEIGHT_MODE", "false"),
    )
    nemo = "nemo" in script.lower()
    skip_pytest = yq_text(env.get("SKIP_PYTEST")) == "1"
    n_repeat = _positive_int(yq_text(env.get("N_REPEAT", "")))
    if lightweight and test_type != "release" and not nemo and mode != "rl":
        skip_pytest = True  # the script writes SKIP_PYTEST=1 into the config
    if lightweight and mode == "pretraining" and test_type != "release":
        n_repeat = 1
    return TestKind(test_type, mode, evaluation, lightweight, skip_pytest, n_repeat, nemo)


KNOWN: dict[str, tuple[str, ...]] = {
    "TEST_TYPE": TEST_TYPES,
    "MODE": MODES,
    "TEST_EVALUATION": EVALUATIONS,
}
# "\n" + the key, searched in "\n" + the bytes: a literal first character lets the regex engine
# skip to each newline, 6x faster than ^ with re.MULTILINE on a 10,000-case tree
_KIND_LINE = re.compile(rb"\n(TEST_TYPE|MODE|TEST_EVALUATION)[ \t]*:[ \t]*([^\r\n#]*)")


def unknown_kind(raw: bytes) -> tuple[str, str] | None:
    """The first top-level ``TEST_TYPE``, ``MODE`` or ``TEST_EVALUATION`` line of a
    model_config.yaml's bytes whose value run_ci_test.sh does not know, as (key, value); for
    planning, which reads no whole config (``validate`` checks them through the schema)."""
    for m in _KIND_LINE.finditer(b"\n" + raw):
        value = m.group(2).decode("utf-8", "replace").strip().strip("\"'")
        key = m.group(1).decode()
        if value and value not in KNOWN[key]:
            return key, value
    return None
