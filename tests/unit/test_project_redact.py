"""What counts as a secret, and how each form of it is hidden."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from ci_golden.project.redact import (
    Redactor,
    argv_secrets,
    env_secrets,
    is_secret_name,
    redact_argv,
    redact_env,
    redact_urls,
)


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN", "--hf-token", "GITHUB_TOKEN", "CI_JOB_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "WANDB_API_KEY", "--wandb-api-key", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "apiKey",
        "db_password", "PGPASSWORD", "HFTOKEN", "DB_PASS", "--password", "MY_SECRET",
        "X-Amz-Signature", "X-Amz-Credential", "sig", "CI_JOB_JWT_V2", "SESSION_COOKIE",
        "NGC_API_KEY", "private_key", "--auth", "GOOGLE_APPLICATION_CREDENTIALS",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "TOKENIZERS_PARALLELISM", "--tokenizer-type", "--tokenizer-model", "--max-tokens-to-oom",
        "--num-tokens-to-generate", "--apply-query-key-layer-scaling",
        "CUDA_DEVICE_MAX_CONNECTIONS", "NVTE_ALLOW_NONDETERMINISTIC_ALGO", "--data-path",
        "CI_COMMIT_AUTHOR", "--passes", "", "--", "PWD", "OLDPWD",
    ],
)  # fmt: skip
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_urls_lose_their_credentials() -> None:
    assert redact_urls("postgres://ml:s3cret-pw@db.internal:5432/runs") == (
        "postgres://ml:***@db.internal:5432/runs"
    )
    assert redact_urls("clone https://ghp_abcdef0123456789@github.com/o/r.git now") == (
        "clone https://***@github.com/o/r.git now"
    )
    assert (
        redact_urls(
            "GET https://blob.example/a.zip?sv=2021&sig=abc%2Bdef&X-Amz-Credential=AKIA/x&page=2"
        )
        == "GET https://blob.example/a.zip?sv=2021&sig=***&X-Amz-Credential=***&page=2"
    )
    assert redact_urls("GET https://s.example/a.zip?sig=abc: timed out.") == (
        "GET https://s.example/a.zip?sig=***: timed out."
    )
    assert redact_urls("https://api.github.com/repos/o/r?per_page=100") == (
        "https://api.github.com/repos/o/r?per_page=100"
    )
    assert redact_urls("mail alice@example.com, see https://x.example/a@b") == (
        "mail alice@example.com, see https://x.example/a@b"
    )
    # outside a URL nothing is touched, whatever it looks like (minified JavaScript, say)
    text = 'a?token=x;t.key=5&password=y; fetch("https://cdn.example/p.js?v=2")'
    assert redact_urls(text) == text
    assert (
        redact_urls('<a href="https://u:p4ss@h/x?sig=abc">')
        == '<a href="https://u:***@h/x?sig=***">'
    )


def test_environment_by_name_and_by_url() -> None:
    env = {
        "HF_TOKEN": "hf_abcdefghijk",
        "TOKENIZERS_PARALLELISM": "false",
        "DATABASE_URL": "postgresql://user:pa55word!@db/x",
        "EMPTY_TOKEN": "",
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
    }
    assert redact_env(env) == {
        "HF_TOKEN": "***",
        "TOKENIZERS_PARALLELISM": "false",
        "DATABASE_URL": "postgresql://user:***@db/x",
        "EMPTY_TOKEN": "",
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
    }
    assert env_secrets(env) == ["hf_abcdefghijk", "pa55word!"]


def test_argv_values_of_secret_flags() -> None:
    argv = [
        "torchrun", "--nproc_per_node", "8", "pretrain_gpt.py", "--tokenizer-type",
        "GPT2BPETokenizer", "--hf-token", "hf_abcdefghijk", "--wandb-api-key=wandb0123456789",
        "--keys", "a", "--client-secrets", "one-secret", "two-secret", "--lr", "-1e-5",
        "--data-path", "s3://reader:s3cretkey@bucket/data", "--use-auth", "--bf16",
    ]  # fmt: skip
    assert redact_argv(argv) == [
        "torchrun", "--nproc_per_node", "8", "pretrain_gpt.py", "--tokenizer-type",
        "GPT2BPETokenizer", "--hf-token", "***", "--wandb-api-key=***",
        "--keys", "a", "--client-secrets", "***", "***", "--lr", "-1e-5",
        "--data-path", "s3://reader:***@bucket/data", "--use-auth", "--bf16",
    ]  # fmt: skip
    assert argv_secrets(argv) == [
        "hf_abcdefghijk", "wandb0123456789", "one-secret", "two-secret", "s3cretkey",
    ]  # fmt: skip


def test_redactor_hides_every_escaped_form() -> None:
    secret = 'tok"en\n\tvalue-ü'
    redact = Redactor([secret])
    for form in (
        secret,
        secret.strip(),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        secret.encode("unicode_escape").decode("ascii"),
    ):
        assert redact(f"before {form} after") == "before *** after", form


def test_redactor_longest_first_and_short_or_plain_values_kept() -> None:
    redact = Redactor(["abcd1234", "abcd1234efgh", "abc", "12345678", "true", "1.5e-3"])
    assert redact("x abcd1234efgh y abcd1234 abc 12345678 true") == (
        "x *** y *** abc 12345678 true"
    )
    assert redact("see https://u:pw1234@h/x") == "see https://u:***@h/x"


def test_redactor_from_environ() -> None:
    redact = Redactor.from_environ(
        {
            "GITHUB_TOKEN": "ghs_0123456789abcdef",
            "CI_REPOSITORY_URL": "https://gitlab-ci-token:glcbt-64_abcdef@gitlab.com/g/p.git",
            "HOME": "/home/runner",
        }
    )
    assert redact("ghs_0123456789abcdef and glcbt-64_abcdef in /home/runner") == (
        "*** and *** in /home/runner"
    )
