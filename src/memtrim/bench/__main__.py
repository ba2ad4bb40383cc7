"""``python -m memtrim.bench``: the ``memtrim bench`` command without the main CLI."""

from __future__ import annotations

import argparse
import sys

from .cli_bench import add_bench_parser, cmd_bench


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``memtrim bench`` would, and run it."""
    parser = argparse.ArgumentParser(prog="memtrim")
    sub = parser.add_subparsers(dest="command")
    add_bench_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(["bench", *argv])
    args.command_line = argv  # shown in the summary's "reproduce" block
    return cmd_bench(args)


if __name__ == "__main__":
    sys.exit(main())
