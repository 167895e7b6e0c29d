"""`ci-golden fetch-results` against the local GitHub and GitLab API servers, and zip safety."""

from __future__ import annotations

import io
import stat
import typing as t
import zipfile
from pathlib import Path

import pytest
from servers.fixtures import github_api_fixture, gitlab_api_fixture  # noqa: F401

from ci_golden.compare.engine import compare_job
from ci_golden.compare.policy import Policy
from ci_golden.compare.result import dumps_result, load_result
from ci_golden.forge.fetch import Limits, UnsafeArchiveError, safe_extract
from ci_golden.goldens.discover import Job
from ci_golden.goldens.model import GoldenValues, MetricSeries, dumps_golden

if t.TYPE_CHECKING:
    from servers.github_api import GitHubAPIServer
    from servers.gitlab_api import GitLabAPIServer

REPO = "acme/models"


def values(scale: float) -> GoldenValues:
    by_step = {s: scale * (10.0 - s * 0.1) for s in range(1, 21)}
    return GoldenValues("current", {"lm loss": MetricSeries.from_mapping("lm loss", by_step)})


def run_folder(case: str, scale: float) -> dict[str, bytes]:
    """The files of one job's output folder, as the run job uploads them."""
    result = compare_job(
        Job(case, "dev", "cpu", Path(f"test_cases/{case}/golden_values_dev_cpu.json")),
        values(1.0), values(scale),
        policies={"lm loss": Policy("approx", rtol=0.05)}, gated=("lm loss",),
        nondeterministic=False, actual_path="golden_values_dev_cpu.json",
    )  # fmt: skip
    return {
        "result.json": dumps_result(result).encode(),
        "golden_values_dev_cpu.json": dumps_golden(values(scale)).encode(),
        "run/phase1/stdout.log": b"iteration 1/20\n",
    }


def make_zip(files: t.Mapping[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def github_env(api: GitHubAPIServer) -> dict[str, str]:
    return {
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": api.token,
        "CI_GOLDEN_HTTP_BACKOFF": "0",
    }


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_github_run_artifacts_are_listed_across_pages_and_unpacked(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    github_api.add_artifact(
        "acme", "models", 7, "ci-golden-demo__a__dev__cpu", make_zip(run_folder("demo/a", 1.5))
    )
    github_api.add_artifact(
        "acme", "models", 7, "ci-golden-demo__b__dev__cpu", make_zip(run_folder("demo/b", 1.0))
    )
    github_api.add_artifact(
        "acme", "models", 7, "ci-golden-old", make_zip(run_folder("demo/c", 1.0)), expired=True
    )
    for i in range(100):  # more than one page of 100
        github_api.add_artifact(
            "acme", "models", 7, f"coverage-{i:03d}", make_zip({"cov.xml": b"<c/>"})
        )
    github_api.add_artifact(
        "acme", "models", 8, "ci-golden-other-run", make_zip(run_folder("demo/d", 1.0))
    )
    github_api.inject(
        "status", method="GET", path=r"/actions/runs/7/artifacts", status=502, message="Bad Gateway"
    )

    out = tmp_path / "fetched"
    result = cli(
        "fetch-results", "--github-run", "7", "--out", out, "-v", env=github_env(github_api)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"fetched ci-golden-demo__a__dev__cpu (id 1001) -> {out}/ci-golden-demo__a__dev__cpu:"
        " 1 result(s)",
        f"fetched ci-golden-demo__b__dev__cpu (id 1002) -> {out}/ci-golden-demo__b__dev__cpu:"
        " 1 result(s)",
        "skipped ci-golden-old (id 1003): expired",
    ]
    assert lines[3] == "skipped coverage-000 (id 1004): not kept: no result.json"
    assert len(lines) == 3 + 100 + 1
    assert lines[-1] == f"2 result(s) in {out}; refresh with: ci-golden update {out}"
    assert tree(out) == [
        "ci-golden-demo__a__dev__cpu/golden_values_dev_cpu.json",
        "ci-golden-demo__a__dev__cpu/result.json",
        "ci-golden-demo__a__dev__cpu/run/phase1/stdout.log",
        "ci-golden-demo__b__dev__cpu/golden_values_dev_cpu.json",
        "ci-golden-demo__b__dev__cpu/result.json",
        "ci-golden-demo__b__dev__cpu/run/phase1/stdout.log",
    ]
    assert load_result(out / "ci-golden-demo__a__dev__cpu/result.json").verdict == "fail"
    assert "retrying GET" in result.stderr
    assert github_api.token not in result.stderr + result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["fetched"]  # no staging folder left


def test_only_failing_keeps_results_that_did_not_pass(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    github_api.add_artifact("acme", "models", 7, "ci-golden-a", make_zip(run_folder("demo/a", 1.5)))
    github_api.add_artifact("acme", "models", 7, "ci-golden-b", make_zip(run_folder("demo/b", 1.0)))
    both = {
        **{f"x/{k}": v for k, v in run_folder("demo/x", 1.0).items()},
        **{f"y/{k}": v for k, v in run_folder("demo/y", 2.0).items()},
    }
    github_api.add_artifact("acme", "models", 7, "ci-golden-report", make_zip(both))
    out = tmp_path / "out"
    result = cli(
        "fetch-results",
        "--github-run",
        "7",
        "--out",
        out,
        "--only-failing",
        env=github_env(github_api),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"fetched ci-golden-a (id 1001) -> {out}/ci-golden-a: 1 result(s)",
        "skipped ci-golden-b (id 1002): not kept: all 1 result(s) pass",
        f"fetched ci-golden-report (id 1003) -> {out}/ci-golden-report:"
        " 1 of 2 result(s) kept (not pass)",
        f"2 result(s) in {out}; refresh with: ci-golden update {out}",
    ]
    assert [p for p in tree(out) if p.endswith("result.json")] == [
        "ci-golden-a/result.json",
        "ci-golden-report/y/result.json",
    ]


def test_gitlab_pipeline_and_its_child_pipelines(
    gitlab_api: GitLabAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    gitlab_api.add_job(
        "acme/models", 100, "generate", artifacts=make_zip({"child-pipeline.yml": b"x: 1\n"})
    )
    gitlab_api.add_bridge("acme/models", 100, "golden-tests", 200)
    gitlab_api.add_job(
        "acme/models",
        200,
        "demo/a dev cpu",
        artifacts=make_zip(run_folder("demo/a", 1.5), "ci-golden-out/demo__a__dev__cpu/"),
    )
    gitlab_api.add_job(
        "acme/models",
        200,
        "demo/b dev cpu",
        artifacts=make_zip(run_folder("demo/b", 1.0), "ci-golden-out/demo__b__dev__cpu/"),
    )
    gitlab_api.add_job("acme/models", 200, "lint", artifacts=None)
    gitlab_api.add_job(
        "acme/models", 300, "unrelated", artifacts=make_zip(run_folder("demo/z", 1.0))
    )
    env = {
        "CI_API_V4_URL": gitlab_api.url,
        "CI_GOLDEN_GITLAB_TOKEN": gitlab_api.token,
        "CI_GOLDEN_HTTP_BACKOFF": "0",
    }
    out = tmp_path / "out"
    result = cli(
        "fetch-results",
        "--gitlab-pipeline",
        "100",
        "--project",
        "acme/models",
        "--out",
        out,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "skipped generate (id 501): not kept: no result.json",
        "skipped lint (id 505): no artifacts archive",
        f"fetched demo/b dev cpu (id 504) -> {out}/demo_b_dev_cpu: 1 result(s)",
        f"fetched demo/a dev cpu (id 503) -> {out}/demo_a_dev_cpu: 1 result(s)",
        f"2 result(s) in {out}; refresh with: ci-golden update {out}",
    ]
    assert "demo_a_dev_cpu/ci-golden-out/demo__a__dev__cpu/result.json" in tree(out)


def evil_zips() -> dict[str, bytes]:
    good = run_folder("demo/a", 1.5)
    return {
        "dotdot": make_zip({**good, "../../outside.txt": b"pwned"}),
        "oversized": make_zip({**good, "big.bin": b"\0" * 50_000}),
    }


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "dotdot",
            "artifact 'ci-golden-evil' (id 1002): entry '../../outside.txt'"
            " leaves the output folder ('..'); refused",
        ),
        (
            "oversized",
            "artifact 'ci-golden-evil' (id 1002): entry 'big.bin' is 50000 bytes,"
            " over the limit of 10000 per entry; refused",
        ),
    ],
)
def test_unsafe_archives_are_refused_and_nothing_is_written(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any, kind: str, message: str
) -> None:
    github_api.add_artifact(
        "acme", "models", 7, "ci-golden-ok", make_zip(run_folder("demo/b", 1.0))
    )
    github_api.add_artifact("acme", "models", 7, "ci-golden-evil", evil_zips()[kind])
    work = tmp_path / "work"
    work.mkdir()
    result = cli(
        "fetch-results",
        "--github-run",
        "7",
        "--out",
        "out",
        "--max-entry-bytes",
        "10000",
        cwd=work,
        env=github_env(github_api),
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"ci-golden fetch-results: error: {message}\n"
    assert list(work.iterdir()) == []
    assert list(tmp_path.rglob("outside.txt")) == []


def zip_with(infos: t.Sequence[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in infos:
            zf.writestr(info, data)
    return buf.getvalue()


def lying_header(data: bytes, declared: int) -> bytes:
    """A stored entry whose headers claim ``declared`` bytes while ``data`` is longer."""
    raw = bytearray(zip_with([(zipfile.ZipInfo("a.bin"), data)]))
    real = len(data).to_bytes(4, "little")
    fake = declared.to_bytes(4, "little")
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(sig)
        assert raw[at + offset : at + offset + 4] == real
        raw[at + offset : at + offset + 4] = fake
    return bytes(raw)


def symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            zip_with([(zipfile.ZipInfo("/etc/passwd"), b"x")]),
            "entry '/etc/passwd' has an absolute path; refused",
        ),
        (
            zip_with([(zipfile.ZipInfo("C:/x.txt"), b"x")]),
            "entry 'C:/x.txt' has an absolute path; refused",
        ),
        (
            zip_with([(zipfile.ZipInfo("a\\..\\..\\x"), b"x")]),
            "entry 'a\\\\..\\\\..\\\\x' leaves the output folder ('..'); refused",
        ),
        (zip_with([(symlink_entry(), b"/etc/passwd")]), "entry 'link' is a symbolic link; refused"),
        (
            zip_with([(zipfile.ZipInfo("a"), b"1"), (zipfile.ZipInfo("./a"), b"2")]),
            "entry './a' appears twice; refused",
        ),
        (
            make_zip({f"f{i}": b"x" * 3000 for i in range(5)}),
            "entries add up to over 10000 bytes; refused",
        ),
        (lying_header(b"y" * 5000, 10), "entry 'a.bin' is corrupt: Bad CRC-32 for file 'a.bin'"),
        (b"not a zip", "not a zip archive: File is not a zip file"),
    ],
)
def test_safe_extract_refusals(tmp_path: Path, data: bytes, message: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError) as e:
        safe_extract(data, dest, archive="a.zip", limits=Limits(entry=4000, total=10_000))
    assert str(e.value) == f"a.zip: {message}"
    assert not (tmp_path / "etc").exists() and not (tmp_path / "x").exists()


def test_sizes_are_counted_on_the_decompressed_bytes(tmp_path: Path) -> None:
    """A header that under-states an entry's size cannot smuggle more bytes past the limit."""
    data = lying_header(b"z" * 50_000, 100)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(data, tmp_path, archive="a.zip", limits=Limits(entry=1000, total=2000))
    assert all(p.stat().st_size <= 1000 for p in tmp_path.rglob("*") if p.is_file())


def test_missing_repository_or_token_is_a_usage_error(tmp_path: Path, cli: t.Any) -> None:
    no_repo = cli(
        "fetch-results",
        "--github-run",
        "1",
        env={"GITHUB_REPOSITORY": "", "GITHUB_TOKEN": "x" * 10},
        cwd=tmp_path,
    )
    assert (no_repo.returncode, no_repo.stderr) == (
        2,
        "ci-golden fetch-results: error: no repository:"
        " pass --repo OWNER/NAME or set GITHUB_REPOSITORY\n",
    )
    no_token = cli(
        "fetch-results",
        "--gitlab-pipeline",
        "1",
        "--project",
        "5",
        env={"CI_GOLDEN_GITLAB_TOKEN": "", "GITLAB_TOKEN": ""},
        cwd=tmp_path,
    )
    assert (no_token.returncode, no_token.stderr) == (
        2,
        "ci-golden fetch-results: error: no token: set CI_GOLDEN_GITLAB_TOKEN to a project "
        "or personal access token with the read_api scope\n",
    )


def test_a_wrong_token_fails_without_showing_it(
    github_api: GitHubAPIServer, tmp_path: Path, cli: t.Any
) -> None:
    secret = "ghp_wrongtoken0123456789"
    env = {**github_env(github_api), "GITHUB_TOKEN": secret}
    result = cli("fetch-results", "--github-run", "7", "-v", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("ci-golden fetch-results: error: ")
    assert "401" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []
