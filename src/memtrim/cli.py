"""The ``memtrim`` command line: parsing and dispatch only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_USAGE, EXIT_APP_FAILED, EXIT_TIMEOUT = 0, 2, 3, 4

_EPILOG_EXIT = """\
exit status:
  0  success
  2  bad input: a missing script, a syntax error, bad options or configuration
  3  the application failed (non-zero exit or a signal); what was measured is still reported
  4  the application timed out; its whole process tree was killed
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit with EXIT_USAGE."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"memtrim: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _split_dashdash(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split at the first ``--``: memtrim's options before it, the application's after."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def interpreter_path(text: str) -> str:
    """An interpreter given on the command line, made absolute (runs happen in scratch
    folders). Symlinks are kept: a venv's ``bin/python`` is a symlink to its base."""
    if os.sep in text or (os.altsep and os.altsep in text):
        return os.path.abspath(text)
    import shutil  # only here: it pulls in the compression modules at start-up

    return shutil.which(text) or text


def _add_target(p: argparse.ArgumentParser, *, run_options: bool = True) -> None:
    p.add_argument("script", nargs="?", help="the application's entry script")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module, like python -m")
    p.add_argument(
        "--python",
        metavar="PATH",
        type=interpreter_path,
        default=sys.executable,
        help="interpreter that runs the application (default: memtrim's own, %(default)s)",
    )
    p.add_argument(
        "--python-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="interpreter option for every run, e.g. --python-arg=-S --python-arg=-OO (repeatable)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="kill the application's whole process tree after this long (default: none)",
    )
    if run_options:
        p.add_argument("--cwd", type=Path, help="working directory of the application")
        p.add_argument("--stdin", type=Path, metavar="FILE", help="file fed to its standard input")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(
        prog="memtrim",
        description="Shrink the memory footprint of Python applications for edge devices, "
        "and prove the slimmer program behaves the same.",
        epilog="Application arguments go after '--', e.g.: memtrim profile app.py -- --input x.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memtrim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "profile",
        help="measure where an application's memory goes",
        description=(
            "Run the application in child processes and report its peak RSS as the OS sees it "
            "(VmHWM read inside the child), the RSS timeline, wall and CPU time, the bare "
            "interpreter's floor and the reducible footprint, the memory cost of every import, "
            "the top allocation lines and live objects at the traced peak, pymalloc arenas and "
            "pools, and energy where the hardware exposes it. Instruments that perturb each "
            "other (tracemalloc, arena sampling) get runs of their own; the headline figures "
            "come from unperturbed runs."
        ),
        epilog=_EPILOG_EXIT
        + "\nexample: memtrim profile app.py --repeat 5 --json out.json -- ARGS",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(p)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="headline and floor runs; reports min, median and max (default 1)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=10.0,
        metavar="MS",
        help="RSS sampling interval in milliseconds (default 10)",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the full result as JSON (schema memtrim.profile/1)",
    )
    p.add_argument("--top", type=int, default=20, metavar="N", help="rows per table (default 20)")
    p.add_argument(
        "--frames",
        type=int,
        default=1,
        metavar="N",
        help="traceback frames kept by tracemalloc (default 1)",
    )
    p.add_argument(
        "--expect-exit",
        type=int,
        default=0,
        metavar="CODE",
        help="the application's normal exit status (default 0); any other is a failure",
    )
    p.add_argument("--no-imports", action="store_true", help="skip the import-cost run")
    p.add_argument(
        "--no-tracemalloc",
        action="store_true",
        help="skip the tracemalloc run (allocation lines, traced import bytes)",
    )
    p.add_argument(
        "--no-census",
        action="store_true",
        help="skip the run that counts live objects by type at the RSS peak",
    )
    p.add_argument("--no-arenas", action="store_true", help="skip the pymalloc arena run")
    p.add_argument(
        "--runs-dir",
        type=Path,
        metavar="DIR",
        help="keep every run's raw files (stdout, stderr, results, arena dumps) in DIR "
        "(default: a temporary folder, deleted)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")

    o = sub.add_parser(
        "optimize",
        help="slim an application, verify every rewrite, write the result to OUTDIR",
        description=(
            "Copy the application to OUTDIR with redundant code removed. The original's "
            "behaviour on every workload (exit code, stdout, stderr, output files) is recorded "
            "first; every step's result is run on the same workloads and compared, and edits "
            "that change behaviour are found by bisection and dropped. Peak RSS and time are "
            "measured before and after each step. The input tree is never written. Workloads, "
            "keep-list and normalizers come from memtrim.toml or [tool.memtrim] in "
            "pyproject.toml (see docs/config.md); '-- ARGS' replaces the workloads by one."
        ),
        epilog=_EPILOG_EXIT.replace(
            "3  the application failed",
            "1  --check: something would change\n  3  the original application failed",
        )
        + "\nexample: memtrim optimize examples/gateway/run.py -o build/gateway --json report.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(o, run_options=False)
    o.add_argument("-o", "--output", type=Path, metavar="OUTDIR", help="where to write the result")
    o.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="memtrim.toml or pyproject.toml (default: searched from the script up)",
    )
    o.add_argument(
        "--source-root",
        type=Path,
        metavar="DIR",
        help="the tree memtrim may read and rewrite (default: the config's or the script's dir)",
    )
    o.add_argument(
        "--normalize",
        action="append",
        default=[],
        metavar="PATTERN=>REPL",
        help="regex applied to outputs before comparison, e.g. 'took [0-9.]+ s=>took X s' "
        "(repeatable)",
    )
    o.add_argument(
        "--test-command",
        metavar="CMD",
        help="the app's own tests, run in each candidate (split like a shell)",
    )
    o.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="NAME",
        help="never remove NAME (module:qualname, e.g. pkg.mod:func; repeatable)",
    )
    o.add_argument(
        "--mode",
        choices=("safe", "specialize"),
        default=None,
        help="safe (default): only removals that hold for every input",
    )
    o.add_argument("--force", action="store_true", help="replace a non-empty OUTDIR")
    o.add_argument(
        "--diff",
        action="store_true",
        help="print the verified changes as a unified diff; write nothing",
    )
    o.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if anything would change (for CI); write nothing",
    )
    o.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the report as JSON (schema memtrim.optimize/1)",
    )
    o.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="measurement runs per workload and step; medians are reported (default 3)",
    )
    o.add_argument(
        "--include-packages",
        metavar="NAMES",
        help="vendor these third-party packages (comma-separated top-level names, or 'all': "
        "every one the workloads import) into the output so they can be rewritten too",
    )
    o.add_argument(
        "--vendor-extensions",
        choices=("copy", "link"),
        default="copy",
        help="C extensions of vendored packages: copied as binaries (default) or loaded "
        "from the original install",
    )
    o.add_argument("--no-measure", action="store_true", help="skip the RSS/time measurements")
    o.add_argument(
        "--lambda",
        dest="lambda_pct",
        type=float,
        default=1.0,
        metavar="PCT",
        help="keep a step that can cost memory (outlining, lazy imports, hierarchy "
        "reduction) only if it lowers peak RSS by at least PCT %% (default 1)",
    )
    o.add_argument(
        "--steps",
        metavar="NAMES",
        help="comma-separated steps to run (default: every step of the mode)",
    )
    o.add_argument(
        "--no-details",
        action="store_true",
        help="skip the import-tree and arena runs before and after",
    )
    o.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    o.add_argument(
        "--optimize-asserts",
        action="store_true",
        help="also strip assert statements and `if __debug__:` blocks (like -O); "
        "opt-in, since asserts may be used for control flow",
    )
    o.add_argument(
        "--device",
        metavar="NAME|SIZE",
        help="a board of the paper's Table 1 or a RAM size (64MB): run the workloads "
        "under that limit and say whether the original and the result fit",
    )
    o.add_argument(
        "--bundle",
        type=Path,
        metavar="DIR",
        help="also write a deployable bundle: launcher with the interpreter settings "
        "that measured best, level-2 .pyc, manifest",
    )

    from .bench.cli_bench import add_bench_parser
    from .bundle_cli import add_bundle_parser
    from .report.cli_report import add_report_parser

    add_report_parser(sub)
    add_bundle_parser(sub)
    add_bench_parser(sub)
    return parser


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write(f"memtrim: error: {message}\n")
    return code


def _write_json(path: Path, doc: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _target(args: argparse.Namespace) -> list[str] | str:
    """``[script]`` or ``["-m", module]``, or an error message."""
    if bool(args.script) == bool(args.module):
        return "give either a SCRIPT or -m MODULE"
    if args.module:
        return ["-m", args.module]
    script = Path(args.script)
    if not script.exists():
        return f"script not found: {script}"
    if script.is_dir() and not (script / "__main__.py").exists():
        return f"{script} is a directory without __main__.py"
    if not os.access(script, os.R_OK):
        return f"script not readable: {script}"
    return [str(script.resolve())]


def cmd_profile(args: argparse.Namespace, app_args: list[str]) -> int:
    """``memtrim profile``."""
    from rich.console import Console

    from .measure.profile import ALL_RUNS, ProfileFailed, ProfileRequest, profile
    from .report.terminal import render_profile

    target = _target(args)
    if isinstance(target, str):
        return _fail(target)
    if args.repeat < 1 or args.interval <= 0 or args.top < 1 or args.frames < 1:
        return _fail("--repeat, --top and --frames must be at least 1, --interval positive")
    if args.cwd is not None and not args.cwd.is_dir():
        return _fail(f"--cwd {args.cwd} is not a directory")
    if args.stdin is not None and not args.stdin.is_file():
        return _fail(f"--stdin file not found: {args.stdin}")
    if not (os.path.isfile(args.python) and os.access(args.python, os.X_OK)):
        return _fail(f"--python {args.python} is not an executable file")
    skip = {
        "imports": args.no_imports,
        "tracemalloc": args.no_tracemalloc,
        "census": args.no_census,
        "arenas": args.no_arenas,
    }
    req = ProfileRequest(
        target=target,
        args=app_args,
        python=args.python,
        python_args=args.python_arg,
        interval=args.interval / 1000.0,
        repeat=args.repeat,
        timeout=args.timeout,
        cwd=args.cwd,
        stdin=args.stdin,
        runs=[r for r in ALL_RUNS if not skip[r]],
        nframes=args.frames,
        top=args.top,
        expect_exit=args.expect_exit,
        workdir=args.runs_dir,
    )
    console = Console(stderr=False, quiet=args.quiet)
    err = Console(stderr=True)
    code, message, tail = EXIT_OK, "", None
    scratch = None
    if req.workdir is None:
        scratch = tempfile.TemporaryDirectory(prefix="memtrim-profile-")
        req.workdir = Path(scratch.name)
    with err.status("profiling…", spinner="dots") as status:
        try:
            doc = profile(req, progress=lambda msg: status.update(f"profiling: {msg}"))
        except ProfileFailed as failed:
            doc, code, message = failed.profile, failed.exit_code, str(failed)
            tail = doc.get("failure", {}).get("stderr_tail")
    if code != EXIT_OK:
        # plain writes: the error must stay one line, never wrapped by the terminal renderer
        sys.stderr.write(f"memtrim: error: {message}\n")
        if tail and code != EXIT_USAGE:
            sys.stderr.write("  " + tail.replace("\n", "\n  ") + "\n")
    if args.json:
        _write_json(args.json, doc)
    if "headline" in doc and code != EXIT_USAGE:
        render_profile(doc, console, top=args.top)
    if args.json and not args.quiet:
        console.print(f"[dim]JSON written to {args.json}[/]")
    if scratch is not None:
        scratch.cleanup()
    return code


def cmd_optimize(args: argparse.Namespace, app_args: list[str]) -> int:
    """``memtrim optimize``."""
    from dataclasses import replace

    from rich.console import Console

    from .analysis.coverage_run import CoverageError
    from .app import ConfigError, resolve_app
    from .pipeline import OptimizeError, OptimizeRequest, optimize
    from .report.terminal import render_optimize

    if not (args.output or args.diff or args.check):
        return _fail("give -o OUTDIR, or --diff / --check")
    if args.repeat < 1:
        return _fail("--repeat must be at least 1")
    if args.script and not Path(args.script).exists():
        return _fail(f"script not found: {args.script}")
    try:
        app = resolve_app(
            script=args.script,
            module=args.module,
            config=args.config,
            args=app_args or None,
            timeout=args.timeout,
            source_root=args.source_root,
            normalizers=args.normalize,
            test_command=shlex.split(args.test_command) if args.test_command else None,
        )
    except ConfigError as e:
        return _fail(str(e))
    if args.mode:
        app = replace(app, mode=args.mode)
    req = OptimizeRequest(
        app=app,
        outdir=args.output,
        python=args.python,
        python_args=args.python_arg,
        keep=args.keep,
        force=args.force,
        diff_only=args.diff,
        check_only=args.check,
        measure=not (args.no_measure or args.diff or args.check),
        repeat=args.repeat,
        lambda_pct=args.lambda_pct,
        steps=[x.strip() for x in args.steps.split(",") if x.strip()] if args.steps else None,
        details=not args.no_details,
        optimize_asserts=args.optimize_asserts,
        device=args.device,
        bundle=args.bundle,
        include_packages=[x.strip() for x in args.include_packages.split(",") if x.strip()]
        if args.include_packages else list(app.include_packages),
        vendor_extensions=args.vendor_extensions,
    )
    console = Console(quiet=args.quiet)
    err = Console(stderr=True)
    try:
        with err.status("optimizing…", spinner="dots") as status:
            report = optimize(req, progress=lambda m: status.update(f"optimizing: {m}"))
    except (OptimizeError, CoverageError) as e:
        # CoverageError: the profiled interpreter lacks coverage.py (the message says how)
        return _fail(str(e))
    if args.json:
        _write_json(args.json, report)
    if args.diff:
        sys.stdout.write(report["diff"])
        return EXIT_OK
    render_optimize(report, console)
    if args.check:
        return 1 if report["changed"] else EXIT_OK
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``memtrim`` console script."""
    own, app_args = _split_dashdash(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(own)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "profile":
            return cmd_profile(args, app_args)
        if args.command == "optimize":
            return cmd_optimize(args, app_args)
        if args.command == "bench":
            from .bench.cli_bench import cmd_bench

            return cmd_bench(args)
        if args.command == "bundle":
            from .bundle_cli import cmd_bundle

            return cmd_bundle(args)
        if args.command == "report":
            from .report.cli_report import cmd_report

            return cmd_report(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    return _fail(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
