"""memtrim bench: the run plan, the run table and resume, the summary's math, output identity,
unavailable variants, the probe, and small real experiments on a tiny application."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtrim.bench import variants as V
from memtrim.bench.envs import BenchHome
from memtrim.bench.probe import build_probe, parse_status, run_measured
from memtrim.bench.runner import BARE, FIELDS, PlannedRun, RunTable, plan_runs
from memtrim.bench.summary import (
    load_summary,
    lowest_peak,
    median,
    pairwise_ratios,
    reduction_pct,
    render_markdown,
    standings,
    summarize,
)
from memtrim.bench.workloads import BenchApp, app_modules

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None


# --------------------------------------------------------------------------- plan


def _plan(seed: int = 7, repeat: int = 3, warmup: bool = True) -> list[PlannedRun]:
    return plan_runs(["cpython", "a", "b"], ["w1", "w2"], ["bare:x"], repeat=repeat, seed=seed,
                     warmup=warmup, arenas=[("cpython", "w1"), ("a", "w1")])


def test_plan_is_deterministic_for_a_seed_and_shuffled_across_seeds() -> None:
    assert _plan(7) == _plan(7)
    orders = {tuple(p.run_id for p in _plan(seed)) for seed in range(8)}
    assert len(orders) > 1, "the order must depend on the seed"


def test_plan_structure() -> None:
    plan = _plan()
    ids = [p.run_id for p in plan]
    assert len(ids) == len(set(ids)), "every run id is unique"
    assert [p.order for p in plan] == list(range(len(plan)))
    # the original's warm-ups come first: they are the references for output identity
    assert [(p.kind, p.variant) for p in plan[:2]] == [("warmup", "cpython")] * 2
    warm = [p for p in plan if p.kind == "warmup"]
    assert len(warm) == 3 * 2
    # each repetition block is a complete replicate, floors included, blocks in order
    for r in (1, 2, 3):
        block = [p for p in plan if p.repetition == r and p.kind in ("measure", "floor")]
        assert {(p.variant, p.workload) for p in block} == {
            (v, w) for v in ("cpython", "a", "b") for w in ("w1", "w2")} | {(BARE, "bare:x")}
    reps = [p.repetition for p in plan if p.kind in ("measure", "floor")]
    assert reps == sorted(reps)
    assert [p.kind for p in plan[-2:]] == ["arenas", "arenas"]
    # within blocks the order is shuffled, not the listing order
    blocks = [[(p.variant, p.workload) for p in plan if p.repetition == r and p.kind == "measure"]
              for r in (1, 2, 3)]
    assert len({tuple(b) for b in blocks}) > 1


def test_no_warmup_keeps_the_reference_runs() -> None:
    plan = _plan(warmup=False)
    warm = [p for p in plan if p.kind == "warmup"]
    assert {(p.variant, p.workload) for p in warm} == {("cpython", "w1"), ("cpython", "w2")}


# --------------------------------------------------------------------------- run table


def test_run_table_csv_format_and_torn_row(tmp_path: Path) -> None:
    table = RunTable(tmp_path / "run_table.csv")
    table.append({"run_id": "measure|a|w|1", "kind": "measure", "peak_rss": 123, "wall": 0.5,
                  "ok": True, "output_identical": "yes", "error": 'a "quoted", text\nline'})
    table.append({"run_id": "measure|a|w|2", "kind": "measure", "ok": False})
    text = (tmp_path / "run_table.csv").read_text()
    header = text.splitlines()[0].split(",")
    assert tuple(header) == FIELDS and text.count("experiment,run_id") == 1
    rows = table.rows()
    assert [r["run_id"] for r in rows] == ["measure|a|w|1", "measure|a|w|2"]
    assert rows[0]["ok"] == "yes" and rows[1]["ok"] == "no" and rows[0]["wall"] == "0.5"
    assert rows[0]["error"] == 'a "quoted", text\nline'  # csv quoting round-trips
    # a kill in the middle of a write leaves a torn last line: ignored, then dropped
    with open(tmp_path / "run_table.csv", "a") as f:
        f.write("exp,measure|a|w|3,meas")
    assert len(table.rows()) == 2 and table.done() == {"measure|a|w|1", "measure|a|w|2"}
    assert table.repair() > 0
    assert (tmp_path / "run_table.csv").read_text() == text
    assert list(csv.DictReader(open(tmp_path / "run_table.csv")))[1]["run_id"] == "measure|a|w|2"


# --------------------------------------------------------------------------- summary math


def test_median_ratio_and_reduction() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0]) == 1.5 and median([]) is None
    assert reduction_pct(200.0, 150.0) == 25.0
    assert reduction_pct(100.0, 120.0) == pytest.approx(-20.0)
    assert reduction_pct(0.0, 1.0) is None and reduction_pct(None, 1.0) is None
    # pairs only where both repetitions exist
    assert pairwise_ratios({1: 2.0, 2: 3.0, 3: 9.0}, {1: 1.0, 2: 3.0}) == [2.0, 1.0]


def _row(kind: str, variant: str, workload: str, rep: int, peak: float, wall: float,
         ok: str = "yes", identical: str = "yes") -> dict[str, str]:
    row = {k: "" for k in FIELDS}
    row.update(kind=kind, variant=variant, workload=workload, repetition=str(rep),
               run_id=f"{kind}|{variant}|{workload}|{rep}", peak_rss=str(peak), wall=str(wall),
               cpu=str(wall / 2), ok=ok, output_identical=identical if kind != "floor" else "",
               energy_j="unavailable", llc_miss_pct="unavailable")
    return row


def test_summary_medians_pairwise_ratios_and_reducible() -> None:
    mb = 1e6
    rows = []
    for r, (floor, o_peak, o_wall, v_peak, v_wall) in enumerate(
            [(10, 30, 1.0, 20, 0.5), (10, 32, 2.0, 21, 1.8), (12, 31, 4.0, 99, 1.0)], 1):
        rows += [_row("floor", BARE, "bare:v", r, floor * mb, 0.01),
                 _row("measure", "cpython", "w", r, o_peak * mb, o_wall),
                 _row("measure", "memtrim-safe", "w", r, v_peak * mb, v_wall,
                      ok="yes" if r < 3 else "no")]
    rows.append(_row("warmup", "memtrim-safe", "w", 0, 20 * mb, 0.5, identical="no"))
    rows.append(_row("arenas", "cpython", "w", 1, 40 * mb, 3.0))
    rows[-1].update(arenas_avg="12.5", arenas_max="14", pools_avg="300", pools_max="320")
    meta = {"variants": ["cpython", "memtrim-safe"],
            "workloads": {"w": {"app": "w", "suite": "pyperformance", "floor": "bare:v"}}}
    s = summarize(rows, meta)
    o, v = s.get("cpython", "w"), s.get("memtrim-safe", "w")
    assert o is not None and v is not None
    assert s.floors["bare:v"] == 10 * mb
    assert o.peak == 31 * mb and o.wall == 2.0 and o.runs == 3
    # the failed third run is left out of the medians and counted
    assert v.runs == 2 and v.failed == 1 and v.peak == 20.5 * mb
    assert v.reducible == pytest.approx(10.5 * mb)
    assert v.reduction == pytest.approx(100 * (1 - 10.5 / 21))
    # pairwise within blocks 1 and 2 only: 0.5/1.0 and 1.8/2.0
    assert v.wall_ratio == pytest.approx((0.5 + 0.9) / 2)
    assert v.identical == "no" and o.identical == "yes"  # the warm-up run differed
    assert o.arenas_avg == 12.5 and o.pools_avg == 300.0
    assert v.energy == "unavailable" and v.llc == "unavailable"
    md = render_markdown(s, partial="test")
    assert "Partial run" in md and "Table 3" in md and "| w |" in md
    # memtrim-safe's output differs, but it is the only competitor of itself here
    wins, losses = lowest_peak(s, "memtrim-safe")
    assert wins == ["w"] and not losses


# --------------------------------------------------------------------------- variants


def test_main_as_module_and_app_modules(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "m.py").write_text("X = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.py").write_text("not part of the program\n")
    (tmp_path / "helper.py").write_text("Y = 2\n")
    (tmp_path / "tool.py").write_text("print('a build tool')\n")
    entry = tmp_path / "run.py"
    entry.write_text("import helper\nfrom pkg.sub import m\n\nif __name__ == '__main__':\n"
                     "    print(helper.Y + m.X)\n")
    mods = {p.relative_to(tmp_path).as_posix() for p in app_modules(tmp_path, entry)}
    assert mods == {"run.py", "helper.py", "pkg/__init__.py", "pkg/sub/__init__.py",
                    "pkg/sub/m.py"}
    module = V.main_as_module(entry)
    assert module.name == "_memtrim_main_run.py"
    assert "if True:" in module.read_text() and "__main__" not in entry.read_text()
    out = subprocess.run([sys.executable, str(entry)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.stdout == "3\n", out.stderr


def test_unavailable_variant_is_reported_with_its_reason(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMTRIM_PYPY", raising=False)
    monkeypatch.setattr(V.shutil, "which", lambda _name: None)
    ctx = V.BuildContext(home=BenchHome(tmp_path))
    app = BenchApp("tiny", "user", tmp_path / "memtrim.toml")
    result = V.build_cached(V.VARIANTS["pypy"], app, ctx)
    assert isinstance(result, V.Failure)
    assert result.reason.startswith("unavailable: no pypy3 executable")
    # a memtrim without --steps: the lazy-imports variant says so instead of faking it
    fake = tmp_path / "fake_memtrim.py"
    fake.write_text("print('usage: memtrim optimize [-h] [-o OUTDIR]')\n")
    ctx2 = V.BuildContext(home=BenchHome(tmp_path), memtrim_cmd=(sys.executable, str(fake)))
    assert V.VARIANTS["lazy-imports"].available(ctx2) == "memtrim optimize has no --steps option"
    assert V.VARIANTS["memtrim-safe"].available(ctx2) is None


def test_get_variants_puts_the_original_first() -> None:
    assert [v.name for v in V.get_variants(["nuitka", "cpython-OO"])] == [
        "cpython", "cpython-OO", "nuitka"]
    with pytest.raises(KeyError):
        V.get_variants(["no-such-thing"])


# --------------------------------------------------------------------------- probe


def test_parse_status() -> None:
    text = "Name:\tpython\nVmPeak:\t  20000 kB\nVmHWM:\t   9000 kB\nVmRSS:\t   8000 kB\n"
    assert parse_status(text) == {"VmPeak": 20000 * 1024, "VmHWM": 9000 * 1024,
                                  "VmRSS": 8000 * 1024}


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler for the VmHWM probe")
def test_probe_reads_vmhwm_at_exit_and_falls_back_to_samples(tmp_path: Path) -> None:
    lib, why = build_probe(tmp_path / "tools")
    assert lib is not None, why
    env = dict(os.environ)
    big = "b = bytearray(60_000_000); b[::4096] = b'x' * len(b[::4096]); print('done')"
    m = run_measured([sys.executable, "-c", big], cwd=tmp_path, env=env,
                     workdir=tmp_path / "r1", probe=lib)
    assert m.exit_code == 0 and m.stdout_path.read_text() == "done\n"
    assert m.peak_source == "VmHWM at exit (probe)"
    assert m.peak_rss is not None and m.peak_rss > 60_000_000
    assert m.cpu > 0 and m.wall > 0
    # the probe leaves no trace in the program's environment or its children's
    check = ("import os, subprocess, sys; print(sorted(k for k in os.environ if "
             "k.startswith('MEMTRIM_VMHWM') or k == 'LD_PRELOAD')); "
             "subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get("
             "\"LD_PRELOAD\"))'])")
    m = run_measured([sys.executable, "-c", check], cwd=tmp_path, env=env,
                     workdir=tmp_path / "r2", probe=lib)
    assert m.stdout_path.read_text() == "[]\nNone\n"
    # os._exit runs no destructor: the peak comes from the parent's samples
    hold = "import os, time; b = bytearray(40_000_000); b[::4096] = b'x' * len(b[::4096]); " \
           "time.sleep(0.3); os._exit(3)"
    m = run_measured([sys.executable, "-c", hold], cwd=tmp_path, env=env,
                     workdir=tmp_path / "r3", probe=lib)
    assert m.exit_code == 3 and m.peak_source.startswith("parent samples")
    assert m.peak_rss is not None and m.peak_rss > 40_000_000
    m = run_measured([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path,
                     env=env, workdir=tmp_path / "r4", probe=lib, timeout=0.5)
    assert m.timed_out and m.exit_code is None and m.wall < 10


# --------------------------------------------------------------------------- real runs

TINY = '''\
"""A tiny application for memtrim bench's tests."""
import random
import sys


def greet():
    """Hello from a docstring."""


if __name__ == "__main__":
    # random, but normalized away by memtrim.toml
    print("token", random.random())
    print(greet.__doc__)
    open("out.txt", "w").write(" ".join(sys.argv[1:]) + "\\n")
'''

TINY_TOML = '''\
entry = "tiny.py"
timeout = 60

[[workloads]]
name = "hello"
args = ["a", "b"]
outputs = ["out.txt"]

[[normalizers]]
pattern = 'token [0-9.e-]+'
replace = "token <random>"
'''


def _tiny(tmp_path: Path) -> Path:
    app = tmp_path / "tiny"
    app.mkdir()
    (app / "tiny.py").write_text(TINY)
    (app / "memtrim.toml").write_text(TINY_TOML)
    return app


def _bench(args: list[str], home: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, MEMTRIM_BENCH_HOME=str(home))
    return subprocess.Popen([sys.executable, "-m", "memtrim.bench", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_real_run_of_two_variants_on_a_tiny_app(tmp_path: Path) -> None:
    app = _tiny(tmp_path)
    out = tmp_path / "exp"
    # a relative --out: runs happen in scratch directories elsewhere
    proc = _bench([str(app), "--against", "cpython-OO", "--repeat", "2", "--seed", "3",
                   "--out", "exp", "--markdown", str(tmp_path / "md" / "RESULTS.md")],
                  tmp_path / "home", cwd=tmp_path)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    rows = RunTable(out / "run_table.csv").rows()
    kinds = [r["kind"] for r in rows]
    # 2 warm-ups, 2 x (2 pairs + 1 floor), 2 arena runs
    assert kinds.count("warmup") == 2 and kinds.count("measure") == 4
    assert kinds.count("floor") == 2 and kinds.count("arenas") == 2
    by = {(r["kind"], r["variant"], r["repetition"]): r for r in rows}
    orig = by[("measure", "cpython", "1")]
    assert orig["ok"] == "yes" and orig["output_identical"] == "yes"
    assert orig["peak_source"] == ("VmHWM at exit (probe)" if HAVE_CC else orig["peak_source"])
    assert float(orig["peak_rss"]) > 5e6 and float(orig["wall"]) > 0
    # -OO strips the docstring the app prints: the comparison must catch it
    oo = by[("measure", "cpython-OO", "1")]
    assert oo["ok"] == "yes" and oo["output_identical"] == "no"
    assert "stdout" in oo["difference"]
    assert by[("arenas", "cpython", "1")]["arenas_avg"] != ""
    assert all(r["ok"] == "yes" for r in rows if r["kind"] in ("floor", "arenas")), rows
    assert rows[0]["energy_j"] == "unavailable" or float(rows[0]["energy_j"]) >= 0
    s = load_summary(out)
    assert s.get("cpython-OO", "tiny").identical == "no"
    assert s.get("cpython", "tiny").identical == "yes"
    md = (out / "summary.md").read_text()
    assert "| tiny |" in md and "≠" in md
    assert (tmp_path / "md" / "RESULTS.md").is_file()
    assert (tmp_path / "md" / "results" / "variants-peak-rss.png").is_file()
    meta = json.loads((out / "experiment.json").read_text())
    assert meta["seed"] == 3 and meta["variants"] == ["cpython", "cpython-OO"]


@pytest.mark.slow
def test_resume_after_a_kill_has_no_duplicate_rows(tmp_path: Path) -> None:
    app = _tiny(tmp_path)
    out = tmp_path / "exp"
    home = tmp_path / "home"
    args = [str(app), "--against", "cpython-OO", "--repeat", "6", "--seed", "5", "--out",
            str(out), "--no-arenas", "--cooldown", "0.2"]
    proc = _bench(args, home, start_new_session=True)
    table = out / "run_table.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if table.is_file() and len(RunTable(table).rows()) >= 5:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = RunTable(table).rows()
    total = 2 + 6 * 3  # warm-ups, then 6 blocks of 2 pairs and 1 floor
    assert 5 <= len(first) < total
    proc = _bench(["--resume", "--out", str(out)], home)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    rows = RunTable(table).rows()
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids)) == total
    assert ids[: len(first)] == [r["run_id"] for r in first]
    assert "already done" in log


def test_memtrim_bundle_is_run_through_its_launcher(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "app").mkdir(parents=True)
    (bundle / "run.sh").write_text("#!/bin/sh\nexec \"$MEMTRIM_PYTHON\" -S \"$@\"\n")
    (bundle / "_memtrim_boot.py").write_text("")
    (bundle / V.BUNDLE_MANIFEST).write_text(json.dumps({
        "entry": "app/run.py", "module": None, "verified_with": {"ok": True},
        "launcher": {"script": "run.sh", "flags": ["-S", "-OO"],
                     "env": {"MALLOC_ARENA_MAX": "1"},
                     "settings": [{"name": "no-site"}, {"name": "optimize-2"}]},
    }))
    app = BenchApp("tiny", "user", tmp_path / "memtrim.toml")
    built = V.VARIANTS["memtrim-safe"]._from_bundle(app, bundle, "/usr/bin/python3")
    assert built.argv == ["sh", str(bundle / "run.sh")]
    assert built.root == str(bundle / "app")
    assert built.env == {"MEMTRIM_PYTHON": "/usr/bin/python3", "MALLOC_ARENA_MAX": "1"}
    # the arena run goes through the bootstrap module, with the launcher's flags
    assert built.python_args == ["-S", "-OO"]
    assert built.entry == [str(bundle / "_memtrim_boot.py")]
    assert "no-site, optimize-2" in built.notes


def test_standings_separate_beaten_from_ties() -> None:
    mb = 1e6
    rows = []
    # memtrim: 20.0-20.2 MB; a: 19.0 (beats it); b: 20.05 (tie, within 0.2 MB spread);
    # c: 19.0 but its output differed (does not count)
    for r in (1, 2, 3):
        rows += [_row("measure", "cpython", "w", r, 25 * mb, 1.0),
                 _row("measure", "memtrim-safe", "w", r, (20.0 + 0.1 * (r - 1)) * mb, 1.0),
                 _row("measure", "a", "w", r, 19 * mb, 1.0),
                 _row("measure", "b", "w", r, 20.05 * mb, 1.0),
                 _row("measure", "c", "w", r, 19 * mb, 1.0, identical="no")]
    meta = {"variants": ["cpython", "a", "b", "c", "memtrim-safe"],
            "workloads": {"w": {"app": "w", "suite": "examples", "floor": "bare:v"}}}
    s = summarize(rows, meta)
    (st,) = standings(s, "memtrim-safe")
    assert st.beaten_by == ["a"] and st.tied_with == ["b"] and not st.won
    md = render_markdown(s)
    assert "| w | 20.1 | a 19.0 (-1.10) |" in md and "| b |" in md


def test_a_bundle_that_does_not_hold_the_optimized_tree_is_caught(tmp_path: Path) -> None:
    tree, packaged = tmp_path / "tree", tmp_path / "bundle" / "app"
    for root in (tree, packaged):
        (root / "pkg").mkdir(parents=True)
        (root / "run.py").write_text("import pkg\n")
        (root / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "_memtrim_cold_x.py").write_text("def cold(): pass\n")
    (packaged / "run.py").write_text("import pkg  # the original\n")
    assert V._tree_differences(tree, packaged) == ["pkg/_memtrim_cold_x.py", "run.py"]
    assert V._tree_differences(tree, tree) == []
