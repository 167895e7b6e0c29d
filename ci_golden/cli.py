"""The ``ci-golden`` command line: parse arguments, dispatch, map errors to exit codes.

Each subcommand lives in ``ci_golden.commands.<name>`` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Command modules import heavy libraries inside ``run`` so that
``ci-golden --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing as t

from ci_golden import __version__

# subcommand name -> module under ci_golden.commands
COMMANDS: dict[str, str] = {
    "validate": "validate",
    "list": "list_cases",
    "matrix": "matrix",
    "run": "run",
    "collect": "collect",
    "compare": "compare",
    "report": "report",
    "comment": "comment",
    "local": "local",
    "update": "update",
    "fetch-results": "fetch_results",
    "migrate": "migrate",
    "calibrate": "calibrate",
    "prune": "prune",
}


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="project config (default: ci_golden.yaml, else [tool.ci_golden] in pyproject.toml, else built-in)",
    )
    parser.add_argument(
        "--test-cases", metavar="DIR", default=default, help="test-case root (overrides the config)"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0, help="say more"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ci-golden",
        description="Golden-value regression tests for GPU model training in GitHub Actions and GitLab CI.",
    )
    parser.add_argument("--version", action="version", version=f"ci-golden {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"ci_golden.commands.{module_name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        _global_options(command, suppress=True)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ci_golden.errors import CiGoldenError

    try:
        code: int = args._module.run(args)
    except CiGoldenError as e:
        print(f"ci-golden {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: keep the traceback
            raise
        print(f"ci-golden {args.command}: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ci-golden {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
