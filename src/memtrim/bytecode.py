"""Precompiled bytecode for a tree: ``__pycache__/*.opt-2.pyc`` for the target interpreter.

``python -OO`` looks for ``__pycache__/mod.cpython-311.opt-2.pyc``.  When it is
missing the module is compiled from source on every start whenever bytecode
cannot be written (``PYTHONDONTWRITEBYTECODE``, a read-only install), and pip
ships only level-0 ``.pyc`` files: so ``-OO`` alone can cost memory and time
instead of saving them (+3.6 MB peak RSS on numpy on these machines).
:func:`compile_tree` writes the ``.pyc`` files for the optimization levels
asked for.  It runs :mod:`compileall` in a subprocess of the *target*
interpreter, because the ``.pyc`` format (magic number, cache tag) differs
between Python versions.

The ``.pyc`` files are hash-based (PEP 552) by default, checked against the
source: a bundle copied to a device gets new modification times, which would
make timestamp-based ``.pyc`` files stale and recompiled on every start.

:func:`make_sourceless` turns a tree into a ``.pyc``-only deployment: each
``mod.py`` becomes ``mod.pyc`` beside it (the layout the import system loads
without a source), compiled at one optimization level, and the sources go.
Tracebacks then show no source lines, and the tree runs only on the Python
version it was compiled by.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Directories never compiled or converted: version control and caches.
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache",
                        ".ruff_cache", ".venv", "node_modules"})
INVALIDATION_MODES = ("checked-hash", "unchecked-hash", "timestamp")

# Runs inside the target interpreter: standard library only, Python 3.8+.
_COMPILE_SCRIPT = r"""
import compileall, json, os, py_compile, re, sys
root, levels, mode, legacy, workers, skip, ddir = (
    sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]),
    json.loads(sys.argv[6]), sys.argv[7] or None)
inv = py_compile.PycInvalidationMode[mode.upper().replace("-", "_")]
rx = re.compile("(^|/)(" + "|".join(re.escape(s) for s in skip) + ")(/|$)") if skip else None
import io, contextlib
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    ok = compileall.compile_dir(root, maxlevels=sys.getrecursionlimit(), quiet=1, force=True,
                                optimize=levels, invalidation_mode=inv, legacy=legacy,
                                workers=workers, rx=rx, ddir=ddir)
print(json.dumps({"ok": bool(ok), "cache_tag": sys.implementation.cache_tag,
                  "version": "%d.%d.%d" % sys.version_info[:3],
                  "magic": __import__("importlib.util").util.MAGIC_NUMBER.hex(),
                  "log": buf.getvalue()[-20000:]}))
"""


class BytecodeError(RuntimeError):
    """The target interpreter could not be run, or the tree is unusable; one line."""


@dataclass
class CompileResult:
    """What :func:`compile_tree` wrote, for which interpreter, and what failed."""

    python: str
    version: str
    cache_tag: str
    magic: str
    levels: tuple[int, ...]
    invalidation: str
    sourceless: bool
    pyc_files: int
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The result as a plain dict (for the manifest)."""
        return {
            "python": self.python, "version": self.version, "cache_tag": self.cache_tag,
            "magic": self.magic, "levels": list(self.levels), "invalidation": self.invalidation,
            "sourceless": self.sourceless, "pyc_files": self.pyc_files,
            "failures": self.failures,
        }


def optimization_level(flags: Sequence[str]) -> int:
    """The optimization level interpreter ``flags`` give: ``-O`` 1, ``-OO`` 2 (``-OO -O`` adds)."""
    level = 0
    for f in flags:
        if f.startswith("-") and not f.startswith("--") and set(f[1:]) <= set("OBSIEsuqdvP"):
            level += f.count("O")
    return min(2, level)


def compile_tree(
    root: Path,
    *,
    python: str = sys.executable,
    levels: Sequence[int] = (2,),
    invalidation: str = "checked-hash",
    interpreter_args: Sequence[str] = (),
    legacy: bool = False,
    workers: int = 1,
    skip: Sequence[str] = (),
    ddir: str | None = None,
    timeout: float = 1800.0,
) -> CompileResult:
    """Compile every ``.py`` under ``root`` at each of ``levels`` for the interpreter ``python``.

    Writes ``__pycache__/NAME.TAG[.opt-N].pyc`` (or, with ``legacy``, ``NAME.pyc``
    beside the source, one level only).  ``interpreter_args`` are passed to the
    compiling interpreter: ``-X no_debug_ranges`` changes the code it produces, so
    compile with the flags the program will run with.  Files that do not compile
    (Python 2 leftovers in a vendored package) are listed in ``failures``; they
    could not be imported anyway.  Raises :class:`BytecodeError` for a bad level,
    a missing tree or an interpreter that cannot run.  ``ddir`` replaces ``root`` in
    the file names compiled into the code (where the tree will live), which matters
    only for sourceless trees: a ``.pyc`` loaded beside its source gets the source's
    real path.
    """
    root = Path(root)
    if not root.is_dir():
        raise BytecodeError(f"{root}: not a directory")
    levels = tuple(sorted(set(levels)))
    if not levels or any(lv not in (0, 1, 2) for lv in levels):
        raise BytecodeError(f"optimization levels must be 0, 1 or 2, not {list(levels)}")
    if legacy and len(levels) != 1:
        raise BytecodeError("a sourceless (legacy) layout holds one optimization level")
    if invalidation not in INVALIDATION_MODES:
        raise BytecodeError(f"invalidation must be one of {', '.join(INVALIDATION_MODES)}")
    argv = [
        python, "-I", *interpreter_args, "-c", _COMPILE_SCRIPT, str(root), json.dumps(levels),
        invalidation, "1" if legacy else "0", str(workers),
        json.dumps(sorted(_SKIP_DIRS | set(skip))), ddir or "",
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BytecodeError(f"interpreter not found: {python}") from None
    except PermissionError:
        raise BytecodeError(f"interpreter not executable: {python}") from None
    except subprocess.TimeoutExpired:
        raise BytecodeError(f"compiling {root} took longer than {timeout:g} s") from None
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BytecodeError(f"{python} could not compile {root}: {tail}") from None
    failures = _failures(out["log"])
    tag = out["cache_tag"]
    if legacy:
        count = sum(1 for _ in _walk(root, ".pyc"))
    else:
        count = 0
        for level in levels:
            suffix = f".{tag}.pyc" if level == 0 else f".{tag}.opt-{level}.pyc"
            count += sum(1 for p in _walk(root, ".pyc", pycache=True) if p.name.endswith(suffix))
    return CompileResult(
        python=python, version=out["version"], cache_tag=tag, magic=out["magic"],
        levels=levels, invalidation=invalidation, sourceless=legacy, pyc_files=count,
        failures=failures,
    )


def _failures(log: str) -> list[str]:
    # compileall prints "*** Error compiling 'path'..." then the error: keep one line per file
    out, lines = [], log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("*** Error compiling") or line.startswith("*** "):
            nxt = next((x.strip() for x in lines[i + 1:i + 6] if x.strip()), "")
            out.append(f"{line[4:].strip()} {nxt}".strip())
    return out


def _walk(root: Path, suffix: str, *, pycache: bool = False):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS or (pycache and
                                                                       d == "__pycache__")]
        if pycache != (Path(dirpath).name == "__pycache__"):
            continue
        for name in filenames:
            if name.endswith(suffix):
                yield Path(dirpath) / name


def make_sourceless(
    root: Path,
    *,
    python: str = sys.executable,
    level: int = 0,
    interpreter_args: Sequence[str] = (),
    keep_sources: Sequence[str] = (),
    ddir: str | None = None,
) -> CompileResult:
    """Turn ``root`` into a ``.pyc``-only tree: ``mod.py`` -> ``mod.pyc`` beside it; sources go.

    ``level`` must be the optimization level the program will run with (a
    sourceless ``.pyc`` is loaded whatever ``-O`` says).  ``keep_sources`` are
    paths (relative to ``root``) kept as source, e.g. a launcher's bootstrap.
    Existing ``__pycache__`` directories are removed.  Works on ``root`` in place:
    call it on a copy.  Files that fail to compile keep their source.  ``ddir`` is
    where the tree will be run from (the file names tracebacks show).
    """
    root = Path(root)
    result = compile_tree(root, python=python, levels=(level,), invalidation="unchecked-hash",
                          interpreter_args=interpreter_args, legacy=True, ddir=ddir)
    keep = {Path(k).as_posix() for k in keep_sources}
    removed = 0
    for src in list(_walk(root, ".py")):
        rel = src.relative_to(root).as_posix()
        if rel in keep:
            pyc = src.with_suffix(".pyc")
            pyc.unlink(missing_ok=True)
            continue
        if src.with_suffix(".pyc").is_file():
            src.unlink()
            removed += 1
    for dirpath, dirnames, _ in os.walk(root):
        if "__pycache__" in dirnames:
            shutil.rmtree(Path(dirpath) / "__pycache__", ignore_errors=True)
            dirnames.remove("__pycache__")
    result.pyc_files = sum(1 for _ in _walk(root, ".pyc"))
    return result


def interpreter_info(python: str) -> dict:
    """Version, cache tag, implementation and platform of ``python`` (run in a subprocess)."""
    code = (
        "import json, sys, platform, sysconfig; print(json.dumps({"
        "'version': '%d.%d.%d' % sys.version_info[:3], 'hexversion': sys.hexversion, "
        "'implementation': sys.implementation.name, 'cache_tag': sys.implementation.cache_tag, "
        "'platform': sysconfig.get_platform(), 'machine': platform.machine(), "
        "'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX') or '', "
        "'executable': sys.executable, 'prefix': sys.prefix, 'base_prefix': sys.base_prefix}))"
    )
    try:
        proc = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BytecodeError(f"cannot run interpreter {python}: {e}") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BytecodeError(f"cannot run interpreter {python}: {tail}")
    return json.loads(proc.stdout)
