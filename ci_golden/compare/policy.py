"""Comparison policies: one typed rule per metric, resolved in layers.

Resolution, later layers winning field by field: built-in defaults (Megatron-LM's 2026
semantics) < the project config's ``metrics`` < the case's ``CI_GOLDEN.metrics`` < ``--policy``.
A layer's keys are metric names or glob patterns (``mem-*``); within a layer the patterns
apply first, then the exact name.
"""

from __future__ import annotations

import fnmatch
import typing as t
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ci_golden.errors import InputError
from ci_golden.goldens.nondeterminism import is_nondeterministic as is_nondeterministic
from ci_golden.project.schema import json_pointer, schema_message, validator
from ci_golden.project.yamlio import load_yaml

if t.TYPE_CHECKING:
    from ci_golden.goldens.discover import TestCase
    from ci_golden.project.config import Config

Kind = t.Literal["approx", "median", "upper", "lower", "info"]
KINDS: tuple[Kind, ...] = t.get_args(Kind)
LayerT = t.Mapping[str, t.Mapping[str, t.Any]]

MAX_BUDGET = 50
LONG_WINDOW = (30, 45)
SHORT_WINDOW = (5, 20)
SHORT_RUN_STEPS = 25


def failure_budget(n: int) -> int:
    """Steps the approximate check may miss out of ``n`` compared: min(max(n // 100, 1), 50)."""
    return min(max(n // 100, 1), MAX_BUDGET)


def median_window(last_step: int) -> tuple[int, int]:
    """The steady-state window (inclusive): steps 30-45, or 5-20 for runs of 25 steps or fewer."""
    return SHORT_WINDOW if last_step <= SHORT_RUN_STEPS else LONG_WINDOW


@dataclass(frozen=True)
class Policy:
    """One metric's comparison rule; the golden is the reference operand.

    ``approx``: per step ``|a - g| <= atol + rtol*|g|``; ``upper``: ``a - g <= atol + rtol*|g|``
    (may fall, not rise); ``lower``: ``g - a <= atol + rtol*|g|`` (may rise, not fall); these may
    miss ``budget`` steps (None: :func:`failure_budget`). ``median``: the medians over ``window``
    (None: :func:`median_window`) within ``atol + rtol*|median g|``. ``info``: reported, never
    fails. ``exact`` adds the exact check (skipped for nondeterministic cases): a difference the
    tolerance accepts is ``drift``. ``gated`` overrides whether the metric decides the verdict.
    """

    kind: Kind
    rtol: float = 0.0
    atol: float = 0.0
    exact: bool = True
    window: tuple[int, int] | None = None
    gated: bool | None = None
    budget: int | None = None
    rtol_up: float | None = None

    def allowed_misses(self, n_compared: int) -> int:
        return failure_budget(n_compared) if self.budget is None else self.budget

    def merged(self, layer: t.Mapping[str, t.Any]) -> Policy:
        """This policy with the fields a config layer sets replaced."""
        changes: dict[str, t.Any] = {}
        for key, value in layer.items():
            if key == "window":
                changes[key] = None if value is None else (int(value[0]), int(value[1]))
            elif key in ("rtol", "atol") or (key == "rtol_up" and value is not None):
                changes[key] = float(value)
            else:
                changes[key] = value
        return replace(self, **changes)

    def to_dict(self) -> dict[str, t.Any]:
        """The JSON form (schemas/project_config.schema.json ``$defs/policy``); unset fields
        left out.
        """
        out: dict[str, t.Any] = {
            "kind": self.kind,
            "rtol": self.rtol,
            "atol": self.atol,
            "exact": self.exact,
        }
        if self.window is not None:
            out["window"] = list(self.window)
        if self.gated is not None:
            out["gated"] = self.gated
        if self.budget is not None:
            out["budget"] = self.budget
        if self.rtol_up is not None:
            out["rtol_up"] = self.rtol_up
        return out

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> Policy:
        return cls(kind=data.get("kind", "approx")).merged(
            {k: v for k, v in data.items() if k != "kind"}
        )

    def describe(self, *, exact: bool | None = None) -> str:
        """Short human form, e.g. ``approx rtol=0.05 +exact``; ``exact=False`` leaves the exact
        part out.
        """
        parts: list[str] = [self.kind]
        if self.rtol and self.rtol_up is not None:
            parts.append(f"-{self.rtol:g}/+{self.rtol_up:g} of the golden")
        elif self.rtol:
            parts.append(f"rtol={self.rtol:g}")
        if self.atol:
            parts.append(f"atol={self.atol:g}")
        if self.window is not None:
            parts.append(f"steps {self.window[0]}-{self.window[1]}")
        if self.budget is not None and self.kind in ("approx", "upper", "lower"):
            parts.append(f"budget={self.budget}")
        if (self.exact if exact is None else exact) and self.kind != "info":
            parts.append("+exact")
        return " ".join(parts)


POLICY_FIELDS = tuple(f.name for f in fields(Policy))

# Megatron-LM (2026) defaults; first matching pattern wins. Inference goldens use the first four.
DEFAULT_RULES: tuple[tuple[str, Policy], ...] = (
    ("generated_tokens", Policy("approx", exact=False, budget=0)),
    ("logprobs", Policy("approx", atol=1e-3, exact=False, budget=0)),
    ("generated_text", Policy("approx", exact=False, budget=0)),
    ("routing_indices", Policy("approx", exact=False, budget=0)),
    ("throughput", Policy("approx", rtol=0.10, rtol_up=0.20, exact=False)),
    ("iteration-time", Policy("median", rtol=0.05, exact=False)),
    ("num-zeros", Policy("approx", rtol=0.20)),
    ("mem-*", Policy("approx", rtol=0.05, exact=False)),
    ("*loss*", Policy("approx", rtol=0.05)),
    ("*", Policy("approx", rtol=0.05)),
)


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def default_policy(name: str) -> Policy:
    for pattern, policy in DEFAULT_RULES:
        if fnmatch.fnmatchcase(name, pattern):
            return policy
    raise AssertionError("the '*' rule matches every name")


def resolve_metric(name: str, layers: t.Sequence[LayerT]) -> Policy:
    """The policy of one metric: the default, then each layer's matching patterns, then its
    exact key.
    """
    policy = default_policy(name)
    for layer in layers:
        for key, value in layer.items():
            if _is_pattern(key) and fnmatch.fnmatchcase(name, key):
                policy = policy.merged(value)
        if name in layer:
            policy = policy.merged(layer[name])
    return policy


class PolicyTable(dict[str, Policy]):
    """Policies of the metrics named anywhere, resolving any other name on demand."""

    def __init__(self, layers: t.Sequence[LayerT], names: t.Iterable[str] = ()) -> None:
        super().__init__()
        self.layers = tuple(layers)
        for name in names:
            self[name] = resolve_metric(name, self.layers)

    def for_metric(self, name: str) -> Policy:
        return self[name] if name in self else resolve_metric(name, self.layers)


def policy_for(policies: t.Mapping[str, Policy], name: str) -> Policy:
    """The policy of ``name``: from a :class:`PolicyTable`, a plain mapping, else the default."""
    if isinstance(policies, PolicyTable):
        return policies.for_metric(name)
    if name in policies:
        return policies[name]
    for key, policy in policies.items():
        if _is_pattern(key) and fnmatch.fnmatchcase(name, key):
            return policy
    return default_policy(name)


def is_gated(name: str, policy: Policy, gated: t.Collection[str]) -> bool:
    if policy.kind == "info":
        return False
    return policy.gated if policy.gated is not None else name in gated


def check_layer(layer: LayerT, source: str, where: str) -> None:
    """Semantic checks the schema cannot express: a window must run forwards."""
    for name, value in layer.items():
        window = value.get("window")
        if window is not None and int(window[0]) > int(window[1]):
            raise InputError(
                source, f"window {list(window)} ends before it starts", f"{where}[{name!r}].window"
            )


def resolve_policies(
    config: Config,
    case: TestCase | None,
    override: t.Mapping[str, t.Mapping[str, t.Any]] | None = None,
) -> tuple[PolicyTable, tuple[str, ...]]:
    """(policy per metric name, gated metric names) for ``case``; see :func:`policies_for`."""
    if case is None:
        return policies_for(config, override=override)
    return policies_for(
        config,
        metrics=case.metrics,
        case_layer=case.settings.metrics or {},
        source=str(case.config_path),
        override=override,
    )


def policies_for(
    config: Config,
    *,
    metrics: t.Sequence[str] | None = None,
    case_layer: LayerT | None = None,
    source: str = "",
    override: t.Mapping[str, t.Mapping[str, t.Any]] | None = None,
) -> tuple[PolicyTable, tuple[str, ...]]:
    """(policy per metric name, gated metric names).

    Defaults < ``config.metrics`` < the case's ``CI_GOLDEN.metrics`` (``case_layer``) <
    ``override``. Gated: the case's METRICS (``metrics``; an empty list gates nothing, as in
    Megatron-LM), else ``config.gated_metrics``; a layer's ``gated: true|false`` on an exact
    metric name adds or removes it.
    """
    case_layer = case_layer or {}
    layers: list[LayerT] = [config.metrics, case_layer, override or {}]
    check_layer(config.metrics, config.source or "<built-in config>", "$.metrics")
    check_layer(case_layer, source, "$.CI_GOLDEN.metrics")
    base = tuple(metrics) if metrics is not None else config.gated_metrics
    named = [*base, *(k for layer in layers for k in layer if not _is_pattern(k))]
    table = PolicyTable(layers, dict.fromkeys(named))
    gated = [n for n in dict.fromkeys(named) if is_gated(n, table[n], base)]
    return table, tuple(gated)


def load_policy_file(path: Path) -> dict[str, dict[str, t.Any]]:
    """Read a ``--policy`` file (YAML or JSON): ``{metric: policy}``, optionally under
    ``metrics:``.
    """

    name = str(path)
    if not path.exists():
        raise InputError(name, "policy file not found")
    data = load_yaml(path)
    if isinstance(data, dict) and set(data) == {"metrics"}:
        data = data["metrics"]
    if not isinstance(data, dict):
        raise InputError(name, "expected a mapping of metric name to policy", "$")
    errors = sorted(
        validator("project_config").iter_errors({"metrics": data}),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        e = errors[0]
        where = json_pointer(list(e.absolute_path)[1:])
        message = schema_message(e)
        if e.validator == "additionalProperties":
            message += f"; a policy has the keys {', '.join(POLICY_FIELDS)}"
        raise InputError(name, message, where)
    check_layer(data, name, "$")
    return data


FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def within(
    kind: str, actual: FloatArray, golden: FloatArray, rtol: float, atol: float
) -> BoolArray:
    """Per-step tolerance test of ``kind`` (approx, upper, lower; median and info use approx)."""
    tol = atol + rtol * np.abs(golden)
    if kind == "upper":
        return np.asarray(actual - golden <= tol)
    if kind == "lower":
        return np.asarray(golden - actual <= tol)
    return np.asarray(np.abs(actual - golden) <= tol)
