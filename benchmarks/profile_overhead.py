"""The profiler's overhead: wall time of a profiled headline run over an unprofiled one.

Each pair (plain ``python app.py`` and the same under memtrim's headline
harness with 10 ms parent sampling) runs back to back in a random order, and
the median of the per-pair ratios is reported, since these machines are shared
and noisy.  Target: at most 1.2x for the headline run.

    .venv/bin/python benchmarks/profile_overhead.py [--pairs 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from memtrim.measure.runner import run_child  # noqa: E402


def _pyperf_bench(name: str) -> list[str] | None:
    try:
        import pyperformance
    except ImportError:
        return None
    script = (
        Path(pyperformance.__file__).parent
        / "data-files/benchmarks"
        / f"bm_{name}"
        / "run_benchmark.py"
    )
    if not script.exists():
        return None
    return [str(script), "--worker", "-l", "1", "-n", "1", "-w", "0"]


def workloads() -> dict[str, list[str] | None]:
    """The workloads: bundled examples where they are ready, and pyperformance benchmarks."""
    biomed_ready = (ROOT / "examples/biomed/model").exists()
    return {
        "biomed-static": [
            str(ROOT / "examples/biomed/run.py"),
            "--variant",
            "static",
            "--out",
            "pred.csv",
        ]
        if biomed_ready
        else None,
        "cnn": [str(ROOT / "examples/cnn/run.py"), "--out", "pred.txt"]
        if (ROOT / "examples/cnn/run.py").exists()
        else None,
        "gateway": _gateway(),
        "pyperf-nbody": _pyperf_bench("nbody"),
        "pyperf-json_dumps": _pyperf_bench("json_dumps"),
        "pyperf-richards": _pyperf_bench("richards"),
    }


def _gateway() -> list[str] | None:
    cfg = ROOT / "examples/gateway/memtrim.toml"
    if not cfg.exists():
        return None
    from memtrim.app import load_app

    app = load_app(cfg)
    w = app.workloads[0].expand(app.root)
    return [*app.entry_argv(), *w.args]


def time_plain(argv: list[str], cwd: Path) -> float:
    """Wall time of ``python ARGV`` with no instrument at all."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def time_profiled(argv: list[str], cwd: Path, work: Path) -> float:
    """Wall time of the same command under the headline harness, sampled every 10 ms."""
    run = run_child(
        sys.executable, [], argv[:1], argv[1:], mode="plain", interval=0.01, cwd=cwd, workdir=work
    )
    if run.failed:
        raise RuntimeError(f"profiled run failed: {run.stderr_tail()}")
    return run.wall


def main() -> int:
    """Measure and print the overhead table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for name, argv in workloads().items():
            if argv is None:
                print(f"{name:20s} skipped (not available on this machine)")
                continue
            time_plain(argv, cwd)  # warm-up: page cache, .pyc
            ratios, plain_t, prof_t = [], [], []
            for _ in range(args.pairs):
                order = [0, 1]
                rng.shuffle(order)
                t = [0.0, 0.0]
                for which in order:
                    t[which] = (
                        time_plain(argv, cwd)
                        if which == 0
                        else time_profiled(argv, cwd, cwd / "work")
                    )
                plain_t.append(t[0])
                prof_t.append(t[1])
                ratios.append(t[1] / t[0])
            results[name] = {
                "plain_median_s": statistics.median(plain_t),
                "profiled_median_s": statistics.median(prof_t),
                "ratio_median": statistics.median(ratios),
                "pairs": args.pairs,
            }
            r = results[name]
            print(
                f"{name:20s} plain {r['plain_median_s']:7.3f} s  profiled "
                f"{r['profiled_median_s']:7.3f} s  ratio {r['ratio_median']:.3f}"
            )
    if results:
        overall = statistics.median(r["ratio_median"] for r in results.values())
        print(f"median ratio over {len(results)} workloads: {overall:.3f} (target <= 1.2)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
