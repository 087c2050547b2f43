"""``msslam``: the command-line entry point. Each verb lives in its own module under ``cli/``.

A verb module defines ``add_parser(subparsers) -> argparse.ArgumentParser`` and sets
``func=run`` on it, where ``run(args) -> int`` returns the exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# verb -> module under metric_semantic_slam.cli (imported lazily so `msslam --help` stays fast
# and one verb's heavy imports never slow another).
VERBS: dict[str, str] = {
    "simulate": "simulate",
    "reconstruct": "reconstruct",
    "eval": "evaluate",
    "convert": "convert",
    "play": "play",
    "record": "record",
    "launch": "launch",
    "render": "render",
    "query": "query",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msslam", description="metric_semantic_slam command line")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, module in VERBS.items():
        mod = importlib.import_module(f"metric_semantic_slam.cli.{module}")
        p = mod.add_parser(sub)
        p.set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
