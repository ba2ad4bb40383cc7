"""The full side-by-side experiment behind ``benchmarks/RESULTS.md``.

memtrim against the alternatives (every variant of ``memtrim bench``) on the
bundled examples (biomed static and dynamic, cnn, gateway normal and
malformed) and every installed pyperformance benchmark, each run standalone
in a venv with its own requirements.  Seed 003's runner: a warm-up run, N
shuffled repetition blocks, one arena run per pair, ``run_table.csv``
appended as runs end (``--resume`` continues after an interruption).

    .venv/bin/python benchmarks/bench.py                    # the full experiment (hours)
    .venv/bin/python benchmarks/bench.py --resume           # continue it
    .venv/bin/python benchmarks/bench.py --summary-only     # rewrite RESULTS.md from the table
    .venv/bin/python benchmarks/bench.py --pyperformance 6 --workloads gateway \\
        --repeat 3 --partial "only ..."                     # a partial run

The experiment lives in ``--out`` (default ``benchmarks/out/full``, git-ignored);
``RESULTS.md`` and ``results/`` (plots, and a copy of ``run_table.csv``,
``experiment.json`` and ``builds.json``) are written next to this file.
Toolchains, workload venvs and the build cache are in ``./.bench-venvs``.
Run it on a quiet machine: other processes inflate the wall times (not the
peaks, which are per process).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from memtrim.bench.cli_bench import add_bench_parser, cmd_bench  # noqa: E402
from memtrim.bench.summary import write_summary  # noqa: E402

SEED = 20261121
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "full"


def main(argv: list[str] | None = None) -> int:
    """Run (or resume, or only summarize) the experiment; write RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--workloads", nargs="*", default=["examples"],
                    help="examples and applications (default: examples)")
    ap.add_argument("--pyperformance", default="all", help="N or all (default: all)")
    ap.add_argument("--against", default="all")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--cooldown", type=float, default=0.0)
    ap.add_argument("--build-timeout", type=float, default=1200.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--partial", default=None, metavar="TEXT",
                    help="mark RESULTS.md as partial, saying why")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--discussion", type=Path, default=HERE / "RESULTS-discussion.md",
                    metavar="FILE", help="Markdown appended to RESULTS.md after the generated "
                    "summary: the analysis of the figures, written by a person (default: "
                    "%(default)s, if it exists)")
    args = ap.parse_args(argv)

    bench_argv = ["--out", str(args.out)]
    if args.resume:
        bench_argv.append("--resume")
    elif args.summary_only:
        bench_argv.append("--summary-only")
    else:
        bench_argv += [*args.workloads, "--pyperformance", str(args.pyperformance),
                       "--against", args.against, "--repeat", str(args.repeat),
                       "--seed", str(args.seed), "--build-timeout", str(args.build_timeout)]
    if args.cooldown:
        bench_argv += ["--cooldown", str(args.cooldown)]
    parser = argparse.ArgumentParser(prog="memtrim")
    add_bench_parser(parser.add_subparsers(dest="command"))
    bench_args = parser.parse_args(["bench", *bench_argv])
    bench_args.command_line = bench_argv
    code = cmd_bench(bench_args)
    if code not in (0,):
        return code

    shown = list(argv if argv is not None else sys.argv[1:])
    command = shlex.join([".venv/bin/python", "benchmarks/bench.py", *shown])
    saved = args.out / "bench-command.txt"
    if args.resume or args.summary_only:
        # RESULTS.md shows the command that started the experiment
        if saved.is_file():
            command = saved.read_text(encoding="utf-8").strip()
    else:
        saved.write_text(command + "\n", encoding="utf-8")
    try:
        out_shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        out_shown = args.out
    commands = ["make setup", command,
                f"{command.split(' --', 1)[0]} --resume --out {out_shown}   # if interrupted"]
    assets = args.results.parent / "results"
    write_summary(args.out, markdown=args.results, assets=assets, partial=args.partial,
                  commands=commands)
    if args.discussion and args.discussion.is_file():
        with open(args.results, "a", encoding="utf-8") as f:
            f.write("\n" + args.discussion.read_text(encoding="utf-8"))
    for name in ("run_table.csv", "experiment.json", "builds.json"):
        if (args.out / name).is_file():
            shutil.copy2(args.out / name, assets / name)
    print(f"wrote {args.results} and {assets}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
