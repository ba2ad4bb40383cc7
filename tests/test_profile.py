"""memtrim profile: its figures against independent measurements, and its error handling."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memtrim.measure.imports import ImportNode
from memtrim.measure.profile import ProfileRequest, profile
from memtrim.measure.runner import run_child

PY = sys.executable
MB = 1024 * 1024
ALLOC_50MB = "blob = b'\\x01' * (50 * 1024 * 1024)  # memset: every page is touched\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def memtrim(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "memtrim.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    # the app's own traceback may follow, indented; memtrim's would start a line
    assert not any(line.startswith("Traceback") for line in proc.stderr.splitlines()), proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("memtrim: error: "), proc.stderr
    return first


@pytest.mark.skipif(
    not shutil.which("time") and not Path("/usr/bin/time").exists(),
    reason="GNU time is the independent reference",
)
def test_peak_rss_agrees_with_gnu_time(tmp_path: Path) -> None:
    """GNU time is a small C parent: its child's ru_maxrss is not polluted by a Python parent."""
    app = write(tmp_path / "alloc.py", ALLOC_50MB)
    ref = subprocess.run(
        ["/usr/bin/time", "-f", "%M", PY, str(app)], capture_output=True, text=True, check=True
    )
    reference = int(ref.stderr.strip().splitlines()[-1]) * 1024
    run = run_child(PY, [], [str(app)], workdir=tmp_path / "w")
    assert run.exit_code == 0
    assert run.peak_source == "child VmHWM at exit"
    assert run.peak_rss is not None
    assert run.peak_rss > 50 * MB
    assert abs(run.peak_rss - reference) <= max(0.05 * reference, 1 * MB), (run.peak_rss, reference)


def test_peak_rss_after_os_exit_is_reported_by_the_child(tmp_path: Path) -> None:
    app = write(tmp_path / "osexit.py", ALLOC_50MB + "import os\nos._exit(7)\n")
    run = run_child(PY, [], [str(app)], workdir=tmp_path / "w")
    assert run.exit_code == 7
    assert run.record is not None and run.record["exit_via"] == "os._exit"
    assert run.peak_source == "child VmHWM at exit"
    assert run.peak_rss is not None and run.peak_rss > 50 * MB


def test_sigkill_falls_back_to_parent_samples(tmp_path: Path) -> None:
    app = write(
        tmp_path / "killed.py",
        ALLOC_50MB
        + "import os, signal, time\ntime.sleep(0.3)\nos.kill(os.getpid(), signal.SIGKILL)\n",
    )
    run = run_child(PY, [], [str(app)], workdir=tmp_path / "w", interval=0.01)
    assert run.signal == "SIGKILL"
    assert run.record is None
    assert run.peak_source.startswith("parent samples")
    assert run.peak_rss is not None and run.peak_rss > 50 * MB


def test_timeline_separates_anonymous_and_file_memory(tmp_path: Path) -> None:
    app = write(tmp_path / "slow.py", ALLOC_50MB + "import time\ntime.sleep(0.3)\n")
    run = run_child(PY, [], [str(app)], workdir=tmp_path / "w", interval=0.01)
    assert len(run.timeline) >= 10
    t, rss, anon, file_, _shmem = max(run.timeline, key=lambda s: s[1])
    assert anon > 50 * MB  # the blob is anonymous memory
    assert file_ > 0  # the interpreter's mapped code is file-backed
    assert anon + file_ <= rss + 1 * MB


def test_import_cost_is_charged_to_the_right_node(tmp_path: Path) -> None:
    write(tmp_path / "heavy.py", "DATA = b'x' * (20 * 1024 * 1024)\n")
    write(tmp_path / "light.py", "VALUE = 1\n")
    write(tmp_path / "mid.py", "import light\nimport heavy\n")
    app = write(tmp_path / "main.py", "import mid\nprint(len(mid.heavy.DATA))\n")
    doc = profile(
        ProfileRequest(
            target=[str(app)], python=PY, runs=("imports", "tracemalloc"), workdir=tmp_path / "w"
        )
    )
    assert doc["imports"]["available"]
    nodes = {n["module"]: n for n in _walk(doc["imports"]["tree"])}
    heavy, mid, light = nodes["heavy"], nodes["mid"], nodes["light"]
    assert [c["module"] for c in mid["children"]] == ["light", "heavy"]
    assert 19 * MB <= heavy["self_rss"] <= 23 * MB
    assert mid["cum_rss"] >= heavy["cum_rss"]
    assert mid["self_rss"] < 1 * MB
    assert light["cum_rss"] < 1 * MB
    assert 20 * MB <= heavy["self_traced"] <= 21 * MB
    assert mid["self_traced"] < 256 * 1024


def _walk(items: list[dict]):
    for item in items:
        yield item
        yield from _walk(item["children"])


def test_import_node_self_cost_subtracts_children() -> None:
    child = ImportNode("b", cum_rss=300, cum_traced=100, cum_time=0.5)
    parent = ImportNode("a", cum_rss=1000, cum_traced=150, cum_time=2.0, children=[child])
    assert (parent.self_rss, parent.self_traced, parent.self_time) == (700, 50, 1.5)


def test_profile_document_has_every_section(tmp_path: Path) -> None:
    app = write(tmp_path / "app.py", ALLOC_50MB + "import json\nprint(json.dumps([1]))\n")
    out = tmp_path / "p.json"
    proc = memtrim("profile", "--repeat", "3", "--json", str(out), str(app))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "memtrim.profile/1"
    pk = doc["headline"]["peak_rss"]
    assert len(pk["runs"]) == 3 and pk["min"] <= pk["median"] <= pk["max"]
    assert pk["median"] > 50 * MB
    floor = doc["floor"]["peak_rss"]["median"]
    assert 4 * MB < floor < 30 * MB
    assert doc["reducible"]["peak_rss"] == pk["median"] - floor
    assert doc["imports"]["available"] and doc["imports"]["modules"] >= 1
    assert doc["allocations"]["available"]
    top = doc["allocations"]["top_lines"][0]
    assert top["file"] == str(app) and top["line"] == 1 and top["bytes"] >= 50 * MB
    assert doc["census"]["available"]
    assert doc["census"]["types"][0]["type"] == "bytes"
    assert doc["census"]["types"][0]["bytes"] >= 50 * MB
    assert doc["census"]["rss_at_census"] >= 50 * MB
    assert doc["arenas"]["available"] and doc["arenas"]["arenas_max"] >= 1
    assert doc["energy"]["available"] in (True, False)
    if not doc["energy"]["available"]:
        assert doc["energy"]["reason"]
    assert "peak RSS" in proc.stdout and "reducible" in proc.stdout


def test_other_interpreter_with_python_option(tmp_path: Path) -> None:
    other = Path.home() / ".pyenv/versions/3.12.1/bin/python"
    if not other.exists():
        pytest.skip("pyenv 3.12 is not installed on this machine")
    app = write(tmp_path / "app.py", "import sys\nprint(sys.version_info[:2])\n")
    out = tmp_path / "p.json"
    proc = memtrim(
        "profile", "--python", str(other), "--no-tracemalloc", "--json", str(out), str(app)
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["interpreter"]["version"].startswith("3.12.")
    assert doc["arenas"]["available"]


def test_module_target_runs_like_python_m(tmp_path: Path) -> None:
    write(tmp_path / "pkg/__init__.py", "")
    write(tmp_path / "pkg/__main__.py", "import sys\nprint('args', sys.argv[1:])\n")
    out = tmp_path / "p.json"
    proc = memtrim(
        "profile",
        "--no-tracemalloc",
        "--no-arenas",
        "--no-imports",
        "--json",
        str(out),
        "--cwd",
        str(tmp_path),
        "-m",
        "pkg",
        "--",
        "a",
        "b",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["headline"]["stdout_tail"] == "args ['a', 'b']"


# -- bad input ---------------------------------------------------------------


def test_missing_script(tmp_path: Path) -> None:
    proc = memtrim("profile", str(tmp_path / "nope.py"))
    assert proc.returncode == 2
    assert "script not found" in assert_one_line_error(proc)


def test_syntax_error_is_reported_as_file_and_line(tmp_path: Path) -> None:
    app = write(tmp_path / "bad.py", "x = 1\ndef f(:\n    pass\n")
    proc = memtrim("profile", str(app))
    assert proc.returncode == 2
    line = assert_one_line_error(proc)
    assert re.search(rf"syntax error: {re.escape(str(app))}:2: ", line), line


def test_crash_reports_exit_code_and_stderr_tail_and_keeps_measurements(tmp_path: Path) -> None:
    app = write(tmp_path / "crash.py", ALLOC_50MB + "raise RuntimeError('sensor offline')\n")
    out = tmp_path / "p.json"
    proc = memtrim("profile", "--json", str(out), str(app))
    assert proc.returncode == 3
    line = assert_one_line_error(proc)
    assert "exited with status 1" in line
    assert "RuntimeError: sensor offline" in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["headline"]["peak_rss"]["median"] > 50 * MB
    assert "sensor offline" in doc["failure"]["stderr_tail"]
    # the traceback is the application's own: no harness frames
    assert "child.py" not in doc["failure"]["stderr_tail"]


def test_hang_is_killed_with_its_whole_process_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    app = write(
        tmp_path / "hang.py",
        f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(600)
        """,
    )
    started = time.monotonic()
    proc = memtrim("profile", "--timeout", "2", str(app))
    assert time.monotonic() - started < 60
    assert proc.returncode == 4
    assert "timed out" in assert_one_line_error(proc)
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_child_processes_are_marked_as_not_counted(tmp_path: Path) -> None:
    app = write(
        tmp_path / "spawner.py",
        """
        import subprocess, sys
        subprocess.run([sys.executable, "-c",
                        "b = b'x' * (40 * 1024 * 1024); import time; time.sleep(0.5)"])
        """,
    )
    out = tmp_path / "p.json"
    proc = memtrim(
        "profile", "--no-tracemalloc", "--no-arenas", "--no-imports", "--json", str(out), str(app)
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    kids = doc["children"]
    assert kids["seen"] >= 1 and kids["counted_in_peak_rss"] is False
    assert kids["tree_peak_rss"] > doc["headline"]["peak_rss"]["median"] + 30 * MB
    assert "NOT counted" in proc.stdout


def test_bad_options(tmp_path: Path) -> None:
    app = write(tmp_path / "a.py", "pass\n")
    for args in (
        ["--repeat", "0", str(app)],
        ["-m", "x", str(app)],
        ["--python", "/nope", str(app)],
    ):
        proc = memtrim("profile", *args)
        assert proc.returncode == 2, args
        assert_one_line_error(proc)


def test_help_explains(tmp_path: Path) -> None:
    proc = memtrim("profile", "--help")
    assert proc.returncode == 0
    assert "VmHWM" in proc.stdout and "exit status" in proc.stdout


def test_runs_dir_keeps_raw_files_and_the_default_leaves_nothing(tmp_path: Path) -> None:
    app = write(tmp_path / "a.py", "print('hello')\n")
    runs = tmp_path / "runs"
    proc = memtrim("profile", "--no-tracemalloc", "--no-census", "--runs-dir", str(runs), str(app))
    assert proc.returncode == 0, proc.stderr
    assert (runs / "plain0" / "plain.stdout").read_text() == "hello\n"
    assert (runs / "arenas" / "arenas.result.arenas").exists()
    import tempfile as _tf

    before = set(Path(_tf.gettempdir()).glob("memtrim-profile-*"))
    proc = memtrim("profile", "--no-tracemalloc", "--no-census", str(app))
    assert proc.returncode == 0, proc.stderr
    assert set(Path(_tf.gettempdir()).glob("memtrim-profile-*")) == before


def test_input_tree_is_not_modified(tmp_path: Path) -> None:
    app = write(tmp_path / "src/app.py", "print('hi')\n")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    proc = memtrim("profile", "--no-tracemalloc", "--no-arenas", str(app), cwd=tmp_path / "src")
    assert proc.returncode == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
