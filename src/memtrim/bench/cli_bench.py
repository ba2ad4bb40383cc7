"""``memtrim bench``: the command line (parsing here, the work in ``runner`` and ``summary``)."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import signal
import sys
from pathlib import Path

__all__ = ["add_bench_parser", "cmd_bench"]

EXIT_OK, EXIT_USAGE = 0, 2

_DESCRIPTION = """\
Run memtrim against the alternatives on the same workloads, in one experiment
(seed 003's runner): each variant is built once (cached by content hash, with a
time limit), run once to warm up, then measured in N repetitions whose order is
shuffled with a recorded seed, with an optional cool-down pause between runs.
Every run is appended to OUT/run_table.csv as it ends; --resume continues an
interrupted experiment. OUT/summary.md and OUT/plots/ hold the tables and
figures: peak RSS (median of N), reducible footprint, wall time (median, and the
median pairwise ratio to the original), CPU time, output identical (yes/no),
arenas and pools, energy and LLC misses where the hardware exposes them.

WORKLOAD: an example (biomed, cnn, gateway, or 'examples' for all three),
pyperf:NAME for one pyperformance benchmark, or a path to an application with a
memtrim.toml. Toolchains and workload venvs are made under --home (default
./.bench-venvs) with pinned versions from the package index."""

_EPILOG = """\
variants: cpython (the original), cpython-OO, lazy-imports, minifier, mypyc,
cython, nuitka, pypy, memtrim-safe, memtrim-specialize (or 'all')

examples:
  memtrim bench gateway cnn --against cpython-OO,memtrim-safe --repeat 3
  memtrim bench examples --pyperformance 40 --against all --repeat 5 --out bench/full
  memtrim bench --resume --out bench/full
  memtrim bench --summary-only --out bench/full --markdown RESULTS.md
"""


def add_bench_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``memtrim``'s subparsers; return its parser."""
    p = sub.add_parser(
        "bench",
        help="measure memtrim against CPython flags, minifiers and compilers, side by side",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                   help="examples, pyperf:NAME or application paths (see above)")
    p.add_argument("--against", default="all", metavar="LIST",
                   help="comma-separated variants to compare with the original (default: all)")
    p.add_argument("--pyperformance", default=None, metavar="N|all",
                   help="add the first N pyperformance benchmarks (the paper's first), or all")
    p.add_argument("--repeat", type=int, default=5, metavar="N",
                   help="measured repetitions per variant and workload (default 5)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="experiment directory (default: benchmarks/out/bench-DATE)")
    p.add_argument("--resume", action="store_true",
                   help="continue the experiment in --out (its stored settings win)")
    p.add_argument("--cooldown", type=float, default=0.0, metavar="S",
                   help="pause after every run, in seconds (default 0)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the run order (default: random, recorded)")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the warm-up runs (the original's reference run is always made)")
    p.add_argument("--no-arenas", action="store_true",
                   help="skip the separate arena runs (Table 3)")
    p.add_argument("--build-timeout", type=float, default=1200.0, metavar="S",
                   help="time limit of one variant's build for one app (default 1200)")
    p.add_argument("--rebuild-failed", action="store_true",
                   help="retry builds that failed in an earlier experiment")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="parallel compiler jobs in builds (default 1: the machine is shared)")
    p.add_argument("--home", type=Path, default=None, metavar="DIR",
                   help="venvs, toolchains and build cache (default ./.bench-venvs, or "
                        "$MEMTRIM_BENCH_HOME)")
    p.add_argument("--pypy", default=None, metavar="PATH", help="a pypy3 executable to use")
    p.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                   help="also write the summary Markdown here (plots next to it, in "
                        "FILE's folder/results/)")
    p.add_argument("--partial-note", default=None, metavar="TEXT",
                   help="a note printed at the top of the summary (e.g. why it is partial)")
    p.add_argument("--summary-only", action="store_true",
                   help="do not run anything: rewrite the summary of --out")
    p.add_argument("--list", action="store_true",
                   help="list the variants with their availability, and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return p


def _fail(message: str) -> int:
    sys.stderr.write(f"memtrim: error: {message}\n")
    return EXIT_USAGE


def _say(quiet: bool):
    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return say


def _default_out() -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("benchmarks") / "out" / f"bench-{stamp}"


def cmd_bench(args: argparse.Namespace) -> int:
    """``memtrim bench``: build, run (or resume) and summarize an experiment."""
    import random

    from .envs import BenchHome
    from .runner import ExperimentConfig, execute_experiment, machine_info
    from .summary import write_summary
    from .variants import BuildContext, get_variants
    from .workloads import resolve_workloads

    say = _say(args.quiet)
    home = BenchHome(args.home)
    if args.list:
        ctx = BuildContext(home=home, pypy=args.pypy)
        for v in get_variants(["all"]):
            why = v.available(ctx)
            print(f"{v.name:20s} {'available' if why is None else 'unavailable: ' + why}"
                  f"  ({v.description})")
        return EXIT_OK
    if args.summary_only or args.resume:
        if args.out is None:
            return _fail("--resume and --summary-only need --out DIR")
        meta = args.out / "experiment.json"
        if not meta.is_file():
            return _fail(f"{meta} not found: nothing to resume or summarize")
    argv = getattr(args, "command_line", None)
    if argv is None and sys.argv[1:2] == ["bench"]:
        argv = sys.argv[2:]
    commands = [shlex.join(["memtrim", "bench", *argv])] if argv is not None else []
    if args.summary_only:
        md = write_summary(args.out, partial=args.partial_note)
        _extra_markdown(args, args.out)
        say(f"wrote {md}")
        return EXIT_OK
    if args.repeat < 1 or args.cooldown < 0 or args.build_timeout <= 0 or args.jobs < 1:
        return _fail("--repeat and --jobs must be at least 1, --cooldown >= 0, "
                     "--build-timeout > 0")
    if args.pyperformance not in (None, "all") and not str(args.pyperformance).isdigit():
        return _fail("--pyperformance takes a number or 'all'")
    out: Path = args.out or _default_out()
    if args.resume:
        config = ExperimentConfig.load(out / "experiment.json")
        config.cooldown = args.cooldown or config.cooldown
        say(f"resuming {config.experiment}: {config.repeat} repetitions, seed {config.seed}")
    else:
        if (out / "run_table.csv").exists():
            return _fail(f"{out} already holds an experiment (use --resume, or another --out)")
        if not args.workloads and not args.pyperformance:
            return _fail("give at least one WORKLOAD or --pyperformance N")
        names = [n.strip() for n in args.against.split(",") if n.strip()]
        try:
            variants = [v.name for v in get_variants(names)]
        except KeyError as e:
            return _fail(str(e.args[0]))
        config = ExperimentConfig(
            experiment=f"bench-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}",
            specs=list(args.workloads), pyperformance=args.pyperformance, variants=variants,
            repeat=args.repeat, seed=args.seed if args.seed is not None else
            random.SystemRandom().randrange(1 << 30),
            cooldown=args.cooldown, warmup=not args.no_warmup, arenas=not args.no_arenas,
            build_timeout=args.build_timeout,
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            command=commands[0] if commands else "",
        )
    if args.resume and config.machine:
        # the header keeps the machine and date the experiment started on
        config.machine.setdefault("resumed", []).append(machine_info()["date"])
    else:
        config.machine = machine_info()
    out.mkdir(parents=True, exist_ok=True)
    say("setting up workloads")
    workloads, unrunnable = resolve_workloads(config.specs, config.pyperformance, home,
                                              log_dir=out / "logs", say=say)
    for u in unrunnable:
        say(f"  cannot run {u.name}: {u.reason}")
    if not workloads:
        return _fail("no workload can run")
    # SIGTERM ends the experiment like Ctrl-C: the running build or run is killed, the
    # table keeps every finished row
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        execute_experiment(out, config, workloads, get_variants(config.variants), home,
                           unrunnable=unrunnable, say=say, rebuild_failed=args.rebuild_failed,
                           jobs=args.jobs, pypy=args.pypy)
    except KeyboardInterrupt:
        say(f"interrupted: finished runs are in {out / 'run_table.csv'}; continue with "
            f"--resume --out {out}")
        return 130
    md = write_summary(out, partial=args.partial_note)
    _extra_markdown(args, out)
    say(f"wrote {out / 'run_table.csv'} and {md}")
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _extra_markdown(args: argparse.Namespace, out: Path) -> None:
    if args.markdown is None:
        return
    from .summary import write_summary

    write_summary(out, markdown=args.markdown, assets=args.markdown.parent / "results",
                  partial=args.partial_note)
