"""Inference goldens (Megatron-LM layout): requests keyed by id plus top-level summaries.

The defaults are Megatron-LM's inference test: the run must answer exactly the golden's
requests; per request ``generated_tokens`` equal, ``logprobs`` within 1e-3 absolute element by
element, ``generated_text`` equal on the shorter text's length, ``routing_indices`` equal with
the top-k order ignored; ``throughput`` (median after the warm-up entry) within -10%/+20% of the
golden, ``mem-max-allocated-bytes`` within 5%. Only the fields named in METRICS are checked; a
request that holds none of them fails, as it does there. The "steps" of a result are request
ids (their position when an id is not a number).
"""

from __future__ import annotations

import statistics
import typing as t

import numpy as np

from ci_golden.compare.policy import Policy, is_gated, policy_for
from ci_golden.compare.result import MetricResult, Verdict
from ci_golden.goldens.model import GoldenValues

REQUEST_FIELDS = ("generated_tokens", "logprobs", "generated_text", "routing_indices")
SUMMARY_FIELDS = ("throughput", "mem-max-allocated-bytes")
# top-level entries that are not requests
NOT_REQUESTS = frozenset(
    {
        *SUMMARY_FIELDS,
        "lifetime_prefill_token_count",
        "async_sched_step_count",
        "async_sched_compaction_step_count",
    }
)
UNCHECKABLE = "lifetime_prefill_token_count"
REQUESTS = "requests"
_SET_POLICY = Policy("approx", exact=False, budget=0)


def _step(request_id: str, index: int) -> int:
    return int(request_id) if request_id.isdigit() and len(request_id) < 19 else index


def _requests(values: GoldenValues) -> dict[str, dict[str, t.Any]]:
    return {k: v for k, v in values.requests.items() if k not in NOT_REQUESTS}


def _routing_ok(g_req: t.Mapping[str, t.Any], a_req: t.Mapping[str, t.Any]) -> bool:
    golden = np.asarray(g_req["routing_indices"])
    actual = np.asarray(a_req["routing_indices"])
    rows = g_req.get("routing_indices_token_indices")
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(actual)):
            return False
        actual = actual[rows]
    return bool(np.array_equal(np.sort(golden, axis=-1), np.sort(actual, axis=-1)))


def _field_ok(field: str, g_req: t.Mapping[str, t.Any], a_req: t.Mapping[str, t.Any],
              policy: Policy) -> tuple[bool, str, float]:  # fmt: skip
    """Whether one request's field matches, why not, and the largest absolute difference."""
    g, a = g_req[field], a_req[field]
    if field == "generated_text":
        n = min(len(str(g)), len(str(a)))
        return n > 0 and str(g)[:n] == str(a)[:n], "generated text differs", 0.0
    if field == "generated_tokens":
        if list(g) == list(a):
            return True, "", 0.0
        if len(g) != len(a):
            return False, f"{len(a)} tokens vs {len(g)} in the golden", 0.0
        pos = next(i for i, (x, y) in enumerate(zip(g, a, strict=True)) if x != y)
        return False, f"token {pos}: {a[pos]} vs {g[pos]} in the golden", 0.0
    if field == "routing_indices":
        return _routing_ok(g_req, a_req), "routed experts differ", 0.0
    ga, aa = np.asarray(g, dtype=np.float64), np.asarray(a, dtype=np.float64)
    if ga.shape != aa.shape:
        return False, f"{aa.size} logprobs vs {ga.size} in the golden", 0.0
    diff = np.abs(aa - ga)
    with np.errstate(invalid="ignore"):
        good = diff <= np.maximum(policy.atol, policy.rtol * np.abs(ga))
    if good.all():
        return True, "", float(diff.max()) if diff.size else 0.0
    pos = int(np.flatnonzero(~good)[0])
    why = f"logprob {pos}: {aa[pos]:.6g} vs {ga[pos]:.6g} in the golden"
    return False, why, float(np.nanmax(diff))


def _compare_field(
    field: str,
    golden: dict[str, dict[str, t.Any]],
    actual: dict[str, dict[str, t.Any]],
    policy: Policy,
    gated: bool,
) -> MetricResult:
    n_compared = n_failed = n_missing = 0
    first: int | None = None
    first_missing: int | None = None
    max_abs = 0.0
    detail = ""
    for index, (rid, g_req) in enumerate(golden.items()):
        if field not in g_req or rid not in actual:
            continue  # requests the run lacks are the "requests" result's business
        step = _step(rid, index)
        n_compared += 1
        a_req = actual[rid]
        if field not in a_req:
            n_missing += 1
            first_missing = step if first_missing is None else first_missing
            continue
        ok, why, diff = _field_ok(field, g_req, a_req, policy)
        max_abs = max(max_abs, diff)
        if not ok:
            n_failed += 1
            if first is None:
                first, detail = step, f"request {rid}: {why}"
    verdict: Verdict = "pass"
    budget = policy.allowed_misses(n_compared)
    if policy.kind != "info" and n_failed > budget:
        verdict = "fail"
    elif policy.kind != "info" and n_missing:
        verdict, first = "missing", first_missing
    message = (
        f"{n_failed} of {n_compared} requests differ, first {detail}" if verdict == "fail"
        else f"{n_missing} requests have no {field} in the run" if verdict == "missing"
        else f"{n_compared} requests match"
    )  # fmt: skip
    if verdict == "pass" and n_failed:
        message += f"; {n_failed} differ, first {detail}, within the budget of {budget}"
    return MetricResult(
        field,
        verdict,
        gated,
        policy,
        n_compared=n_compared,
        n_failed=n_failed,
        budget=budget,
        n_missing=n_missing,
        first_failing_step=first if verdict != "pass" else None,
        max_abs_diff=max_abs if field == "logprobs" and n_compared else None,
        message=message,
    )


def _summary(value: t.Any) -> float | None:
    """A scalar, or the median of a list after its first (warm-up) entry; None when neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return float(statistics.median(value[1:] if len(value) > 1 else value))
    return None


def _compare_summary(
    field: str, golden: t.Any, actual: t.Any, policy: Policy, gated: bool
) -> MetricResult:
    if field == "throughput" and not (isinstance(golden, list) and len(golden) > 1):
        g = None  # a median after the warm-up entry needs two entries
    else:
        g = _summary(golden)
    if g is None or g <= 0:
        return MetricResult(
            field, "fail", gated, policy,
            message=f"golden {field} is not a positive number or a list of two or more numbers",
        )  # fmt: skip
    a = None if field == "throughput" and not (isinstance(actual, list) and len(actual) > 1) \
        else _summary(actual)  # fmt: skip
    if a is None:
        verdict: Verdict = "pass" if policy.kind == "info" else "missing"
        return MetricResult(
            field, verdict, gated, policy, n_missing=1, golden_stat=g,
            message=f"{field} not reported by the run (or not a list of two or more numbers)",
        )  # fmt: skip
    up = policy.rtol if policy.rtol_up is None else policy.rtol_up
    low_ok = a >= g - policy.atol - policy.rtol * g
    # Megatron-LM's throughput bound is strict above, its memory bound is not
    high_ok = a < g + up * g if field == "throughput" else a <= g + policy.atol + up * g
    ok = low_ok and high_ok
    verdict = "pass" if ok or policy.kind == "info" else "fail"
    diff = abs(a - g)
    return MetricResult(
        field, verdict, gated, policy, n_compared=1, n_failed=0 if ok else 1, max_abs_diff=diff,
        max_rel_diff=diff / g, golden_stat=g, actual_stat=a,
        message=f"{a:.6g} vs golden {g:.6g} ({(a - g) / g:+.1%}), "
        f"{'within' if ok else 'outside'} {policy.describe(exact=False)}",
    )  # fmt: skip


def _request_set(
    golden: dict[str, dict[str, t.Any]],
    actual: dict[str, dict[str, t.Any]],
    checked: t.Collection[str],
    gated: bool,
) -> MetricResult | None:
    """The run must answer exactly the golden's requests, each holding a checked field."""
    missing = [k for k in golden if k not in actual]
    extra = [k for k in actual if k not in golden]
    unchecked = [k for k, r in golden.items() if checked and not any(f in r for f in checked)]
    if not golden:
        return MetricResult(
            REQUESTS, "fail", gated, _SET_POLICY, message="the golden holds no request"
        )
    if not (missing or extra or unchecked):
        return None
    parts = []
    if extra:
        parts.append(f"{len(extra)} requests the golden lacks ({', '.join(extra[:5])})")
    if missing:
        parts.append(f"{len(missing)} golden requests not answered ({', '.join(missing[:5])})")
    if unchecked:
        parts.append(
            f"{len(unchecked)} requests hold no field of METRICS ({', '.join(unchecked[:5])})"
        )
    verdict: Verdict = "missing" if missing and not (extra or unchecked) else "fail"
    return MetricResult(
        REQUESTS,
        verdict,
        gated,
        _SET_POLICY,
        n_compared=len(golden),
        n_failed=len(extra) + len(unchecked),
        n_missing=len(missing),
        message="the run's requests differ from the golden's: " + "; ".join(parts),
    )


def compare_inference(
    golden: GoldenValues,
    actual: GoldenValues,
    *,
    policies: t.Mapping[str, Policy],
    gated: t.Collection[str],
) -> dict[str, MetricResult]:
    """Every field the golden holds, compared; only the gated ones (METRICS) decide."""
    g_raw = golden.raw or {}
    a_raw = actual.raw or {}
    g_req, a_req = _requests(golden), _requests(actual)
    out: dict[str, MetricResult] = {}
    if gated:
        checked = [f for f in REQUEST_FIELDS if f in gated]
        found = _request_set(g_req, a_req, checked, gated=True)
        if found is not None:
            out[REQUESTS] = found
    if UNCHECKABLE in gated:
        out[UNCHECKABLE] = MetricResult(
            UNCHECKABLE, "fail", True, policy_for(policies, UNCHECKABLE),
            message=f"{UNCHECKABLE} in METRICS: Megatron-LM's inference test fails on it "
            "whatever the values; remove it from METRICS",
        )  # fmt: skip
    present = [f for f in REQUEST_FIELDS if any(f in r for r in g_req.values())]
    for field in present:
        policy = policy_for(policies, field)
        out[field] = _compare_field(field, g_req, a_req, policy, is_gated(field, policy, gated))
    for field in SUMMARY_FIELDS:
        if field in g_raw:
            policy = policy_for(policies, field)
            is_g = is_gated(field, policy, gated)
            out[field] = _compare_summary(field, g_raw[field], a_raw.get(field), policy, is_g)
    known = {*REQUEST_FIELDS, *NOT_REQUESTS}
    for name in gated:
        if name not in known and name not in out:
            out[name] = MetricResult(
                name, "missing", True, policy_for(policies, name),
                message="gated metric absent from the golden file (METRICS names what an "
                "inference golden holds: generated_tokens, logprobs, ...)",
            )  # fmt: skip
    return out
