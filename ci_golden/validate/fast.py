"""Fast checks equivalent to the shipped JSON Schemas, and schema errors as findings.

Running jsonschema over every value of a large tree takes seconds (hundreds of thousands of
step values); these predicates answer "valid or not" with C-level list operations instead.
The schemas stay the public contract: when a fast check says "invalid", the schema itself
is run on that document to produce the messages, and ``tests/unit/test_validate_fast.py``
proves that both agree on every corpus file and every bad input. One point JSON Schema cannot
express is enforced by both through :func:`schema_validator`: integers are JSON integer
literals (``1``, not ``1.0``).
"""

from __future__ import annotations

import functools
import math
import re
import sys
import typing as t

from ci_golden.goldens.model import Layout, detect_layout
from ci_golden.goldens.testkind import EVALUATIONS, MODES, TEST_TYPES
from ci_golden.project.schema import validator

if t.TYPE_CHECKING:
    from jsonschema.protocols import Validator

STEP_MAX = 10**18 - 1
_FMAX = sys.float_info.max
_BLOCK_REQUIRED = frozenset({"start_step", "end_step", "step_interval", "values"})
_BLOCK_ALLOWED = _BLOCK_REQUIRED | {"value_precision"}
_NUMBER = (int, float)
_FLOAT = frozenset({float})
_STR = frozenset({str})
_SCALAR = frozenset({str, int, float, bool, type(None)})


def _step(x: t.Any) -> bool:
    return type(x) is int and 0 <= x <= STEP_MAX


def _finite_sum(floats: t.Iterable[float]) -> bool:
    """Whether the sum of a list of floats is finite: one cheap pass that proves no item is
    infinite (JSON reads ``1e400`` as inf) or NaN. When it is not, the exact comparisons decide
    (a sum of finite values may overflow)."""
    total = sum(floats)
    return total - total == 0.0


def values_ok(items: t.Collection[t.Any]) -> bool:
    """Every item is a finite double-range number or the string ``"nan"``."""
    types = set(map(type, items))
    if not types <= {int, float, str}:
        return False
    if types == _FLOAT and _finite_sum(items):
        return True
    if str not in types:
        return max(items) <= _FMAX and min(items) >= -_FMAX
    values = list(items)
    floats = list(filter(float.__instancecheck__, values))
    ints = list(filter(int.__instancecheck__, values)) if int in types else []
    if values.count("nan") != len(values) - len(floats) - len(ints):  # a string other than "nan"
        return False
    if not _finite_sum(floats) and (math.inf in floats or -math.inf in floats):
        return False
    if ints:  # an integer literal may exceed the range of a double
        return max(ints) <= _FMAX and min(ints) >= -_FMAX
    return True


def step_keys(keys: list[str]) -> list[int] | None:
    """The steps of canonical non-negative integer keys (``"0"``, ``"15"``), else None."""
    try:
        steps = list(map(int, keys))
    except (ValueError, TypeError):  # a key that is not a string at all
        return None
    if list(map(str, steps)) != keys:
        return None
    if steps and (min(steps) < 0 or max(steps) > STEP_MAX):
        return None
    return steps


def _block_head_ok(block: t.Any) -> bool:
    if type(block) is not dict:
        return False
    keys = block.keys()
    if not (keys >= _BLOCK_REQUIRED and keys <= _BLOCK_ALLOWED):
        return False
    start, end, interval = block["start_step"], block["end_step"], block["step_interval"]
    if not (type(start) is int and type(end) is int and type(interval) is int):  # _step, inlined
        return False
    if not (0 <= start <= STEP_MAX and 0 <= end <= STEP_MAX and 1 <= interval <= STEP_MAX):
        return False
    return block.get("value_precision", "full") == "full"


@functools.lru_cache(maxsize=512)
def _grids(start: int, end: int, interval: int) -> tuple[list[str], list[str]]:
    # A tree has few distinct grids (1..100 by 1, 1..100 by 5, ...): build each once.
    first = (start // interval + 1) * interval
    return list(map(str, range(start, end + 1, interval))), [
        str(start),
        *map(str, range(first, end + 1, interval)),
    ]


def regular_grid(keys: list[str], start: int, end: int, interval: int) -> bool:
    """Whether the keys are exactly one of the two step grids Megatron-LM writes (see
    :mod:`ci_golden.validate.semantics`): the common case, decided with C-level list compares."""
    n = len(keys)
    first = (start // interval + 1) * interval
    if n > 100_000 or (
        n != len(range(start, end + 1, interval)) and n != 1 + len(range(first, end + 1, interval))
    ):
        return False  # built only when the sizes match: end_step may be huge
    grid_a, grid_b = _grids(start, end, interval)
    return keys in (grid_a, grid_b)


def current_steps(data: dict[str, t.Any]) -> dict[str, list[int] | None] | None:
    """Current layout: None when the document is invalid, else per metric block its steps,
    or None for a block whose keys are exactly a regular grid (nothing more to check)."""
    if not data:
        return None
    out: dict[str, list[int] | None] = {}
    # the blocks of a document mostly share one grid, and the JSON parser shares their key
    # strings, so comparing with the last regular block's keys goes by identity
    last: tuple[int, int, int, list[str]] | None = None
    for name, block in data.items():
        if not name or not _block_head_ok(block):
            return None
        values = block["values"]
        if type(values) is not dict or not values:
            return None
        keys = list(values)
        grid = block["start_step"], block["end_step"], block["step_interval"]
        if last is not None and last[:3] == grid and keys == last[3]:
            out[name] = None
        elif regular_grid(keys, *grid):
            out[name] = None
            last = (*grid, keys)
        else:
            steps = step_keys(keys)
            if steps is None:
                return None
            out[name] = steps
        if not values_ok(values.values()):
            return None
    return out


def legacy_ok(data: dict[str, t.Any]) -> bool:
    blocks = 0
    for name, block in data.items():
        if not name:
            return False
        if type(block) in _NUMBER and -_FMAX <= block <= _FMAX:
            continue
        if not _block_head_ok(block) or type(block["values"]) is not list or not block["values"]:
            return False
        if not values_ok(block["values"]):
            return False
        blocks += 1
    return blocks > 0


def _numbers(x: t.Any) -> bool:
    return type(x) is list and set(map(type, x)) <= {int, float}


_REQUEST_FIELDS: dict[str, t.Callable[[t.Any], bool]] = {
    "id": lambda x: type(x) is str,
    "input_prompt": lambda x: type(x) is str,
    "generated_text": lambda x: type(x) is str,
    "generated_tokens": lambda x: type(x) is list and set(map(type, x)) <= {int},
    "logprobs": _numbers,
    "prompt_logprobs": _numbers,
    "generated_logprobs": _numbers,
    "tpot": _numbers,
    "latency": lambda x: x is None or type(x) in _NUMBER,
    "ttft": lambda x: x is None or type(x) in _NUMBER,
    "step_count": lambda x: type(x) is int and x >= 0,
}


def _request_ok(req: t.Any, required: tuple[str, ...]) -> bool:
    if type(req) is not dict or not all(k in req for k in required):
        return False
    return all(check(req[k]) for k, check in _REQUEST_FIELDS.items() if k in req)


def _is_request_id(key: str) -> bool:
    return step_keys([key]) is not None


def _batch_ok(data: dict[str, t.Any]) -> bool:
    has_request = False
    for key, value in data.items():
        if _is_request_id(key):
            if not _request_ok(value, ("generated_text",)):
                return False
            has_request = True
        elif key == "throughput":
            if not _numbers(value):
                return False
        elif key == "mem-max-allocated-bytes":
            if not (type(value) is int and value >= 0):
                return False
        elif not (type(value) in _NUMBER or _numbers(value)):
            return False
    return has_request


def inference_ok(data: dict[str, t.Any]) -> bool:
    """Requests keyed by id with run-wide summaries, or one flat request."""
    return _batch_ok(data) or _request_ok(data, ("generated_tokens", "generated_text"))


def classify(
    data: t.Any, detected: Layout
) -> tuple[Layout | None, dict[str, list[int] | None] | None]:
    """The layout under which ``data`` is valid per schemas/golden_values.schema.json (None:
    invalid), and for the current layout the steps of each block.

    The schema's branches are mutually exclusive, so the first that accepts decides; the
    detected layout is tried first because it is nearly always the one.
    """
    if type(data) is not dict:
        return None, None
    layouts: tuple[Layout, ...] = ("current", "legacy", "inference")
    order = [detected, *(x for x in layouts if x != detected)]
    for layout in order:
        if layout == "current":
            steps = current_steps(data)
            if steps is not None:
                return "current", steps
        elif layout == "legacy":
            if legacy_ok(data):
                return "legacy", None
        elif inference_ok(data):
            return "inference", None
    return None, None


def _env_vars_ok(x: t.Any) -> bool:
    return x is None or (type(x) is dict and set(map(type, x.values())) <= _SCALAR)


def _model_env_vars_ok(x: t.Any) -> bool:
    return x is None or (
        type(x) is dict and all(type(v) in _SCALAR or _env_vars_ok(v) for v in x.values())
    )


def _model_args_ok(x: t.Any) -> bool:
    if x is None:
        return True
    if type(x) is not dict or not set(map(type, x)) <= _STR or "" in x:  # non-empty string keys
        return False
    types = set(map(type, x.values()))
    if list in types:
        if not all(set(map(type, v)) <= _SCALAR for v in x.values() if type(v) is list):
            return False
        types.discard(list)
    return types <= _SCALAR


def _script_ok(x: t.Any) -> bool:
    return x is None or type(x) in (str, list)


_PHASE_ARGS = re.compile(
    r"^MODEL_ARGS_[0-9]+$"
).search  # the schema's patternProperties, same regex engine


def non_string_keys(data: dict[t.Any, t.Any]) -> list[t.Any]:
    """The top-level keys YAML did not read as strings (``on``, ``yes``, ``1``, ``~``, ``null``).

    jsonschema cannot match such keys against patternProperties, so they are reported first.
    """
    return [k for k in data if type(k) is not str]


_CONFIG_FIELDS: dict[str, t.Callable[[t.Any], bool]] = {
    "ENV_VARS": _env_vars_ok,
    "MODEL_ENV_VARS": _model_env_vars_ok,
    "MODEL_ARGS": _model_args_ok,
    "BASE_MODEL_ARGS": _model_args_ok,
    "TEST_TYPE": lambda x: type(x) is str and x in TEST_TYPES,
    "LAUNCHER": lambda x: type(x) is str and len(x) > 0,
    "MODE": lambda x: type(x) is str and x in MODES,
    "TEST_EVALUATION": lambda x: type(x) is str and x in EVALUATIONS,
    "METRICS": lambda x: x is None or (type(x) is list and all(type(m) is str and m for m in x)),
    "BEFORE_SCRIPT": _script_ok,
    "AFTER_SCRIPT": _script_ok,
    "N_REPEAT": lambda x: type(x) is int and x >= 1,
}


def model_config_ok(data: t.Any) -> bool:
    """Whether ``data`` is valid under schemas/model_config.schema.json. The rare ``CI_GOLDEN``
    block is checked by the schema itself."""
    if type(data) is not dict or non_string_keys(data):
        return False
    if not all(check(data[k]) for k, check in _CONFIG_FIELDS.items() if k in data):
        return False
    if not all(_model_args_ok(v) for k, v in data.items() if _PHASE_ARGS(k)):
        return False
    return "CI_GOLDEN" not in data or schema_validator("model_config").is_valid(data)


def schema_validator(name: str, fragment: str = "") -> Validator:
    """A validator for a shipped schema (or one of its ``$defs``) in which ``integer`` means a
    JSON integer literal (not ``1.0``) and never a boolean."""
    return validator(name, fragment, strict_integers=True)


def golden_ok(data: t.Any) -> bool:
    """Whether ``data`` is valid under schemas/golden_values.schema.json."""

    detected = detect_layout(data) if type(data) is dict else "current"
    return classify(data, detected)[0] is not None
