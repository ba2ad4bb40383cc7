"""The experiment loop of seed 003 (its Fig. 1), one row of ``run_table.csv`` per run.

1. Build every variant of every app (cached by content hash, ``variants.py``).
2. Warm-up block: one run of every (variant, workload) pair, the original's
   first.  The original's warm-up run is also the *reference*: every later run
   of every variant is compared with it (``verify.compare`` with the app's
   normalizers), which fills the ``output_identical`` column.
3. ``N`` repetition blocks.  Each block holds one run of every pair plus one
   run of each bare interpreter (the floor of the reducible footprint), in an
   order shuffled with the experiment's seed; a block is a complete replicate,
   so a variant and the original are compared pair by pair within a block.
4. Optionally one arena run per pair (memtrim's harness sampling
   ``sys._debugmallocstats()``), for the paper's Table 3; the harness perturbs
   time and RSS, so these runs are never used for the headline figures.

A cool-down pause (``--cooldown``) follows every run.  Rows are appended, and
flushed to disk, as each run ends; on ``--resume`` the same plan is rebuilt
from the stored seed and every run whose ``run_id`` is already in the table is
skipped, so an interrupted experiment continues without duplicates.  A row cut
short by a kill is dropped on resume and its run repeated.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..app import App, Workload
from ..verify import compare
from ..workload_run import RunRecord, list_files, workload_env
from .envs import BenchHome
from .probe import build_probe, llc_unavailable_reason, run_measured
from .variants import (
    ORIGINAL,
    BuildContext,
    BuiltVariant,
    Failure,
    Variant,
    build_cached,
)
from .workloads import BenchWorkload, Unrunnable

__all__ = [
    "FIELDS",
    "ExperimentConfig",
    "PlannedRun",
    "RunTable",
    "execute_experiment",
    "plan_runs",
]

FIELDS = (
    "experiment", "run_id", "kind", "variant", "workload", "repetition", "order", "started",
    "peak_rss", "peak_source", "wall", "cpu_user", "cpu_system", "cpu", "exit_code",
    "expected_exit", "timed_out", "ok", "output_identical", "difference", "arenas_avg",
    "arenas_max", "pools_avg", "pools_max", "energy_j", "llc_miss_pct", "error",
)
BARE = "bare"  # the variant name of the floor runs (the bare interpreter)


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: its kind, pair, repetition and position."""

    kind: str  # "warmup", "measure", "floor" or "arenas"
    variant: str
    workload: str
    repetition: int
    order: int

    @property
    def run_id(self) -> str:
        """The key that makes a run unique within an experiment (resume skips it if present)."""
        return f"{self.kind}|{self.variant}|{self.workload}|{self.repetition}"


def plan_runs(
    variants: Sequence[str],
    workloads: Sequence[str],
    floors: Sequence[str] = (),
    *,
    repeat: int,
    seed: int,
    warmup: bool = True,
    arenas: Sequence[tuple[str, str]] = (),
    original: str = ORIGINAL,
) -> list[PlannedRun]:
    """The whole experiment's runs in execution order (deterministic for a given seed).

    The original's warm-up runs come first (they are the references); with
    ``warmup`` false, only they are kept from the warm-up block.  Each repetition
    block is a shuffled complete replicate; ``arenas`` lists the (variant,
    workload) pairs that get an arena run at the end.
    """
    rng = random.Random(seed)
    order: list[tuple[str, str, str, int]] = []
    refs = [("warmup", original, w, 0) for w in workloads]
    rng.shuffle(refs)
    order += refs
    if warmup:
        rest = [("warmup", v, w, 0) for v in variants if v != original for w in workloads]
        rng.shuffle(rest)
        order += rest
    for r in range(1, repeat + 1):
        block = [("measure", v, w, r) for v in variants for w in workloads]
        block += [("floor", BARE, f, r) for f in floors]
        rng.shuffle(block)
        order += block
    tail = [("arenas", v, w, 1) for v, w in arenas]
    rng.shuffle(tail)
    order += tail
    return [PlannedRun(k, v, w, r, i) for i, (k, v, w, r) in enumerate(order)]


class RunTable:
    """``run_table.csv``: one row per finished run, appended and flushed as it ends."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def repair(self) -> int:
        """Drop a last row cut short by a kill (no final newline); return bytes dropped."""
        if not self.path.is_file():
            return 0
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as f:
            f.truncate(keep)
        return len(data) - keep

    def rows(self) -> list[dict[str, str]]:
        """Every complete row (a torn last line is ignored)."""
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        return list(csv.DictReader(io.StringIO(text)))

    def done(self) -> set[str]:
        """The run ids already in the table."""
        return {r["run_id"] for r in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        """Append one row (writing the header first if the file is new), then fsync."""
        new = not self.path.is_file() or self.path.stat().st_size == 0
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n",
                                extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _cell(row.get(k)) for k in FIELDS})
        # one write of the whole row: a kill leaves at most one torn line
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass
class ExperimentConfig:
    """What defines an experiment; stored in ``experiment.json`` so that it can resume."""

    experiment: str
    specs: list[str]
    pyperformance: str | None
    variants: list[str]
    repeat: int
    seed: int
    cooldown: float = 0.0
    warmup: bool = True
    arenas: bool = True
    build_timeout: float = 1200.0
    created: str = ""
    command: str = ""  # the command line that started it (the summary's "reproduce")
    machine: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ExperimentConfig:
        """Read ``experiment.json``."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def machine_info() -> dict[str, Any]:
    """Date, machine, interpreter and repository state, for the results' header."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    repo = Path(__file__).resolve().parents[3]
    commit = dirty = ""
    try:  # read-only git queries
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "src"],
                                capture_output=True, text=True, timeout=30).stdout
        dirty = "yes" if status.strip() else "no"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "base_executable": getattr(sys, "_base_executable", sys.executable),
        "memtrim_commit": commit,
        "memtrim_src_modified": dirty,
        "load_average_at_start": list(os.getloadavg()),
    }


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


@dataclass
class _Pair:
    workload: BenchWorkload
    built: BuiltVariant


class Experiment:
    """One experiment in ``out``: builds, the plan, its execution and ``run_table.csv``."""

    def __init__(self, out: Path, config: ExperimentConfig, workloads: Sequence[BenchWorkload],
                 variants: Sequence[Variant], home: BenchHome, *,
                 unrunnable: Sequence[Unrunnable] = (),
                 say: Callable[[str], None] = lambda _m: None,
                 rebuild_failed: bool = False, jobs: int = 1, pypy: str | None = None) -> None:
        # absolute: runs happen in scratch directories, and the harness of the arena
        # runs writes its result relative to the child's working directory
        self.out = out.resolve()
        self.config = config
        self.workloads = {w.id: w for w in workloads}
        self.variants = list(variants)
        self.home = home
        self.unrunnable = list(unrunnable)
        self.say = say
        self.rebuild_failed = rebuild_failed
        self.ctx = BuildContext(home=home, timeout=config.build_timeout, jobs=jobs, say=say,
                                pypy=pypy)
        self.table = RunTable(out / "run_table.csv")
        self.builds: dict[tuple[str, str], BuiltVariant | Failure] = {}
        self.floors: dict[str, str] = {}  # floor id -> interpreter
        self.probe: Path | None = None
        self.probe_reason: str | None = None
        self.energy_readers: list = []
        self.energy_reason: str | None = None
        self.llc_reason: str | None = None

    # ----------------------------------------------------------------- setup

    def _recorded_builds(self) -> dict[str, dict[str, Any]]:
        path = self.out / "builds.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:
            return {}

    def build_all(self) -> None:
        """Build (or reuse) every variant of every app; record the outcome in ``builds.json``.

        An experiment that resumes keeps the builds it started with (as long as
        they are still on disk): a rebuild from newer sources must not mix with
        the runs already in the table.
        """
        apps = {w.app.name: w.app for w in self.workloads.values()}
        recorded = self._recorded_builds()
        for app in apps.values():
            for v in self.variants:
                old = recorded.get(f"{v.name}|{app.name}")
                if old and old.get("ok") and Path(old.get("root", "/nonexistent")).exists():
                    self.builds[(v.name, app.name)] = BuiltVariant(**{
                        k: val for k, val in old.items() if k in BuiltVariant.__dataclass_fields__})
                    continue
                if old and not old.get("ok") and not self.rebuild_failed:
                    self.builds[(v.name, app.name)] = Failure(**{
                        k: val for k, val in old.items() if k in Failure.__dataclass_fields__})
                    continue
                result = build_cached(v, app, self.ctx, rebuild_failed=self.rebuild_failed)
                self.builds[(v.name, app.name)] = result
                if isinstance(result, Failure):
                    self.say(f"  {v.name} / {app.name}: not built: {result.reason}")
        doc = {f"{v}|{a}": asdict(b) for (v, a), b in self.builds.items()}
        (self.out / "builds.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")

    def _instruments(self) -> None:
        from ..measure.energy import detect_energy_readers, measure_unavailable_reason

        self.probe, self.probe_reason = build_probe(self.home.tools)
        self.energy_readers = detect_energy_readers()
        self.energy_reason = None if self.energy_readers else measure_unavailable_reason()
        self.llc_reason = llc_unavailable_reason()

    def _floor_ids(self) -> dict[str, str]:
        floors: dict[str, str] = {}
        for w in self.workloads.values():
            floors[f"bare:{w.app.venv_name}"] = str(w.app.python)
        return floors

    def plan(self) -> list[PlannedRun]:
        """The plan of this experiment (the same for the same config and builds)."""
        names = [v.name for v in self.variants]
        wl = sorted(self.workloads)
        self.floors = self._floor_ids()
        arenas: list[tuple[str, str]] = []
        if self.config.arenas:
            for v in self.variants:
                if v.native:
                    continue
                arenas += [(v.name, w) for w in wl]
        return plan_runs(names, wl, sorted(self.floors), repeat=self.config.repeat,
                         seed=self.config.seed, warmup=self.config.warmup, arenas=arenas)

    def write_meta(self) -> None:
        """``experiment.json``: the config, the machine, the instruments, the workloads."""
        doc = asdict(self.config)
        doc["instruments"] = {
            "peak_rss": ("VmHWM at exit, read inside the process by a preloaded library "
                         f"({self.probe.name})" if self.probe else
                         f"parent samples of VmHWM every 20 ms ({self.probe_reason})"),
            "energy": "measured" if self.energy_readers else f"unavailable: {self.energy_reason}",
            "llc_misses": "measured" if not self.llc_reason else
            f"unavailable: {self.llc_reason}",
        }
        doc["workloads"] = {
            wid: {"app": w.app.name, "suite": w.app.suite, "workload": w.workload.name,
                  "venv": w.app.venv_name, "packages": list(w.app.packages),
                  "python": w.app.python, "floor": f"bare:{w.app.venv_name}",
                  "expect_exit": w.workload.expect_exit}
            for wid, w in sorted(self.workloads.items())
        }
        doc["unrunnable"] = [asdict(u) for u in self.unrunnable]
        doc["variant_descriptions"] = {v.name: v.description for v in self.variants}
        venvs = {}
        for w in self.workloads.values():
            path = Path(str(w.app.python)).parent.parent / "STAMP.json"
            if path.is_file():
                venvs[w.app.venv_name] = json.loads(path.read_text()).get("freeze", [])
        doc["venvs"] = venvs
        (self.out / "experiment.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")

    # ----------------------------------------------------------------- running

    def run(self) -> Path:
        """Build, plan and execute the experiment (skipping runs already in the table)."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "references").mkdir(exist_ok=True)
        self._instruments()
        self.say("building variants")
        self.build_all()
        plan = self.plan()
        self.write_meta()
        dropped = self.table.repair()
        if dropped:
            self.say(f"dropped a torn last row ({dropped} bytes) from an interrupted run")
        done = self.table.done()
        todo = [p for p in plan if p.run_id not in done and self._runnable(p)]
        self.say(f"{len(plan)} runs planned, {len(done)} already done, {len(todo)} to go")
        bare = self.out / "bare.py"
        bare.write_text("# the bare interpreter: an empty script\n", encoding="utf-8")
        for i, p in enumerate(todo, 1):
            row = self.execute(p)
            self.table.append(row)
            self.say(_progress(i, len(todo), p, row))
            if self.config.cooldown > 0 and i < len(todo):
                time.sleep(self.config.cooldown)
        return self.table.path

    def _runnable(self, p: PlannedRun) -> bool:
        if p.kind == "floor":
            return p.workload in self.floors
        w = self.workloads.get(p.workload)
        if w is None:
            return False
        built = self.builds.get((p.variant, w.app.name))
        if not isinstance(built, BuiltVariant):
            return False
        if p.kind == "arenas" and built.python is None:
            return False
        # without the original's reference nothing else can be compared
        return isinstance(self.builds.get((ORIGINAL, w.app.name)), BuiltVariant)

    def execute(self, p: PlannedRun) -> dict[str, Any]:
        """Run one planned run and return its row."""
        row: dict[str, Any] = {
            "experiment": self.config.experiment, "run_id": p.run_id, "kind": p.kind,
            "variant": p.variant, "workload": p.workload, "repetition": p.repetition,
            "order": p.order, "started": dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="seconds"),
            "energy_j": "unavailable" if not self.energy_readers else None,
            "llc_miss_pct": "unavailable" if self.llc_reason else None,
        }
        scratch = self.out / "scratch" / _safe(p.run_id)
        if scratch.exists():
            shutil.rmtree(scratch)
        cwd = scratch / "cwd"
        cwd.mkdir(parents=True)
        try:
            if p.kind == "floor":
                self._floor(p, row, scratch, cwd)
            elif p.kind == "arenas":
                self._arenas(p, row, scratch, cwd)
            else:
                self._measure(p, row, scratch, cwd)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            row["ok"] = False
            row["error"] = f"{type(e).__name__}: {e}"[:300]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return row

    def _env(self, w: BenchWorkload, built: BuiltVariant) -> dict[str, str]:
        app = w.app.load().relocated(Path(built.root)) if w.app.load().script else w.app.load()
        env = workload_env(app, w.workload)
        for key, value in built.env.items():
            if key == "PYTHONPATH" and env.get(key):
                env[key] = os.pathsep.join([env[key], value])
            else:
                env[key] = value
        return env

    def _floor(self, p: PlannedRun, row: dict[str, Any], scratch: Path, cwd: Path) -> None:
        python = self.floors[p.workload]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        m = run_measured([python, str(self.out / "bare.py")], cwd=cwd, env=env,
                         workdir=scratch / "run", probe=self.probe, timeout=120)
        self._fill(row, m, expect_exit=0)

    def _fill(self, row: dict[str, Any], m: Any, expect_exit: int | None) -> None:
        row.update(peak_rss=m.peak_rss, peak_source=m.peak_source, wall=m.wall,
                   cpu_user=m.cpu_user, cpu_system=m.cpu_system, cpu=m.cpu,
                   exit_code=m.exit_code, expected_exit=expect_exit, timed_out=m.timed_out)
        row["ok"] = not m.timed_out and (expect_exit is None or m.exit_code == expect_exit)
        if not row["ok"]:
            tail = m.stderr_path.read_bytes()[-2000:].decode("utf-8", "replace").strip()
            row["error"] = (tail.splitlines()[-1] if tail else
                            ("timed out" if m.timed_out else f"exit {m.exit_code}"))[:300]

    def _measure(self, p: PlannedRun, row: dict[str, Any], scratch: Path, cwd: Path) -> None:
        w = self.workloads[p.workload]
        built = self.builds[(p.variant, w.app.name)]
        assert isinstance(built, BuiltVariant)
        wl = w.workload.expand(Path(built.root))
        readers = self.energy_readers

        def on_sample() -> None:
            for r in readers:
                r.sample()

        for r in readers:
            r.start()
        m = run_measured(built.command(w.workload), cwd=cwd, env=self._env(w, built),
                         workdir=scratch / "run", probe=self.probe, timeout=wl.timeout,
                         stdin=_stdin(w.app.load(), wl, Path(built.root)),
                         on_sample=on_sample if readers else None,
                         perf_events=not self.llc_reason)
        if readers:
            results = [r.stop() for r in readers]
            first = next((r for r in results if r.available), None)
            row["energy_j"] = first.total_joules if first else "unavailable"
        if m.llc:
            row["llc_miss_pct"] = m.llc["miss_pct"]
        self._fill(row, m, expect_exit=wl.expect_exit)
        record = RunRecord(
            workload=wl.name, argv=tuple(m.argv), root=built.root, cwd=str(cwd),
            exit_code=m.exit_code if m.exit_code is not None else -9,
            stdout=m.stdout_path.read_bytes(), stderr=m.stderr_path.read_bytes(),
            outputs={n: (cwd / n).read_bytes() if (cwd / n).is_file() else None
                     for n in wl.outputs},
            files=list_files(cwd), duration=m.wall, timed_out=m.timed_out,
            compare_stderr=wl.compare_stderr,
        )
        ref_path = self.out / "references" / f"{_safe(p.workload)}.json"
        if p.variant == ORIGINAL and p.kind == "warmup":
            doc = {"ok": row["ok"], "record": record.to_dict(full=True)}
            ref_path.write_text(json.dumps(doc), encoding="utf-8")
        row["output_identical"], row["difference"] = self._identical(w.app.load(), ref_path,
                                                                     record)

    def _identical(self, app: App, ref_path: Path, record: RunRecord) -> tuple[str, str]:
        try:
            doc = json.loads(ref_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "n/a", "no reference run of the original"
        if not doc.get("ok"):
            return "n/a", "the original's reference run failed"
        ref = RunRecord.from_dict(doc["record"])
        diffs = compare(ref, record, app.normalizers)
        if not diffs:
            return "yes", ""
        first = diffs[0]
        line = next((ln for ln in first.excerpt.splitlines()
                     if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++"))),
                    first.excerpt.splitlines()[0] if first.excerpt else "")
        return "no", f"{first.stream}: {line}"[:200]

    def _arenas(self, p: PlannedRun, row: dict[str, Any], scratch: Path, cwd: Path) -> None:
        from ..measure.profile import arena_section
        from ..measure.runner import run_child

        w = self.workloads[p.workload]
        built = self.builds[(p.variant, w.app.name)]
        assert isinstance(built, BuiltVariant) and built.python
        wl = w.workload.expand(Path(built.root))
        run = run_child(built.python, built.python_args, built.entry, list(wl.args),
                        mode="arenas", interval=0.01, timeout=wl.timeout, cwd=cwd,
                        env=self._env(w, built), workdir=scratch / "run",
                        stdin=_stdin(w.app.load(), wl, Path(built.root)))
        row.update(peak_rss=run.peak_rss, peak_source="harness (arena run, perturbed)",
                   wall=run.wall, cpu_user=run.cpu_user, cpu_system=run.cpu_system,
                   cpu=run.cpu_user + run.cpu_system, exit_code=run.exit_code,
                   expected_exit=wl.expect_exit, timed_out=run.timed_out)
        row["ok"] = not run.timed_out and (wl.expect_exit is None or
                                           run.exit_code == wl.expect_exit)
        section = arena_section(run)
        if section.get("available"):
            row.update(arenas_avg=section["arenas_avg"], arenas_max=section["arenas_max"],
                       pools_avg=section["pools_avg"], pools_max=section["pools_max"])
        else:
            row["error"] = f"arenas unavailable: {section.get('reason')}"


def _stdin(app: App, w: Workload, root: Path) -> Path | None:
    if w.stdin is None:
        return None
    path = Path(w.stdin)
    return path if path.is_absolute() else root / path


def _progress(i: int, n: int, p: PlannedRun, row: dict[str, Any]) -> str:
    peak = row.get("peak_rss")
    peak_s = f"{peak / 1e6:7.1f} MB" if isinstance(peak, int) else "      - MB"
    wall = row.get("wall")
    wall_s = f"{wall:7.2f} s" if isinstance(wall, float) else "      - s"
    ident = row.get("output_identical") or "-"
    extra = "" if row.get("ok") else f"  FAILED: {row.get('error', '')}"
    return (f"[{i}/{n}] {p.kind:7s} {p.variant:18s} {p.workload:24s} r{p.repetition} "
            f"{peak_s} {wall_s} identical={ident}{extra}")


def execute_experiment(
    out: Path,
    config: ExperimentConfig,
    workloads: Sequence[BenchWorkload],
    variants: Sequence[Variant],
    home: BenchHome,
    *,
    unrunnable: Sequence[Unrunnable] = (),
    say: Callable[[str], None] = lambda _m: None,
    rebuild_failed: bool = False,
    jobs: int = 1,
    pypy: str | None = None,
) -> Experiment:
    """Run (or resume) an experiment in ``out``; returns it (its table is ``run_table.csv``)."""
    exp = Experiment(out, config, workloads, variants, home, unrunnable=unrunnable, say=say,
                     rebuild_failed=rebuild_failed, jobs=jobs, pypy=pypy)
    exp.run()
    return exp
