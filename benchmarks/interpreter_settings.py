"""Each interpreter setting's effect on each example: peak RSS and wall time vs the baseline.

Every setting of ``memtrim.launcher.CANDIDATES`` (``-O``/``-OO`` included) is
applied *alone* on top of the baseline, so each row is that setting's own effect.
The program is a compiled copy (``.pyc`` at levels 0, 1 and 2, hash-checked; a
second copy compiled with ``-X no_debug_ranges`` for that setting), because
``PYTHONDONTWRITEBYTECODE`` is set on these machines and would otherwise make
every run compile from source.  Two extra rows show why ``-OO`` needs level-2
``.pyc`` files of the *dependencies* too:

- ``optimize-2`` reads the app's ``.opt-2.pyc``, but numpy/scipy/scikit-learn have
  only pip's level-0 files: they are compiled from source on every start;
- ``optimize-2+deps-pyc`` also gets level-2 files for every module it imports
  (written once into a ``-X pycache_prefix`` folder by a warm-up run), as a
  bundle with vendored dependencies has them.

After one untimed round (file caches), all configurations of one example run
round-robin (baseline, setting 1, setting 2, ..., then again) ``--repeat``
times, so drift on these shared machines hits them alike; medians per workload,
and the time ratio of medians from the same run.  Each configuration is also
verified against the original's recorded behaviour (``identical``).  With
``--greedy`` the launcher's own greedy choice is run too
(``memtrim.launcher.select_settings``).

    .venv/bin/python benchmarks/interpreter_settings.py [--examples biomed,cnn,gateway]
        [--repeat 3] [--python PY] [--greedy] [--json out.json]

biomed needs ``python examples/biomed/prepare.py`` first.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from memtrim.app import load_app  # noqa: E402
from memtrim.bytecode import compile_tree, interpreter_info  # noqa: E402
from memtrim.launcher import (  # noqa: E402
    CANDIDATES,
    SelectRequest,
    Setting,
    combined,
    compile_flags_of,
    configure_run,
    select_settings,
)
from memtrim.measure.workloads import measure_workloads  # noqa: E402
from memtrim.verify import record_oracle, verify  # noqa: E402
from memtrim.workload_run import workload_env  # noqa: E402

EXAMPLES = ("biomed", "cnn", "gateway")


def _compiled_copy(app, dest: Path, python: str, flags: tuple[str, ...]) -> Path:
    root = dest / app.root.name
    shutil.copytree(app.root, root, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    compile_tree(root, python=python, levels=(0, 1, 2), interpreter_args=flags)
    return root


def _warm_prefix(app, root: Path, prefix: Path, python: str, flags: list[str]) -> None:
    """Run every workload once with bytecode writing on, into ``prefix``: the .opt-2.pyc
    of every module the program imports (stdlib and dependencies included)."""
    run_app = app.relocated(root)
    for w in run_app.workloads:
        wx = w.expand(run_app.root)
        env = workload_env(run_app, wx, write_bytecode=True)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        with tempfile.TemporaryDirectory() as cwd:
            subprocess.run([python, *flags, *run_app.entry_argv(), *wx.args], cwd=cwd, env=env,
                           capture_output=True, timeout=wx.timeout)


def bench_example(name: str, python: str, repeat: int, greedy: bool,
                  only: list[str] | None = None) -> dict:
    app = load_app(ROOT / "examples" / name / "memtrim.toml")
    print(f"[{name}] recording the oracle", file=sys.stderr)
    oracle = record_oracle(app, python=python, repeat=1)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        trees: dict[tuple[str, ...], Path] = {}

        def tree(flags: tuple[str, ...]) -> Path:
            if flags not in trees:
                trees[flags] = _compiled_copy(app, tmp / f"tree{len(trees)}", python, flags)
            return trees[flags]

        prefix = tmp / "pycache-prefix"
        deps = Setting("optimize-2+deps-pyc", "-OO with level-2 .pyc of every imported module",
                       flags=("-OO", "-X", f"pycache_prefix={prefix}"), group="optimize")
        configs: list[Setting | None] = [None, *CANDIDATES, deps]
        if only:
            configs = [c for c in configs if c is None or c.name in only]
        runs: dict[str, tuple] = {}
        for i, setting in enumerate(configs):
            chosen = [setting] if setting else []
            root = tree(compile_flags_of(chosen))
            label = setting.name if setting else "baseline"
            run_app, flags = configure_run(app, chosen, root=root, boot_dir=tmp / f"boot{i}")
            runs[label] = (run_app, flags, combined(chosen)[1])
        if deps in configs:
            _warm_prefix(app, tree(()), prefix, python, list(deps.flags))

        identical: dict[str, object] = {}
        for label, (run_app, flags, env) in runs.items():
            print(f"[{name}] verifying {label}", file=sys.stderr)
            wl = tuple(dataclasses.replace(w, env=tuple(sorted({**env, **dict(w.env)}.items())))
                       for w in oracle.workloads)
            res = verify(run_app, dataclasses.replace(oracle, workloads=wl), python=python,
                         flags=flags)
            identical[label] = True if res.ok else res.all_differences()[0].summary()

        samples: dict[str, list[dict]] = {label: [] for label in runs}
        for run_app, flags, _env in runs.values():  # one untimed round: warm caches
            measure_workloads(run_app, python, flags, repeat=1)
        for r in range(repeat):
            for label, (run_app, flags, _env) in runs.items():
                print(f"[{name}] run {r + 1}/{repeat}: {label}", file=sys.stderr)
                samples[label].append(measure_workloads(run_app, python, flags, repeat=1))

        rows = []
        base = samples["baseline"]
        for label, got in samples.items():
            for w in app.workloads:
                peaks = [s[w.name]["peak_rss"] for s in got if s[w.name]["peak_rss"]]
                walls = [s[w.name]["wall"] for s in got if s[w.name]["wall"]]
                bpeaks = [s[w.name]["peak_rss"] for s in base if s[w.name]["peak_rss"]]
                bwalls = [s[w.name]["wall"] for s in base if s[w.name]["wall"]]
                peak = int(statistics.median(peaks)) if peaks else None
                bpeak = int(statistics.median(bpeaks)) if bpeaks else None
                wall = statistics.median(walls) if walls else None
                bwall = statistics.median(bwalls) if bwalls else None
                rows.append({
                    "example": name, "workload": w.name, "setting": label,
                    "peak_rss": peak, "peak_min": min(peaks) if peaks else None,
                    "peak_max": max(peaks) if peaks else None,
                    "delta_bytes": peak - bpeak if peak and bpeak else None,
                    "delta_pct": round(100 * (peak - bpeak) / bpeak, 2) if peak and bpeak
                    else None,
                    "wall": wall,
                    "time_ratio": round(wall / bwall, 3) if wall and bwall else None,
                    "identical": identical[label],
                })
        out = {"rows": rows}
        if greedy:
            print(f"[{name}] the launcher's greedy choice", file=sys.stderr)
            req = SelectRequest(app=app, oracle=oracle, python=python, optimize_asserts=True,
                                repeat=repeat)
            decision = select_settings(req, lambda m: print(f"[{name}] {m}", file=sys.stderr))
            out["greedy"] = decision.to_json()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _print(rows: list[dict]) -> None:
    print(f"{'example':8} {'workload':10} {'setting':22} {'peak MB':>8} {'delta MB':>9} "
          f"{'delta %':>8} {'time x':>7}  identical")
    for r in rows:
        peak = f"{r['peak_rss'] / 1e6:.1f}" if r["peak_rss"] else "-"
        d = f"{r['delta_bytes'] / 1e6:+.2f}" if r["delta_bytes"] is not None else "-"
        p = f"{r['delta_pct']:+.2f}" if r["delta_pct"] is not None else "-"
        t = f"{r['time_ratio']:.2f}" if r["time_ratio"] is not None else "-"
        ident = "yes" if r["identical"] is True else f"NO ({r['identical']})"
        print(f"{r['example']:8} {r['workload']:10} {r['setting']:22} {peak:>8} {d:>9} {p:>8} "
              f"{t:>7}  {ident}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", default=",".join(EXAMPLES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--greedy", action="store_true", help="also run the launcher's choice")
    ap.add_argument("--settings", help="only these settings (comma-separated names)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    info = interpreter_info(args.python)
    doc = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": args.python, "python_version": info["version"],
        "venv": info["prefix"] != info["base_prefix"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "repeat": args.repeat, "examples": {},
    }
    for name in args.examples.split(","):
        only = args.settings.split(",") if args.settings else None
        doc["examples"][name] = bench_example(name, args.python, args.repeat, args.greedy, only)
        _print(doc["examples"][name]["rows"])
        if "greedy" in doc["examples"][name]:
            g = doc["examples"][name]["greedy"]
            print(f"greedy choice for {name}: {[s['name'] for s in g['settings']] or 'none'}")
            for v in g["verdicts"]:
                print(f"  {'+' if v['kept'] else '-'} {v['setting']}: {v['reason']}")
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
