"""Whether a case is nondeterministic, decided as Megatron-LM's run_ci_test.sh decides it."""

from __future__ import annotations

import typing as t

# ENV_VARS that make a case nondeterministic when set to 1 (Megatron-LM's spelling, typo kept)
NONDETERMINISTIC_VARS = ("NVTE_ALLOW_NONDETERMINISTIC_ALGO", "NON_DETERMINSTIC_RESULTS")


def _is_one(value: t.Any) -> bool:
    """What Megatron-LM's shell script accepts: the YAML scalar 1 or "1", not true or 1.0."""
    return (type(value) is int and value == 1) or value == "1"


def is_nondeterministic(model_config: t.Mapping[str, t.Any]) -> bool:
    """True when exact reproduction cannot be expected (the exact check is then skipped).

    ``CI_GOLDEN.nondeterministic`` decides when set; else, as Megatron-LM's run_ci_test.sh
    decides, ENV_VARS NVTE_ALLOW_NONDETERMINISTIC_ALGO or NON_DETERMINSTIC_RESULTS equal to 1
    (a YAML ``true`` does not count; ``ci-golden validate`` warns about it).
    """
    block = model_config.get("CI_GOLDEN")
    if isinstance(block, t.Mapping) and isinstance(block.get("nondeterministic"), bool):
        return bool(block["nondeterministic"])
    env = model_config.get("ENV_VARS")
    return isinstance(env, t.Mapping) and any(_is_one(env.get(v)) for v in NONDETERMINISTIC_VARS)


def nondeterminism_ignored(model_config: t.Mapping[str, t.Any]) -> list[str]:
    """ENV_VARS that look like they ask for nondeterminism but do not (``true``, ``"yes"``)."""
    env = model_config.get("ENV_VARS")
    if not isinstance(env, t.Mapping):
        return []
    return [
        v
        for v in NONDETERMINISTIC_VARS
        if v in env
        and not _is_one(env[v])
        and str(env[v]).strip().lower() in ("true", "yes", "on", "1.0")
    ]
