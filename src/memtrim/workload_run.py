"""Run one workload of an application as a real subprocess and record what it did.

This is the low-level half of the verifier (``verify.py`` builds the oracle and the
comparison on top of it).  A run records exactly what the design calls the
program's observable behaviour: exit code, stdout, stderr, the declared output
files, and the list of every file the run created in its working directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memtrim.app import App, Workload

# How long to wait for the pipes to close after the process group was killed.  A
# process that escaped the group (setsid) can keep them open forever; we then give
# up on the rest of its output rather than hang the verifier.
_DRAIN_SECONDS = 5.0
# How much of stdout/stderr a summary (``to_dict()`` without ``full``) keeps.
_SUMMARY_CHARS = 2000


@dataclass(frozen=True)
class CommandResult:
    """What a finished (or killed) command produced."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    duration: float
    timed_out: bool


@dataclass
class RunRecord:
    """The observable behaviour of one run of one workload.

    ``outputs`` maps each *declared* output (relative to the working directory) to
    its bytes, or ``None`` when the run did not write it.  ``files`` lists every
    file the run created in its scratch working directory, declared or not, so
    undeclared outputs can be reported.  ``root`` and ``cwd`` are the source root
    and working directory of this run: the comparison replaces them by ``{root}``
    and ``{cwd}`` because they differ between the original and an optimized copy.
    """

    workload: str
    argv: tuple[str, ...]
    root: str
    cwd: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes | None] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    duration: float = 0.0
    timed_out: bool = False
    compare_stderr: bool = True

    @property
    def undeclared_files(self) -> tuple[str, ...]:
        """Files the run created that the workload does not declare as outputs."""
        declared = {Path(p).as_posix() for p in self.outputs}
        return tuple(f for f in self.files if f not in declared)

    def stderr_tail(self, lines: int = 3, width: int = 300) -> str:
        """The last ``lines`` non-empty lines of stderr on one line (for error messages)."""
        return tail_lines(self.stderr, lines, width)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """A JSON-able dict.

        Without ``full`` it is a summary for the report (sizes, hashes, the end of
        stdout/stderr); with ``full`` it keeps every byte (base64) so that
        :meth:`from_dict` can rebuild the record, e.g. to cache an oracle.
        """

        def blob(data: bytes) -> dict[str, Any]:
            if full:
                return {"base64": base64.b64encode(data).decode("ascii")}
            text = data.decode("utf-8", "replace")
            return {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "tail": text[-_SUMMARY_CHARS:],
            }

        outputs: dict[str, Any] = {}
        for name, data in self.outputs.items():
            if data is None:
                outputs[name] = "missing"
            elif full:
                outputs[name] = blob(data)
            else:
                outputs[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return {
            "workload": self.workload,
            "argv": list(self.argv),
            "root": self.root,
            "cwd": self.cwd,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration": self.duration if full else round(self.duration, 6),
            "stdout": blob(self.stdout),
            "stderr": blob(self.stderr),
            "outputs": outputs,
            "files": list(self.files),
            "undeclared_files": list(self.undeclared_files),
            "compare_stderr": self.compare_stderr,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Rebuild a record written by ``to_dict(full=True)``."""

        def unblob(b: Any) -> bytes:
            if not isinstance(b, Mapping) or "base64" not in b:
                raise ValueError("RunRecord.from_dict needs a record written with full=True")
            return base64.b64decode(b["base64"])

        return cls(
            workload=str(data["workload"]),
            argv=tuple(data["argv"]),
            root=str(data["root"]),
            cwd=str(data["cwd"]),
            exit_code=int(data["exit_code"]),
            stdout=unblob(data["stdout"]),
            stderr=unblob(data["stderr"]),
            outputs={k: None if v == "missing" else unblob(v) for k, v in data["outputs"].items()},
            files=tuple(data["files"]),
            duration=float(data["duration"]),
            timed_out=bool(data["timed_out"]),
            compare_stderr=bool(data.get("compare_stderr", True)),
        )


def tail_lines(data: bytes, lines: int = 3, width: int = 300) -> str:
    """The last ``lines`` non-empty lines of ``data``, joined by `` | `` on one line."""
    text = data.decode("utf-8", "replace")
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    joined = " | ".join(tail)
    return joined if len(joined) <= width else "..." + joined[-width:]


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        # Already gone (or, for PermissionError, the id was reused by a process
        # that is not ours: never touch it).
        pass


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin_path: Path | None = None,
) -> CommandResult:
    """Run ``argv`` in its own session; on timeout kill its whole process group.

    The command is started with ``start_new_session=True`` so that it leads a new
    process group: children and grandchildren it spawns are in that group and die
    with it, whether the run timed out or ended normally (a verification run must
    not leave daemons behind holding the scratch directory or the pipes).
    """
    stdin_file = open(stdin_path, "rb") if stdin_path is not None else None
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=stdin_file if stdin_file is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    finally:
        if stdin_file is not None:
            stdin_file.close()
    pgid = proc.pid  # the session leader's pid is its process-group id
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        timed_out = True
        partial_out, partial_err = e.stdout or b"", e.stderr or b""
        _kill_group(pgid)
        try:
            stdout, stderr = proc.communicate(timeout=_DRAIN_SECONDS)
        except subprocess.TimeoutExpired as e2:
            # Someone outside the group still holds the pipes: keep what we have.
            stdout, stderr = e2.stdout or partial_out, e2.stderr or partial_err
            proc.kill()
            proc.wait()
    finally:
        # Also after a normal exit: grandchildren left running in the background die.
        _kill_group(pgid)
        if proc.returncode is None:  # only on an unexpected exception above
            proc.kill()
            proc.wait()
    duration = time.monotonic() - start
    return CommandResult(
        exit_code=proc.returncode,
        stdout=stdout or b"",
        stderr=stderr or b"",
        duration=duration,
        timed_out=timed_out,
    )


def list_files(directory: Path) -> tuple[str, ...]:
    """Every file (and symlink) under ``directory``, as sorted relative POSIX paths."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        base = Path(dirpath)
        # A symlink to a directory is reported as a file-like entry, never followed.
        names = filenames + [d for d in dirnames if (base / d).is_symlink()]
        for name in names:
            found.append((base / name).relative_to(directory).as_posix())
    return tuple(sorted(found))


def workload_env(app: App, workload: Workload, *, write_bytecode: bool = False) -> dict[str, str]:
    """The environment of a workload run: ``os.environ`` plus the workload's ``env``.

    Unless ``write_bytecode`` is set, ``PYTHONDONTWRITEBYTECODE=1`` keeps the run
    from writing ``__pycache__`` into the application's source tree (memtrim never
    modifies the input tree).  For a ``-m module`` entry the source root is put on
    ``PYTHONPATH``, since the working directory is an empty scratch directory.  The
    workload's own ``env`` comes last, so it can override both.
    """
    env = dict(os.environ)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if app.module:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(app.root), old] if old else [str(app.root)])
    env.update(dict(workload.env))
    return env


def run_workload(
    app: App,
    workload: Workload,
    *,
    python: str,
    flags: Sequence[str] = (),
    scratch: Path,
    write_bytecode: bool = False,
) -> RunRecord:
    """Run ``python *flags <entry> *args`` for ``workload`` and record its behaviour.

    ``scratch`` is the working directory of the run: it is created if missing and
    must be empty (every run gets a fresh one, so outputs of one run cannot leak
    into another).  ``{root}`` in the workload is expanded to ``app.root``.  stdin
    comes from the workload's file (relative paths are taken from ``app.root``) or
    ``/dev/null``.  On timeout the whole process tree is killed and the record says
    ``timed_out``.  Raises ``FileNotFoundError`` if the stdin file does not exist and
    ``ValueError`` if ``scratch`` is not empty.
    """
    w = workload.expand(app.root)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    if any(scratch.iterdir()):
        raise ValueError(f"scratch directory {scratch} is not empty")
    stdin_path = None
    if w.stdin is not None:
        stdin_path = Path(w.stdin)
        if not stdin_path.is_absolute():
            stdin_path = app.root / stdin_path
        if not stdin_path.is_file():
            raise FileNotFoundError(f"workload {w.name!r}: stdin file {stdin_path} not found")
    argv = (python, *flags, *app.entry_argv(), *w.args)
    result = run_command(
        argv,
        cwd=scratch,
        env=workload_env(app, w, write_bytecode=write_bytecode),
        timeout=w.timeout,
        stdin_path=stdin_path,
    )
    outputs: dict[str, bytes | None] = {}
    for name in w.outputs:
        path = scratch / name
        outputs[name] = path.read_bytes() if path.is_file() else None
    return RunRecord(
        workload=w.name,
        argv=tuple(argv),
        root=str(app.root),
        cwd=str(scratch),
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        outputs=outputs,
        files=list_files(scratch),
        duration=result.duration,
        timed_out=result.timed_out,
        compare_stderr=w.compare_stderr,
    )
