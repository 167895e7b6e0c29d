"""The HTML report's curves: LTTB downsampling that keeps failing steps, the failing-step mask of
each policy kind, and reading a job's full series from its files (with every fallback)."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import numpy as np
import pytest

from ci_golden.compare.engine import compare_job, write_result
from ci_golden.compare.policy import Policy, resolve_policies
from ci_golden.compare.result import CaseResult, MetricResult, load_result
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries, write_golden
from ci_golden.project.config import load_config
from ci_golden.report.curves import (
    DEFAULT_POINTS,
    downsample,
    failing_mask,
    job_curves,
    load_curves,
)

N = 100_000
STEPS = np.arange(1, N + 1, dtype=np.int64)


def series(name: str, values: np.ndarray, steps: np.ndarray = STEPS) -> MetricSeries:
    return MetricSeries.from_arrays(
        name, steps, values.astype(np.float64), start_step=int(steps[0]),
        end_step=int(steps[-1]), step_interval=int(steps[1] - steps[0]),
    )  # fmt: skip


def values(**metrics: np.ndarray) -> GoldenValues:
    return GoldenValues("current", {k.replace("_", " "): series(k, v) for k, v in metrics.items()})


def loss(rng: np.random.Generator) -> np.ndarray:
    return np.asarray(2.0 + 8.0 * np.exp(-STEPS / 20_000) + 0.01 * rng.standard_normal(N))


def metric(kind: str = "approx", **kw: t.Any) -> MetricResult:
    return MetricResult("m", kw.pop("verdict", "fail"), True, Policy(kind, rtol=0.05), **kw)  # type: ignore[arg-type]


@pytest.fixture()
def job(tmp_path: Path) -> tuple[Path, CaseResult, np.ndarray]:
    """A 100,000-step job compared by the real engine and written as ci-golden run does: the
    golden below the root, result.json and the actual values in the job's folder."""
    rng = np.random.default_rng(3)
    golden = loss(rng)
    actual = golden * (1 + 0.001 * rng.standard_normal(N))
    spikes = np.sort(rng.choice(np.arange(1_000, N), 60, replace=False))
    actual[spikes] *= 1.5
    golden_path = tmp_path / "cases" / "long" / "golden_values_dev_dgx_h100.json"
    write_golden(golden_path, values(lm_loss=golden))
    folder = tmp_path / "out" / "long"
    write_golden(folder / "golden_values_dev_dgx_h100.json", values(lm_loss=actual))
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    result = compare_job(
        Job("long", "dev", "dgx_h100", golden_path),
        values(lm_loss=golden), values(lm_loss=actual), policies=policies, gated=("lm loss",),
        nondeterministic=True, actual_path="golden_values_dev_dgx_h100.json", root=tmp_path,
    )  # fmt: skip
    write_result(folder / "result.json", result)
    return folder, load_result(folder / "result.json"), STEPS[spikes]


def test_failing_mask_follows_each_policy_kind() -> None:
    steps = np.arange(1, 6)
    g = np.array([1.0, 1.0, 1.0, 1.0, np.nan])
    a = np.array([1.0, 1.1, 0.9, np.nan, 1.02])
    # a number where the golden says "nan" counts too; a value missing on both sides does not
    assert failing_mask(metric("approx"), steps, g, a).tolist() == [0, 1, 1, 1, 1]
    assert failing_mask(metric("upper"), steps, g, a).tolist() == [0, 1, 0, 1, 1]
    assert failing_mask(metric("lower"), steps, g, a).tolist() == [0, 0, 1, 1, 1]
    assert failing_mask(metric("info"), steps, g, a).tolist() == [0, 1, 1, 1, 1]
    both = np.array([1.0, 1.0, 1.0, np.nan, np.nan])  # step 4: nan on both sides
    assert failing_mask(metric("approx"), steps, both, a).tolist() == [0, 1, 1, 0, 1]
    # a median policy: the window's steps against the golden's median (1.0) there
    median = metric("median", window=(2, 4), golden_stat=1.0)
    assert failing_mask(median, steps, g, a).tolist() == [0, 1, 1, 1, 0]
    # a window without a finite golden value takes the first four after its start
    late = metric("median", window=(4, 4), golden_stat=1.0)
    g_late = np.array([1.0, 1.0, 1.0, np.nan, 1.0])
    assert failing_mask(late, steps, g_late, np.array([1, 1, 1, 1, 1.2])).tolist() == [0] * 4 + [1]


@pytest.mark.parametrize("kind", ["approx", "upper", "lower", "median", "info"])
def test_the_mask_counts_what_the_compare_engine_counts(kind: str) -> None:
    rng = np.random.default_rng(7)
    n = 400
    golden = 1.0 + 0.1 * rng.random(n)
    actual = golden * (1 + 0.08 * rng.standard_normal(n))
    golden[rng.choice(n, 10, replace=False)] = np.nan  # golden "nan"
    actual[rng.choice(n, 10, replace=False)] = np.nan  # the run logged nan
    logged = np.ones(n, dtype=np.bool_)
    logged[rng.choice(n, 10, replace=False)] = False  # the run did not log these
    steps = np.arange(1, n + 1, dtype=np.int64)
    g = GoldenValues("current", {"m": series("m", golden, steps)})
    a = GoldenValues("current", {"m": series("m", actual[logged], steps[logged])})
    policy = Policy(kind, rtol=0.05, window=(30, 45) if kind == "median" else None)  # type: ignore[arg-type]
    result = compare_job(
        Job("c", "dev", "dgx_h100", None), g, a, policies={"m": policy}, gated=("m",),
        nondeterministic=True,
    )  # fmt: skip
    m = result.metrics["m"]
    aligned = np.where(logged, actual, np.nan)
    mask = failing_mask(m, steps, golden, aligned)
    assert int(mask.sum()) == m.n_failed > 0
    if m.verdict == "fail":
        assert m.first_failing_step == steps[mask][0]


def test_downsample_keeps_shape_size_and_every_kept_index() -> None:
    rng = np.random.default_rng(1)
    golden = np.cumsum(rng.standard_normal(N))
    actual = golden + rng.standard_normal(N)
    keep = np.sort(rng.choice(N, 40, replace=False))
    idx = downsample(STEPS, [golden, actual], keep=keep, points=300)
    assert len(idx) <= 300 + 40 + 4
    assert set(keep.tolist()) <= set(idx.tolist())
    assert (idx[0], idx[-1]) == (0, N - 1)
    assert {int(np.argmax(golden)), int(np.argmin(golden))} <= set(idx.tolist())
    assert np.all(np.diff(idx) > 0)
    short = downsample(STEPS[:200], [golden[:200]], keep=keep[:0], points=300)
    assert short.tolist() == list(range(200))


def test_a_gap_in_the_run_keeps_both_of_its_edges() -> None:
    actual = np.ones(N)
    actual[50_000:50_010] = np.nan
    idx = downsample(STEPS, [np.ones(N), actual], keep=np.empty(0, np.int64), points=300)
    assert {49_999, 50_000, 50_009, 50_010} <= set(idx.tolist())


def test_the_full_series_keep_every_failing_step(
    job: tuple[Path, CaseResult, np.ndarray], tmp_path: Path
) -> None:
    folder, result, spikes = job
    m = result.metrics["lm loss"]
    assert (m.verdict, m.n_failed, len(m.steps)) == ("fail", 60, 100)  # the result keeps 100
    curves = load_curves([result], {result.job_id: folder}, tmp_path)
    curve = curves[result.job_id][("", "lm loss")]
    assert (curve.full, curve.note, curve.n_steps, curve.n_failing) == (True, None, N, 60)
    assert curve.steps[curve.failing].tolist() == spikes.tolist()
    assert m.first_failing_step == spikes[0]
    assert len(curve.steps) <= DEFAULT_POINTS + 60 + 4
    # from the stored points alone at most the first failing step can be seen
    stored = job_curves(result)[("", "lm loss")]
    assert (stored.full, stored.n_steps) == (False, 100)
    assert set(stored.steps[stored.failing].tolist()) <= set(spikes.tolist())


def test_many_failing_steps_keep_the_ends_of_each_run() -> None:
    golden = np.ones(N)
    actual = golden.copy()
    actual[30_000:] = 2.0
    actual[10_000:10_050] = 2.0
    m = MetricResult("m", "fail", True, Policy("approx", rtol=0.05), first_failing_step=10_001)
    from ci_golden.report.curves import make_curve

    curve = make_curve(m, (STEPS, golden, actual), full=True)
    assert curve is not None
    failing = set(curve.steps[curve.failing].tolist())
    assert {10_001, 10_050, 30_001, 100_000} <= failing
    assert curve.n_failing == 50 + 70_000


GOLDEN = "cases/long/golden_values_dev_dgx_h100.json"
LEGACY = {"lm loss": {"start_step": 0, "end_step": 1, "step_interval": 1, "values": [1.0, 2.0]}}


def delete_actual(root: Path, folder: Path) -> None:
    (folder / "golden_values_dev_dgx_h100.json").unlink()


def move_golden(root: Path, folder: Path) -> None:
    (root / "cases").rename(root / "moved")


def legacy_golden(root: Path, folder: Path) -> None:
    (root / GOLDEN).write_text(json.dumps(LEGACY))


def change_golden(root: Path, folder: Path) -> None:
    write_golden(root / GOLDEN, values(lm_loss=np.full(N, 3.0)))


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (
            delete_actual,
            "the full series could not be read ({folder}/golden_values_dev_dgx_h100.json: "
            "cannot read file: No such file or directory): showing the result's points",
        ),
        (
            move_golden,
            "the full series could not be read ({root}/" + GOLDEN + ": "
            "cannot read file: No such file or directory): showing the result's points",
        ),
        (
            legacy_golden,
            f"the full series could not be read ({GOLDEN}: "
            "legacy layout: its steps need the case's settings): showing the result's points",
        ),
        (
            change_golden,
            "the values files differ from the points the result was compared on "
            "(changed since the run?): showing the result's points",
        ),
    ],
    ids=["actual-deleted", "golden-moved", "golden-legacy", "golden-changed"],
)
def test_unusable_files_fall_back_to_the_stored_points_and_say_why(
    job: tuple[Path, CaseResult, np.ndarray],
    tmp_path: Path,
    damage: t.Callable[[Path, Path], t.Any],
    note: str,
) -> None:
    folder, result, _ = job
    damage(tmp_path, folder)
    curve = load_curves([result], {result.job_id: folder}, tmp_path)[result.job_id][("", "lm loss")]
    assert (curve.full, curve.n_steps) == (False, 100)
    assert curve.note == note.format(folder=folder, root=tmp_path)


def test_paths_that_leave_their_folders_are_not_read(
    job: tuple[Path, CaseResult, np.ndarray], tmp_path: Path
) -> None:
    folder, result, _ = job
    escaping = CaseResult.from_dict({**result.to_dict(), "actual": "../../../etc/passwd"})
    curve = job_curves(escaping, folder=folder, root=tmp_path)[("", "lm loss")]
    assert curve.note == (
        "the full series could not be read (../../../etc/passwd: the actual values path leaves "
        "the result's folder): showing the result's points"
    )
    outside = CaseResult.from_dict({**result.to_dict(), "golden": "/etc/hostname"})
    curve = job_curves(outside, folder=folder, root=tmp_path)[("", "lm loss")]
    assert curve.note == (
        f"the full series could not be read (/etc/hostname: the golden is outside {tmp_path}, "
        "where the report is made): showing the result's points"
    )


def test_repeats_give_a_band_and_phases_use_the_stored_points(tmp_path: Path) -> None:
    steps = np.arange(1, 101, dtype=np.int64)
    golden = values_small(lambda s: 10.0 - s / 50, steps)
    runs = [values_small(lambda s, k=k: (10.0 - s / 50) * (1 + 0.001 * k), steps) for k in (1, 2)]
    policies, _ = resolve_policies(load_config(cwd=Path("/nonexistent")), None)
    result = compare_job(
        Job("r", "dev", "dgx_h100", None), golden, runs[0], repeats=runs[1:],
        policies=policies, gated=("lm loss",), nondeterministic=True,
    )  # fmt: skip
    curves = job_curves(result)
    band = curves[("", "lm loss")].band
    assert band is not None and band.n_runs == 2 and len(band.steps) == 100
    assert curves[("repeat-2", "lm loss")].band is None
    # files that cannot be read are noted on the main run's charts, never read for the others
    named = CaseResult.from_dict({**result.to_dict(), "actual": "a.json", "golden": "g.json"})
    curves = job_curves(named, folder=tmp_path, root=tmp_path)
    assert curves[("", "lm loss")].note == (
        f"the full series could not be read ({tmp_path}/a.json: cannot read file: "
        "No such file or directory): showing the result's points"
    )
    assert curves[("repeat-2", "lm loss")].note is None


def values_small(f: t.Callable[[int], float], steps: np.ndarray) -> GoldenValues:
    return GoldenValues(
        "current",
        {"lm loss": MetricSeries.from_mapping("lm loss", {int(s): f(int(s)) for s in steps})},
    )


def test_points_below_the_minimum_are_refused(job: tuple[Path, CaseResult, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="points must be at least 10"):
        job_curves(job[1], points=5)
