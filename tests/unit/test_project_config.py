"""The project config: built-in defaults, ci_golden.yaml, [tool.ci_golden], and its errors."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest

from ci_golden.errors import ConfigError
from ci_golden.project.config import DEFAULTS, SlurmSettings, find_config, load_config


def test_built_in_defaults_fit_a_megatron_tree(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    assert config.source is None
    assert config.test_cases == tmp_path / "tests/functional_tests/test_cases"
    assert list(config.platforms) == ["dgx_h100", "dgx_a100", "dgx_gb200"]
    assert config.environments == {
        "dev": ("dgx_h100", "dgx_a100", "dgx_gb200"),
        "lts": ("dgx_a100",),
    }
    assert config.platforms["dgx_gb200"].gpus_per_node == 4
    assert config.platforms["dgx_h100"].runs_on == ("self-hosted", "linux", "h100")
    assert config.scopes == ("mr", "nightly", "weekly") and config.default_scope == "mr"
    assert config.gated_metrics == ("lm loss", "num-zeros")
    assert DEFAULTS["platforms"]["dgx_h100"]["gpu"] == "H100"  # defaults are not mutated by loading


def test_a_file_replaces_the_keys_it_sets(tmp_path: Path) -> None:
    (tmp_path / "ci_golden.yaml").write_text(
        "test_cases: cases\nplatforms:\n  cpu: {gpu: null, gpus_per_node: 0}\n"
        "environments:\n  dev: {platforms: [cpu]}\n"
    )
    config = load_config(cwd=tmp_path)
    assert config.source == str(tmp_path / "ci_golden.yaml")
    assert config.test_cases == tmp_path / "cases"
    assert list(config.platforms) == ["cpu"]
    assert config.scopes == ("mr", "nightly", "weekly")  # untouched keys keep their defaults
    assert load_config(cwd=tmp_path, test_cases=Path("/x")).test_cases == Path("/x")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_pyproject_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ci_golden]\ntest_cases = "golden"\nscopes = ["mr"]\n'
    )
    assert find_config(tmp_path) == tmp_path / "pyproject.toml"
    config = load_config(cwd=tmp_path)
    assert config.test_cases == tmp_path / "golden"
    assert config.scopes == ("mr",)
    (tmp_path / "ci_golden.yaml").write_text("scopes: [nightly]\ndefault_scope: nightly\n")
    assert load_config(cwd=tmp_path).scopes == ("nightly",)  # ci_golden.yaml wins


def test_validate_section_ignore_paths_and_scope_aliases(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    assert config.ignore_paths == ("docs/**", "**/*.md")
    assert config.validate.baseline == tmp_path / ".ci-golden-baseline.json"
    assert (config.validate.ignore, config.validate.exclude) == (frozenset(), ())
    (tmp_path / "ci_golden.yaml").write_text(
        "scopes: [mr, L2]\nscope_aliases: {nightly: L2}\nignore_paths: ['site/**']\n"
        "validate:\n  ignore: [CG132, CG134]\n  severity: {CG144: warning}\n"
        "  exclude: ['tests/**/old_*']\n  baseline: ci/baseline.json\n"
    )
    config = load_config(cwd=tmp_path)
    assert config.ignore_paths == ("site/**",)
    assert (config.scope("nightly"), config.scope("L2"), config.scope("mr")) == ("L2", "L2", "mr")
    config.check_names("scope", ["nightly", "L2"], "--scope")
    with pytest.raises(ConfigError, match=r"unknown scope 'nighty' \(did you mean 'nightly'\?\)"):
        config.check_names("scope", ["nighty"], "--scope")
    assert config.validate.ignore == frozenset({"CG132", "CG134"})
    assert dict(config.validate.severity) == {"CG144": "warning"}
    assert config.validate.exclude == ("tests/**/old_*",)
    assert config.validate.baseline == tmp_path / "ci/baseline.json"


def test_the_config_schema_knows_every_finding_code() -> None:
    from ci_golden.project.schema import load_schema
    from ci_golden.validate.findings import CODES

    assert load_schema("project_config")["$defs"]["code"]["enum"] == list(CODES)


def test_pyproject_without_the_table_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config(tmp_path) is None
    assert load_config(cwd=tmp_path).source is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("platfroms: {}\n", "unknown key 'platfroms' (did you mean 'platforms'?)"),
        (
            "environments:\n  dev: {platforms: [dgx_h10]}\n",
            "unknown platform 'dgx_h10' (did you mean 'dgx_h100'?)",
        ),
        (
            "default_scope: nighly\n",
            "default_scope 'nighly' is not in scopes (did you mean 'nightly'?)",
        ),
        (
            "platforms:\n  x: {gpu: A100, gpus_per_nod: 8}\n",
            "unknown key 'gpus_per_nod' (did you mean 'gpus_per_node'?)",
        ),
        ("validate: {ignor: [CG132]}\n", "unknown key 'ignor' (did you mean 'ignore'?)"),
        ("validate: {ignore: [CG231]}\n", "unknown value 'CG231' (did you mean 'CG131'?)"),
        (
            "validate: {severity: {CG132: fatal}}\n",
            "unknown value 'fatal' (known: error, warning)",
        ),
        (
            "scope_aliases: {nightly: L2}\n",
            "'nightly' is a scope and an alias of 'L2'",
        ),
        (
            "scopes: [mr, L2]\nscope_aliases: {weekly: L3}\n",
            "alias 'weekly' names scope 'L3', which is not in scopes (known: L2, mr)",
        ),
        ("ignore_path: [docs/**]\n", "unknown key 'ignore_path' (did you mean 'ignore_paths'?)"),
        ("- a list\n", "the config must be a mapping"),
        ("scopes: [mr\n", "invalid YAML: did not find expected ',' or ']'"),
        (
            "metrics: &m {a: *m}\n",
            "a YAML alias refers to a node that contains it (recursive alias); refused",
        ),
    ],
)
def test_config_errors_exit_2_with_a_hint(
    tmp_path: Path, cli: t.Callable[..., t.Any], text: str, message: str
) -> None:
    (tmp_path / "ci_golden.yaml").write_text(text)
    res = cli("list", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stdout == ""
    first = res.stderr.splitlines()[0]
    assert first.startswith(f"ci-golden list: error: {tmp_path / 'ci_golden.yaml'}")
    assert first.endswith(message)
    assert "Traceback" not in res.stderr


def test_slurm_platforms(tmp_path: Path) -> None:
    (tmp_path / "ci_golden.yaml").write_text(
        "platforms:\n"
        "  dgx_h100: {gpu: H100, executor: slurm, slurm: {partition: batch, account: llm,\n"
        "             qos: high, extra: [--exclusive], container_image: nvcr.io/x:1,\n"
        "             container_mounts: [/data:/data], queue_timeout: 7200, poll_interval: 30}}\n"
        "  dgx_a100: {gpu: A100, executor: slurm}\n"
        "  local_a100: {gpu: A100, executor: local}\n"
        "environments:\n  dev: {platforms: [dgx_h100, dgx_a100, local_a100]}\n"
    )
    platforms = load_config(cwd=tmp_path).platforms
    assert (platforms["dgx_h100"].executor, platforms["dgx_h100"].slurm) == (
        "slurm",
        SlurmSettings(
            partition="batch", account="llm", qos="high", extra=("--exclusive",),
            container_image="nvcr.io/x:1", container_mounts=("/data:/data",),
            queue_timeout=7200, poll_interval=30,
        ),
    )  # fmt: skip
    assert (platforms["dgx_a100"].executor, platforms["dgx_a100"].slurm) == (
        "slurm",
        SlurmSettings(queue_timeout=600, poll_interval=5.0),
    )
    assert (platforms["local_a100"].executor, platforms["local_a100"].slurm) == ("local", None)
    assert load_config(cwd=tmp_path / "none").platforms["dgx_h100"].executor == "local"


@pytest.mark.parametrize(
    ("platform", "where", "message"),
    [
        ("{gpu: A100, executor: slrum}", "$.platforms.x.executor",
         "unknown value 'slrum' (did you mean 'slurm'?)"),
        ("{gpu: A100, executor: slurm, slurm: {partion: batch}}", "$.platforms.x.slurm",
         "unknown key 'partion' (did you mean 'partition'?)"),
        ("{gpu: A100, executor: slurm, slurm: {queue_timeout: 0}}",
         "$.platforms.x.slurm.queue_timeout", "0 is less than the minimum of 1"),
        ("{gpu: A100, executor: slurm, slurm: {extra: --exclusive}}", "$.platforms.x.slurm.extra",
         "'--exclusive' is not of type 'array'"),
        ("{gpu: A100, slurm: {partition: batch}}", "$.platforms.x",
         "a slurm: mapping needs executor: slurm (it would be ignored otherwise)"),
    ],
)  # fmt: skip
def test_slurm_settings_errors(
    tmp_path: Path, cli: t.Callable[..., t.Any], platform: str, where: str, message: str
) -> None:
    config = tmp_path / "ci_golden.yaml"
    config.write_text(f"platforms:\n  x: {platform}\nenvironments:\n  dev: {{platforms: [x]}}\n")
    res = cli("list", cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (
        2, "", f"ci-golden list: error: {config}::{where}: {message}\n"
    )  # fmt: skip


def test_config_option_before_and_after_the_command(
    tmp_path: Path, cli: t.Callable[..., t.Any]
) -> None:
    (tmp_path / "other.yaml").write_text("test_cases: nowhere\n")
    for args in (("--config", "other.yaml", "list"), ("list", "--config", "other.yaml")):
        res = cli(*args, cwd=tmp_path)
        assert res.returncode == 2
        assert res.stderr == (
            "ci-golden list: error: nowhere: test-case folder not found "
            "(set test_cases in ci_golden.yaml or pass --test-cases)\n"
        )


def test_unknown_environment_in_a_case_exits_2(tmp_path: Path, cli: t.Callable[..., t.Any]) -> None:
    case = tmp_path / "cases" / "c"
    case.mkdir(parents=True)
    (case / "model_config.yaml").write_text("CI_GOLDEN:\n  environments: [lst]\n")
    res = cli("--test-cases", "cases", "list", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == (
        "ci-golden list: error: cases/c/model_config.yaml: unknown environment 'lst'"
        " (did you mean 'lts'?)\n"
    )


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml", cwd=tmp_path)
