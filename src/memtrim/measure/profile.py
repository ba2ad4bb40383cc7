"""``memtrim profile``: run an application under separate, non-interfering runs and report.

Runs, each in its own child process so that one kind of instrument never
perturbs another's figures:

* ``plain`` (``repeat`` times): the headline peak RSS, wall and CPU time, the
  RSS timeline, and energy where the hardware exposes it;
* the floor (``repeat`` times): the bare interpreter under the same harness
  and flags, so that peak minus floor is what a rewrite of the app can remove;
* ``imports``: the RSS cost of every import;
* ``tracemalloc``: traced bytes per import, top allocation lines and files at
  the highest traced level the sampler saw;
* ``census``: live objects by type at the highest RSS the sampler saw;
* ``arenas``: pymalloc arenas and pools over time.

The result is a plain dict following ``docs/profile-json.md``
(schema ``memtrim.profile/1``).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from .imports import build_import_tree, flatten
from .runner import ChildRun, run_child

SCHEMA = "memtrim.profile/1"
ALL_RUNS = ("imports", "tracemalloc", "census", "arenas")
_EMPTY_SCRIPT = "# memtrim: the bare interpreter, for the floor measurement\n"


@dataclass
class ProfileRequest:
    """What to run and how to measure it."""

    target: list[str]  # [script] or ["-m", module]
    args: list[str] = field(default_factory=list)
    python: str = ""
    python_args: list[str] = field(default_factory=list)
    interval: float = 0.01
    repeat: int = 1
    timeout: float | None = None
    cwd: Path | None = None
    stdin: Path | None = None
    env: dict[str, str] | None = None
    runs: Sequence[str] = ALL_RUNS
    nframes: int = 1
    top: int = 20
    workdir: Path | None = None
    expect_exit: int = 0  # the application's normal exit status


class ProfileFailed(Exception):
    """The application failed in a way that ends profiling; ``profile`` holds what was measured."""

    def __init__(self, message: str, profile: dict, exit_code: int) -> None:
        super().__init__(message)
        self.profile = profile
        self.exit_code = exit_code


def _stats(values: Sequence[float | None]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"min": None, "median": None, "max": None, "runs": list(values)}
    return {
        "min": min(vals),
        "median": statistics.median(vals),
        "max": max(vals),
        "runs": list(values),
    }


def _run_summary(run: ChildRun) -> dict:
    return {
        "mode": run.mode,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "timed_out": run.timed_out,
        "wall": round(run.wall, 6),
        "cpu_user": run.cpu_user,
        "cpu_system": run.cpu_system,
        "peak_rss": run.peak_rss,
        "peak_source": run.peak_source,
        "children_seen": run.descendants_seen,
        "tree_peak_rss": run.tree_peak_rss,
    }


def _failure_message(run: ChildRun, what: str, expect_exit: int = 0) -> tuple[str, int]:
    """A one-line description of why ``run`` failed, and memtrim's exit code for it."""
    if run.error and run.error[0] == "syntax":
        return f"syntax error: {run.error[1]}", 2
    if run.error:
        return run.error[1], 2
    if run.timed_out:
        return f"{what} timed out; the whole process tree was killed", 4
    if run.signal:
        return f"{what} was killed by {run.signal}", 3
    expected = f" (expected {expect_exit})" if expect_exit else ""
    return f"{what} exited with status {run.exit_code}{expected}", 3


def arena_section(run: ChildRun) -> dict:
    from .arenas import parse_mallocstats, summarize

    path = run.record.get("arenas_file") if run.record else None
    if not path or not Path(path).exists():
        return {"available": False, "reason": "the arena run wrote no samples"}
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    samples = []
    for chunk in re.split(r"^#memtrim-sample t=", text, flags=re.M)[1:]:
        stamp, _, body = chunk.partition("\n")
        stats = parse_mallocstats(body)
        if stats is not None:
            samples.append((float(stamp), stats))
    if not samples:
        return {"available": False, "reason": "sys._debugmallocstats() gave no pymalloc statistics"}
    out = {"available": True, **summarize(samples).to_dict()}
    out["samples"] = [
        [round(t, 4), s.arenas_allocated_current, s.pools_in_use, s.bytes_in_allocated_blocks]
        for t, s in samples
    ]
    out["sample_columns"] = ["t", "arenas", "pools", "bytes_in_allocated_blocks"]
    return out


def _allocation_section(run: ChildRun, top: int) -> dict:
    tm = (run.record or {}).get("tracemalloc")
    if not tm:
        return {"available": False, "reason": _missing_reason(run, "tracemalloc")}
    at_peak = tm.get("at_peak") or {"traced": None, "lines": [], "files": []}
    return {
        "available": True,
        "traced_peak": tm["peak"],
        "snapshot_traced": at_peak["traced"],
        "nframes": tm.get("nframes", 1),
        "cost": tm.get("cost"),
        "error": tm.get("error"),
        "top_lines": [
            {"file": f, "line": ln, "bytes": size, "count": count}
            for f, ln, size, count in at_peak["lines"][:top]
        ],
        "top_files": [
            {"file": f, "bytes": size, "count": count} for f, size, count in at_peak["files"][:top]
        ],
    }


def _census_section(run: ChildRun, top: int) -> dict:
    data = (run.record or {}).get("census")
    if not data or not data.get("census"):
        return {"available": False, "reason": _missing_reason(run, "census")}
    census = data["census"]
    return {
        "available": True,
        "rss_at_census": data["rss_at_census"],
        "censuses": data["count"],
        "seconds": data["seconds"],
        "error": data.get("error"),
        "objects": census["objects"],
        "bytes": census["bytes"],
        "types": [
            {"type": name, "count": count, "bytes": size}
            for name, count, size in census["types"][:top]
        ],
    }


def _failed(run: ChildRun, expect_exit: int) -> bool:
    return run.timed_out or run.exit_code != expect_exit


def _missing_reason(run: ChildRun, what: str) -> str:
    if run.record and run.record.get("harness_error"):
        return f"the {what} run's harness failed: {run.record['harness_error']}"
    if run.exit_code is None or run.signal:
        return f"the {what} run failed: {_failure_message(run, 'it')[0]}"
    return f"the {what} run recorded nothing"


def import_section(imports_run: ChildRun | None, tm_run: ChildRun | None) -> dict:
    rss_events = (imports_run.record or {}).get("imports") if imports_run else None
    traced_events = (tm_run.record or {}).get("imports") if tm_run else None
    if not rss_events and not traced_events:
        return {"available": False, "reason": "no import run was made, or it recorded nothing"}
    roots = build_import_tree(rss_events, traced_events)
    nodes = flatten(roots)
    return {
        "available": True,
        "rss_measured": bool(rss_events),
        "traced_measured": bool(traced_events),
        "modules": len(nodes),
        "total_rss": sum(r.cum_rss for r in roots),
        "total_traced": sum(r.cum_traced or 0 for r in roots) if traced_events else None,
        "tree": [r.to_dict() for r in roots],
    }


def profile(req: ProfileRequest, progress: Callable[[str], None] | None = None) -> dict:
    """Measure ``req`` and return the profile document; raise ProfileFailed on app failure."""
    say = progress or (lambda _msg: None)
    workdir = Path(req.workdir or tempfile.mkdtemp(prefix="memtrim-profile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    floor_script = workdir / "bare.py"
    floor_script.write_text(_EMPTY_SCRIPT, encoding="utf-8")

    def run(mode: str, target: list[str], args: list[str], tag: str, **kw) -> ChildRun:
        return run_child(
            req.python,
            req.python_args,
            target,
            args,
            mode=mode,
            interval=req.interval,
            timeout=req.timeout,
            cwd=req.cwd,
            env=req.env,
            stdin=req.stdin,
            workdir=workdir / tag,
            nframes=req.nframes,
            **kw,
        )

    doc: dict = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "memtrim_version": __version__,
        "target": {
            "kind": "module" if req.target[0] == "-m" else "script",
            "name": req.target[-1],
            "args": list(req.args),
            "cwd": str(req.cwd or os.getcwd()),
        },
        "interpreter": {"python": req.python, "args": list(req.python_args)},
        "machine": {
            "hostname": platform.node(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "expect_exit": req.expect_exit,
            "interval": req.interval,
            "repeat": req.repeat,
            "timeout": req.timeout,
            "runs": ["plain", "floor", *req.runs],
        },
        "runs": [],
    }

    from . import energy as _energy

    # RAPL first; a board-level hwmon sensor may include the package, so never sum both
    readers = _energy.detect_energy_readers()[:1]
    headline: list[ChildRun] = []
    energies = []
    for i in range(req.repeat):
        say(f"headline run {i + 1}/{req.repeat}")
        for r in readers:
            r.start()

        def tick() -> None:
            for r in readers:
                r.sample()

        hr = run("plain", req.target, req.args, f"plain{i}", on_sample=tick if readers else None)
        energies.append([r.stop() for r in readers])
        headline.append(hr)
        doc["runs"].append(_run_summary(hr))
        if _failed(hr, req.expect_exit):
            break
    first = headline[0]
    if first.record and first.record.get("python"):
        doc["interpreter"].update(first.record["python"])
    median_run = sorted(headline, key=lambda r: r.peak_rss or 0)[len(headline) // 2]
    doc["headline"] = {
        "peak_rss": _stats([r.peak_rss for r in headline]),
        "wall": _stats([round(r.wall, 6) for r in headline]),
        "cpu": _stats([round(r.cpu_user + r.cpu_system, 6) for r in headline]),
        "exit_code": headline[-1].exit_code,
        "signal": headline[-1].signal,
        "timed_out": headline[-1].timed_out,
        "peak_source": median_run.peak_source,
        "stdout_tail": median_run.stdout_tail(),
        "stderr_tail": headline[-1].stderr_tail(),
    }
    doc["timeline"] = {
        "interval": req.interval,
        "columns": ["t", "rss", "anon", "file", "shmem"],
        "samples": median_run.timeline,
    }
    kids = max(r.descendants_seen for r in headline)
    doc["children"] = {
        "seen": kids,
        "tree_peak_rss": max((r.tree_peak_rss or 0) for r in headline) if kids else None,
        "counted_in_peak_rss": False,
        "note": (
            "peak_rss is the application's own process; tree_peak_rss adds its child "
            "processes, sampled every interval"
            if kids
            else "the application started no processes"
        ),
    }
    doc["energy"] = _energy_section(readers, energies)

    last = headline[-1]
    if _failed(last, req.expect_exit):
        message, code = _failure_message(last, "the application", req.expect_exit)
        doc["failure"] = {"message": message, "stderr_tail": last.stderr_tail()}
        raise ProfileFailed(message, doc, code)

    floor: list[ChildRun] = []
    for i in range(req.repeat):
        say(f"floor (bare interpreter) {i + 1}/{req.repeat}")
        fr = run("plain", [str(floor_script)], [], f"floor{i}")
        floor.append(fr)
        doc["runs"].append({**_run_summary(fr), "mode": "floor"})
    floor_peak = _stats([r.peak_rss for r in floor])
    doc["floor"] = {"peak_rss": floor_peak}
    med = doc["headline"]["peak_rss"]["median"]
    doc["reducible"] = {
        "peak_rss": (med - floor_peak["median"]) if med and floor_peak["median"] else None,
        "definition": "median headline peak RSS minus median bare-interpreter peak RSS",
    }

    extra: dict[str, ChildRun] = {}
    for mode in req.runs:
        say(f"{mode} run")
        er = run(mode, req.target, req.args, mode)
        extra[mode] = er
        doc["runs"].append(_run_summary(er))
    doc["imports"] = import_section(extra.get("imports"), extra.get("tracemalloc"))
    doc["allocations"] = (
        _allocation_section(extra["tracemalloc"], req.top)
        if "tracemalloc" in extra
        else {"available": False, "reason": "skipped (--no-tracemalloc)"}
    )
    doc["census"] = (
        _census_section(extra["census"], req.top)
        if "census" in extra
        else {"available": False, "reason": "skipped (--no-census)"}
    )
    doc["arenas"] = (
        arena_section(extra["arenas"])
        if "arenas" in extra
        else {"available": False, "reason": "skipped (--no-arenas)"}
    )
    failed_extra = [r for r in extra.values() if _failed(r, req.expect_exit)]
    if failed_extra:
        doc["warnings"] = [
            f"the {r.mode} run failed ({_failure_message(r, 'it')[0]}); its figures may be partial"
            for r in failed_extra
        ]
    return doc


def _energy_section(readers: list, energies: list[list]) -> dict:
    from . import energy as _energy

    if not readers:
        return {"available": False, "reason": _energy.measure_unavailable_reason()}
    per_run = []
    for results in energies:
        per_run.append([res.to_dict() for res in results])
    usable = [
        sum(res.total_joules for res in results if res.available)
        for results in energies
        if any(res.available for res in results)
    ]
    if not usable:
        reasons = "; ".join(res.reason or "" for res in energies[0]) if energies else ""
        return {
            "available": False,
            "reason": reasons or "no reader produced a value",
            "runs": per_run,
        }
    return {
        "available": True,
        "joules": _stats(usable),
        "scope": "whole machine during the run (RAPL/hwmon are not per process)",
        "runs": per_run,
    }
