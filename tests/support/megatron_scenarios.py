"""Injected scenarios: actual-value payloads derived from a golden file.

Pretraining goldens are ``{metric: {start_step, end_step, step_interval, values: {step: value}}}``
with steps as strings and the string "nan" for a step without a value; inference goldens are
keyed by request id. Perturbed floats are rounded to 5 decimals, as Megatron's TensorBoard
reader rounds what it writes. Every scenario is deterministic for a given seed.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

LOSS = "lm loss"
NUM_ZEROS = "num-zeros"
ITERATION_TIME = "iteration-time"
MEMORY = ("mem-allocated-bytes", "mem-max-allocated-bytes")
INFERENCE_MEMORY = "mem-max-allocated-bytes"
NON_REQUEST_KEYS = frozenset(
    {
        "throughput",
        "lifetime_prefill_token_count",
        "async_sched_step_count",
        "async_sched_compaction_step_count",
        "mem-max-allocated-bytes",
    }
)

Golden = Mapping[str, Any]
Config = Mapping[str, Any]


class Scenario(NamedTuple):
    name: str
    actual: dict[str, Any]
    model_config: dict[str, Any] | None = None


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_pretraining_layout(golden: Any) -> bool:
    """The current layout: every entry a metric whose ``values`` is an object keyed by step."""
    return (
        isinstance(golden, Mapping)
        and bool(golden)
        and all(
            isinstance(m, Mapping) and isinstance(m.get("values"), Mapping) for m in golden.values()
        )
    )


def is_inference_layout(golden: Any) -> bool:
    """Keyed by request id: every non-system entry is a request object."""
    return (
        isinstance(golden, Mapping)
        and any(key not in NON_REQUEST_KEYS for key in golden)
        and all(isinstance(v, Mapping) for k, v in golden.items() if k not in NON_REQUEST_KEYS)
    )


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


def _round(value: float) -> float:
    return round(value, 5)


def _finite_steps(metric: Mapping[str, Any]) -> list[str]:
    return sorted((s for s, v in metric["values"].items() if is_finite_number(v)), key=int)


def _middle(steps: list[str]) -> str:
    return steps[len(steps) // 2]


def _scale(
    actual: dict[str, Any], metric: str, factor: float, steps: list[str] | None = None
) -> None:
    values = actual[metric]["values"]
    for step in steps if steps is not None else _finite_steps(actual[metric]):
        values[step] = _round(values[step] * factor)


def copy_metrics(golden: Golden) -> dict[str, Any]:
    """A copy whose metric entries and ``values`` objects can be changed freely."""
    return {name: {**metric, "values": dict(metric["values"])} for name, metric in golden.items()}


def _noise(golden: Golden, size: float, rng: random.Random) -> dict[str, Any]:
    actual = copy_metrics(golden)
    for metric in actual.values():
        for step in _finite_steps(metric):
            metric["values"][step] = _round(metric["values"][step] * (1 + rng.uniform(-size, size)))
    return actual


def _drop_steps(golden: Golden, keep: Callable[[int], bool]) -> dict[str, Any]:
    actual = copy_metrics(golden)
    for metric in actual.values():
        metric["values"] = {s: v for s, v in metric["values"].items() if keep(int(s))}
    return actual


def budget(total_steps: int) -> int:
    """Megatron's allowed number of failing steps for a metric with ``total_steps`` golden steps."""
    return min(max(total_steps // 100, 1), 50)


def pretraining_scenarios(
    golden: Golden, model_config: Config, seed: int = 0
) -> Iterator[Scenario]:
    """Scenarios for a current-layout pretraining golden."""

    def base() -> dict[str, Any]:
        return copy_metrics(golden)

    yield Scenario("identical", base())
    for size in (1e-6, 1e-3, 4e-2):
        yield Scenario(f"noise_{size:g}", _noise(golden, size, _rng(seed, f"noise{size}")))

    loss = LOSS if LOSS in golden else next(iter(golden))
    loss_steps = _finite_steps(golden[loss])
    if loss_steps:
        middle = loss_steps.index(_middle(loss_steps))
        for percent in (3, 6):
            actual = base()
            _scale(actual, loss, 1 + percent / 100, loss_steps[middle:])
            yield Scenario(f"loss_+{percent}%_from_middle", actual)

        actual = base()
        _scale(actual, loss, 1.5, [_middle(loss_steps)])
        yield Scenario("loss_single_spike", actual)

        allowed = budget(len(golden[loss]["values"]))
        for label, count in (("at", allowed), ("over", allowed + 1)):
            pool = loss_steps[middle:] if count <= len(loss_steps) - middle else loss_steps
            if count <= len(pool):
                actual = base()
                _scale(actual, loss, 1.5, _rng(seed, f"spikes{label}").sample(pool, count))
                yield Scenario(f"loss_spikes_{label}_budget", actual)

        actual = base()
        actual[loss]["values"][_middle(loss_steps)] = math.nan
        yield Scenario("loss_nan_at_step", actual)

        actual = base()
        _scale(actual, loss, 1.03, loss_steps[middle:])
        config = {
            **model_config,
            "ENV_VARS": {
                **(model_config.get("ENV_VARS") or {}),
                "NVTE_ALLOW_NONDETERMINISTIC_ALGO": 1,
            },
        }
        yield Scenario("nondeterministic_env_loss_+3%", actual, config)

        actual = base()
        _scale(actual, loss, 1.06, loss_steps[middle:])
        yield Scenario("metrics_empty_loss_+6%", actual, {**model_config, "METRICS": []})

    actual = base()
    del actual[loss]
    yield Scenario("missing_metric_loss", actual)
    if MEMORY[0] in golden:
        actual = base()
        del actual[MEMORY[0]]
        yield Scenario("missing_metric_mem", actual)

    all_steps = sorted({int(s) for m in golden.values() for s in m["values"]})
    if len(all_steps) >= 4:
        middle_step = all_steps[len(all_steps) // 2]
        yield Scenario("missing_step", _drop_steps(golden, lambda s: s != middle_step))
        dropped = set(_rng(seed, "missing3").sample(all_steps[len(all_steps) // 2 :], 3))
        yield Scenario("missing_3_steps", _drop_steps(golden, lambda s: s not in dropped))
        yield Scenario("early_stop_half", _drop_steps(golden, lambda s: s <= middle_step))
    if all_steps:
        actual = base()
        last = all_steps[-1]
        for metric in actual.values():
            if metric["values"]:
                final = list(metric["values"].values())[-1]
                metric["values"].update({str(last + i): final for i in range(1, 11)})
        yield Scenario("extra_steps_after_end", actual)

    if NUM_ZEROS in golden:
        for percent in (15, 25):
            actual = base()
            _scale(actual, NUM_ZEROS, 1 + percent / 100)
            yield Scenario(f"num_zeros_+{percent}%", actual)
    if ITERATION_TIME in golden:
        actual = base()
        _scale(actual, ITERATION_TIME, 2.0)
        yield Scenario("iteration_time_x2", actual)
    if any(m in golden for m in MEMORY):
        for percent in (1, 10, -10):
            actual = base()
            for metric in MEMORY:
                if metric in actual:
                    _scale(actual, metric, 1 + percent / 100)
            yield Scenario(f"memory_{percent:+d}%", actual)

    if any(isinstance(v, str) for m in golden.values() for v in m["values"].values()):
        filled = base()
        for metric in filled.values():
            last_finite = 1.0
            for step in sorted(metric["values"], key=int):
                value = metric["values"][step]
                if is_finite_number(value):
                    last_finite = value
                elif isinstance(value, str):
                    metric["values"][step] = last_finite
        yield Scenario("golden_nan_slots_filled", filled)
        dropped_nan = base()
        for metric in dropped_nan.values():
            metric["values"] = {s: v for s, v in metric["values"].items() if not isinstance(v, str)}
        yield Scenario("golden_nan_slots_absent", dropped_nan)


def _request_ids(golden: Golden) -> list[str]:
    return sorted((k for k in golden if k not in NON_REQUEST_KEYS), key=lambda k: (len(k), k))


def _first_request_with(golden: Golden, field: str) -> str | None:
    for request_id in _request_ids(golden):
        value = golden[request_id].get(field)
        if isinstance(value, (list, str)) and value:
            return request_id
    return None


def _expand_routing(request: dict[str, Any]) -> None:
    """A run records routing for every token; the golden keeps the rows at its token indices."""
    indices = request.get("routing_indices_token_indices")
    rows = request.get("routing_indices")
    if (
        not isinstance(indices, list)
        or not isinstance(rows, list)
        or len(indices) != len(rows)
        or not rows
    ):
        return
    full = [copy.deepcopy(rows[0]) for _ in range(max(indices) + 1)]
    for index, row in zip(indices, rows, strict=True):
        full[index] = copy.deepcopy(row)
    request["routing_indices"] = full


def _with_metric(model_config: Config, metric: str) -> dict[str, Any]:
    metrics = list(model_config.get("METRICS") or [])
    return {**model_config, "METRICS": metrics if metric in metrics else [*metrics, metric]}


def inference_scenarios(golden: Golden, model_config: Config, seed: int = 0) -> Iterator[Scenario]:
    """Scenarios for an inference golden keyed by request id."""

    def base() -> dict[str, Any]:
        actual = copy.deepcopy(dict(golden))
        for request_id in _request_ids(golden):
            _expand_routing(actual[request_id])
        return actual

    yield Scenario("identical", base())
    ids = _request_ids(golden)

    tokens_id = _first_request_with(golden, "generated_tokens")
    if tokens_id is not None:
        actual = base()
        tokens = actual[tokens_id]["generated_tokens"]
        tokens[len(tokens) // 2] += 1
        yield Scenario("token_changed", actual)
        yield Scenario(
            "metrics_empty_token_changed", copy.deepcopy(actual), {**model_config, "METRICS": []}
        )

    logprobs_id = _first_request_with(golden, "logprobs")
    if logprobs_id is not None:
        for shift in (5e-4, 1e-2):
            actual = base()
            logprobs = actual[logprobs_id]["logprobs"]
            numeric = [i for i, value in enumerate(logprobs) if is_finite_number(value)]
            if not numeric:
                break
            logprobs[_rng(seed, f"logprob{shift}").choice(numeric)] += shift
            yield Scenario(f"logprob_shift_{shift:g}", actual)

    text_id = _first_request_with(golden, "generated_text")
    if text_id is not None:
        actual = base()
        text = actual[text_id]["generated_text"]
        actual[text_id]["generated_text"] = text[: max(1, len(text) // 2)]
        yield Scenario("text_truncated", actual)
        actual = base()
        actual[text_id]["generated_text"] = "#" + text[1:]
        yield Scenario("text_changed", actual)

    if ids:
        actual = base()
        del actual[ids[-1]]
        yield Scenario("request_missing", actual)
        actual = base()
        actual[str(max((int(i) for i in ids if i.isdigit()), default=0) + 1)] = copy.deepcopy(
            golden[ids[0]]
        )
        yield Scenario("request_extra", actual)

    routing_id = _first_request_with(golden, "routing_indices_token_indices")
    if routing_id is not None:
        position = golden[routing_id]["routing_indices_token_indices"][0]
        actual = base()
        experts = actual[routing_id]["routing_indices"][position][0]
        experts.reverse()
        yield Scenario("routing_topk_order_reversed", actual)
        actual = base()
        experts = actual[routing_id]["routing_indices"][position][0]
        experts[0] = max(experts) + 1
        yield Scenario("routing_expert_changed", actual)

    if isinstance(golden.get("throughput"), list):
        config = _with_metric(model_config, "throughput")
        for percent in (30, 10, -30):
            actual = base()
            actual["throughput"] = [v * (1 + percent / 100) for v in golden["throughput"]]
            yield Scenario(f"throughput_{percent:+d}%", actual, config)

    if is_finite_number(golden.get(INFERENCE_MEMORY)):
        config = _with_metric(model_config, INFERENCE_MEMORY)
        for percent in (10, 3, -10):
            actual = base()
            actual[INFERENCE_MEMORY] = golden[INFERENCE_MEMORY] * (1 + percent / 100)
            yield Scenario(f"memory_{percent:+d}%", actual, config)
