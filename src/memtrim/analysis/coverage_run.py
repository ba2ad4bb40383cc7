"""Dynamic analysis: run every workload under coverage.py and keep what ran, per workload.

Each workload runs as a real subprocess, in a fresh scratch working directory,
exactly as the verifier runs it (:func:`memtrim.workload_run.run_workload`), but
through ``python FLAGS -m coverage run --rcfile=RC --context=NAME ENTRY ARGS``:
branch coverage on, one coverage context per workload (its name), and a
``source`` that covers the application's source root plus, when asked, chosen
third-party packages.  Each run writes its own data file; they are read back
with coverage's :class:`~coverage.CoverageData` API and kept per workload, so
every classification can say *which workloads* ran (or skipped) a line.

coverage.py must be importable by the *target* interpreter.  When the target is
run with ``-S``/``-I``/``-E`` (which hide ``site-packages`` or the environment),
the profile is taken without those flags and a note says so: they change where
modules come from, not which code paths run.

The tracer core: coverage's C tracer (``ctrace``) by default; on Python 3.14+ the
``sys.monitoring`` core (``sysmon``), which measures branches there at a much
lower cost.  ``core=`` (or ``COVERAGE_CORE``) overrides it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memtrim.app import App, Workload
from memtrim.workload_run import run_workload

# Flags that hide site-packages (where coverage lives) or the environment.
_HIDING_FLAGS = frozenset("SIE")

_PROBE = (
    "import json, sys\n"
    "try:\n"
    "    import coverage\n"
    "except ImportError as e:\n"
    "    print(json.dumps({'error': str(e)}))\n"
    "    raise SystemExit(0)\n"
    "try:\n"
    "    from coverage.tracer import CTracer  # noqa: F401\n"
    "    ctracer = True\n"
    "except ImportError:\n"
    "    ctracer = False\n"
    "print(json.dumps({'version': coverage.__version__, 'python': list(sys.version_info[:3]),\n"
    "                  'ctracer': ctracer}))\n"
)

# Warnings coverage prints on stderr that say nothing about the application
# (a source package that this workload never imports is normal).
_QUIET = ("module-not-imported", "no-data-collected", "module-not-measured", "couldnt-parse")


class CoverageError(RuntimeError):
    """The workloads could not be profiled (coverage missing, a run failed or timed out)."""


@dataclass(frozen=True)
class WorkloadRun:
    """How one workload's profiled run went."""

    name: str
    exit_code: int
    expected_exit: int | None
    duration: float
    timed_out: bool
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        """The run finished and exited as the workload expects."""
        return not self.timed_out and (
            self.expected_exit is None or self.exit_code == self.expected_exit
        )


@dataclass
class FileCoverage:
    """What ran in one source file: executed lines and arcs, per workload (context).

    Line numbers are the tracer's raw ones: a statement spanning several lines
    may be recorded under any of them.  Arcs ``(a, b)`` with ``a < 0`` are entries
    into the code object whose first line is ``-a`` (a function call).
    """

    path: str
    lines: dict[str, frozenset[int]] = field(default_factory=dict)
    arcs: dict[str, frozenset[tuple[int, int]]] = field(default_factory=dict)
    _all_lines: frozenset[int] | None = field(default=None, repr=False, compare=False)
    _all_arcs: frozenset[tuple[int, int]] | None = field(default=None, repr=False, compare=False)

    def executed_lines(self) -> frozenset[int]:
        """Every line executed by any workload."""
        if self._all_lines is None:
            self._all_lines = frozenset().union(*self.lines.values())
        return self._all_lines

    def executed_arcs(self) -> frozenset[tuple[int, int]]:
        """Every arc taken by any workload."""
        if self._all_arcs is None:
            self._all_arcs = frozenset().union(*self.arcs.values())
        return self._all_arcs

    def contexts_for(self, lines: Iterable[int]) -> list[str]:
        """The workloads that executed at least one of ``lines``."""
        wanted = set(lines)
        return sorted(ctx for ctx, ran in self.lines.items() if not wanted.isdisjoint(ran))


@dataclass
class CoverageResult:
    """The profile of an application: per source file, what each workload ran."""

    root: Path
    workloads: list[WorkloadRun]
    files: dict[str, FileCoverage]
    python: str
    flags: tuple[str, ...]
    coverage_version: str
    core: str
    notes: list[str] = field(default_factory=list)
    data_file: Path | None = None

    @property
    def contexts(self) -> list[str]:
        """The names of the profiled workloads (one coverage context each)."""
        return [w.name for w in self.workloads]

    def file(self, path: str | Path) -> FileCoverage | None:
        """The coverage of ``path`` (absolute, or relative to the root); None if it never ran."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        return self.files.get(os.path.realpath(p))

    @property
    def profiled_seconds(self) -> float:
        """Wall time of all the profiled runs together."""
        return sum(w.duration for w in self.workloads)

    def to_dict(self) -> dict:
        """A JSON-able summary (no line data) for the report."""
        return {
            "coverage_version": self.coverage_version,
            "core": self.core,
            "python": self.python,
            "flags": list(self.flags),
            "workloads": [
                {"name": w.name, "exit_code": w.exit_code, "duration": round(w.duration, 3),
                 "timed_out": w.timed_out}
                for w in self.workloads
            ],
            "files_measured": len(self.files),
            "notes": list(self.notes),
            "data_file": str(self.data_file) if self.data_file else None,
        }


def probe_coverage(python: str, flags: Sequence[str] = ()) -> dict:
    """Ask the target interpreter for coverage's version; CoverageError if it cannot import it."""
    try:
        proc = subprocess.run(
            [python, *flags, "-c", _PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CoverageError(f"cannot run {python}: {e}") from None
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CoverageError(f"{python} {' '.join(flags)}: probe failed: {tail[0]}") from None
    return info


def _without_hiding_flags(flags: Sequence[str]) -> list[str]:
    """``flags`` minus -S/-I/-E (also inside combined short flags such as ``-IS``)."""
    out = []
    for f in flags:
        if f.startswith("-") and not f.startswith("--") and len(f) > 1 and f[1:].isalpha() and (
            set(f[1:]) & _HIDING_FLAGS
        ):
            rest = "".join(c for c in f[1:] if c not in _HIDING_FLAGS)
            if rest:
                out.append("-" + rest)
            continue
        out.append(f)
    return out


def _rcfile(path: Path, sources: Sequence[str], omit: Sequence[str]) -> None:
    lines = ["[run]", "branch = True", "source ="]
    lines += [f"    {s}" for s in sources]
    if omit:
        lines.append("omit =")
        lines += [f"    {o}" for o in omit]
    # os._exit() would otherwise lose the data of the run.
    lines.append("patch = _exit")
    lines.append("disable_warnings = " + ", ".join(_QUIET))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _venvs_inside(root: Path) -> list[str]:
    """Virtual environments inside the source root: never part of the application."""
    out = []
    try:
        children = list(root.iterdir())
    except OSError:
        return out
    for d in children:
        if d.is_dir() and (d / "pyvenv.cfg").exists():
            out.append(str(d.resolve() / "*"))
    return out


def collect_coverage(
    app: App,
    *,
    python: str,
    flags: Sequence[str] = (),
    source_packages: Sequence[str] = (),
    workloads: Sequence[str] | None = None,
    core: str | None = None,
    data_file: Path | None = None,
    strict: bool = True,
) -> CoverageResult:
    """Run the workloads of ``app`` under coverage.py and return what each one ran.

    ``workloads`` limits the profile to the named workloads (default: all).
    ``source_packages`` adds third-party packages (import names) to the measured
    source.  ``core`` picks coverage's tracer (``ctrace``, ``pytrace``, ``sysmon``).
    ``data_file``, when given, receives the combined coverage data (one context per
    workload) for ``coverage html --show-contexts`` and the like.  With ``strict``,
    a run that times out, exits other than the workload expects, or leaves no data
    raises :class:`CoverageError`: a partial profile would call code cold that is not.
    """
    from coverage import CoverageData

    chosen: list[Workload] = list(app.workloads)
    if workloads is not None:
        names = set(workloads)
        unknown = names - {w.name for w in chosen}
        if unknown:
            raise CoverageError(f"unknown workload(s): {', '.join(sorted(unknown))}")
        chosen = [w for w in chosen if w.name in names]
    if not chosen:
        raise CoverageError("the application has no workloads to profile")
    notes: list[str] = []
    run_flags = list(flags)
    info = probe_coverage(python, run_flags)
    if "error" in info:
        reduced = _without_hiding_flags(run_flags)
        if reduced != run_flags:
            info = probe_coverage(python, reduced)
            if "error" not in info:
                notes.append(
                    f"profiled without {' '.join(f for f in run_flags if f not in reduced)}: "
                    "coverage.py is not importable with those flags"
                )
                run_flags = reduced
        if "error" in info:
            raise CoverageError(
                f"coverage.py is not importable by {python} ({info['error']}); install "
                "coverage>=7.4 into that interpreter's environment to profile with it"
            )
    version = tuple(info.get("python", (3, 0, 0)))
    chosen_core = core or os.environ.get("COVERAGE_CORE")
    if chosen_core is None and version >= (3, 14):
        chosen_core = "sysmon"  # measures branches on 3.14+, far cheaper than a trace function
    reported_core = chosen_core or ("ctrace" if info.get("ctracer") else "pytrace")

    root = app.root.resolve()
    sources = [str(root), *source_packages]
    with tempfile.TemporaryDirectory(prefix="memtrim-coverage-") as tmp:
        tmpdir = Path(tmp)
        rc = tmpdir / "coveragerc"
        _rcfile(rc, sources, _venvs_inside(root))
        runs: list[WorkloadRun] = []
        data_paths: list[tuple[str, Path]] = []
        for i, w in enumerate(chosen):
            data_path = tmpdir / f"data{i}.coverage"
            env_extra = dict(w.env)
            if chosen_core:
                env_extra["COVERAGE_CORE"] = chosen_core
            wl = Workload(
                name=w.name, args=w.args, stdin=w.stdin, env=tuple(sorted(env_extra.items())),
                outputs=w.outputs, compare_stderr=w.compare_stderr,
                expect_exit=w.expect_exit, timeout=w.timeout,
            )
            cov_flags = [
                *run_flags, "-m", "coverage", "run", f"--rcfile={rc}",
                f"--data-file={data_path}", f"--context={w.name}",
            ]
            rec = run_workload(
                app, wl, python=python, flags=cov_flags, scratch=tmpdir / f"cwd{i}"
            )
            run = WorkloadRun(
                name=w.name, exit_code=rec.exit_code, expected_exit=w.expect_exit,
                duration=rec.duration, timed_out=rec.timed_out, stderr_tail=rec.stderr_tail(),
            )
            runs.append(run)
            if strict and not run.ok:
                what = "timed out" if run.timed_out else (
                    f"exited {run.exit_code}, expected {w.expect_exit}")
                raise CoverageError(
                    f"workload {w.name!r} {what} under coverage: {run.stderr_tail or 'no stderr'}"
                )
            if not data_path.exists():
                if strict:
                    raise CoverageError(
                        f"workload {w.name!r} left no coverage data (killed, or it replaced "
                        "the process with exec?)"
                    )
                notes.append(f"workload {w.name!r} left no coverage data")
                continue
            data_paths.append((w.name, data_path))
        files: dict[str, FileCoverage] = {}
        combined = None
        if data_file is not None:
            data_file = Path(data_file).resolve()
            data_file.parent.mkdir(parents=True, exist_ok=True)
            data_file.unlink(missing_ok=True)
            combined = CoverageData(basename=str(data_file))
        for name, path in data_paths:
            data = CoverageData(basename=str(path))
            data.read()
            for measured in data.measured_files():
                key = os.path.realpath(measured)
                fc = files.setdefault(key, FileCoverage(path=key))
                fc.lines[name] = frozenset(data.lines(measured) or ())
                fc.arcs[name] = frozenset(data.arcs(measured) or ())
            if combined is not None:
                combined.update(data)
        if combined is not None:
            combined.write()
    return CoverageResult(
        root=root, workloads=runs, files=files, python=python, flags=tuple(run_flags),
        coverage_version=str(info.get("version")), core=reported_core, notes=notes,
        data_file=data_file,
    )


def time_plain_runs(
    app: App, *, python: str, flags: Sequence[str] = (), workloads: Sequence[str] | None = None
) -> dict[str, float]:
    """Wall seconds of each workload run plainly (no coverage): the overhead's denominator."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="memtrim-plain-") as tmp:
        for i, w in enumerate(app.workloads):
            if workloads is not None and w.name not in workloads:
                continue
            start = time.monotonic()
            rec = run_workload(app, w, python=python, flags=flags, scratch=Path(tmp) / f"cwd{i}")
            out[w.name] = rec.duration or (time.monotonic() - start)
    return out
