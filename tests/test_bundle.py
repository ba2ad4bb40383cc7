"""The bundle: runs from a clean folder with ``python -I`` and no memtrim; manifest; zipapp."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memtrim.app import App, load_app
from memtrim.bundle import MANIFEST_NAME, BundleError, bundle
from memtrim.bundle_cli import add_bundle_parser, cmd_bundle
from memtrim.launcher import CANDIDATES

S = {s.name: s for s in CANDIDATES}
# the interpreter the venv was made from: memtrim is not installed in it
BASE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")


def make_app(tmp_path: Path, *, imports: str = "", reads_data: bool = True) -> App:
    root = tmp_path / "src"
    (root / "tool").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "words.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "tool" / "__init__.py").write_text('"""Tool package."""\n')
    (root / "tool" / "core.py").write_text(
        'def count(words: list[str]) -> int:\n    """Count."""\n    return len(words)\n')
    data = ("Path(__file__).parent / 'data' / 'words.txt'" if reads_data
            else "Path(sys.argv[1]) if len(sys.argv) > 1 else None")
    (root / "main.py").write_text(
        f'"""Entry."""\nimport sys\nfrom pathlib import Path\n{imports}\n'
        "from tool.core import count\n"
        f"path = {data}\n"
        "words = path.read_text().split() if path else ['x']\n"
        "print('words', count(words))\n"
        "Path('out.txt').write_text(' '.join(sorted(words)))\n")
    (root / "memtrim.toml").write_text(
        'entry = "main.py"\n[[workloads]]\nname = "w"\noutputs = ["out.txt"]\n')
    return load_app(root / "memtrim.toml")


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def base_python() -> str:
    if not os.access(BASE_PYTHON, os.X_OK):
        pytest.skip("no base interpreter")
    probe = subprocess.run([BASE_PYTHON, "-I", "-c", "import memtrim"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("memtrim is importable from the base interpreter")
    return BASE_PYTHON


def test_bundle_runs_from_a_clean_folder_without_memtrim(tmp_path):
    app = make_app(tmp_path)
    before = tree_hash(app.root)
    out = tmp_path / "dist"
    manifest = bundle(app.root, out, app=app, settings=[S["gc-freeze"], S["malloc-trim"]])
    assert tree_hash(app.root) == before  # the input tree is never written
    assert manifest.verified is True and manifest.verification["workloads"] == ["w"]
    doc = json.loads((out / MANIFEST_NAME).read_text())
    assert doc["verified_with"]["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert doc["verified_with"]["ok"] is True
    assert doc["launcher"]["env"]["MALLOC_TRIM_THRESHOLD_"] == "131072"
    assert doc["dependencies_expected_on_device"] == [] and doc["c_extensions"] == []
    tag = sys.implementation.cache_tag
    assert (out / "app" / "tool" / "__pycache__" / f"core.{tag}.pyc").is_file()
    # moved to a clean place, run by an interpreter without memtrim, isolated
    clean = tmp_path / "elsewhere"
    shutil.copytree(out, clean / "bundle")
    work = clean / "work"
    work.mkdir()
    py = base_python()
    res = subprocess.run([py, "-I", str(clean / "bundle")], capture_output=True, text=True,
                         cwd=work, timeout=60)
    assert res.returncode == 0 and res.stdout == "words 3\n", res.stderr
    assert (work / "out.txt").read_text() == "alpha beta gamma"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    res = subprocess.run(["/bin/sh", str(clean / "bundle" / "run.sh")], capture_output=True,
                         text=True, cwd=work, timeout=60, env={**env, "MEMTRIM_PYTHON": py})
    assert res.stdout == "words 3\n", res.stderr


def test_dependencies_and_vendoring(tmp_path):
    # iniconfig: pure Python, no requirements; rich: requirements pulled in transitively
    app = make_app(tmp_path, imports="import iniconfig\nimport rich.text\nimport importlib.util\n"
                   "def data():\n    return importlib.util.find_spec('pluggy')")
    out = tmp_path / "dist"
    manifest = bundle(app.root, out, app=app, vendor=["iniconfig"])
    expected = {d.name.lower(): d for d in manifest.dependencies}
    assert "rich" in expected and "iniconfig" not in expected
    assert expected["rich"].imported_as == ["rich"]
    assert "markdown-it-py" in expected and expected["markdown-it-py"].required_by == ["rich"]
    # found for its files, not imported: still needed on the device
    assert "pluggy" in expected
    from importlib.metadata import version

    assert expected["rich"].version == version("rich")
    assert [d.name for d in manifest.vendored] == ["iniconfig"]
    assert (out / "vendor" / "iniconfig" / "__init__.py").is_file()
    assert manifest.verified is True
    # -S -I: no site-packages at all; the vendored package comes from the bundle
    py = base_python()
    probe = subprocess.run([py, "-I", "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                            " import iniconfig; print(iniconfig.__file__)", str(out / "vendor")],
                           capture_output=True, text=True, timeout=60)
    assert str(out / "vendor") in probe.stdout, probe.stderr
    with pytest.raises(BundleError, match="not a dependency"):
        bundle(app.root, tmp_path / "d2", app=app, vendor=["numpy-not-imported"])


def test_zipapp_written_and_verified_when_pure(tmp_path):
    app = make_app(tmp_path, reads_data=False)
    out = tmp_path / "dist"
    manifest = bundle(app.root, out, app=app, zipapp=True, pyc_only=False)
    z = manifest.zipapp
    assert z["written"] and z["verified"] is True, z
    work = tmp_path / "w"
    work.mkdir()
    res = subprocess.run([base_python(), "-I", str(out / z["path"])], capture_output=True,
                         text=True, cwd=work, timeout=60)
    assert res.stdout == "words 1\n", res.stderr


def test_zipapp_refused_with_a_c_extension(tmp_path):
    app = make_app(tmp_path)
    ext = app.root / "tool" / "fast.cpython-311-x86_64-linux-gnu.so"
    ext.write_bytes(b"\x7fELF")
    manifest = bundle(app.root, tmp_path / "dist", app=app, zipapp=True, verify=False)
    assert not manifest.zipapp["written"]
    assert "C extension" in manifest.zipapp["reason"] and "tool/fast" in manifest.zipapp["reason"]
    assert manifest.c_extensions == ["app/tool/" + ext.name]
    assert not list((tmp_path / "dist").glob("*.pyz"))


def test_pyc_only_bundle(tmp_path):
    app = make_app(tmp_path)
    out = tmp_path / "dist"
    manifest = bundle(app.root, out, app=app, pyc_only=True, settings=[S["frozen-modules"]])
    assert manifest.verified is True and manifest.entry == "app/main.pyc"
    assert not list((out / "app").rglob("*.py"))
    assert (out / "app" / "tool" / "core.pyc").is_file()
    assert "python" in (out / "__main__.py").read_text()  # refuses another version
    work = tmp_path / "w"
    work.mkdir()
    res = subprocess.run(["/bin/sh", str(out / "run.sh")], capture_output=True, text=True,
                         cwd=work, timeout=60)
    assert res.stdout == "words 3\n", res.stderr


def test_optimization_level_bytecode_follows_the_settings(tmp_path):
    app = make_app(tmp_path)
    out = tmp_path / "dist"
    manifest = bundle(app.root, out, app=app, settings=[S["optimize-2"]])
    assert manifest.bytecode["levels"] == [0, 2]
    tag = sys.implementation.cache_tag
    assert (out / "app" / "tool" / "__pycache__" / f"core.{tag}.opt-2.pyc").is_file()
    assert "-OO" in (out / "run.sh").read_text()


def test_bad_input(tmp_path):
    app = make_app(tmp_path)
    with pytest.raises(BundleError, match="overlaps the input tree"):
        bundle(app.root, app.root / "dist", app=app)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(BundleError, match="not empty"):
        bundle(app.root, busy, app=app)
    with pytest.raises(BundleError, match="outside"):
        bundle(app.root, tmp_path / "d", app=App(root=app.root, script=tmp_path / "x.py"))


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="memtrim")
    add_bundle_parser(parser.add_subparsers(dest="command"))
    return cmd_bundle(parser.parse_args(["bundle", *argv]))


def test_cli(tmp_path, capsys):
    app = make_app(tmp_path)
    assert run_cli(str(tmp_path / "missing"), "-o", str(tmp_path / "o")) == 2
    assert "not a directory" in capsys.readouterr().err
    assert run_cli(str(app.root), "-o", str(tmp_path / "o"), "--settings", "bogus") == 2
    assert "unknown setting(s) bogus" in capsys.readouterr().err
    assert run_cli(str(app.root), "-o", str(tmp_path / "o"), "--device", "toaster") == 2
    assert "unknown device" in capsys.readouterr().err
    code = run_cli(str(app.root), "-o", str(tmp_path / "o"), "--settings", "gc-freeze",
                   "--json", str(tmp_path / "m.json"), "-q")
    assert code == 0
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [s["name"] for s in doc["launcher"]["settings"]] == ["gc-freeze"]
    assert doc["verified_with"]["ok"] is True


def test_settings_chosen_on_the_staged_bundle(tmp_path):
    from memtrim.launcher import Decision, Verdict

    app = make_app(tmp_path, imports="import iniconfig")
    seen = {}

    def choose(staged, extra):
        # called before compiling, on the staged copy with its vendored packages
        seen["root"], seen["extra"] = staged.root, list(extra)
        seen["vendored"] = (extra[0] / "iniconfig" / "__init__.py").is_file()
        seen["pycache"] = list(staged.root.rglob("__pycache__"))
        return Decision([S["gc-freeze"]], [Verdict("gc-freeze", True, "test")])

    manifest = bundle(app.root, tmp_path / "dist", app=app, settings=choose,
                      vendor=["iniconfig"])
    assert seen["root"].name == "app" and seen["root"] != app.root
    assert seen["vendored"] and seen["pycache"] == []
    assert [s.name for s in manifest.settings] == ["gc-freeze"]
    assert manifest.decision["verdicts"][0]["reason"] == "test"
    assert "gc-freeze: " in (tmp_path / "dist" / "run.sh").read_text()
    assert manifest.verified is True
