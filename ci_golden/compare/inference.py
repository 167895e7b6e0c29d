"""Inference goldens (Megatron-LM layout): requests keyed by id plus top-level summaries.

Per request: ``generated_tokens`` exact, ``logprobs`` within 1e-3 absolute, element by element
(Megatron-LM's rules); ``generated_text`` must agree on the shorter text's length. Top level:
``throughput`` (median after the warm-up entry) may rise, not fall by more than 10%;
``mem-max-allocated-bytes`` may fall, not rise by more than 5%. Tolerances are policies, so a
config can override them; the "steps" of a result are request ids.
"""

from __future__ import annotations

import statistics
import typing as t

import numpy as np

from ci_golden.compare.policy import Policy, is_gated, policy_for, within
from ci_golden.compare.result import MetricResult, Verdict
from ci_golden.goldens.model import GoldenValues

REQUEST_FIELDS = ("generated_tokens", "logprobs", "generated_text")
SUMMARY_FIELDS = ("throughput", "mem-max-allocated-bytes")


def _summary_value(value: t.Any) -> float | None:
    """A scalar, or the median of a list after its first (warm-up) entry."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        values = [float(v) for v in value]
        return float(statistics.median(values[1:] if len(values) > 1 else values))
    return None


def _step(request_id: str, index: int) -> int:
    return int(request_id) if request_id.isdigit() else index


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
    detail: str | None = None
    for index, (rid, g_req) in enumerate(golden.items()):
        if field not in g_req:
            continue
        step = _step(rid, index)
        a_req = actual.get(rid)
        if a_req is None or field not in a_req:
            n_missing += 1
            first_missing = step if first_missing is None else first_missing
            continue
        g, a = g_req[field], a_req[field]
        n_compared += 1
        if field == "generated_text":
            n = min(len(str(g)), len(str(a)))
            ok = n > 0 and str(g)[:n] == str(a)[:n]
            why = "generated text differs"
        elif field == "generated_tokens":
            ok = list(g) == list(a)
            why = (
                f"{len(a)} tokens vs {len(g)} in the golden"
                if len(g) != len(a)
                else "token ids differ"
            )
            if len(g) == len(a) and not ok:
                pos = int(np.flatnonzero(np.asarray(g) != np.asarray(a))[0])
                why = f"token {pos}: {a[pos]} vs {g[pos]} in the golden"
        else:
            ga, aa = np.asarray(g, dtype=np.float64), np.asarray(a, dtype=np.float64)
            if ga.shape != aa.shape:
                ok, why = False, f"{aa.size} logprobs vs {ga.size} in the golden"
            else:
                diff = np.abs(aa - ga)
                max_abs = max(max_abs, float(diff.max()) if diff.size else 0.0)
                good = diff <= policy.atol + policy.rtol * np.abs(ga)
                ok = bool(good.all())
                pos = int(np.flatnonzero(~good)[0]) if not ok else 0
                why = (
                    f"logprob {pos}: {aa[pos]:.6g} vs {ga[pos]:.6g} in the golden" if not ok else ""
                )
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
        else f"{n_missing} golden requests have no {field} in the run" if verdict == "missing"
        else f"{n_compared} requests match"
    )  # fmt: skip
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


def _compare_summary(
    field: str, golden: t.Any, actual: t.Any, policy: Policy, gated: bool
) -> MetricResult:
    g = _summary_value(golden)
    a = _summary_value(actual)
    if g is None:
        return MetricResult(
            field,
            "pass",
            gated,
            policy,
            message=f"golden {field} is not a number or list of numbers",
        )
    if a is None:
        verdict: Verdict = "pass" if policy.kind == "info" else "missing"
        return MetricResult(
            field,
            verdict,
            gated,
            policy,
            n_missing=1,
            golden_stat=g,
            message=f"{field} not reported by the run",
        )
    diff = abs(a - g)
    ok = bool(within(policy.kind, np.array([a]), np.array([g]), policy.rtol, policy.atol)[0])
    verdict = "pass" if ok or policy.kind == "info" else "fail"
    if verdict == "pass" and policy.exact and a != g and policy.kind != "info":
        verdict = "drift"
    ratio = a / g if g else float("inf")
    return MetricResult(
        field, verdict, gated, policy, n_compared=1, n_failed=0 if ok else 1, max_abs_diff=diff,
        max_rel_diff=diff / abs(g) if g else None, golden_stat=g, actual_stat=a,
        message=f"{a:.6g} vs golden {g:.6g} (x{ratio:.3f}), {policy.describe()}",
    )  # fmt: skip


def compare_inference(
    golden: GoldenValues,
    actual: GoldenValues,
    *,
    policies: t.Mapping[str, Policy],
    gated: t.Collection[str],
) -> dict[str, MetricResult]:
    g_raw = golden.raw or {}
    a_raw = actual.raw or {}
    g_req = {k: v for k, v in golden.requests.items() if k not in SUMMARY_FIELDS}
    a_req = {k: v for k, v in actual.requests.items() if k not in SUMMARY_FIELDS}
    out: dict[str, MetricResult] = {}
    present = [f for f in REQUEST_FIELDS if any(f in r for r in g_req.values())]
    for field in dict.fromkeys([*present, *(f for f in SUMMARY_FIELDS if f in g_raw), *gated]):
        policy = policy_for(policies, field)
        is_g = is_gated(field, policy, gated)
        if field in present:
            out[field] = _compare_field(field, g_req, a_req, policy, is_g)
        elif field in g_raw:
            out[field] = _compare_summary(field, g_raw[field], a_raw.get(field), policy, is_g)
        elif is_g:
            out[field] = MetricResult(
                field, "missing", True, policy, message="gated metric absent from the golden file"
            )
    return out
