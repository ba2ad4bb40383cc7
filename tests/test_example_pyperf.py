"""The pyperformance example: list, prepare and run benchmarks as one-shot applications."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memtrim.app import load_app

pytestmark = [
    pytest.mark.pyperformance,
    pytest.mark.skipif(importlib.util.find_spec("pyperformance") is None,
                       reason="needs pyperformance (pip install pyperformance==1.14.0)"),
]

HERE = Path(__file__).resolve().parent.parent / "examples" / "pyperf"
APP = HERE / "pyperf_app.py"
sys.path.insert(0, str(HERE))

import pyperf_app  # noqa: E402


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run pyperf_app.py with this interpreter."""
    return subprocess.run([sys.executable, str(APP), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_list_finds_the_installed_benchmarks() -> None:
    proc = cli("list")
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.split()
    assert len(names) >= 40
    assert {"nbody", "json_loads", "richards", "pickle"} <= set(names)
    variants = cli("list", "--variants").stdout.split()
    assert "pickle_dict" in variants and len(variants) > len(names)


def test_normalizer_hides_timings_only() -> None:
    a = pyperf_app.normalize("nbody: 78.5 ms\n")
    b = pyperf_app.normalize("nbody: 1.02 sec\n")
    assert a == b == "nbody: <time>\n"
    assert pyperf_app.normalize("pickle: 8.61 us") == pyperf_app.normalize("pickle: 950 ns")
    assert pyperf_app.normalize("result 42 items") == "result 42 items"


def test_run_standalone() -> None:
    proc = cli("run", "nbody")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"nbody: [0-9.]+ (?:sec|ms|us|ns)\n", proc.stdout), proc.stdout


def test_run_variant_passes_extra_opts() -> None:
    proc = cli("run", "pickle_dict")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pickle_dict: ")


def test_prepare_then_run_twice_compares_equal(tmp_path: Path) -> None:
    dest = tmp_path / "nbody"
    proc = cli("prepare", "nbody", str(dest))
    assert proc.returncode == 0, proc.stderr
    assert (dest / "run_benchmark.py").is_file() and (dest / "memtrim.toml").is_file()
    app = load_app(dest / "memtrim.toml")
    assert app.script == (dest / "run_benchmark.py").resolve()
    (wl,) = app.workloads
    assert wl.args[:7] == pyperf_app.WORKER_ARGS

    def normalized(text: str) -> str:
        for n in app.normalizers:
            text = re.sub(n.pattern, n.replace, text)
        return text

    runs = []
    for i in range(2):
        scratch = tmp_path / f"scratch{i}"
        scratch.mkdir()
        p = subprocess.run([sys.executable, *app.entry_argv(), *wl.expand(app.root).args],
                           cwd=scratch, capture_output=True, text=True, timeout=300)
        assert p.returncode == wl.expect_exit, p.stderr
        runs.append(p)
    assert normalized(runs[0].stdout) == normalized(runs[1].stdout) == "nbody: <time>\n"
    if wl.compare_stderr:
        assert normalized(runs[0].stderr) == normalized(runs[1].stderr)


def test_prepare_copies_data_files(tmp_path: Path) -> None:
    # 2to3 reads its data/ directory relative to run_benchmark.py.
    dest = tmp_path / "2to3"
    assert cli("prepare", "2to3", str(dest), "--no-probe").returncode == 0
    src = pyperf_app.find_benchmark("2to3").directory
    assert sorted(p.name for p in (dest / "data").iterdir()) == sorted(
        p.name for p in (src / "data").iterdir())
    assert "compare_stderr = false" in (dest / "memtrim.toml").read_text()
