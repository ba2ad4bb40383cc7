"""pyperformance benchmarks as applications memtrim can optimize.

pyperformance ships each benchmark as a small program,
``site-packages/pyperformance/data-files/benchmarks/bm_NAME/run_benchmark.py``,
with its data files beside it.  Run in pyperf's worker mode with one loop, one
value and no warmup (``--worker -l 1 -n 1 -w 0``) a benchmark is just an
application run once in one process: exactly what memtrim profiles and slims.

Subcommands::

    python pyperf_app.py list [--variants]      # installed benchmarks, one per line
    python pyperf_app.py prepare NAME DIR       # copy bm_NAME (and data) to DIR + memtrim.toml
    python pyperf_app.py run NAME [--python PY] [-- ARGS]  # run it once, standalone

``NAME`` is a benchmark directory without its ``bm_`` prefix (``nbody``), or one
of the variants pyperformance defines in ``bm_*/bm_VARIANT.toml`` files
(``pickle_dict`` is ``bm_pickle`` run with the extra argument ``pickle_dict``).

Benchmarks print their timing (``nbody: 78.5 ms``), which differs on every run.
:data:`TIMING_NORMALIZERS` are the regexes that make two runs comparable; the
``memtrim.toml`` written by ``prepare`` carries them as ``[[normalizers]]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 has no tomllib; pyperformance depends on tomli there
    import tomli as tomllib

# The arguments that make a pyperf benchmark a plain one-shot program: run in this
# process (--worker, no child processes), 1 loop, 1 value, 0 warmups.
WORKER_ARGS = ("--worker", "-l", "1", "-n", "1", "-w", "0")

# pyperf formats durations with format_timedelta(): a number and one of these
# units (pyperf/_formatter.py: _TIMEDELTA_UNITS).  A single-value worker run prints
# "NAME: 78.5 ms"; with more values it prints "Mean +- std dev: 78.5 ms +- 1.2 ms".
# The number changes on every run, the unit can too (999 us vs 1.00 ms), so both
# are replaced.  Applied by memtrim to stdout, stderr and outputs alike.
TIMING_NORMALIZERS: tuple[tuple[str, str], ...] = (
    (r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)? (?:sec|ms|us|ns)\b", "<time>"),
    # pyperf's stability warnings quote percentages ("... is 12% of the mean");
    # they are timing-derived as well.
    (r"[0-9]+(?:\.[0-9]+)?%", "<pct>"),
)

BENCHMARK_SCRIPT = "run_benchmark.py"


@dataclass(frozen=True)
class Benchmark:
    """One runnable benchmark: its source directory and the extra arguments it needs."""

    name: str
    directory: Path
    extra_opts: tuple[str, ...] = ()

    @property
    def script(self) -> Path:
        """The benchmark's entry script."""
        return self.directory / BENCHMARK_SCRIPT

    def requirements(self) -> list[str]:
        """Third-party requirements beyond pyperf (requirements.txt, else pyproject deps)."""
        req = self.directory / "requirements.txt"
        if req.is_file():
            lines = req.read_text(encoding="utf-8").splitlines()
            return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        meta = _read_toml(self.directory / "pyproject.toml")
        deps = meta.get("project", {}).get("dependencies", [])
        return [d for d in deps if re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] != "pyperf"]


def normalize(text: str) -> str:
    """Apply :data:`TIMING_NORMALIZERS` to ``text`` (what memtrim does with the toml)."""
    for pattern, replace in TIMING_NORMALIZERS:
        text = re.sub(pattern, replace, text)
    return text


def benchmarks_dir() -> Path:
    """Where the running interpreter's pyperformance keeps its benchmark sources.

    ``MEMTRIM_PYPERF_BENCHMARKS`` overrides it.  ``find_spec`` locates the package
    without importing it (importing pyperformance pulls in packaging and more).
    """
    override = os.environ.get("MEMTRIM_PYPERF_BENCHMARKS")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pyperformance")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "pyperformance is not installed for this interpreter "
            f"({sys.executable}); pip install pyperformance==1.14.0"
        )
    pkg = Path(next(iter(spec.submodule_search_locations)))
    return pkg / "data-files" / "benchmarks"


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _extra_opts(toml_path: Path) -> tuple[str, ...]:
    opts = _read_toml(toml_path).get("tool", {}).get("pyperformance", {}).get("extra_opts", [])
    return tuple(str(o) for o in opts)


def list_benchmarks(root: Path | None = None, variants: bool = False) -> list[Benchmark]:
    """All installed benchmarks (``bm_*`` directories), sorted; with variants if asked."""
    root = root or benchmarks_dir()
    found: list[Benchmark] = []
    for d in sorted(root.glob("bm_*")):
        if not (d / BENCHMARK_SCRIPT).is_file():
            continue
        found.append(Benchmark(d.name[3:], d, _extra_opts(d / "pyproject.toml")))
        if variants:
            for t in sorted(d.glob("bm_*.toml")):
                found.append(Benchmark(t.stem[3:], d, _extra_opts(t)))
    return sorted(found, key=lambda b: b.name)


def find_benchmark(name: str, root: Path | None = None) -> Benchmark:
    """The benchmark or variant called ``name`` (``bm_`` prefix optional)."""
    name = name.removeprefix("bm_")
    for b in list_benchmarks(root, variants=True):
        if b.name == name:
            return b
    raise SystemExit(f"no benchmark named {name!r} in {root or benchmarks_dir()}")


def memtrim_toml(bench: Benchmark, compare_stderr: bool) -> str:
    """The ``memtrim.toml`` for a prepared copy of ``bench`` (see docs/config.md)."""
    args = ", ".join(f'"{a}"' for a in (*WORKER_ARGS, *bench.extra_opts))
    lines = [
        f"# pyperformance benchmark {bench.name!r}, prepared by examples/pyperf/pyperf_app.py.",
        "# One worker run: 1 loop, 1 value, no warmup, in a single process.",
        'entry = "run_benchmark.py"',
        'source_root = "."',
        "timeout = 600",
        "",
        "[[workloads]]",
        'name = "worker"',
        f"args = [{args}]",
        "outputs = []",
        # stderr is compared only when two probe runs agreed on it after normalizing.
        f"compare_stderr = {'true' if compare_stderr else 'false'}",
        "expect_exit = 0",
    ]
    for pattern, replace in TIMING_NORMALIZERS:
        lines += [
            "",
            "# pyperf timing values differ on every run (pyperf_app.TIMING_NORMALIZERS)",
            "[[normalizers]]",
            f"pattern = '{pattern}'",  # literal TOML string: no escaping of backslashes
            f'replace = "{replace}"',
        ]
    return "\n".join(lines) + "\n"


def run_benchmark(
    bench: Benchmark,
    python: str | None = None,
    script: Path | None = None,
    extra: list[str] | None = None,
    timeout: float | None = None,
    capture: bool = False,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``bench`` once in worker mode with ``python`` (default: this interpreter)."""
    cmd = [python or sys.executable, str(script or bench.script), *WORKER_ARGS,
           *bench.extra_opts, *(extra or [])]
    return subprocess.run(cmd, timeout=timeout, capture_output=capture, text=capture,
                          cwd=cwd)


def prepare(bench: Benchmark, dest: Path, probe: bool = True, python: str | None = None) -> Path:
    """Copy ``bench`` with its data files into ``dest`` and write its ``memtrim.toml``.

    With ``probe`` the copy is run twice: stderr is compared by memtrim only if
    both runs' normalized stderr agree (some benchmarks print timings or
    warnings there), and the normalizers are checked to make stdout agree.
    """
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"{dest} exists and is not empty")
    shutil.copytree(bench.directory, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    compare_stderr = False  # without probing, the safe choice: stderr may carry timings
    if probe:
        runs = []
        for _ in range(2):
            # Run from a scratch dir, as memtrim does, so nothing lands in the copy.
            scratch = dest.parent / f".{dest.name}.probe"
            scratch.mkdir(exist_ok=True)
            try:
                p = run_benchmark(bench, python, dest / BENCHMARK_SCRIPT, capture=True,
                                  timeout=600, cwd=scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if p.returncode != 0:
                sys.stderr.write(p.stderr)
                raise SystemExit(f"probe run of {bench.name} failed (exit {p.returncode})")
            runs.append(p)
        if normalize(runs[0].stdout) != normalize(runs[1].stdout):
            print(f"warning: {bench.name}: stdout differs between runs after normalizing",
                  file=sys.stderr)
        compare_stderr = normalize(runs[0].stderr) == normalize(runs[1].stderr)
    (dest / "memtrim.toml").write_text(memtrim_toml(bench, compare_stderr), encoding="utf-8")
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``list``, ``prepare NAME DIR``, ``run NAME``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_list = sub.add_parser("list", help="list installed benchmarks")
    p_list.add_argument("--variants", action="store_true",
                        help="also list variants (bm_*/bm_VARIANT.toml)")
    p_list.add_argument("--long", action="store_true",
                        help="also print extra arguments and requirements")
    p_prep = sub.add_parser("prepare", help="copy a benchmark into DIR with a memtrim.toml")
    p_prep.add_argument("name")
    p_prep.add_argument("dir", type=Path)
    p_prep.add_argument("--no-probe", action="store_true",
                        help="do not run the copy twice (then compare_stderr = false)")
    p_prep.add_argument("--python", help="interpreter for the probe runs")
    p_run = sub.add_parser("run", help="run a benchmark once in worker mode")
    p_run.add_argument("name")
    p_run.add_argument("--python", help="interpreter to run it with (default: this one)")
    p_run.add_argument("--timeout", type=float, default=None, help="seconds (exit 124)")
    # Arguments after "--" go to run_benchmark.py untouched.  (argparse.REMAINDER would
    # also swallow this parser's own options written after NAME, such as --python.)
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = ap.parse_args(argv)

    if args.cmd == "list":
        for b in list_benchmarks(variants=args.variants):
            if args.long:
                reqs = " ".join(b.requirements()) or "-"
                print(f"{b.name}\t{' '.join(b.extra_opts) or '-'}\t{reqs}")
            else:
                print(b.name)
        return 0
    if args.cmd == "prepare":
        dest = prepare(find_benchmark(args.name), args.dir, probe=not args.no_probe,
                       python=args.python)
        print(dest / "memtrim.toml")
        return 0
    try:
        p = run_benchmark(find_benchmark(args.name), args.python, extra=extra,
                          timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"timeout after {args.timeout} s", file=sys.stderr)
        return 124
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
