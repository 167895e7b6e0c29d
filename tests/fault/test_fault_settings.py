"""Settings that are numbers: a NaN, an infinity or a negative tolerance is refused by the JSON
Schemas themselves (checked with check-jsonschema, a validator that is not ours) and by every
command that reads them; numeric CLI options refuse NaN and infinity too. Before, a NaN rtol
passed validate, then crashed run (leaving no result.json) and compare."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CliResult, run_cli

BAD_TOLERANCES = [
    (".nan", "nan is not a finite number"),
    (".inf", "inf is not a finite number"),
    ("-.inf", "-inf is not a finite number"),
    ("1.0e+400", "inf is not a finite number"),
    ("-0.5", "-0.5 is less than the minimum of 0"),
]


@pytest.fixture()
def tree(tmp_path: Path, repo_root: Path) -> Path:
    shutil.copy(repo_root / "ci_golden.yaml", tmp_path / "ci_golden.yaml")
    shutil.copytree(repo_root / "test_cases" / "demo", tmp_path / "test_cases" / "demo")
    return tmp_path


def one_line(res: CliResult, code: int = 2) -> str:
    assert res.returncode == code, res
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.rstrip("\n")


@pytest.mark.parametrize(("value", "message"), BAD_TOLERANCES)
@pytest.mark.parametrize("field", ["rtol", "atol"])
def test_the_project_config_refuses_the_tolerance(
    tree: Path, repo_root: Path, field: str, value: str, message: str
) -> None:
    config = tree / "ci_golden.yaml"
    config.write_text(config.read_text() + f"metrics:\n  lm loss: {{{field}: {value}}}\n")
    checked = subprocess.run(
        [
            sys.executable, "-m", "check_jsonschema",
            "--schemafile", str(repo_root / "schemas/project_config.schema.json"), str(config),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 1, checked.stdout
    where = f'{config}::$.metrics["lm loss"].{field}'
    for command in ("validate", "list"):
        assert (
            one_line(run_cli(command, cwd=tree))
            == f"ci-golden {command}: error: {where}: {message}"
        )
    golden = "test_cases/demo/regular/golden_values_dev_cpu.json"
    res = run_cli("compare", "--golden", golden, "--actual", golden, cwd=tree)
    assert one_line(res) == f"ci-golden compare: error: {where}: {message}"
    res = run_cli("run", "demo/regular", "--environment", "dev", "--platform", "cpu", cwd=tree)
    assert one_line(res) == f"ci-golden run: error: {where}: {message}"


@pytest.mark.parametrize(("value", "message"), BAD_TOLERANCES)
def test_a_case_block_refuses_the_tolerance(tree: Path, value: str, message: str) -> None:
    config = tree / "test_cases/demo/regular/model_config.yaml"
    text = config.read_text()
    line = len(text.splitlines()) + 2  # the line of "lm loss" below
    config.write_text(text + f"  metrics:\n    lm loss: {{rtol: {value}}}\n")
    res = run_cli("validate", cwd=tree)
    assert res.returncode == 1
    where = '$.CI_GOLDEN.metrics["lm loss"].rtol'
    found = message.replace("minimum of 0", "minimum 0")  # validate's own wording
    assert (
        f"test_cases/demo/regular/model_config.yaml:{line}: CG141 error: {where}: {found}"
        in res.stdout.splitlines()
    )
    golden = "test_cases/demo/regular/golden_values_dev_cpu.json"
    res = run_cli(
        "compare", "--golden", golden, "--actual", golden, "--case", config.parent, cwd=tree
    )
    assert one_line(res) == f"ci-golden compare: error: {config}::{where}: {message}"
    res = run_cli("run", "demo/regular", "--environment", "dev", "--platform", "cpu", cwd=tree)
    assert one_line(res) == f"ci-golden run: error: {config}::{where}: {message}"
    assert not (tree / "ci-golden-out").exists()


@pytest.mark.parametrize(("value", "message"), BAD_TOLERANCES)
def test_a_policy_file_refuses_the_tolerance(tree: Path, value: str, message: str) -> None:
    policy = tree / "policy.yaml"
    policy.write_text(f"mem-*: {{kind: upper, atol: {value}}}\n")
    golden = "test_cases/demo/regular/golden_values_dev_cpu.json"
    res = run_cli("compare", "--golden", golden, "--actual", golden, "--policy", policy, cwd=tree)
    assert one_line(res) == f'ci-golden compare: error: {policy}::$["mem-*"].atol: {message}'


def test_a_negative_or_huge_budget_and_window(tree: Path) -> None:
    policy = tree / "policy.yaml"
    golden = "test_cases/demo/regular/golden_values_dev_cpu.json"
    for body, where, message in (
        ("{budget: -1}", ".budget", "-1 is less than the minimum of 0"),
        ("{budget: .nan}", ".budget", "nan is not a finite number"),
        ("{window: [0, .inf]}", ".window[1]", "inf is not a finite number"),
    ):
        policy.write_text(f"lm loss: {body}\n")
        res = run_cli(
            "compare", "--golden", golden, "--actual", golden, "--policy", policy, cwd=tree
        )
        assert (
            one_line(res) == f'ci-golden compare: error: {policy}::$["lm loss"]{where}: {message}'
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--safety", "nan"],
            "--safety must be a finite number >= 1 and --floor a finite number >= 0",
        ),
        (
            ["--safety", "inf"],
            "--safety must be a finite number >= 1 and --floor a finite number >= 0",
        ),
        (
            ["--safety", "0.5"],
            "--safety must be a finite number >= 1 and --floor a finite number >= 0",
        ),
        (
            ["--floor", "nan"],
            "--safety must be a finite number >= 1 and --floor a finite number >= 0",
        ),
        (
            ["--floor=-1e-9"],
            "--safety must be a finite number >= 1 and --floor a finite number >= 0",
        ),
    ],
)
def test_calibrate_options(tree: Path, args: list[str], message: str) -> None:
    golden = "test_cases/demo/regular/golden_values_dev_cpu.json"
    assert (
        one_line(run_cli("calibrate", golden, *args, cwd=tree))
        == f"ci-golden calibrate: error: {message}"
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e999"])
def test_run_grace(tree: Path, value: str) -> None:
    res = run_cli(
        "run", "demo/regular", "--environment", "dev", "--platform", "cpu", "--grace", value,
        cwd=tree,
    )  # fmt: skip
    shown = "inf" if value == "1e999" else str(float(value))
    assert one_line(res) == (
        f"ci-golden run: error: --grace {shown}: expected a finite number of seconds >= 0"
    )


def test_a_valid_tolerance_still_passes(tree: Path) -> None:
    config = tree / "ci_golden.yaml"
    config.write_text(config.read_text() + "metrics:\n  lm loss: {rtol: 0.0, atol: 1.0e+300}\n")
    assert run_cli("validate", cwd=tree).returncode == 0


def test_rtol_up_and_the_slurm_poll_interval_are_finite(tree: Path) -> None:
    policy = tree / "policy.yaml"
    policy.write_text("throughput: {kind: approx, rtol_up: .nan}\n")
    golden = "test_cases/demo/regular/golden_values_dev_cpu.json"
    res = run_cli("compare", "--golden", golden, "--actual", golden, "--policy", policy, cwd=tree)
    assert one_line(res) == (
        f"ci-golden compare: error: {policy}::$.throughput.rtol_up: nan is not a finite number"
    )
    config = tree / "ci_golden.yaml"
    config.write_text(
        config.read_text().replace(
            "  cpu:\n", "  cluster:\n    gpu: null\n    executor: slurm\n"
            "    slurm: {poll_interval: .inf}\n  cpu:\n", 1
        )
    )  # fmt: skip
    assert one_line(run_cli("validate", cwd=tree)) == (
        f"ci-golden validate: error: {config}::$.platforms.cluster.slurm.poll_interval: "
        "inf is not a finite number"
    )
