"""Measure an application's workloads with the headline harness (peak RSS, wall, CPU).

This is what ``optimize`` uses before and after each step: the same
unperturbed harness as ``memtrim profile``'s headline run, each workload in a
fresh scratch directory, repeated and reduced to medians, plus the bare
interpreter's floor so that the reducible footprint can be reported.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..app import App
from ..workload_run import workload_env
from .runner import run_child


def measure_floor(python: str, python_args: Sequence[str], *, repeat: int = 1) -> int | None:
    """Median peak RSS of the bare interpreter under the harness (an empty script)."""
    peaks = []
    with tempfile.TemporaryDirectory(prefix="memtrim-floor-") as tmp:
        script = Path(tmp) / "bare.py"
        script.write_text("# bare interpreter\n", encoding="utf-8")
        for i in range(repeat):
            run = run_child(python, python_args, [str(script)], workdir=Path(tmp) / f"r{i}")
            if run.peak_rss:
                peaks.append(run.peak_rss)
    return int(statistics.median(peaks)) if peaks else None


def measure_workloads(
    app: App, python: str, python_args: Sequence[str] = (), *, repeat: int = 1
) -> dict[str, dict]:
    """Peak RSS, wall and CPU time of every workload of ``app``: medians of ``repeat`` runs."""
    out: dict[str, dict] = {}
    for workload in app.workloads:
        w = workload.expand(app.root)
        peaks, walls, cpus, failures = [], [], [], []
        timelines: list[tuple[int, list]] = []
        with tempfile.TemporaryDirectory(prefix="memtrim-measure-") as tmp:
            for i in range(repeat):
                cwd = Path(tmp) / f"cwd{i}"
                cwd.mkdir()
                run = run_child(
                    python,
                    python_args,
                    app.entry_argv(),
                    list(w.args),
                    cwd=cwd,
                    env=workload_env(app, w),
                    workdir=Path(tmp) / f"run{i}",
                    stdin=Path(w.stdin) if w.stdin else None,
                    timeout=w.timeout,
                )
                if run.timed_out or (w.expect_exit is not None and run.exit_code != w.expect_exit):
                    failures.append(run.exit_code if not run.timed_out else "timeout")
                    continue
                peaks.append(run.peak_rss)
                walls.append(run.wall)
                cpus.append(run.cpu_user + run.cpu_system)
                timelines.append((run.peak_rss or 0, run.timeline))
        out[workload.name] = {
            "peak_rss": int(statistics.median(peaks)) if peaks else None,
            "wall": statistics.median(walls) if walls else None,
            "cpu": statistics.median(cpus) if cpus else None,
            "runs": len(peaks),
            "failures": failures,
            # the median run's RSS samples, for the report's memory-over-time plot
            "timeline": {
                "interval": 0.01,
                "columns": ["t", "rss", "anon", "file", "shmem"],
                "samples": sorted(timelines, key=lambda pt: pt[0])[len(timelines) // 2][1]
                if timelines else [],
            },
        }
    return out


def measure_details(
    app: App, python: str, python_args: Sequence[str] = (), *, workload_index: int = 0
) -> dict[str, dict]:
    """The import-cost tree and pymalloc arenas of one workload (one run of each kind)."""
    from .profile import arena_section, import_section

    if not app.workloads:
        return {}
    w = app.workloads[workload_index].expand(app.root)
    sections: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="memtrim-detail-") as tmp:
        runs = {}
        for mode in ("imports", "arenas"):
            cwd = Path(tmp) / f"cwd-{mode}"
            cwd.mkdir()
            runs[mode] = run_child(
                python, python_args, app.entry_argv(), list(w.args),
                mode=mode, cwd=cwd, env=workload_env(app, w), workdir=Path(tmp) / mode,
                stdin=Path(w.stdin) if w.stdin else None, timeout=w.timeout,
            )
        sections["imports"] = {w.name: import_section(runs["imports"], None)}
        sections["arenas"] = {w.name: arena_section(runs["arenas"])}
    return sections
