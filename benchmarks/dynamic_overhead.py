"""The dynamic analysis' cost, and what outlining and specialization buy, on the examples.

Two measurements, both on real subprocess runs of the bundled examples:

``--overhead`` (default): wall time of a workload run under coverage.py the way
``memtrim.analysis.coverage_run`` runs it (branch coverage, one context, the
app's source) over the same run without it.  Pairs run back to back in a
random order; the median of the per-pair ratios is reported, since these
machines are shared and noisy.  Target: at most 2.5x.  Each available tracer
core is measured (``ctrace``, ``pytrace``; ``sysmon`` on Python 3.12+).  The
whole profile (``collect_coverage``: probe, every workload, reading the data)
is reported against the sum of plain runs too.

``--rss``: peak RSS of every workload before and after each mode, through the
real pipeline: safe = static removal + unreachable code + outlining,
specialize = static removal + specialization; plus the fraction of the
statements each mode outlined or removed.

    .venv/bin/python benchmarks/dynamic_overhead.py [--pairs 7] [--rss] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from memtrim.analysis.coverage_run import _rcfile, collect_coverage  # noqa: E402
from memtrim.app import App, load_app  # noqa: E402
from memtrim.workload_run import run_workload  # noqa: E402

EXAMPLES = {
    "gateway": ROOT / "examples" / "gateway" / "memtrim.toml",
    "biomed": ROOT / "examples" / "biomed" / "memtrim.toml",
    "cnn": ROOT / "examples" / "cnn" / "memtrim.toml",
}


def _ready(name: str, app: App) -> bool:
    if name == "biomed":
        return (app.root / "model" / "trees").exists()
    return True


def _cores() -> list[str]:
    cores = ["ctrace", "pytrace"]
    if sys.version_info >= (3, 12):
        cores.append("sysmon")
    return cores


def overhead(app: App, pairs: int, python: str) -> dict:
    """Per workload and core: median ratio of a profiled run's wall time to a plain run's."""
    out: dict = {}
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="memtrim-bench-") as tmp:
        tmpdir = Path(tmp)
        rc = tmpdir / "rc"
        _rcfile(rc, [str(app.root.resolve())], [])
        n = 0
        for w in app.workloads:
            out[w.name] = {}
            for core in _cores():
                ratios, plain_t, prof_t = [], [], []
                for _ in range(pairs):
                    order = ["plain", "profiled"]
                    rng.shuffle(order)
                    times = {}
                    for kind in order:
                        n += 1
                        if kind == "plain":
                            rec = run_workload(app, w, python=python, scratch=tmpdir / f"c{n}")
                        else:
                            wl = replace(w, env=(*w.env, ("COVERAGE_CORE", core)))
                            flags = ["-m", "coverage", "run", f"--rcfile={rc}",
                                     f"--data-file={tmpdir / f'd{n}'}", f"--context={w.name}"]
                            rec = run_workload(app, wl, python=python, flags=flags,
                                               scratch=tmpdir / f"c{n}")
                        times[kind] = rec.duration
                    ratios.append(times["profiled"] / times["plain"])
                    plain_t.append(times["plain"])
                    prof_t.append(times["profiled"])
                out[w.name][core] = {
                    "ratio_median": round(statistics.median(ratios), 3),
                    "ratio_min": round(min(ratios), 3),
                    "plain_median_s": round(statistics.median(plain_t), 3),
                    "profiled_median_s": round(statistics.median(prof_t), 3),
                    "pairs": pairs,
                }
    # the whole dynamic analysis step: probe + every workload + reading the data back
    started = time.perf_counter()
    collect_coverage(app, python=python)
    whole = time.perf_counter() - started
    plain_sum = sum(statistics.median([out[w.name]["ctrace"]["plain_median_s"]])
                    for w in app.workloads)
    out["_collect_coverage"] = {"seconds": round(whole, 3),
                                "over_plain_runs": round(whole / plain_sum, 3)}
    return out


def rss(app: App, python: str) -> dict:
    """Peak RSS per workload: original, safe mode, specialize mode (through the pipeline)."""
    from memtrim import pipeline
    from memtrim.passes.outline import OutlineStep
    from memtrim.passes.specialize import SpecializeStep, UnreachableCodeStep

    results: dict = {}
    for mode in ("safe", "specialize"):
        if mode == "safe":
            step = OutlineStep()
            steps = [pipeline.StaticRemovalStep(), UnreachableCodeStep(), step]
        else:
            step = SpecializeStep()
            steps = [pipeline.StaticRemovalStep(), step]
        pipeline.all_steps = lambda req, steps=steps: steps
        with tempfile.TemporaryDirectory(prefix="memtrim-bench-out-") as tmp:
            report = pipeline.optimize(pipeline.OptimizeRequest(
                app=replace(app, mode=mode), outdir=Path(tmp) / "out", python=python,
                details=False, repeat=3, oracle_repeat=1))
        entry = next(s for s in report["steps"] if s["name"] == step.name)
        summary = step.summary
        results[mode] = {
            "baseline_peak_rss": {k: v["peak_rss"] for k, v in report["baseline"].items()},
            "final_peak_rss": {k: v["peak_rss"] for k, v in report["final"].items()},
            "step": step.name,
            "step_kept": entry.get("kept_step"),
            "step_gain": entry.get("gain"),
            "edits": len(entry["kept"]),
            "fraction": summary.get("outlined_fraction", summary.get("removed_fraction")),
            "statements": summary.get("statements"),
            "groups": summary.get("groups", {}).get("modules") if mode == "safe" else None,
        }
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--rss", action="store_true", help="measure the modes' peak RSS instead")
    ap.add_argument("--examples", default=",".join(EXAMPLES))
    ap.add_argument("--workload", action="append", default=None,
                    help="limit to these workloads (name; repeatable)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    python = sys.executable
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "python": sys.version.split()[0],
        "what": "rss" if args.rss else "overhead",
    }
    for name in args.examples.split(","):
        app = load_app(EXAMPLES[name])
        if args.workload:
            app = replace(app, workloads=tuple(
                w for w in app.workloads if w.name in args.workload) or app.workloads)
        if not _ready(name, app):
            report[name] = "not prepared (run the example's prepare script)"
            continue
        print(f"{name}...", file=sys.stderr)
        report[name] = rss(app, python) if args.rss else overhead(app, args.pairs, python)
        print(json.dumps({name: report[name]}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
