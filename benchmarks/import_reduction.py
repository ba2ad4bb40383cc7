"""Import reduction targets: lazy imports, code hierarchy reduction, and both, per application.

    python benchmarks/import_reduction.py [--apps biomed,sympy,gateway,cnn]
        [--variants lazy,hierarchy,both] [--repeat 5] [--include-packages all]
        [--lambda 1] [--out benchmarks/out]

For every application: the original is measured (median of ``--repeat`` runs of
each workload under memtrim's harness) and its behaviour recorded (the oracle).
Then, for each variant, the chosen third-party packages are vendored into a
copy of the tree and the variant's steps run exactly as ``memtrim optimize``
runs steps: propose, verify against the oracle (bisecting and dropping
offending edits), build, measure, keep the step only when it lowers the peak
RSS by at least lambda %; hierarchy reduction goes on round after round until a
round gains less than lambda %.  The final tree is verified once more (outputs
identical, after the app's normalizers) and measured ``--repeat`` times.

Targets (issue "code hierarchy reduction and lazy imports"): biomed static
-64 % peak RSS, the pyperformance sympy benchmark -50 %; gateway and cnn
measured.  Results go to ``OUT/import_reduction-DATE.json`` and ``.md``; the
table is printed.  Every figure is a measurement of this run: nothing is
estimated or copied from elsewhere.

The step loop here mirrors ``memtrim.pipeline.optimize`` (vendoring before the
first step, bytecode for rewritten files), so that each technique can be
measured alone and together in one run; ``memtrim optimize --include-packages
all --steps lazy-imports`` (or ``hierarchy-reduction``) gives the same result
for one variant.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from memtrim.analysis.modgraph import record_imports  # noqa: E402
from memtrim.app import App, load_app  # noqa: E402
from memtrim.edits import Edit  # noqa: E402
from memtrim.measure.workloads import measure_floor, measure_workloads  # noqa: E402
from memtrim.passes.hierarchy import HierarchyReductionStep  # noqa: E402
from memtrim.passes.lazy_imports import LazyImportStep  # noqa: E402
from memtrim.pipeline import (  # noqa: E402
    OptimizeRequest,
    Step,
    StepContext,
    _step_gain,
    _verify_edits,
)
from memtrim.program import Program  # noqa: E402
from memtrim.vendor import (  # noqa: E402
    compile_tree,
    copy_tree,
    third_party_tops,
    vendor_packages,
)
from memtrim.verify import Oracle, record_oracle, verify  # noqa: E402

TARGETS = {"biomed": 64.0, "sympy": 50.0}

# bm_sympy prints only its timings, so the verifier compares little: the final
# tree also has to compute exactly what the original computes
SYMPY_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import run_benchmark as b
from sympy import expand, symbols, summation
x, y, z, i = symbols("x y z i")
print(str(expand((1 + x + y + z) ** 20)))
print(b.bench_integrate())
print(summation(x ** i / i, (i, 1, 400)))
print(str(expand((x + 2 * y + 3 * z) ** 30)))
"""


def semantic_check(name: str, original: Path, final: Path) -> bool | None:
    """For apps whose output shows little, compare what they compute (None: no check)."""
    if name != "sympy":
        return None
    outs = []
    for root in (original, final):
        res = subprocess.run([sys.executable, "-c", SYMPY_CHECK, str(root)], cwd=root,
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        outs.append((res.returncode, res.stdout))
    return outs[0][0] == 0 and outs[0] == outs[1]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".venv", "out")


def prepare_app(name: str, work: Path) -> App:
    """The application ``name`` as an App whose tree is a private copy under ``work``."""
    if name == "sympy":
        dest = work / "sympy-src"
        subprocess.run([sys.executable, str(ROOT / "examples/pyperf/pyperf_app.py"), "prepare",
                        "sympy", str(dest)], check=True, capture_output=True)
        return load_app(dest / "memtrim.toml")
    src = ROOT / "examples" / name
    if name == "biomed" and not (src / "data/STAMP").exists():
        subprocess.run([sys.executable, str(src / "prepare.py")], check=True)
    dest = work / f"{name}-src"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "out"))
    app = load_app(dest / "memtrim.toml")
    if name == "biomed":  # the target is the static variant
        app = replace(app, workloads=tuple(w for w in app.workloads if w.name == "static"))
    return app


def measure(app: App, repeat: int) -> dict:
    """Median peak RSS and wall time of each workload (``repeat`` runs)."""
    out = {}
    for wname, m in measure_workloads(app, sys.executable, [], repeat=repeat).items():
        out[wname] = {"peak_rss": m["peak_rss"], "wall": m["wall"], "runs": m["runs"],
                      "failures": m["failures"]}
    return out


def build(step: Step, program: Program, edits: Sequence[Edit], src: Path, dest: Path
          ) -> dict[str, str]:
    """Copy ``src`` to ``dest`` (bytecode kept), apply ``edits``, compile what changed."""
    copy_tree(src, dest)
    changes = step.apply(program, edits)
    for rel, text in changes.items():
        target = dest / rel
        module = program.module_by_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()  # never write through a hard link into another tree
        target.write_bytes(module.encode(text) if module is not None else text.encode())
    compile_tree(dest, files=list(changes))
    return changes


def run_variant(app: App, variant: str, include: list[str], oracle: Oracle,
                req: OptimizeRequest, work: Path, lambda_pct: float,
                say: Callable[[str], None], app_name: str = "") -> dict:
    """Vendor, then run the variant's steps the way the pipeline does; return the report."""
    started = time.perf_counter()
    tree = work / f"{variant}-vendored"
    copy_tree(app.root, tree, ignore=_IGNORE)
    entry_names = {p.stem for p in app.root.glob("*.py")} | {
        p.name for p in app.root.iterdir() if (p / "__init__.py").exists()}
    if include == ["all"]:
        records = record_imports(app, main_name=app.script.stem if app.script else None)
        names = [n for n in third_party_tops(records.loaded) if n not in entry_names]
    else:
        names = include
    manifest = vendor_packages(tree, names, app_names=entry_names)
    compile_tree(tree)
    current = tree
    report: dict = {"variant": variant, "vendored": manifest.to_dict(), "steps": []}
    check = verify(app.relocated(current), oracle, python=sys.executable)
    report["vendored_verified"] = check.ok
    if not check.ok:
        report["error"] = "the vendored, unmodified tree does not behave like the original"
        return report
    before = measure(app.relocated(current), req.repeat)
    report["vendored_measure"] = before
    # the order the pipeline runs them in: hierarchy rounds, then lazy imports
    queue: list = []
    if variant in ("hierarchy", "both"):
        queue.append(HierarchyReductionStep())
    if variant in ("lazy", "both"):
        queue.append(LazyImportStep())
    index = 0
    while queue:
        step = queue.pop(0)
        index += 1
        app_now = app.relocated(current)
        program = Program.load(current, entry=app_now.script, module=app.module)
        ctx = StepContext(app=app_now, oracle=oracle, request=req, say=say)
        t0 = time.perf_counter()
        say(f"{variant}: {step.name}")
        edits = step.run(program, ctx)
        kept, dropped, runs = _verify_edits(step, program, edits, ctx, work)
        entry = {"name": step.name, "proposed": len(edits), "kept": len(kept),
                 "dropped": [{"id": d["edit"]["id"], "reason": d["reason"][:300]}
                             for d in dropped],
                 "verification_runs": runs, "notes": getattr(step, "notes", [])[:50]}
        if hasattr(step, "moves"):
            entry["moves"] = [f"{m.source} -> {m.target} ({', '.join(m.names)})"
                              for m in step.moves]
        built = work / f"{variant}-step{index}"
        changes = build(step, program, kept, current, built) if kept else {}
        entry["files_changed"] = len(changes)
        kept_step = bool(kept)
        if kept:
            after = measure(app.relocated(built), req.repeat)
            entry["gain"] = _step_gain(before, after)
            gains = [g["reduction_pct"] for g in entry["gain"].values()]
            if step.needs_gain and (not gains or max(gains) < lambda_pct):
                kept_step = False
                entry["why_not_kept"] = (f"best peak-RSS reduction {max(gains, default=0):.2f}%"
                                         f" is below lambda = {lambda_pct}%")
        entry["kept_step"] = kept_step
        entry["duration"] = round(time.perf_counter() - t0, 1)
        report["steps"].append(entry)
        if kept_step:
            current, before = built, after
        nxt = getattr(step, "next_steps", None)
        if nxt is not None:
            queue[:0] = nxt({**entry, "kept": kept if kept_step else []}, lambda_pct)
    final = verify(app.relocated(current), oracle, python=sys.executable)
    report["final_verified"] = final.ok
    report["semantic_check"] = semantic_check(app_name, app.root, current)
    if report["semantic_check"] is False:
        report["final_verified"] = False
    if not final.ok:
        report["final_differences"] = [d.to_dict() for d in final.all_differences()][:5]
    report["final"] = measure(app.relocated(current), req.repeat)
    report["final_tree"] = str(current)
    report["duration"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write JSON and Markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="biomed,sympy,gateway,cnn")
    p.add_argument("--variants", default="lazy,hierarchy,both")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--include-packages", default="all")
    p.add_argument("--lambda", dest="lambda_pct", type=float, default=1.0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--keep-trees", action="store_true", help="keep the optimized trees")
    args = p.parse_args(argv)
    include = [s for s in args.include_packages.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    doc: dict = {
        "created": date, "python": sys.version.split()[0], "repeat": args.repeat,
        "include_packages": include, "lambda": args.lambda_pct, "apps": {},
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
    }

    def say(msg: str) -> None:
        """Progress on stdout, with the time."""
        print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    work_root = Path(tempfile.mkdtemp(prefix="memtrim-bench-imports-"))
    try:
        doc["floor_peak_rss"] = measure_floor(sys.executable, [], repeat=args.repeat)
        for name in args.apps.split(","):
            work = work_root / name
            work.mkdir()
            app = prepare_app(name, work)
            say(f"{name}: recording the oracle and measuring the original")
            oracle = record_oracle(app, python=sys.executable, repeat=2)
            req = OptimizeRequest(app=app, outdir=None, repeat=args.repeat,
                                  lambda_pct=args.lambda_pct)
            entry = {"baseline": measure(app, args.repeat), "variants": {}}
            for variant in args.variants.split(","):
                vwork = work / variant
                vwork.mkdir()
                entry["variants"][variant] = run_variant(
                    app, variant, include, oracle, req, vwork, args.lambda_pct, say, name)
                if not args.keep_trees:
                    shutil.rmtree(vwork, ignore_errors=True)
            doc["apps"][name] = entry
            _write(doc, args.out, date)
    finally:
        if not args.keep_trees:
            shutil.rmtree(work_root, ignore_errors=True)
        else:
            print(f"trees kept in {work_root}")
    _write(doc, args.out, date)
    print(_markdown(doc))
    return 0


def _pct(before: int | None, after: int | None) -> float | None:
    if not before or not after:
        return None
    return round(100.0 * (1 - after / before), 1)


def _rows(doc: dict) -> list[dict]:
    rows = []
    for name, entry in doc["apps"].items():
        for wname, base in entry["baseline"].items():
            for variant, rep in entry["variants"].items():
                fin = (rep.get("final") or {}).get(wname, {})
                rows.append({
                    "app": name, "workload": wname, "variant": variant,
                    "before": base["peak_rss"], "after": fin.get("peak_rss"),
                    "reduction": _pct(base["peak_rss"], fin.get("peak_rss")),
                    "wall_ratio": round(fin["wall"] / base["wall"], 2)
                    if fin.get("wall") and base.get("wall") else None,
                    "identical": rep.get("final_verified"),
                    "target": TARGETS.get(name),
                })
    return rows


def _markdown(doc: dict) -> str:
    mb = 1 / 1e6
    lines = [
        f"# Import reduction ({doc['created']}, Python {doc['python']}, medians of "
        f"{doc['repeat']} runs, `--include-packages {','.join(doc['include_packages'])}`, "
        f"lambda {doc['lambda']} %)",
        "",
        f"Bare interpreter under the harness: {doc.get('floor_peak_rss', 0) * mb:.1f} MB.",
        "",
        "| app | workload | variant | peak before (MB) | peak after (MB) | reduction | target "
        "| met | wall after/before | outputs identical |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in _rows(doc):
        target = f"{r['target']:.0f} %" if r["target"] else "-"
        met = "-" if not r["target"] or r["reduction"] is None else (
            "yes" if r["reduction"] >= r["target"] else "no")
        lines.append(
            f"| {r['app']} | {r['workload']} | {r['variant']} | "
            f"{(r['before'] or 0) * mb:.1f} | {(r['after'] or 0) * mb:.1f} | "
            f"{r['reduction'] if r['reduction'] is not None else '-'} % | {target} | {met} | "
            f"{r['wall_ratio'] if r['wall_ratio'] is not None else '-'} | {r['identical']} |")
    lines.append("")
    lines.append(f"Command: `{doc['command']}`")
    return "\n".join(lines) + "\n"


def _write(doc: dict, out: Path, date: str) -> None:
    (out / f"import_reduction-{date}.json").write_text(json.dumps(doc, indent=1, default=str))
    (out / f"import_reduction-{date}.md").write_text(_markdown(doc))


if __name__ == "__main__":
    sys.exit(main())
