"""The ``ci-golden`` command line: parse arguments, dispatch, map errors to exit codes.

Each subcommand lives in ``ci_golden.commands.<module>`` with ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported, so that
``ci-golden --help`` loads none of the heavy libraries.

Exit codes: 0 ok; 1 a regression or a lint error; 2 bad input, usage or environment (one line
naming the file); 3 an internal error of ci-golden; 130 interrupted; 141 stdout closed early.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import io
import os
import sys
import traceback
import typing as t

from ci_golden import __version__
from ci_golden.errors import CiGoldenError

# subcommand -> (module under ci_golden.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "validate",
        "check golden files and case configs against their schemas and the tree's rules",
    ),
    "list": ("list_cases", "list the test cases, their jobs and the golden file each job reads"),
    "matrix": ("matrix", "expand the test cases into a CI job matrix"),
    "run": ("run", "run one job of a test case on this runner, collect and compare its metrics"),
    "collect": (
        "collect",
        "turn TensorBoard events, JSONL logs or Megatron log lines into golden values",
    ),
    "compare": ("compare", "compare actual metric values with a golden file"),
    "report": (
        "report",
        "aggregate job results into one Markdown, JUnit, JSON, step-summary or HTML report",
    ),
    "comment": ("comment", "post or update the one report comment on the pull/merge request"),
    "local": (
        "local",
        "run the whole flow on this machine: validate, plan, run the jobs, compare, report",
    ),
    "update": ("update", "write new golden files from the actual values behind job results"),
    "fetch-results": ("fetch_results", "download the results artifacts of a CI run"),
    "migrate": ("migrate", "rewrite legacy list-layout goldens into the current layout"),
    "calibrate": ("calibrate", "recommend tolerances from repeated runs"),
    "prune": ("prune", "list golden files no job reads; delete them with --apply"),
    "import-recipes": (
        "import_recipes",
        "turn Megatron-LM's recipes into each case's CI_GOLDEN jobs and the config's scopes",
    ),
}

EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
_VALUE_OPTIONS = {"--config", "--test-cases"}
# errors of the machine or its files, not of ci-golden: a full disk, a read-only folder, ...
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EMFILE,
}


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="project config (default: ci_golden.yaml, else [tool.ci_golden] in "
        "pyproject.toml, else built-in)",
    )
    parser.add_argument(
        "--test-cases", metavar="DIR", default=default, help="test-case root (overrides the config)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="say more",
    )


def _command_in(argv: t.Sequence[str]) -> str | None:
    """The subcommand named in ``argv``, skipping the values of global options."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif arg in COMMANDS:
            return arg
        elif not arg.startswith("-"):
            return None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the options of ``command`` are loaded (none when it is None)."""
    parser = argparse.ArgumentParser(
        prog="ci-golden",
        description="Golden-value regression tests for GPU model training in GitHub Actions "
        "and GitLab CI.",
    )
    parser.add_argument("--version", action="version", version=f"ci-golden {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(sub_parser, suppress=True)
        if command == name:
            module = importlib.import_module(f"ci_golden.commands.{module_name}")
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that the exit flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: t.Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if isinstance(sys.stdout, io.TextIOWrapper):  # a file name that is not UTF-8 prints escaped
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser(_command_in(argv)).parse_args(argv)
    name = f"ci-golden {args.command}"
    try:
        code: int = args._module.run(args)
        sys.stdout.flush()
    except CiGoldenError as e:
        print(f"{name}: error: {_redact(str(e))}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if e.filename is None and e.errno not in _ENVIRONMENT_ERRNOS:
            return _internal_error(name, e, args.verbose)
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"{name}: error: {_redact(f'{where}{e.strerror or e}')}", file=sys.stderr)
        return 2
    except Exception as e:
        return _internal_error(name, e, args.verbose)
    return code


def _redact(text: str) -> str:
    """``text`` without the secrets of this process's environment, nor credentials in URLs."""
    from ci_golden.project.redact import Redactor

    return Redactor.from_environ(os.environ)(text)


def _internal_error(name: str, e: BaseException, verbose: int) -> int:
    if verbose:
        print(_redact("".join(traceback.format_exception(e))), end="", file=sys.stderr)
    detail = "" if verbose else "; rerun with -v for the traceback"
    print(
        f"{name}: internal error ({type(e).__name__}): a bug in ci-golden, not in your "
        f"input{detail}",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
