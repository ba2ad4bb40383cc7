"""Vendoring: copy chosen third-party packages into the output tree so they can be rewritten.

memtrim only rewrites what is inside the program's source tree.  A package that
lives in ``site-packages`` (scikit-learn, SciPy, SymPy...) is copied into the
tree's root, beside the entry script, where the interpreter finds it before the
installed copy (``sys.path[0]`` is the script's folder; for ``-m`` entries the
source root is put on ``PYTHONPATH``).  Module names do not change, so pickles
that name ``sklearn.ensemble._forest.RandomForestClassifier`` still resolve.

What is copied comes from the distribution's ``RECORD`` (the files pip
installed), so the ``*.libs`` folders that hold the shared libraries of a wheel
come along and the extension modules' ``$ORIGIN`` run paths still resolve.
C extension modules are never rewritten.  They are either copied as binaries
(``extensions="copy"``, the default: a self-contained bundle) or left where they
are (``extensions="link"``): then each vendored package folder that held an
extension gets the installed folder appended to its ``__path__``, so the
import system finds the extension in the original install.

Everything is located with the *target* interpreter (``--python``), never with
the one memtrim runs in: the two may differ.  Nothing is ever written outside
the destination tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Suffixes of files that only serve building or type checking: never needed at run time.
_BUILD_ONLY = (".pyx", ".pxd", ".pxi", ".pyi", ".c", ".cpp", ".h", ".hpp", ".f", ".f90")
_BUILD_ONLY_NAMES = {"meson.build", "setup.py", "conftest.py"}
_TEST_DIRS = {"tests", "test", "testing_data"}
_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")
# What the import system marks a vendored package with, so a later step (and the
# report) can tell vendored code from the application's own.
MANIFEST_NAME = ".memtrim-vendor.json"
LINK_MARK = "# memtrim: extension modules of this package are loaded from the original install"


class VendorError(RuntimeError):
    """A package cannot be vendored (not installed, built-in, or in the way of the app)."""


@dataclass
class VendoredPackage:
    """One top-level package (or module) copied into the tree."""

    name: str
    distribution: str | None
    version: str | None
    origin: str  # the installed folder (or file) it was copied from
    files: int = 0
    bytes: int = 0
    python_files: int = 0
    extensions: list[str] = field(default_factory=list)  # relative paths
    extension_mode: str = "copy"
    libs: list[str] = field(default_factory=list)  # sibling *.libs folders copied


@dataclass
class VendorManifest:
    """What was vendored, for the bundle manifest and the report."""

    packages: list[VendoredPackage] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"name", "why"}
    extension_mode: str = "copy"

    @property
    def names(self) -> list[str]:
        """The top-level names of the vendored packages."""
        return [p.name for p in self.packages]

    def to_dict(self) -> dict:
        """A JSON-able form."""
        return {
            "extension_mode": self.extension_mode,
            "packages": [asdict(p) for p in self.packages],
            "skipped": list(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict) -> VendorManifest:
        """Rebuild a manifest written by :meth:`to_dict`."""
        return cls(
            packages=[VendoredPackage(**p) for p in data.get("packages", [])],
            skipped=list(data.get("skipped", [])),
            extension_mode=data.get("extension_mode", "copy"),
        )


def read_manifest(tree: Path) -> VendorManifest | None:
    """The manifest :func:`vendor_packages` left in ``tree``, if any."""
    path = Path(tree) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return VendorManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


# The locator runs in the target interpreter; it must stay standard-library only.
_LOCATE = r"""
import importlib.util, json, os, sys, sysconfig
try:
    from importlib import metadata
except ImportError:
    metadata = None
names = json.loads(sys.argv[1])
stdlib = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
dists = {}
if metadata is not None:
    try:
        dists = metadata.packages_distributions()
    except Exception:
        dists = {}
out = {}
for name in names:
    info = {"name": name}
    out[name] = info
    if name in sys.builtin_module_names:
        info["kind"] = "built-in"
        continue
    try:
        spec = importlib.util.find_spec(name)
    except Exception as e:
        info["kind"] = "error"
        info["why"] = type(e).__name__ + ": " + str(e)
        continue
    if spec is None:
        info["kind"] = "missing"
        continue
    if spec.submodule_search_locations is not None:
        locs = list(spec.submodule_search_locations)
        info["kind"] = "package" if spec.origin not in (None, "namespace") else "namespace"
        info["path"] = locs[0] if locs else None
        info["locations"] = locs
    else:
        origin = spec.origin or ""
        info["kind"] = "module" if origin.endswith(".py") else (
            "frozen" if origin in ("frozen", "built-in") else "extension")
        info["path"] = origin
    path = info.get("path")
    if path:
        real = os.path.realpath(path)
        info["stdlib"] = any(real == s or real.startswith(s + os.sep) for s in stdlib) and \
            "site-packages" not in real and "dist-packages" not in real
        info["site"] = os.path.dirname(real.rstrip(os.sep)) if info["kind"] != "module" \
            else os.path.dirname(real)
    dist_names = dists.get(name) or []
    if dist_names and metadata is not None:
        try:
            d = metadata.distribution(dist_names[0])
            info["distribution"] = d.metadata["Name"]
            info["version"] = d.version
            files = []
            for f in d.files or []:
                files.append(str(f))
            info["files"] = files
            info["dist_root"] = str(d.locate_file(""))
        except Exception as e:
            info["dist_error"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"""


def locate_packages(names: Sequence[str], python: str = sys.executable) -> dict[str, dict]:
    """Where the target interpreter finds each top-level name, without importing it.

    For each name: ``kind`` (``package``, ``module``, ``extension``,
    ``namespace``, ``built-in``, ``frozen``, ``missing``, ``error``), ``path``,
    ``stdlib`` (part of the standard library), and when a distribution provides
    it: ``distribution``, ``version``, ``files`` (its RECORD, relative to
    ``dist_root``).
    """
    if not names:
        return {}
    proc = subprocess.run(
        [python, "-c", _LOCATE, json.dumps(list(names))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if proc.returncode != 0:
        raise VendorError(f"cannot locate packages with {python}: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def third_party_tops(modules: Iterable[str], python: str = sys.executable) -> list[str]:
    """The top-level names among ``modules`` that are installed third-party packages.

    ``--include-packages all`` means these: every package the workloads imported
    that is neither part of the standard library, nor built in, nor the
    application itself (callers remove the application's own names).
    """
    tops = sorted({m.partition(".")[0] for m in modules if m and not m.startswith("_memtrim")})
    found = locate_packages(tops, python)
    out = []
    for name in tops:
        info = found.get(name, {})
        if info.get("kind") in ("package", "module") and not info.get("stdlib"):
            out.append(name)
    return out


def _is_test_path(rel: Path) -> bool:
    # tests/ folders inside a package (sklearn/tree/tests/...), never the package itself
    return any(part in _TEST_DIRS for part in rel.parts[1:-1])


def _wanted(rel: Path, exclude_tests: bool) -> bool:
    if "__pycache__" in rel.parts or rel.suffix == ".pyc":
        return False
    if rel.name in _BUILD_ONLY_NAMES or rel.suffix in _BUILD_ONLY:
        return False
    return not (exclude_tests and _is_test_path(rel))


def _is_extension(rel: Path) -> bool:
    return rel.suffix in _EXTENSION_SUFFIXES and (
        ".cpython-" in rel.name or ".abi3" in rel.name or rel.suffix == ".pyd"
        or rel.name.count(".") == 1
    )


def vendor_packages(
    tree: Path,
    names: Sequence[str],
    *,
    python: str = sys.executable,
    extensions: str = "copy",
    exclude_tests: bool = True,
    app_names: Iterable[str] = (),
    link_binaries: bool = True,
) -> VendorManifest:
    """Copy the installed packages ``names`` into ``tree`` (the program's source root).

    ``extensions``: ``copy`` (C extensions and their ``*.libs`` copied as
    binaries) or ``link`` (left in the original install, found through
    ``__path__``).  ``exclude_tests``: leave out ``tests/`` folders inside the
    packages (never imported by an application).  Names that are standard
    library, built in, missing, or that the application itself defines
    (``app_names``, or a file already in ``tree``) are skipped with the reason.
    ``link_binaries``: hard-link the copied shared libraries to the installed
    files when both are on one file system (see :func:`link_or_copy`).
    Writes ``.memtrim-vendor.json`` in ``tree`` and returns the manifest.
    """
    if extensions not in ("copy", "link"):
        raise ValueError("extensions must be 'copy' or 'link'")
    tree = Path(tree)
    manifest = read_manifest(tree) or VendorManifest(extension_mode=extensions)
    manifest.extension_mode = extensions
    already = set(manifest.names)
    own = set(app_names)
    located = locate_packages([n for n in dict.fromkeys(names) if n not in already], python)
    for name, info in located.items():
        why = _refuse(name, info, tree, own)
        if why:
            manifest.skipped.append({"name": name, "why": why})
            continue
        manifest.packages.append(
            _copy_one(tree, name, info, extensions, exclude_tests, link_binaries))
    (tree / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=1), encoding="utf-8")
    return manifest


def _refuse(name: str, info: dict, tree: Path, own: set[str]) -> str | None:
    kind = info.get("kind")
    if name in own:
        return "the application defines a module of that name"
    if kind in ("missing", "error"):
        return f"not installed for the target interpreter ({info.get('why', kind)})"
    if kind in ("built-in", "frozen"):
        return f"{kind} module: nothing to copy"
    if kind == "extension":
        return "a C extension module without Python source: nothing to rewrite"
    if kind == "namespace":
        return "a namespace package (several folders): not vendored"
    if info.get("stdlib"):
        return "part of the standard library"
    if (tree / name).exists() or (tree / f"{name}.py").exists():
        return f"{name} already exists in the source tree"
    return None


def _copy_one(
    tree: Path, name: str, info: dict, extensions: str, exclude_tests: bool,
    link_binaries: bool = True,
) -> VendoredPackage:
    pkg = VendoredPackage(
        name=name,
        distribution=info.get("distribution"),
        version=info.get("version"),
        origin=str(info.get("path")),
        extension_mode=extensions,
    )
    root = Path(info["dist_root"]) if info.get("dist_root") else None
    rels: list[Path] = []
    libs: set[str] = set()
    if root is not None and info.get("files"):
        for f in info["files"]:
            rel = Path(f)
            top = rel.parts[0]
            if top == name or top == f"{name}.py":
                rels.append(rel)
            elif top.endswith(".libs") and len(rel.parts) > 1:
                # the wheel's bundled shared libraries (numpy.libs, scipy.libs...)
                rels.append(rel)
                libs.add(top)
        # RECORD lists what pip installed; a package patched in place may hold more
        rels = [r for r in rels if (root / r).is_file()]
    if not rels:
        origin = Path(info["path"])
        if info["kind"] == "module":
            root, rels = origin.parent, [Path(origin.name)]
        else:
            root = origin.parent
            rels = [p.relative_to(root) for p in origin.rglob("*") if p.is_file()]
    assert root is not None
    linked_dirs: set[Path] = set()
    for rel in sorted(set(rels)):
        if not _wanted(rel, exclude_tests):
            continue
        src = root / rel
        if _is_extension(rel) and rel.parts[0] == name:
            pkg.extensions.append(rel.as_posix())
            if extensions == "link":
                linked_dirs.add(rel.parent)
                continue
        elif rel.parts[0].endswith(".libs") and extensions == "link":
            continue
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if link_binaries and is_binary(rel):
            link_or_copy(src, dest)
        else:
            shutil.copy2(src, dest)
        pkg.files += 1
        pkg.bytes += dest.stat().st_size
        if rel.suffix == ".py":
            pkg.python_files += 1
    pkg.libs = sorted(libs) if extensions == "copy" else []
    for rel_dir in sorted(linked_dirs):
        _link_extensions(tree, root, rel_dir)
    return pkg


def is_binary(rel: Path | str) -> bool:
    """A shared library (an extension module or a wheel's bundled ``*.libs`` file)."""
    rel = Path(rel)
    return rel.suffix in _EXTENSION_SUFFIXES or ".so." in rel.name or any(
        part.endswith(".libs") for part in rel.parts[:-1])


def link_or_copy(src: Path | str, dest: Path | str) -> None:
    """Hard-link ``dest`` to ``src`` when possible, else copy it (with its metadata).

    For shared libraries only, which nothing ever writes in place: a hard link
    is the installed file itself, so it shares its page-cache state.  A freshly
    written copy is wholly cached, the kernel maps more of its pages around each
    fault, and the file-backed RSS of every run that loads it grows by megabytes:
    a difference that has nothing to do with the program (README, "page cache").
    """
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def copy_tree(
    src: Path, dest: Path, ignore: Callable[[str, list[str]], Iterable[str]] | None = None
) -> None:
    """``shutil.copytree`` that hard-links shared libraries (see :func:`link_or_copy`).

    Meant for memtrim's own copies of a tree between steps: every other file is
    copied, so a step that rewrites a file never writes through a link.
    """
    def copy(s: str, d: str) -> None:
        """Link a shared library, copy anything else."""
        if is_binary(s):
            link_or_copy(s, d)
        else:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, symlinks=True, ignore=ignore, copy_function=copy)


def _link_extensions(tree: Path, installed_root: Path, rel_dir: Path) -> None:
    """Let the vendored package ``rel_dir`` find its extension modules in the original install."""
    init = tree / rel_dir / "__init__.py"
    original = str((installed_root / rel_dir).resolve())
    line = f"\n{LINK_MARK}\n__path__.append({original!r})\n"
    if init.is_file():
        with open(init, "a", encoding="utf-8") as f:
            f.write(line)
    else:  # a folder of extensions only (rare): make it a package that looks there
        init.parent.mkdir(parents=True, exist_ok=True)
        init.write_text(line.lstrip("\n"), encoding="utf-8")


def compile_tree(
    tree: Path,
    *,
    python: str = sys.executable,
    python_args: Sequence[str] = (),
    files: Iterable[Path | str] | None = None,
) -> bool:
    """Write ``.pyc`` files for ``tree`` (or just ``files``) with the target interpreter.

    Workload runs set ``PYTHONDONTWRITEBYTECODE``; without cached bytecode a
    vendored package would be compiled from source on every run, which costs
    seconds and raises the peak RSS (the compiler's trees) far above what the
    installed package costs.  The optimization level follows ``python_args``
    (``-O``/``-OO``).  Returns False when compilation failed (the tree still
    works, just slower).
    """
    level = 0
    for a in python_args:
        if a.startswith("-O"):
            level = max(level, a.count("O"))
    cmd = [python, "-m", "compileall", "-q", "-j", "0", "-o", str(level)]
    if files is None:
        cmd.append(str(tree))
        inputs = None
    else:
        # stale caches must never be used for a rewritten file: remove them first
        paths = [Path(tree) / f for f in files]
        for p in paths:
            cache = p.parent / "__pycache__"
            if cache.is_dir():
                for old in cache.glob(f"{p.stem}.*.pyc"):
                    old.unlink(missing_ok=True)
        paths = [p for p in paths if p.suffix == ".py" and p.is_file()]
        if not paths:
            return True
        cmd.append("-i")
        cmd.append("-")
        inputs = "\n".join(str(p) for p in paths) + "\n"
    proc = subprocess.run(
        cmd, input=inputs, capture_output=True, text=True, timeout=1800,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )
    return proc.returncode == 0


def vendored_modules(tree: Path, manifest: VendorManifest | None = None) -> set[str]:
    """Top-level names of the packages vendored into ``tree``."""
    manifest = manifest or read_manifest(tree)
    return set(manifest.names) if manifest else set()
