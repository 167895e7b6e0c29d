"""The best case of a partial run, judged by the real comparison engine: a run that would pass
is never found failing, and a run found failing early has the verdict and the first failing
step of the whole run."""

from __future__ import annotations

import math
import typing as t
from pathlib import Path

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ci_golden.compare.bound import as_stopped, best_case, followable, outlook, upto
from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import PolicyTable, failure_budget
from ci_golden.compare.result import CaseResult, MetricResult
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries

JOB = Job("gpt/demo", "dev", "dgx_h100", Path("golden_values_dev_dgx_h100.json"))
GATED = ("lm loss", "num-zeros", "iteration-time")
POLICIES = PolicyTable([], GATED)
# within each default tolerance (lm loss 5%, num-zeros 20%, iteration-time median 5%)
INSIDE = {"lm loss": 0.045, "num-zeros": 0.18, "iteration-time": 0.045}


def full(golden: GoldenValues, run: GoldenValues) -> CaseResult:
    """The engine's comparison of a whole run; the golden's metrics are the gated ones."""
    gated = [n for n in GATED if n in golden.metrics]
    return compare_job(JOB, golden, run, policies=POLICIES, gated=gated, nondeterministic=False)


def judge_with(golden: GoldenValues) -> t.Callable[[GoldenValues], t.Mapping[str, MetricResult]]:
    return lambda run: full(golden, run).metrics


def values(steps: list[int], name: str, data: list[float]) -> MetricSeries:
    return MetricSeries.from_mapping(name, dict(zip(steps, data, strict=True)))


@st.composite
def curves(draw: st.DrawFn) -> tuple[list[int], dict[str, list[float]]]:
    """A golden in Megatron-LM's shape: steps 1, then every ``interval``; a falling loss, a
    rising num-zeros and a flat iteration time, each with noise."""
    interval = draw(st.sampled_from([1, 5, 10]))
    slots = draw(st.integers(min_value=20, max_value=300))
    steps = [1, *range(interval, interval * slots, interval)][:slots]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = np.array(steps, dtype=float)
    golden = {
        "lm loss": list(10.0 * np.exp(-s / (3 * s[-1])) + rng.uniform(0, 0.2, len(s))),
        "num-zeros": list(np.round(1000 + 5 * s + rng.uniform(0, 50, len(s)))),
        "iteration-time": list(0.1 + rng.uniform(0, 0.01, len(s))),
    }
    return steps, golden


@st.composite
def passing_runs(draw: st.DrawFn) -> tuple[GoldenValues, GoldenValues]:
    """A golden and a run inside every tolerance, with spikes the failure budget covers."""
    steps, golden = draw(curves())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    run: dict[str, list[float]] = {}
    for name, g in golden.items():
        a = np.array(g) * (1 + rng.uniform(-INSIDE[name], INSIDE[name], len(g)))
        if name != "iteration-time":
            spikes = draw(st.integers(0, failure_budget(len(g))))
            where = rng.choice(len(g), size=spikes, replace=False)
            a[where] = np.array(g)[where] * draw(st.sampled_from([0.3, 1.5, 3.0]))
        run[name] = list(a)
    return (
        GoldenValues("current", {n: values(steps, n, v) for n, v in golden.items()}),
        GoldenValues("current", {n: values(steps, n, v) for n, v in run.items()}),
    )


@st.composite
def failing_runs(draw: st.DrawFn) -> tuple[GoldenValues, GoldenValues]:
    """A run inside tolerance that goes wrong from a random step: a shift outside the
    tolerance, NaN values, or a metric no longer logged."""
    golden, run = draw(passing_runs())
    name = draw(st.sampled_from(GATED))
    g = golden.metrics[name]
    start = draw(st.integers(0, len(g.steps) - 1))
    kind = draw(st.sampled_from(["shift", "nan", "stops"]))
    a = run.metrics[name].values.copy()
    if kind == "shift":
        a[start:] = g.values[start:] * draw(st.sampled_from([0.5, 0.9, 1.08, 1.3, 2.0]))
    elif kind == "nan":
        a[start : start + draw(st.integers(1, 3))] = math.nan
    else:
        a[start:] = math.nan  # what sampling gives for steps the run did not log
    metrics = dict(run.metrics)
    metrics[name] = values([int(s) for s in g.steps], name, list(a))
    return golden, GoldenValues("current", metrics)


def last_step(golden: GoldenValues) -> int:
    return max(int(s.steps[-1]) for s in golden.metrics.values())


@settings(max_examples=60, deadline=None)
@given(passing_runs(), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_a_run_that_would_pass_is_never_stopped(
    pair: tuple[GoldenValues, GoldenValues], cuts: list[float]
) -> None:
    golden, run = pair
    assume(full(golden, run).verdict in ("pass", "drift"))
    end = last_step(golden)
    for through in sorted({int(c * end) for c in cuts} | {end}):
        assert outlook(judge_with(golden), run, golden, through).certain is None, through


@settings(max_examples=80, deadline=None)
@given(failing_runs(), st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_a_run_stopped_early_has_the_verdict_and_first_failing_step_of_the_whole_run(
    pair: tuple[GoldenValues, GoldenValues], cuts: list[float]
) -> None:
    golden, run = pair
    whole = full(golden, run)
    judge = judge_with(golden)
    end = last_step(golden)
    for through in sorted({int(c * end) for c in cuts}):
        found = outlook(judge, run, golden, through)
        if found.certain is None:
            continue
        m = found.certain
        assert whole.verdict == full(golden, best_case(run, golden, through)).verdict
        assert whole.metrics[m.name].verdict == m.verdict
        assert whole.metrics[m.name].first_failing_step == m.first_failing_step
        assert m.first_failing_step is None or m.first_failing_step <= through
    # and at the last step the bound is exact: the whole run fails exactly when it is found
    at_end = outlook(judge, run, golden, end).certain
    failing = [n for n, m in whole.metrics.items() if m.gated and m.verdict in ("fail", "missing")]
    assert (at_end is not None) == bool(failing)


def steady(n: int, time: float) -> dict[int, float]:
    return {s: time for s in range(1, n + 1)}


def test_a_median_decides_only_once_its_window_cannot_move() -> None:
    golden = GoldenValues(
        "current", {"iteration-time": MetricSeries.from_mapping("iteration-time", steady(100, 0.1))}
    )
    slow = {s: (0.1 if s < 30 else 0.2) for s in range(1, 101)}
    run = GoldenValues(
        "current", {"iteration-time": MetricSeries.from_mapping("iteration-time", slow)}
    )
    judge = judge_with(golden)
    # the window is steps 30-45: through step 37 the 8 later steps could still bring the
    # median back; from step 38 on, 8 of its 16 steps are slow and the median cannot be 0.1
    assert outlook(judge, run, golden, 37).certain is None
    found = outlook(judge, run, golden, 38)
    assert found.certain is not None and found.certain.name == "iteration-time"
    assert outlook(judge, run, golden, 100).certain is not None


def test_drift_alone_never_decides() -> None:
    golden = GoldenValues(
        "current", {"lm loss": MetricSeries.from_mapping("lm loss", steady(100, 2.0))}
    )
    moved = GoldenValues(
        "current", {"lm loss": MetricSeries.from_mapping("lm loss", steady(100, 2.0001))}
    )
    assert full(golden, moved).verdict == "drift"
    assert outlook(judge_with(golden), moved, golden, 100).certain is None


def test_best_case_keeps_the_run_then_copies_the_reference() -> None:
    golden = GoldenValues(
        "current",
        {"lm loss": MetricSeries.from_mapping("lm loss", {1: 1.0, 5: None, 10: 3.0, 15: 4.0})},
    )
    run = GoldenValues(
        "current",
        {
            "lm loss": MetricSeries.from_mapping("lm loss", {1: 1.5, 5: 2.5, 10: None, 15: 9.0}),
            "grad-norm": MetricSeries.from_mapping("grad-norm", {1: 7.0, 15: 8.0}),
        },
    )
    best = best_case(run, golden, 5)
    loss = best.metrics["lm loss"]
    assert loss.steps.tolist() == [1, 5, 10, 15]
    assert np.array_equal(loss.values, [1.5, 2.5, 3.0, 4.0], equal_nan=True)
    assert best.metrics["grad-norm"].steps.tolist() == [1]  # not in the reference: run only
    extreme = best_case(run, golden, 1, fill=1e300)
    assert np.array_equal(extreme.metrics["lm loss"].values, [1.5, np.nan, 1e300, 1e300], True)
    assert upto(run, 5).metrics["lm loss"].steps.tolist() == [1, 5]
    assert "grad-norm" in upto(run, 5).metrics


def test_as_stopped_ends_the_plot_at_the_stop_and_says_so() -> None:
    golden = GoldenValues(
        "current", {"lm loss": MetricSeries.from_mapping("lm loss", steady(10, 2.0))}
    )
    run = GoldenValues(
        "current",
        {"lm loss": MetricSeries.from_mapping("lm loss", {s: 3.0 for s in range(1, 5)})},
    )
    best = full(golden, best_case(run, golden, 4)).metrics
    shown = as_stopped(best, 4)["lm loss"]
    assert shown.verdict == "fail" and shown.first_failing_step == 1
    assert shown.actual == (3.0, 3.0, 3.0, 3.0, None, None, None, None, None, None)
    assert shown.notes[-1] == (
        "the run was stopped after step 4: "
        "the steps after it are counted as equal to the golden (the best case)"
    )


def test_only_per_step_goldens_are_followed() -> None:
    series = {"lm loss": MetricSeries.from_mapping("lm loss", steady(10, 2.0))}
    assert followable(GoldenValues("current", series))
    assert not followable(GoldenValues("legacy", series))
    assert not followable(GoldenValues("current", {}))
    assert not followable(None)
