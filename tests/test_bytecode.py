"""Precompiled bytecode: levels, the target interpreter's format, the sourceless layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memtrim.bytecode import BytecodeError, compile_tree, make_sourceless, optimization_level

PYENV = Path.home() / ".pyenv" / "versions"


def _python(minor: str) -> str:
    found = sorted(PYENV.glob(f"{minor}.*/bin/python"))
    if not found:
        pytest.skip(f"no Python {minor} under {PYENV}")
    return str(found[0])


def make_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text(
        'def f():\n    """Doc."""\n    assert False, "asserts on"\n    return 1\n')
    (root / "run.py").write_text(
        "import sys\nfrom pkg import mod\n"
        "name = mod.__cached__.rpartition('/')[2]\n"
        "try:\n    mod.f()\n    print('no assert', mod.f.__doc__, name)\n"
        "except AssertionError:\n    print('assert', mod.f.__doc__, name)\n")
    return root


def run(python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([python, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60)


def test_level_2_pyc_is_what_minus_OO_reads(tmp_path):
    root = make_tree(tmp_path)
    result = compile_tree(root, levels=(0, 2), invalidation="unchecked-hash")
    tag = sys.implementation.cache_tag
    cache = root / "pkg" / "__pycache__"
    assert (cache / f"mod.{tag}.opt-2.pyc").is_file()
    assert (cache / f"mod.{tag}.pyc").is_file()
    assert not (cache / f"mod.{tag}.opt-1.pyc").exists()
    assert result.pyc_files == 6 and result.levels == (0, 2) and result.failures == []
    # an unchecked pyc is used even when the source changes: proves -OO reads our file
    (root / "pkg" / "mod.py").write_text("raise SystemExit('compiled from source')\n")
    out = run(sys.executable, "-OO", "run.py", cwd=root)
    assert out.stdout == f"no assert None mod.{tag}.opt-2.pyc\n", out.stderr
    plain = run(sys.executable, "run.py", cwd=root)
    assert plain.stdout.startswith("assert Doc.")


def test_checked_hash_by_default(tmp_path):
    root = make_tree(tmp_path)
    compile_tree(root, levels=(2,))
    pyc = root / "pkg" / "__pycache__" / f"mod.{sys.implementation.cache_tag}.opt-2.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b11  # hash-based, checked: copying the bundle cannot make it stale
    (root / "pkg" / "mod.py").write_text("def f():\n    return 2\n")
    out = run(sys.executable, "-OO", "-c", "from pkg import mod; print(mod.f())", cwd=root)
    assert out.stdout == "2\n"  # the changed source wins over the old pyc


def test_compiled_by_the_target_interpreter(tmp_path):
    py312 = _python("3.12")
    root = make_tree(tmp_path)
    result = compile_tree(root, python=py312, levels=(2,))
    assert result.cache_tag == "cpython-312" and result.version.startswith("3.12")
    assert (root / "pkg" / "__pycache__" / "mod.cpython-312.opt-2.pyc").is_file()
    assert result.magic != compile_tree(root, levels=(2,)).magic


def test_sourceless_layout_runs_only_on_its_version(tmp_path):
    py312 = _python("3.12")
    root = make_tree(tmp_path)
    result = make_sourceless(root, python=py312, level=2)
    assert result.sourceless and result.pyc_files == 3
    assert not list(root.rglob("*.py")) and not list(root.rglob("__pycache__"))
    assert (root / "pkg" / "mod.pyc").is_file() and (root / "run.pyc").is_file()
    ok = run(py312, "run.pyc", cwd=root)
    assert ok.returncode == 0 and ok.stdout.startswith("no assert None"), ok.stderr
    wrong = run(sys.executable, "-c", "import pkg.mod", cwd=root)
    assert wrong.returncode != 0 and "magic number" in wrong.stderr


def test_sourceless_keeps_named_sources(tmp_path):
    root = make_tree(tmp_path)
    make_sourceless(root, level=0, keep_sources=["run.py"])
    assert (root / "run.py").is_file() and not (root / "run.pyc").exists()
    assert not (root / "pkg" / "mod.py").exists()
    assert run(sys.executable, "run.py", cwd=root).stdout.startswith("assert Doc.")


def test_files_that_do_not_compile_are_listed(tmp_path):
    root = make_tree(tmp_path)
    (root / "old.py").write_text("print 'python 2'\n")
    result = compile_tree(root, levels=(0,))
    assert len(result.failures) == 1 and "old.py" in result.failures[0]
    assert result.pyc_files == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"levels": (3,)}, "levels must be 0, 1 or 2"),
    ({"levels": (0, 2), "legacy": True}, "one optimization level"),
    ({"invalidation": "never"}, "invalidation must be"),
    ({"python": "/nonexistent/python"}, "interpreter not found"),
])
def test_bad_input_is_one_line(tmp_path, kwargs, message):
    root = make_tree(tmp_path)
    with pytest.raises(BytecodeError, match=message) as e:
        compile_tree(root, **kwargs)
    assert "\n" not in str(e.value)
    with pytest.raises(BytecodeError, match="not a directory"):
        compile_tree(tmp_path / "missing")


def test_optimization_level():
    assert optimization_level([]) == 0
    assert optimization_level(["-O"]) == 1
    assert optimization_level(["-OO"]) == 2
    assert optimization_level(["-S", "-O", "-O"]) == 2
    assert optimization_level(["-X", "no_debug_ranges", "-S"]) == 0
