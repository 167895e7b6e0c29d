"""One exception root; the CLI maps these to exit codes in one place."""

from __future__ import annotations


class CiGoldenError(Exception):
    """Base of every expected failure. ``exit_code`` is what the CLI returns."""

    exit_code = 2


class UsageError(CiGoldenError):
    """Bad flags or arguments."""


class InputError(CiGoldenError):
    """Unreadable or invalid input; the message names the file and the place in it."""

    def __init__(self, path: str, message: str, where: str | None = None) -> None:
        self.path = path
        self.where = where
        self.detail = message
        place = f"{path}::{where}" if where else path
        super().__init__(f"{place}: {message}")


class ConfigError(InputError):
    """The project config or a case's config is invalid."""


class RunnerError(CiGoldenError):
    """The runner cannot run this job (wrong GPU, missing tool)."""


class ForgeError(CiGoldenError):
    """The forge API refused or failed a request after retries."""
