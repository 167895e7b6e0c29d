"""The comparison engine on injected regressions, the real corpus, resume/repeat runs,
inference goldens, the result.json format and the ``compare`` command."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import numpy as np
import pytest

from ci_golden.compare.engine import (
    case_from_folder,
    compare_job,
    exit_code,
    load_result,
    write_result,
)
from ci_golden.compare.policy import is_nondeterministic, resolve_policies
from ci_golden.compare.result import CaseResult
from ci_golden.errors import InputError
from ci_golden.goldens.discover import Job, TestCase
from ci_golden.goldens.migrate import legacy_step_scale
from ci_golden.goldens.model import (
    GoldenValues,
    MetricSeries,
    dumps_golden,
    load_golden,
    write_golden,
)
from ci_golden.project.config import load_config

JOB = Job("gpt/demo", "dev", "dgx_h100", Path("cases/gpt/demo/golden_values_dev_dgx_h100.json"))


def make_golden(n: int = 100, **overrides: t.Callable[[int, float], float | None]) -> GoldenValues:
    """A 100-step golden in the shape of Megatron-LM's, with per-metric value overrides."""
    base: dict[str, t.Callable[[int], float]] = {
        "lm loss": lambda s: 10.8 - 0.02 * s,
        "num-zeros": lambda s: 1500.0 + 10 * s,
        "mem-allocated-bytes": lambda s: 2.5e10,
        "iteration-time": lambda s: 0.5 if s < 5 else 0.1,
    }
    metrics = {}
    for name, f in base.items():
        change = overrides.get(name.replace(" ", "_").replace("-", "_"))
        values = {s: (change(s, f(s)) if change else f(s)) for s in range(1, n + 1)}
        metrics[name] = MetricSeries.from_mapping(name, values)
    return GoldenValues(layout="current", metrics=metrics)


def compare(
    golden: GoldenValues,
    actual: GoldenValues,
    *,
    nondeterministic: bool = False,
    gated: t.Sequence[str] = ("lm loss", "num-zeros"),
    **kw: t.Any,
) -> CaseResult:
    config = load_config(cwd=Path("/nonexistent"))
    policies, _ = resolve_policies(config, None)
    return compare_job(
        JOB,
        golden,
        actual,
        policies=policies,
        gated=gated,
        nondeterministic=nondeterministic,
        root=Path("."),
        **kw,
    )


def summary(r: CaseResult) -> dict[str, tuple[str, int | None]]:
    return {name: (m.verdict, m.first_failing_step) for name, m in r.metrics.items()}


# --- injected regressions ------------------------------------------------------------------


def test_a_copy_of_the_golden_passes() -> None:
    golden = make_golden()
    r = compare(golden, make_golden())
    assert r.verdict == "pass"
    assert all(
        m.verdict == "pass" and m.n_failed == 0 and m.max_abs_diff == 0.0
        for m in r.metrics.values()
    )
    assert exit_code([r]) == 0


def test_loss_up_3_percent_from_step_60_is_drift_within_the_5_percent_tolerance() -> None:
    r = compare(make_golden(), make_golden(lm_loss=lambda s, v: v * 1.03 if s >= 60 else v))
    m = r.metrics["lm loss"]
    assert (r.verdict, m.verdict, m.first_failing_step, m.n_failed, m.n_differ) == (
        "drift",
        "drift",
        60,
        0,
        41,
    )
    assert (
        m.message
        == "41 of 100 steps differ from the golden, first at step 60; within approx rtol=0.05"
    )
    assert exit_code([r]) == 1 and exit_code([r], allow_drift=True) == 0
    assert (
        compare(
            make_golden(),
            make_golden(lm_loss=lambda s, v: v * 1.03 if s >= 60 else v),
            nondeterministic=True,
        ).verdict
        == "pass"
    )


def test_loss_up_6_percent_from_step_60_fails_at_step_60() -> None:
    r = compare(
        make_golden(),
        make_golden(lm_loss=lambda s, v: v * 1.06 if s >= 60 else v),
        nondeterministic=True,
    )
    m = r.metrics["lm loss"]
    assert (r.verdict, m.verdict, m.first_failing_step, m.n_failed, m.budget) == (
        "fail",
        "fail",
        60,
        41,
        1,
    )
    assert (
        m.message
        == "41 of 100 steps outside approx rtol=0.05 (step 60: +6.0%), over the budget of 1"
    )
    assert 60 in m.steps and m.max_rel_diff == pytest.approx(0.06)


def test_one_nan_step_is_inside_the_budget_and_named() -> None:
    r = compare(make_golden(), make_golden(lm_loss=lambda s, v: None if s == 37 else v))
    assert summary(r)["lm loss"] == ("drift", 37)  # Megatron-LM: only the exact check fails
    assert r.metrics["lm loss"].notes == ("the run logged nan or inf at 1 steps, first at step 37",)
    two = compare(make_golden(), make_golden(lm_loss=lambda s, v: None if s in (37, 38) else v))
    assert summary(two)["lm loss"] == ("fail", 37)


def test_a_gated_metric_missing_from_the_run() -> None:
    actual = make_golden()
    del actual.metrics["num-zeros"]
    r = compare(make_golden(), actual)
    m = r.metrics["num-zeros"]
    assert (r.verdict, m.verdict, m.first_failing_step, m.n_missing, m.message) == (
        "missing",
        "missing",
        1,
        100,
        "metric not logged by the run",
    )


def test_a_gated_metric_absent_from_the_golden() -> None:
    r = compare(make_golden(), make_golden(), gated=("lm loss", "mtp_1 loss"))
    assert summary(r)["mtp_1 loss"] == ("missing", None)
    assert r.metrics["mtp_1 loss"].message == "gated metric absent from the golden file"


def test_a_short_run_is_missing_the_last_steps() -> None:
    r = compare(make_golden(), make_golden(n=80))
    assert summary(r)["lm loss"] == ("missing", 81)
    assert r.metrics["lm loss"].n_missing == 20


def test_memory_up_10_percent_fails_and_down_is_drift() -> None:
    gated = ("lm loss", "mem-allocated-bytes")
    up = compare(make_golden(), make_golden(mem_allocated_bytes=lambda s, v: v * 1.10), gated=gated)
    assert (up.verdict, summary(up)["mem-allocated-bytes"]) == ("fail", ("fail", 1))
    down = compare(
        make_golden(), make_golden(mem_allocated_bytes=lambda s, v: v * 0.90), gated=gated
    )
    assert (down.verdict, summary(down)["mem-allocated-bytes"]) == ("fail", ("fail", 1))
    near = compare(
        make_golden(), make_golden(mem_allocated_bytes=lambda s, v: v * 0.96), gated=gated
    )  # within 5% both ways, and memory has no exact check
    assert (near.verdict, summary(near)["mem-allocated-bytes"]) == ("pass", ("pass", None))
    info = compare(make_golden(), make_golden(mem_allocated_bytes=lambda s, v: v * 1.10))
    assert (
        info.verdict,
        info.metrics["mem-allocated-bytes"].gated,
        summary(info)["mem-allocated-bytes"],
    ) == ("pass", False, ("fail", 1))


def test_iteration_time_up_20_percent_in_the_window_fails() -> None:
    gated = ("lm loss", "iteration-time")
    slow = compare(
        make_golden(),
        make_golden(iteration_time=lambda s, v: v * 1.2 if 30 <= s <= 45 else v),
        gated=gated,
    )
    m = slow.metrics["iteration-time"]
    assert (slow.verdict, m.verdict, m.first_failing_step, m.window, m.n_compared) == (
        "fail",
        "fail",
        30,
        (30, 45),
        16,
    )
    assert (
        m.message == "median of steps 30-45: 0.12 vs golden 0.1 (+20.0%), outside median rtol=0.05"
    )
    outside = compare(
        make_golden(),
        make_golden(iteration_time=lambda s, v: v * 1.2 if s > 45 else v),
        gated=gated,
    )
    assert outside.verdict == "pass"


# --- real corpus --------------------------------------------------------------------------


def corpus_job(corpus: Path, case_id: str, golden: str, actual: str) -> CaseResult:
    folder = corpus / case_id
    case = TestCase(case_id, folder, True, ())
    config = load_config(cwd=corpus, test_cases=corpus)
    policies, gated = resolve_policies(config, case)
    env, _, platform = golden.removeprefix("golden_values_").removesuffix(".json").partition("_")
    return compare_job(
        Job(case_id, env, platform, folder / golden),
        load_golden(folder / golden), load_golden(folder / actual),
        policies=policies, gated=gated, nondeterministic=is_nondeterministic(case.model_config),
        root=corpus,
    )  # fmt: skip


def test_corpus_h100_vs_a100_deterministic_case_drifts(corpus: Path) -> None:
    # 21 logged steps; the largest moves: lm loss at step 10,
    # |10.78686 - 10.82907| / 10.82907 = 0.39%, num-zeros at step 100,
    # |3476 - 3135| / 3135 = 10.9%: within 5% and 20%, but not exact
    r = corpus_job(
        corpus,
        "gpt/gpt3_mcore_te_tp1_pp4_vp1_resume_torch_dist",
        "golden_values_dev_dgx_h100.json",
        "golden_values_dev_dgx_a100.json",
    )
    assert (r.verdict, r.golden, r.gated) == (
        "drift",
        "gpt/gpt3_mcore_te_tp1_pp4_vp1_resume_torch_dist/golden_values_dev_dgx_h100.json",
        ("lm loss", "num-zeros"),
    )
    assert summary(r)["lm loss"] == ("drift", 1) and summary(r)["num-zeros"] == ("drift", 1)
    assert r.metrics["lm loss"].max_rel_diff == pytest.approx(0.04221 / 10.82907)
    assert r.metrics["num-zeros"].max_rel_diff == pytest.approx(341 / 3135)
    assert (
        summary(r)["iteration-time"] == ("fail", 30) and not r.metrics["iteration-time"].gated
    )  # A100 is slower; informational


def test_corpus_nondeterministic_case_passes_across_gpus(corpus: Path) -> None:
    case = "gpt/gpt3_mcore_te_tp2_pp1_frozen_resume_torch_dist_cp2_nondeterministic"
    r = corpus_job(
        corpus, case, "golden_values_dev_dgx_h100.json", "golden_values_dev_dgx_a100.json"
    )
    assert (r.verdict, r.nondeterministic, r.metrics["lm loss"].n_differ) == ("pass", True, None)


def test_corpus_different_logging_interval_is_missing(corpus: Path) -> None:
    # the H100 golden logs every step, the A100 one every 5th: steps 2, 3, 4, 6... were never logged
    r = corpus_job(
        corpus,
        "gpt/gpt3_mcore_te_tp1_pp1_dist_optimizer_no_mmap_bin_files",
        "golden_values_dev_dgx_h100.json",
        "golden_values_dev_dgx_a100.json",
    )
    assert summary(r)["lm loss"] == ("missing", 2) and r.verdict == "missing"


def test_corpus_dev_vs_lts_of_the_same_case(corpus: Path) -> None:
    case = "gpt/gpt3_mcore_te_tp1_pp4_resume_torch_dist_swiglu"
    folder = corpus / case
    dev, lts = (
        load_golden(folder / n)
        for n in ("golden_values_dev_dgx_a100.json", "golden_values_lts_dgx_a100.json")
    )
    g, a = dev.metrics["lm loss"], lts.metrics["lm loss"]
    common = np.intersect1d(g.steps, a.steps)
    gv = g.values[np.searchsorted(g.steps, common)]
    av = a.values[np.searchsorted(a.steps, common)]
    rel = np.abs(av - gv) / np.abs(gv)
    r = corpus_job(
        corpus, case, "golden_values_dev_dgx_a100.json", "golden_values_lts_dgx_a100.json"
    )
    m = r.metrics["lm loss"]
    assert m.max_rel_diff == pytest.approx(float(np.nanmax(rel)))
    expected = (
        "fail"
        if np.count_nonzero(rel > 0.05) > 1
        else "missing"
        if len(common) < len(g.steps)
        else "drift"
        if np.any(rel > 0)
        else "pass"
    )
    assert m.verdict == expected == "drift"


# --- resume, repeats, errors --------------------------------------------------------------


def test_ckpt_resume_compares_the_resumed_phase_after_the_resume_step() -> None:
    continuous = make_golden()
    resumed_ok = make_golden()
    resumed_bad = make_golden(lm_loss=lambda s, v: v * 1.5 if s >= 70 else v)
    ok = compare(make_golden(), continuous, resumed=resumed_ok, resume_step=50)
    assert ok.resume is not None and (ok.verdict, ok.resume.verdict, ok.resume.resume_step) == (
        "pass",
        "pass",
        50,
    )
    assert ok.resume.metrics["lm loss"].n_compared == 50
    bad = compare(make_golden(), continuous, resumed=resumed_bad, resume_step=50)
    assert bad.resume is not None and (
        bad.verdict,
        bad.resume.metrics["lm loss"].first_failing_step,
    ) == ("fail", 70)


def test_repeats_are_each_compared_with_mean_and_std() -> None:
    golden = make_golden()
    reps = [make_golden(lm_loss=lambda s, v, k=k: v * (1 + 0.001 * k)) for k in (1, 2)]
    r = compare(golden, make_golden(), repeats=reps, nondeterministic=True)
    assert [(p.label, p.verdict) for p in r.repeats] == [("repeat-2", "pass"), ("repeat-3", "pass")]
    stats = r.repeat_stats["lm loss"]
    assert stats.mean[0] == pytest.approx(10.78 * 1.001)
    assert stats.std[0] == pytest.approx(10.78 * np.std([0, 0.001, 0.002]))
    assert stats.max_rel_dev == pytest.approx(0.001 / 1.001, rel=1e-6)
    assert stats.suggested_rtol == pytest.approx(2 * stats.max_rel_dev)
    bad = compare(golden, make_golden(), repeats=[make_golden(lm_loss=lambda s, v: v * 2)])
    assert (bad.verdict, bad.repeats[0].verdict) == ("fail", "fail")


def test_crashed_run_is_error_and_no_golden_is_its_own_verdict() -> None:
    r = compare(make_golden(), None, error="training exited with code 137")
    assert (r.verdict, r.message, r.metrics, exit_code([r])) == (
        "error",
        "training exited with code 137",
        {},
        1,
    )
    partial = compare(make_golden(), make_golden(n=10), error="training exited with code 1")
    assert (partial.verdict, partial.metrics["lm loss"].verdict) == ("error", "missing")
    new = compare(None, make_golden())
    assert (new.verdict, new.message, exit_code([new])) == (
        "no-golden",
        "no golden yet: the actual values are the proposed golden file",
        0,
    )


# --- inference ----------------------------------------------------------------------------


def inference(
    tokens: list[int], logprobs: list[float], throughput: list[float], mem: int
) -> GoldenValues:
    raw = {
        "0": {"generated_tokens": tokens, "logprobs": logprobs, "generated_text": " And so"},
        "32": {
            "generated_tokens": tokens[::-1],
            "logprobs": logprobs[::-1],
            "generated_text": " It was",
        },
        "throughput": throughput,
        "mem-max-allocated-bytes": mem,
    }
    return GoldenValues(layout="inference", raw=raw)


def test_inference_rules() -> None:
    gated = ("generated_tokens", "logprobs", "throughput", "mem-max-allocated-bytes")
    golden = inference([1, 2, 3], [-1.0, -2.0, -3.0], [5.0, 10.0, 10.0], 1000)
    same = compare(
        golden, inference([1, 2, 3], [-1.0005, -2.0, -3.0], [6.0, 11.0, 9.5], 1000), gated=gated
    )
    assert {k: m.verdict for k, m in same.metrics.items()} == {
        "generated_tokens": "pass", "logprobs": "pass", "generated_text": "pass",
        "throughput": "pass", "mem-max-allocated-bytes": "pass",
    }  # fmt: skip
    assert same.verdict == "pass" and same.metrics["throughput"].actual_stat == pytest.approx(10.25)
    bad = compare(
        golden, inference([1, 9, 3], [-1.0, -2.002, -3.0], [5.0, 8.5, 8.5], 1100), gated=gated
    )
    assert summary(bad) == {
        "generated_tokens": ("fail", 0), "logprobs": ("fail", 0), "generated_text": ("pass", None),
        "throughput": ("fail", None), "mem-max-allocated-bytes": ("fail", None),
    }  # fmt: skip
    assert (
        bad.metrics["generated_tokens"].message
        == "2 of 2 requests differ, first request 0: token 1: 9 vs 2 in the golden"
    )
    assert (
        bad.metrics["logprobs"].message
        == "2 of 2 requests differ, first request 0: logprob 1: -2.002 vs -2 in the golden"
    )
    assert bad.metrics["throughput"].message == (
        "8.5 vs golden 10 (-15.0%), outside approx -0.1/+0.2 of the golden"
    )
    fast = compare(golden, inference([1, 2, 3], [-1.0, -2.0, -3.0], [5.0, 12.5, 12.5], 1000),
                   gated=gated)  # fmt: skip
    assert summary(fast)["throughput"] == ("fail", None)  # 25% faster: refresh the golden
    lost = GoldenValues(layout="inference", raw={"0": {"generated_tokens": [1, 2, 3]}})
    missing = compare(golden, lost, gated=gated)
    assert (missing.verdict, missing.metrics["requests"].message) == (
        "missing",
        "the run's requests differ from the golden's: 1 golden requests not answered (32)",
    )
    extra = GoldenValues(layout="inference", raw={**golden.raw, "99": golden.raw["0"]})
    assert compare(golden, extra, gated=gated).metrics["requests"].verdict == "fail"


def test_corpus_inference_golden_against_itself(corpus: Path) -> None:
    r = corpus_job(
        corpus,
        "gpt/gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq",
        "golden_values_dev_dgx_h100.json",
        "golden_values_dev_dgx_h100.json",
    )
    assert r.verdict == "pass" and r.gated == ("generated_tokens", "logprobs")
    assert r.metrics["logprobs"].n_compared == 1


# --- result.json --------------------------------------------------------------------------


def test_result_round_trip_is_schema_valid(tmp_path: Path) -> None:
    r = compare(
        make_golden(),
        make_golden(lm_loss=lambda s, v: v * 1.06 if s >= 60 else None if s == 3 else v),
        resumed=make_golden(),
        resume_step=50,
        repeats=[make_golden()],
    )
    path = tmp_path / "out" / "result.json"
    write_result(path, r)
    loaded = load_result(path)
    assert loaded.to_dict() == r.to_dict()
    data = json.loads(path.read_text())
    assert data["metrics"]["lm loss"]["first_failing_step"] == 3
    assert len(data["metrics"]["lm loss"]["steps"]) == 100
    assert set(data) >= {"verdict", "case", "environment", "platform", "metrics"}


def test_series_are_downsampled_to_100_points_keeping_the_first_failure() -> None:
    golden = GoldenValues(
        "current",
        {"lm loss": MetricSeries.from_mapping("lm loss", {s: 1.0 for s in range(1, 10001)})},
    )
    actual = GoldenValues(
        "current",
        {
            "lm loss": MetricSeries.from_mapping(
                "lm loss", {s: (2.0 if s == 4242 else 1.0) for s in range(1, 10001)}
            )
        },
    )
    m = compare(golden, actual, gated=("lm loss",)).metrics["lm loss"]
    assert (len(m.steps), m.steps[0], m.steps[-1], 4242 in m.steps, m.verdict) == (
        100,
        1,
        10000,
        True,
        "drift",
    )


def test_load_result_names_the_bad_place(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(
        json.dumps({**compare(make_golden(), make_golden()).to_dict(), "verdict": "passed"})
    )
    with pytest.raises(InputError) as e:
        load_result(path)
    assert str(e.value) == (
        f"{path}::$.verdict: not a ci-golden result: 'passed' is not one of "
        "['pass', 'drift', 'fail', 'missing', 'no-golden', 'skipped', 'error']"
    )


# --- the command --------------------------------------------------------------------------


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    case = tmp_path / "test_cases" / "gpt" / "demo"
    case.mkdir(parents=True)
    (case / "model_config.yaml").write_text(
        "METRICS: [lm loss]\nCI_GOLDEN:\n  metrics:\n    lm loss: {rtol: 0.01}\n"
    )
    write_golden(case / "golden_values_dev_dgx_h100.json", make_golden())
    write_golden(tmp_path / "copy.json", make_golden())
    write_golden(
        tmp_path / "plus3.json", make_golden(lm_loss=lambda s, v: v * 1.03 if s >= 60 else v)
    )
    (tmp_path / "ci_golden.yaml").write_text("test_cases: test_cases\n")
    return tmp_path


def test_cli_compare_text_and_exit_codes(cli: t.Callable[..., t.Any], files: Path) -> None:
    golden = "test_cases/gpt/demo/golden_values_dev_dgx_h100.json"
    ok = cli(
        "compare",
        "--golden",
        golden,
        "--actual",
        "copy.json",
        "--case",
        "test_cases/gpt/demo",
        cwd=files,
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.splitlines()[:2] == [
        "gpt/demo [dev, dgx_h100]: PASS",
        "  lm loss                pass     gated  100 steps within approx rtol=0.01",
    ]
    bad = cli(
        "compare",
        "--golden",
        golden,
        "--actual",
        "plus3.json",
        "--case",
        "test_cases/gpt/demo",
        "--out",
        "out/result.json",
        cwd=files,
    )
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[1] == (
        "  lm loss                fail     gated  41 of 100 steps outside approx rtol=0.01"
        " (step 60: +3.0%), over the budget of 1"
    )
    saved = json.loads((files / "out" / "result.json").read_text())
    assert (saved["verdict"], saved["actual"], saved["case"], saved["golden"]) == (
        "fail",
        "../plus3.json",
        "gpt/demo",
        golden,
    )


def test_cli_compare_policy_override_json_and_allow_drift(
    cli: t.Callable[..., t.Any], files: Path
) -> None:
    (files / "p.yaml").write_text("lm loss: {rtol: 0.05}\n")
    golden = "test_cases/gpt/demo/golden_values_dev_dgx_h100.json"
    args = (
        "compare",
        "--golden",
        golden,
        "--actual",
        "plus3.json",
        "--case",
        "test_cases/gpt/demo",
        "--policy",
        "p.yaml",
        "--format",
        "json",
    )
    drift = cli(*args, cwd=files)
    assert (drift.returncode, json.loads(drift.stdout)["verdict"]) == (1, "drift")
    assert cli(*args, "--allow-drift", cwd=files).returncode == 0


def test_cli_compare_bad_input_is_exit_2_naming_the_file(
    cli: t.Callable[..., t.Any], files: Path
) -> None:
    (files / "empty.json").write_text("")
    r = cli("compare", "--golden", "copy.json", "--actual", "empty.json", cwd=files)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden compare: error: empty.json: zero-byte file: expected a JSON object\n",
    )
    (files / "p.yaml").write_text("lm loss: {rtoll: 1}\n")
    r = cli(
        "compare", "--golden", "copy.json", "--actual", "copy.json", "--policy", "p.yaml", cwd=files
    )
    assert r.returncode == 2 and r.stderr.startswith(
        'ci-golden compare: error: p.yaml::$["lm loss"]: Additional properties are not allowed'
    )


def test_cli_compare_unknown_platform_or_environment_is_exit_2(
    cli: t.Callable[..., t.Any], files: Path
) -> None:
    (files / "ci_golden.yaml").write_text(
        "test_cases: test_cases\nplatforms:\n  dgx_h100: {gpu: H100}\n"
        "environments:\n  dev: {platforms: [dgx_h100]}\n  lts: {platforms: [dgx_h100]}\n"
    )
    base = ("compare", "--golden", "copy.json", "--actual", "copy.json")
    r = cli(*base, "--platform", "dgx_h10", cwd=files)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden compare: error: --platform: unknown platform 'dgx_h10'"
        " (did you mean 'dgx_h100'?)\n",
    )
    r = cli(*base, "--environment", "foo", "--platform", "dgx_h100", cwd=files)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden compare: error: --environment: unknown environment 'foo' (known: dev, lts)\n",
    )
    ok = cli(*base, "--environment", "lts", "--platform", "dgx_h100", cwd=files)
    assert (ok.returncode, ok.stdout.splitlines()[0]) == (0, f"{files.name} [lts, dgx_h100]: PASS")


def test_cli_compare_out_where_no_file_can_be(cli: t.Callable[..., t.Any], files: Path) -> None:
    (files / "README.md").write_text("keep\n")
    base = ("compare", "--golden", "copy.json", "--actual", "copy.json", "--out")
    r = cli(*base, "README.md/x.json", cwd=files)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden compare: error: README.md/x.json: cannot write the file:"
        " README.md is not a folder\n",
    )
    r = cli(*base, "test_cases", cwd=files)
    assert (r.returncode, r.stdout, r.stderr) == (
        2,
        "",
        "ci-golden compare: error: test_cases: cannot write the file: this is a folder\n",
    )
    assert (files / "README.md").read_text() == "keep\n" and not list(files.glob(".*.tmp"))


def test_case_from_folder_and_its_legacy_step_scale(tmp_path: Path) -> None:
    config = load_config(cwd=Path("/nonexistent"))
    case_dir = tmp_path / "test_cases" / "gpt" / "demo"
    case_dir.mkdir(parents=True)
    (case_dir / "model_config.yaml").write_text(
        "MODEL_ARGS:\n  --log-interval: 5\n  --tensorboard-log-interval: 2\n"
    )
    write_golden(case_dir / "golden_values_dev_dgx_h100.json", make_golden())
    case = case_from_folder(str(case_dir), config)
    assert (case.id, case.has_config, case.golden_files) == (
        "gpt/demo",
        True,
        ("golden_values_dev_dgx_h100.json",),
    )
    scale = legacy_step_scale(case.model_config)
    assert (scale("iteration-time"), scale("lm loss"), legacy_step_scale({})("lm loss")) == (
        5,
        2,
        1,
    )
    with pytest.raises(InputError) as e:
        case_from_folder(str(tmp_path / "nope"), config)
    assert str(e.value) == f"{tmp_path / 'nope'}: case folder not found"


def test_dumps_golden_of_actual_is_what_compare_reads(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(dumps_golden(make_golden()))
    assert load_golden(path).same_as(make_golden())
