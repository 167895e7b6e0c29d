"""Policy maths against a plain reference, Megatron-LM's semantics on hand-computed cases,
and the layered resolution of policies."""

from __future__ import annotations

import math
import statistics
import typing as t
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_golden.compare.engine import compare_series
from ci_golden.compare.policy import (
    Policy,
    default_policy,
    failure_budget,
    is_nondeterministic,
    load_policy_file,
    median_window,
    resolve_policies,
)
from ci_golden.errors import InputError
from ci_golden.goldens.discover import TestCase
from ci_golden.goldens.model import MetricSeries
from ci_golden.project.config import load_config

# --- a plain reference implementation, loop by loop ---------------------------------------


def _close(kind: str, a: float, g: float, policy: Policy) -> bool:
    if a == g:
        return True  # two "no value" slots (+inf) agree
    if not (math.isfinite(a) and math.isfinite(g)):
        return False
    tol = policy.atol + policy.rtol * abs(g)
    if kind == "upper":
        return a - g <= tol
    if kind == "lower":
        return g - a <= tol
    return abs(a - g) <= tol


def reference(
    golden: dict[int, float | None], actual: dict[int, float | None], policy: Policy, *, exact: bool
) -> tuple[str, int, int, int | None]:
    """(verdict, n_compared, n_failed, first_failing_step), written from Megatron-LM's
    comparator step by step: the golden's steps drive, "nan" and unlogged steps are +inf."""
    steps = sorted(golden)
    n = len(steps)

    def g_of(s: int) -> float:
        value = golden[s]
        return math.inf if value is None else value

    def a_of(s: int) -> float:
        value = actual.get(s)
        return math.inf if value is None else value

    if policy.kind == "median":
        finite = [s for s in steps if golden[s] is not None]
        if not finite:
            return "fail", 0, 0, None
        lo, hi = policy.window or ((5, 20) if max(finite) <= 25 else (30, 45))
        sel = [s for s in finite if lo <= s <= hi] or [s for s in finite if s >= lo][:4]
        if not sel:
            return "fail", 0, 0, None
        mg = statistics.median(g_of(s) for s in sel)
        ma = statistics.median(a_of(s) for s in sel)
        bad = [s for s in sel if not _close("approx", a_of(s), mg, policy)]
        if _close("approx", ma, mg, policy):
            return "pass", len(sel), len(bad), None
        return "fail", len(sel), len(bad), bad[0] if bad else None
    bad = [s for s in steps if not _close(policy.kind, a_of(s), g_of(s), policy)]
    budget = policy.budget if policy.budget is not None else min(max(n // 100, 1), 50)

    def passes(n_bad: int) -> bool:
        return n_bad == 0 if n == 1 else (n - n_bad) / n >= 1 - budget / n

    if policy.kind == "info":
        return "pass", n, len(bad), None
    unlogged = [s for s in steps if golden[s] is not None and s not in actual]
    if not passes(len(bad)):
        if unlogged and passes(len([s for s in bad if s in actual])):
            return "missing", n, len(bad), unlogged[0]
        return "fail", n, len(bad), bad[0]
    differ = [s for s in steps if a_of(s) != g_of(s)]
    if exact and differ:
        return "drift", n, len(bad), differ[0]
    return "pass", n, len(bad), None


def series(name: str, values: t.Mapping[int, float | None]) -> MetricSeries:
    return MetricSeries.from_mapping(name, values)


values_st = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def golden_and_actual(draw: st.DrawFn) -> tuple[dict[int, float | None], dict[int, float | None]]:
    steps = draw(st.lists(st.integers(1, 300), min_size=1, max_size=250, unique=True))
    golden = {s: draw(values_st) for s in steps}
    actual: dict[int, float | None] = {}
    for s, g in golden.items():
        choice = draw(st.sampled_from(["same", "near", "far", "nan", "absent"]))
        if choice == "absent":
            continue
        if choice == "nan":
            actual[s] = None
        elif g is None or choice == "same":
            actual[s] = g if g is not None else draw(values_st)
        else:
            scale = draw(st.floats(0, 0.1 if choice == "near" else 5.0))
            actual[s] = g * (1 + draw(st.sampled_from([-1, 1])) * scale) + draw(
                st.floats(-1e-3, 1e-3)
            )
    for extra in draw(st.lists(st.integers(301, 400), max_size=5, unique=True)):
        actual[extra] = draw(values_st)
    return golden, actual


policy_st = st.builds(
    Policy,
    kind=st.sampled_from(["approx", "median", "upper", "lower", "info"]),
    rtol=st.sampled_from([0.0, 0.01, 0.05, 0.2]),
    atol=st.sampled_from([0.0, 1e-3, 0.5]),
    exact=st.booleans(),
    window=st.one_of(st.none(), st.tuples(st.integers(0, 50), st.integers(50, 300))),
    budget=st.one_of(st.none(), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None)
@given(golden_and_actual(), policy_st, st.booleans())
def test_engine_agrees_with_the_reference(
    data: tuple[dict[int, float | None], dict[int, float | None]], policy: Policy, exact: bool
) -> None:
    golden, actual = data
    result = compare_series(
        "m",
        series("m", golden),
        series("m", actual),
        policy,
        gated=True,
        exact=policy.exact and exact,
    )
    expected = reference(golden, actual, policy, exact=policy.exact and exact)
    assert (
        result.verdict,
        result.n_compared,
        result.n_failed,
        result.first_failing_step,
    ) == expected


# --- Megatron-LM semantics, by hand ---------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "budget"),
    [(0, 1), (1, 1), (99, 1), (100, 1), (101, 1), (199, 1), (200, 2), (5000, 50), (10000, 50)],
)
def test_failure_budget_boundaries(n: int, budget: int) -> None:
    assert failure_budget(n) == budget


def _run(n: int, bad: int) -> str:
    """n steps of loss 10.0, the last ``bad`` of them 20% off (outside rtol 0.05)."""
    golden = {s: 10.0 for s in range(1, n + 1)}
    actual = {s: (12.0 if s > n - bad else 10.0) for s in golden}
    return compare_series(
        "lm loss",
        series("lm loss", golden),
        series("lm loss", actual),
        default_policy("lm loss"),
        gated=True,
        exact=True,
    ).verdict


@pytest.mark.parametrize(
    ("n", "bad", "verdict"),
    [
        (1, 0, "pass"), (1, 1, "fail"), (99, 1, "drift"), (99, 2, "fail"),
        (19, 1, "fail"), (3, 1, "fail"), (20, 1, "drift"),  # float rounding, as Megatron-LM
        (100, 1, "drift"), (100, 2, "fail"), (101, 1, "drift"), (101, 2, "fail"),
        (200, 2, "drift"), (200, 3, "fail"),
        (5000, 50, "drift"), (5000, 51, "fail"), (10000, 50, "drift"), (10000, 51, "fail"),
    ],
)  # fmt: skip
def test_budget_decides_between_drift_and_fail(n: int, bad: int, verdict: str) -> None:
    assert _run(n, bad) == verdict


@pytest.mark.parametrize(
    ("last", "window"),
    [(1, (5, 20)), (25, (5, 20)), (26, (30, 45)), (100, (30, 45)), (50000, (30, 45))],
)
def test_median_window_choice(last: int, window: tuple[int, int]) -> None:
    assert median_window(last) == window


def test_short_run_uses_the_early_window() -> None:
    golden = {s: 1.0 for s in range(1, 26)}
    slow = {s: (1.2 if 5 <= s <= 20 else 1.0) for s in golden}
    r = compare_series(
        "iteration-time",
        series("t", golden),
        series("t", slow),
        default_policy("iteration-time"),
        gated=True,
        exact=False,
    )
    assert (r.verdict, r.window, r.golden_stat, r.actual_stat, r.first_failing_step) == (
        "fail",
        (5, 20),
        1.0,
        1.2,
        5,
    )
    outside = {s: (3.0 if s > 20 else 1.0) for s in golden}
    r = compare_series(
        "iteration-time",
        series("t", golden),
        series("t", outside),
        default_policy("iteration-time"),
        gated=True,
        exact=False,
    )
    assert (r.verdict, r.n_compared) == ("pass", 16)


def test_sparse_golden_falls_back_to_the_first_four_steps_after_the_window_start() -> None:
    golden = {s: 1.0 for s in range(100, 1001, 100)}  # logged every 100 steps: none in 30-45
    slow = {s: 2.0 for s in golden}
    r = compare_series(
        "iteration-time",
        series("t", golden),
        series("t", slow),
        default_policy("iteration-time"),
        gated=True,
        exact=False,
    )
    assert (r.verdict, r.n_compared, r.actual_stat, r.message) == (
        "fail",
        4,
        2.0,
        "median of steps 100-400 (the window 30-45 holds no finite golden value): 2 vs golden 1 "
        "(+100.0%), outside median rtol=0.05",
    )


def test_long_run_uses_steps_30_to_45_and_ignores_warmup() -> None:
    golden = {s: 1.0 for s in range(1, 101)}
    warm = {s: (9.0 if s < 30 else 1.0) for s in golden}
    r = compare_series(
        "iteration-time",
        series("t", golden),
        series("t", warm),
        default_policy("iteration-time"),
        gated=True,
        exact=False,
    )
    assert (r.verdict, r.window, r.n_compared, r.message) == (
        "pass",
        (30, 45),
        16,
        "median of steps 30-45: 1 vs golden 1 (+0.0%), within median rtol=0.05",
    )


@pytest.mark.parametrize(
    ("golden", "actual", "verdict", "first", "counts", "notes"),
    [
        # golden "nan" and the run's "nan" or unlogged step agree (both are "no value")
        ({1: None, 2: 1.0}, {1: None, 2: 1.0}, "pass", None, (0, 0), ()),
        ({1: None, 2: 1.0}, {2: 1.0}, "pass", None, (0, 0), ()),
        # a non-finite value where the golden is finite fails that step: 1 of 2 is inside the
        # budget of 1, so only the exact check fails (drift), and the result names it
        ({1: 1.0, 2: 1.0}, {1: None, 2: 1.0}, "drift", 1, (1, 0),
         ("the run logged nan or inf at 1 steps, first at step 1",)),
        ({1: 1.0, 2: 1.0}, {1: float("inf"), 2: 1.0}, "drift", 1, (1, 0),
         ("the run logged nan or inf at 1 steps, first at step 1",)),
        ({1: 1.0, 2: 1.0}, {2: 1.0}, "drift", 1, (0, 1),
         ("1 golden steps were not logged by the run, first at step 1",)),
        ({1: 1.0, 2: 1.0, 3: 1.0}, {3: 1.0}, "missing", 1, (0, 2), ()),
        ({1: 1.0, 2: 1.0, 3: 1.0}, {1: None, 2: None, 3: 1.0}, "fail", 1, (2, 0),
         ("the run logged nan or inf at 2 steps, first at step 1",)),
        # golden "nan" and a finite value disagree (Megatron-LM compares +inf with it)
        ({1: None, 2: 1.0}, {1: 5.0, 2: 1.0}, "drift", 1, (0, 0),
         ('1 steps are "nan" in the golden but logged by the run, first at step 1',)),
    ],
)  # fmt: skip
def test_nan_rules(
    golden: dict[int, float | None],
    actual: dict[int, float | None],
    verdict: str,
    first: int | None,
    counts: tuple[int, int],
    notes: tuple[str, ...],
) -> None:
    r = compare_series(
        "lm loss",
        series("g", golden),
        series("a", actual),
        default_policy("lm loss"),
        gated=True,
        exact=True,
    )
    assert (r.verdict, r.first_failing_step, (r.n_nan, r.n_missing)) == (verdict, first, counts)
    assert r.notes == notes


def test_a_nan_step_inside_the_budget_is_named() -> None:
    golden = {s: 2.0 for s in range(1, 1001)}
    actual = {**golden, 500: None}
    r = compare_series(
        "lm loss",
        series("g", golden),
        series("a", actual),
        default_policy("lm loss"),
        gated=True,
        exact=False,
    )
    assert (r.verdict, r.n_nan, r.message, r.notes) == (
        "pass",
        1,
        "1000 steps within approx rtol=0.05; 1 of 1000 steps outside approx rtol=0.05 "
        "(step 500: nan vs 2), within the budget of 10",
        ("the run logged nan or inf at 1 steps, first at step 500",),
    )


def test_a_nan_step_fails_under_the_strict_policy() -> None:
    golden = {s: 2.0 for s in range(1, 1001)}
    actual = {**golden, 500: None}
    r = compare_series(
        "lm loss",
        series("g", golden),
        series("a", actual),
        Policy("approx", rtol=0.05, exact=False, budget=0),
        gated=True,
        exact=False,
    )
    assert (r.verdict, r.first_failing_step) == ("fail", 500)


def test_one_sided_bounds() -> None:
    golden = {s: 100.0 for s in range(1, 11)}
    fell = {s: 50.0 for s in golden}
    rose = {s: 150.0 for s in golden}
    upper, lower = Policy("upper", rtol=0.05, exact=False), Policy("lower", rtol=0.1, exact=False)
    assert (
        compare_series(
            "mem", series("g", golden), series("a", fell), upper, gated=True, exact=False
        ).verdict
        == "pass"
    )
    assert (
        compare_series(
            "mem", series("g", golden), series("a", rose), upper, gated=True, exact=False
        ).verdict
        == "fail"
    )
    assert (
        compare_series(
            "tp", series("g", golden), series("a", rose), lower, gated=True, exact=False
        ).verdict
        == "pass"
    )
    assert (
        compare_series(
            "tp", series("g", golden), series("a", fell), lower, gated=True, exact=False
        ).verdict
        == "fail"
    )
    info = compare_series(
        "x", series("g", golden), series("a", rose), Policy("info"), gated=False, exact=True
    )
    assert (info.verdict, info.n_failed, info.message) == (
        "pass",
        10,
        "informational: 10 of 10 steps outside info (step 1: +50.0%)",
    )


def test_defaults_are_megatron_semantics() -> None:
    assert default_policy("lm loss") == Policy("approx", rtol=0.05)
    assert default_policy("mtp_1 loss") == Policy("approx", rtol=0.05)
    assert default_policy("num-zeros") == Policy("approx", rtol=0.20)
    assert default_policy("mem-allocated-bytes") == Policy("approx", rtol=0.05, exact=False)
    assert default_policy("iteration-time") == Policy("median", rtol=0.05, exact=False)
    assert default_policy("logprobs") == Policy("approx", atol=1e-3, exact=False, budget=0)
    assert default_policy("generated_tokens") == Policy("approx", exact=False, budget=0)
    assert default_policy("throughput") == Policy("approx", rtol=0.10, rtol_up=0.20, exact=False)


# --- resolution ---------------------------------------------------------------------------


def _case(tmp_path: Path, text: str) -> TestCase:
    folder = tmp_path / "cases" / "gpt" / "c1"
    folder.mkdir(parents=True)
    (folder / "model_config.yaml").write_text(text)
    return TestCase(id="gpt/c1", path=folder, has_config=True, golden_files=())


def test_layers_resolve_in_order(tmp_path: Path) -> None:
    (tmp_path / "ci_golden.yaml").write_text(
        "metrics:\n  'mem-*': {rtol: 0.1}\n  lm loss: {rtol: 0.02, atol: 0.001}\n"
        "  iteration-time: {gated: true}\n"
    )
    config = load_config(cwd=tmp_path)
    case = _case(
        tmp_path,
        "METRICS: [lm loss]\nCI_GOLDEN:\n  metrics:\n    lm loss: {rtol: 0.03}\n"
        "    num-zeros: {kind: info}\n",
    )
    policies, gated = resolve_policies(config, case, {"lm loss": {"exact": False}})
    assert policies["lm loss"] == Policy("approx", rtol=0.03, atol=0.001, exact=False)
    assert policies["num-zeros"] == Policy("info", rtol=0.2)
    assert policies.for_metric("mem-allocated-bytes") == Policy("approx", rtol=0.1, exact=False)
    assert policies.for_metric("validation loss") == Policy("approx", rtol=0.05)
    assert gated == ("lm loss", "iteration-time")


def test_gated_defaults_come_from_the_config_without_metrics(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    _, gated = resolve_policies(config, None)
    assert gated == ("lm loss", "num-zeros")
    case = _case(
        tmp_path, "METRICS: [lm loss]\nCI_GOLDEN:\n  metrics:\n    lm loss: {gated: false}\n"
    )
    assert resolve_policies(config, case)[1] == ()


def test_backwards_window_is_an_input_error(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    case = _case(tmp_path, "CI_GOLDEN:\n  metrics:\n    iteration-time: {window: [40, 30]}\n")
    with pytest.raises(InputError) as e:
        resolve_policies(config, case)
    assert str(e.value) == (
        f"{case.config_path}::$.CI_GOLDEN.metrics['iteration-time'].window:"
        " window [40, 30] ends before it starts"
    )


@pytest.mark.parametrize(
    ("model_config", "expected"),
    [
        ({}, False),
        ({"ENV_VARS": {"NVTE_ALLOW_NONDETERMINISTIC_ALGO": 0}}, False),
        ({"ENV_VARS": {"NVTE_ALLOW_NONDETERMINISTIC_ALGO": 1}}, True),
        ({"ENV_VARS": {"NVTE_ALLOW_NONDETERMINISTIC_ALGO": "1"}}, True),
        ({"ENV_VARS": {"NON_DETERMINSTIC_RESULTS": 1}}, True),
        # Megatron-LM's shell script reads the YAML scalar's text: only "1" counts
        ({"ENV_VARS": {"NVTE_ALLOW_NONDETERMINISTIC_ALGO": True}}, False),
        ({"ENV_VARS": {"NVTE_ALLOW_NONDETERMINISTIC_ALGO": 1.0}}, False),
        ({"ENV_VARS": {"NON_DETERMINISTIC_RESULTS": 1}}, False),  # not Megatron-LM's spelling
        ({"NVTE_ALLOW_NONDETERMINISTIC_ALGO": 1}, False),  # only under ENV_VARS
        (
            {
                "ENV_VARS": {"NVTE_ALLOW_NONDETERMINISTIC_ALGO": 1},
                "CI_GOLDEN": {"nondeterministic": False},
            },
            False,
        ),
        ({"CI_GOLDEN": {"nondeterministic": True}}, True),
    ],
)
def test_is_nondeterministic(model_config: dict[str, t.Any], expected: bool) -> None:
    assert is_nondeterministic(model_config) is expected


def test_validate_warns_about_a_switch_that_is_true_not_1(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    case = tmp_path / "tc" / "c1"
    case.mkdir(parents=True)
    (case / "model_config.yaml").write_text(
        "ENV_VARS:\n  NVTE_ALLOW_NONDETERMINISTIC_ALGO: true\nCI_GOLDEN:\n  platforms: [dgx_h100]\n"
    )
    res = cli("--test-cases", tmp_path / "tc", "validate", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (
        "c1/model_config.yaml: CG148 warning: $.ENV_VARS.NVTE_ALLOW_NONDETERMINISTIC_ALGO: "
        "ENV_VARS.NVTE_ALLOW_NONDETERMINISTIC_ALGO is True: only 1 makes a case nondeterministic "
        "(as in Megatron-LM's run_ci_test.sh), so the exact check runs; write 1"
    ) in res.stdout


def test_policy_file(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("metrics:\n  lm loss: {rtol: 0.5, budget: 0}\n")
    assert load_policy_file(good) == {"lm loss": {"rtol": 0.5, "budget": 0}}
    bad = tmp_path / "bad.json"
    bad.write_text('{"lm loss": {"rtol": 0.5, "rtoll": 1}}')
    with pytest.raises(InputError) as e:
        load_policy_file(bad)
    assert str(e.value) == (
        f"{bad}::$[\"lm loss\"]: Additional properties are not allowed ('rtoll' was unexpected); "
        "a policy has the keys kind, rtol, atol, exact, window, gated, budget, rtol_up"
    )
    kind = tmp_path / "kind.yaml"
    kind.write_text("lm loss: {kind: aprox}\n")
    with pytest.raises(InputError) as e:
        load_policy_file(kind)
    assert str(e.value) == (
        f"{kind}::$[\"lm loss\"].kind: 'aprox' is not one of"
        " ['approx', 'median', 'upper', 'lower', 'info']"
    )


def test_policy_json_round_trip() -> None:
    p = Policy("median", rtol=0.1, atol=0.5, exact=False, window=(3, 9), gated=True, budget=2)
    assert Policy.from_dict(p.to_dict()) == p
    assert p.describe() == "median rtol=0.1 atol=0.5 steps 3-9"
