from __future__ import annotations

import argparse

HELP = "compare actual metric values with a golden file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--golden", required=True, metavar="G")
    parser.add_argument("--actual", required=True, metavar="A")
    parser.add_argument("--case", metavar="DIR", help="case folder (its model_config.yaml sets METRICS and policies)")
    parser.add_argument("--environment", metavar="E")
    parser.add_argument("--platform", metavar="P")
    parser.add_argument("--policy", metavar="FILE", help="YAML or JSON metric policies overriding all others")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--out", metavar="FILE", help="write the result JSON here")
    parser.add_argument("--allow-drift", action="store_true", help="drift is a warning, exit 0")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("ci-golden compare")
