"""Secrets out of everything ci-golden shows or writes: the one place that decides what is secret.

Two rules, used by every command (dry runs, logs, result.json, reports, comments and errors):

- by name: a variable, flag or URL parameter whose name has a secret word as one of its parts
  (``HF_TOKEN``, ``--wandb-api-key``, ``db_password``, ``X-Amz-Signature``; see
  :func:`is_secret_name`) has its value replaced by ``***``;
- by value: a :class:`Redactor` replaces every value it was given (the tokens of this run, the
  values of secret-named variables), and the forms they take once escaped, wherever they appear;
  and the credentials inside any URL (``https://user:PASSWORD@host``) are replaced too.
"""

from __future__ import annotations

import json
import re
import typing as t
from urllib.parse import quote

MASK = "***"
# a name is secret when one of its parts (split at '-', '_', '.', spaces and camelCase) is one
# of these words; "key" only as the last part (api-key, secret_key), so that flags such as
# --apply-query-key-layer-scaling stay readable
SECRET_WORDS = frozenset(
    {
        "token", "secret", "secrets", "password", "passwd", "pass", "pwd", "passphrase",
        "credential", "credentials", "creds", "auth", "authorization", "cookie", "jwt", "sig",
        "signature", "apikey", "privatekey", "secretkey", "accesskey",
    }
)  # fmt: skip
SECRET_LAST_WORDS = frozenset({"key"})
# the shell's working folders: "pwd" there is print-working-directory, not a password, and hiding
# them would hide every path below the folder a job runs in
NOT_SECRET = frozenset({"PWD", "OLDPWD"})
# ... and words run together: PGPASSWORD, HFTOKEN, wandbapikey
SECRET_ENDINGS = ("token", "password", "passwd", "secret", "apikey")
# values this short, and plain numbers and words such as "true", are not taken for secrets:
# replacing them everywhere would garble logs (a step number, a flag value)
MIN_SECRET_LENGTH = 6
_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_PLAIN = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|true|false|yes|no|none|null",
    re.IGNORECASE,
)
# a URL ends at whitespace, a quote or an angle bracket; inside it, the user part and the query
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@?#]+)@")
# a value ends at the next parameter, or before punctuation that ends the sentence around it
_QUERY_PARAM = re.compile(
    r"(?P<lead>[?&;])(?P<name>[^=&#]+)=(?P<value>[^&#]*?)(?=[:;,.)\]]*(?:[&#]|$))"
)


def is_secret_name(name: str) -> bool:
    """Whether ``name`` (a variable, a ``--flag``, a URL parameter) names a secret.

    ``HF_TOKEN``, ``--hf-token``, ``WANDB_API_KEY``, ``db_password``, ``X-Amz-Credential``,
    ``apiKey`` do; ``TOKENIZERS_PARALLELISM``, ``--tokenizer-type``, ``--max-tokens`` and
    ``--apply-query-key-layer-scaling`` do not.
    """
    if name.strip() in NOT_SECRET:
        return False
    parts = [p.lower() for p in _PARTS.split(name.strip().lstrip("-")) if p]
    if not parts:
        return False
    return (
        any(p in SECRET_WORDS or p.endswith(SECRET_ENDINGS) for p in parts)
        or parts[-1] in SECRET_LAST_WORDS
    )


def _mask_userinfo(m: re.Match[str]) -> str:
    user, colon, _ = m.group("userinfo").partition(":")
    return f"{m.group('scheme')}{user}:{MASK}@" if colon else f"{m.group('scheme')}{MASK}@"


def _mask_param(m: re.Match[str]) -> str:
    if m.group("value") and is_secret_name(m.group("name")):
        return f"{m.group('lead')}{m.group('name')}={MASK}"
    return m.group(0)


def redact_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced: the password (or, without
    one, the whole user part) and the values of secret-named query parameters. Text outside
    URLs is left as it is."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _redact_url(m.group(0)), text)


def _redact_url(url: str) -> str:
    url = _URL_USERINFO.sub(_mask_userinfo, url)
    return _QUERY_PARAM.sub(_mask_param, url) if "?" in url else url


def url_passwords(text: str) -> list[str]:
    """The passwords (or user parts without one) of the URLs in ``text``."""
    found = []
    for url in _URL.findall(text):
        m = _URL_USERINFO.match(url)
        if m:
            user, colon, password = m.group("userinfo").partition(":")
            found.append(password if colon else user)
    return found


def redact_env(env: t.Mapping[str, str]) -> dict[str, str]:
    """Environment variables for display: secret-named ones masked, URL credentials removed."""
    return {k: (MASK if v and is_secret_name(k) else redact_urls(v)) for k, v in env.items()}


def _secret_args(argv: t.Sequence[str]) -> t.Iterator[tuple[int, str]]:
    """(index, secret) for each value of a secret-named flag: ``--hf-token VALUE...`` (every
    value up to the next flag) or ``--hf-token=VALUE``."""
    secret_flag = False
    for i, arg in enumerate(argv):
        if arg.startswith("-") and len(arg) > 1 and not arg[1:2].isdigit():
            name, eq, value = arg.partition("=")
            secret_flag = is_secret_name(name)
            if eq and secret_flag and value:
                yield i, value
            if eq:
                secret_flag = False
        elif secret_flag and arg:
            yield i, arg


def redact_argv(argv: t.Sequence[str]) -> list[str]:
    """``argv`` for display: the values of secret-named flags masked, URL credentials removed."""
    out = [redact_urls(a) for a in argv]
    for i, secret in _secret_args(argv):
        out[i] = out[i].replace(secret, MASK) if out[i] != secret else MASK
    return out


def argv_secrets(argv: t.Sequence[str]) -> list[str]:
    """The values :func:`redact_argv` masks, and the URL passwords in ``argv``."""
    return [s for _, s in _secret_args(argv)] + [p for a in argv for p in url_passwords(a)]


def env_secrets(env: t.Mapping[str, str]) -> list[str]:
    """The values of secret-named variables, and the URL passwords in every value."""
    return [v for k, v in env.items() if v and is_secret_name(k)] + [
        p for v in env.values() for p in url_passwords(v)
    ]


def _forms(secret: str) -> set[str]:
    """``secret`` as it may appear once printed: as is, stripped, and escaped the ways Python
    (``repr``), JSON and URLs escape it."""
    forms = {
        secret,
        secret.strip(),
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def worth_hiding(value: str) -> bool:
    return len(value.strip()) >= MIN_SECRET_LENGTH and not _PLAIN.fullmatch(value.strip())


class Redactor:
    """Replaces known secret values (in every escaped form) and URL credentials by ``***``."""

    def __init__(self, secrets: t.Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    @classmethod
    def from_environ(cls, environ: t.Mapping[str, str]) -> Redactor:
        """A redactor of every secret-named variable of ``environ`` (``GITHUB_TOKEN``,
        ``CI_JOB_TOKEN``, ``CI_REGISTRY_PASSWORD``, ...) and the URL passwords in any of them
        (``CI_REPOSITORY_URL``)."""
        return cls(env_secrets(environ))

    def add(self, secret: str | None) -> None:
        if not secret or not worth_hiding(secret):
            return
        known = set(self._secrets)
        new = [f for f in _forms(secret) if f not in known]
        if new:
            self._secrets = sorted([*self._secrets, *new], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_urls(text)
