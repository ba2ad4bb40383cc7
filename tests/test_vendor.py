"""Vendoring: installed packages copied into the tree, C extensions copied or linked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.vendor import (
    LINK_MARK,
    MANIFEST_NAME,
    compile_tree,
    locate_packages,
    read_manifest,
    third_party_tops,
    vendor_packages,
)


def fake_site(root: Path) -> Path:
    """A site folder holding the distribution ``fake-pkg`` (import name ``fakepkg``)."""
    site = root / "site"
    files = {
        "fakepkg/__init__.py": "from .sub import VALUE\n",
        "fakepkg/sub/__init__.py": "VALUE = 41 + 1\n",
        "fakepkg/sub/tests/test_it.py": "def test(): pass\n",
        "fakepkg/data.txt": "payload\n",
        "fakepkg/_speed.pyx": "# cython source: not needed at run time\n",
        "fakepkg/_speed.cpython-311-x86_64-linux-gnu.so": "\x7fELF not really\n",
        "fake_pkg.libs/libfake-1234.so": "\x7fELF\n",
    }
    for rel, text in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    info = site / "fake_pkg-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-pkg\nVersion: 1.2\n")
    (info / "top_level.txt").write_text("fakepkg\n")
    record = [f"{rel},," for rel in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return site


@pytest.fixture()
def site(tmp_path: Path, monkeypatch) -> Path:
    site = fake_site(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_locate_without_importing(site: Path) -> None:
    found = locate_packages(["fakepkg", "json", "sys", "no_such_pkg_xyz"])
    assert found["fakepkg"]["kind"] == "package"
    assert found["fakepkg"]["distribution"] == "fake-pkg"
    assert found["json"]["stdlib"] is True
    assert found["sys"]["kind"] == "built-in"
    assert found["no_such_pkg_xyz"]["kind"] == "missing"
    assert third_party_tops(["fakepkg.sub", "json.decoder", "sys"]) == ["fakepkg"]


def test_copy_mode_copies_python_data_and_binaries(site: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    before = snapshot(site)
    m = vendor_packages(tree, ["fakepkg", "json", "sys", "no_such_pkg_xyz"])
    assert snapshot(site) == before  # the install is never touched
    (pkg,) = m.packages
    assert pkg.name == "fakepkg" and pkg.version == "1.2" and pkg.libs == ["fake_pkg.libs"]
    assert (tree / "fakepkg/__init__.py").is_file()
    assert (tree / "fakepkg/data.txt").read_text() == "payload\n"
    assert (tree / "fakepkg/_speed.cpython-311-x86_64-linux-gnu.so").is_file()
    assert (tree / "fake_pkg.libs/libfake-1234.so").is_file()
    assert not (tree / "fakepkg/sub/tests").exists()  # tests are never imported
    assert not (tree / "fakepkg/_speed.pyx").exists()  # build inputs only
    assert pkg.extensions == ["fakepkg/_speed.cpython-311-x86_64-linux-gnu.so"]
    reasons = {s["name"]: s["why"] for s in m.skipped}
    assert "standard library" in reasons["json"]
    assert "built-in" in reasons["sys"]
    assert "not installed" in reasons["no_such_pkg_xyz"]
    assert json.loads((tree / MANIFEST_NAME).read_text())["packages"][0]["name"] == "fakepkg"
    assert read_manifest(tree).names == ["fakepkg"]


def test_link_mode_finds_extensions_in_the_original_install(site: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    vendor_packages(tree, ["fakepkg"], extensions="link")
    assert not (tree / "fakepkg/_speed.cpython-311-x86_64-linux-gnu.so").exists()
    init = (tree / "fakepkg/__init__.py").read_text()
    assert LINK_MARK in init and str((site / "fakepkg").resolve()) in init


def test_vendored_copy_is_imported_before_the_install(site: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    vendor_packages(tree, ["fakepkg"])
    (tree / "fakepkg/sub/__init__.py").write_text("VALUE = 'vendored'\n")
    (tree / "main.py").write_text("import fakepkg\nprint(fakepkg.VALUE, fakepkg.__file__)\n")
    res = subprocess.run([sys.executable, "main.py"], cwd=tree, capture_output=True, text=True)
    assert res.stdout.startswith("vendored " + str(tree)), res.stderr


def test_app_names_and_existing_files_are_refused(site: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "fakepkg").mkdir(parents=True)
    m = vendor_packages(tree, ["fakepkg"])
    assert not m.packages and "already exists" in m.skipped[0]["why"]
    other = tmp_path / "other"
    other.mkdir()
    m = vendor_packages(other, ["fakepkg"], app_names=["fakepkg"])
    assert not m.packages and "application defines" in m.skipped[0]["why"]


def test_real_package_round_trip_and_bytecode(tmp_path: Path) -> None:
    """threadpoolctl (one pure-Python module) from the real install, compiled to .pyc."""
    pytest.importorskip("threadpoolctl")
    tree = tmp_path / "tree"
    tree.mkdir()
    m = vendor_packages(tree, ["threadpoolctl"])
    assert [p.name for p in m.packages] == ["threadpoolctl"]
    assert compile_tree(tree)
    assert list((tree / "__pycache__").glob("threadpoolctl.*.pyc"))
    (tree / "main.py").write_text("import threadpoolctl\nprint(threadpoolctl.__file__)\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([sys.executable, "main.py"], cwd=tree, capture_output=True, text=True,
                         env=env)
    assert res.stdout.strip() == str(tree / "threadpoolctl.py"), res.stderr
    # recompiling only a changed file drops its stale cache first
    (tree / "threadpoolctl.py").write_text(textwrap.dedent("""
        __version__ = "rewritten"
    """))
    assert compile_tree(tree, files=["threadpoolctl.py"])
    res = subprocess.run([sys.executable, "-c", "import threadpoolctl as t; print(t.__version__)"],
                         cwd=tree, capture_output=True, text=True, env=env)
    assert res.stdout.strip() == "rewritten"


def test_shared_libraries_are_hard_links_sources_are_copies(site: Path, tmp_path: Path) -> None:
    """Hard links share the installed files' page cache; sources stay safe to rewrite."""
    from memtrim.vendor import copy_tree, is_binary

    tree = tmp_path / "tree"
    tree.mkdir()
    vendor_packages(tree, ["fakepkg"])
    ext = "fakepkg/_speed.cpython-311-x86_64-linux-gnu.so"
    assert is_binary(ext) and is_binary("fake_pkg.libs/libfake-1234.so")
    assert not is_binary("fakepkg/__init__.py")
    assert (tree / ext).stat().st_ino == (site / ext).stat().st_ino
    assert (tree / "fakepkg/__init__.py").stat().st_ino != (
        site / "fakepkg/__init__.py").stat().st_ino
    copy = tmp_path / "copy"
    copy_tree(tree, copy)
    assert (copy / ext).stat().st_ino == (site / ext).stat().st_ino
    assert (copy / "fakepkg/sub/__init__.py").read_text() == "VALUE = 41 + 1\n"
    assert (copy / "fakepkg/sub/__init__.py").stat().st_ino != (
        tree / "fakepkg/sub/__init__.py").stat().st_ino
