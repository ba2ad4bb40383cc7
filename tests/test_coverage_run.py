"""The dynamic analysis' profiler: every workload under coverage.py, one context each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from coverage import CoverageData

from memtrim.analysis.coverage_run import (
    CoverageError,
    _without_hiding_flags,
    collect_coverage,
    probe_coverage,
)
from memtrim.app import App, Workload

PY = sys.executable


def make_app(tmp_path: Path, *workloads: Workload) -> App:
    root = tmp_path / "app"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (root / "pkg" / "ops.py").write_text(textwrap.dedent("""\
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        """), encoding="utf-8")
    (root / "pkg" / "unused.py").write_text("X = 1\n", encoding="utf-8")
    (root / "main.py").write_text(textwrap.dedent("""\
        import os
        import sys

        from pkg import ops

        op = sys.argv[1]
        if op == "add":
            print(ops.add(2, 3))
        else:
            print(ops.mul(2, 3))
        with open("out.txt", "w") as f:
            f.write(op)
        if op == "exit":
            sys.stdout.flush()
            os._exit(3)
        """), encoding="utf-8")
    return App(root=root, script=root / "main.py", workloads=workloads)


def test_one_context_per_workload_and_branch_arcs(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload(name="adds", args=("add",)),
                   Workload(name="muls", args=("mul",)))
    data_file = tmp_path / "cov" / ".coverage"
    result = collect_coverage(app, python=PY, data_file=data_file)
    assert result.contexts == ["adds", "muls"]
    assert all(w.ok for w in result.workloads)
    ops = result.file(app.root / "pkg" / "ops.py")
    assert ops is not None
    assert ops.lines["adds"] >= {2} and 2 not in ops.lines["muls"]
    assert ops.lines["muls"] >= {6} and 6 not in ops.lines["adds"]
    assert ops.contexts_for([2]) == ["adds"]
    # branch coverage: function entries are arcs from -co_firstlineno
    assert (-1, 2) in ops.arcs["adds"] and (-5, 6) in ops.arcs["muls"]
    main = result.file("main.py")
    assert main is not None and 8 in main.lines["adds"] and 10 in main.lines["muls"]
    # a module in the source that no workload imports is reported with no lines
    unused = result.file("pkg/unused.py")
    assert unused is None or not unused.executed_lines()
    # the combined data file keeps the contexts, for coverage's own reports
    data = CoverageData(basename=str(data_file))
    data.read()
    assert data.has_arcs()
    assert data.measured_contexts() == {"adds", "muls"}
    measured = next(f for f in data.measured_files() if f.endswith("ops.py"))
    assert data.contexts_by_lineno(measured)[2] == ["adds"]
    assert result.core in ("ctrace", "pytrace", "sysmon")


def test_runs_in_scratch_dirs_and_never_writes_into_the_tree(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload(name="w", args=("add",), outputs=("out.txt",)))
    before = sorted(p.relative_to(app.root) for p in app.root.rglob("*"))
    collect_coverage(app, python=PY)
    assert sorted(p.relative_to(app.root) for p in app.root.rglob("*")) == before


def test_os_exit_keeps_the_data(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload(name="exits", args=("exit",), expect_exit=3))
    result = collect_coverage(app, python=PY)
    main = result.file("main.py")
    assert main is not None and 15 in main.lines["exits"]


def test_a_workload_failing_under_coverage_is_an_error(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload(name="bad", args=("add",), expect_exit=5))
    with pytest.raises(CoverageError, match="exited 0, expected 5"):
        collect_coverage(app, python=PY)
    with pytest.raises(CoverageError, match="unknown workload"):
        collect_coverage(app, python=PY, workloads=["nope"])
    result = collect_coverage(app, python=PY, strict=False)
    assert not result.workloads[0].ok


def test_subset_of_workloads(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload(name="adds", args=("add",)),
                   Workload(name="muls", args=("mul",)))
    result = collect_coverage(app, python=PY, workloads=["muls"])
    assert result.contexts == ["muls"]


def test_hiding_flags_are_dropped_only_when_coverage_needs_it(tmp_path: Path) -> None:
    assert _without_hiding_flags(["-S", "-X", "dev", "-IO", "-E"]) == ["-X", "dev", "-O"]
    app = make_app(tmp_path, Workload(name="adds", args=("add",)))
    result = collect_coverage(app, python=PY, flags=["-S"])
    if "coverage" in sys.modules and sys.prefix != sys.base_prefix:
        # in a venv, -S hides the venv's site-packages (where coverage is)
        assert result.flags == () and "-S" in result.notes[0]
    assert result.file("pkg/ops.py") is not None


def test_interpreter_without_coverage_is_named(tmp_path: Path) -> None:
    base = shutil.which("python3", path="/usr/bin:/bin")
    if base is None:
        pytest.skip("no system python3")
    probe = subprocess.run([base, "-c", "import coverage"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python3 has coverage installed")
    assert "error" in probe_coverage(base, ["-I"])
    app = make_app(tmp_path, Workload(name="adds", args=("add",)))
    with pytest.raises(CoverageError, match="not importable by .*install coverage"):
        collect_coverage(app, python=base, flags=["-I"])


def test_environment_and_stdin_are_the_workloads(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    (root / "main.py").write_text(textwrap.dedent("""\
        import os
        import sys
        data = sys.stdin.read()
        if os.environ.get("MODE") == "loud" and data == "hi":
            print("LOUD")
        else:
            print("quiet")
        """), encoding="utf-8")
    (root / "in.txt").write_text("hi", encoding="utf-8")
    app = App(root=root, script=root / "main.py", workloads=(
        Workload(name="loud", stdin="in.txt", env=(("MODE", "loud"),)),))
    result = collect_coverage(app, python=PY)
    main = result.file("main.py")
    assert main is not None and 5 in main.lines["loud"] and 7 not in main.lines["loud"]
    assert os.environ.get("MODE") != "loud"
