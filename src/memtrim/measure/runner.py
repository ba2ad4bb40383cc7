"""Run one measured child process: spawn the harness, sample /proc, collect the result.

The parent samples the child's ``/proc/PID/status`` every interval (RSS split
into anonymous, file-backed and shared memory) and, less often, the memory of
any processes the application started.  The headline peak comes from the
child's own VmHWM read at exit; the sampled maximum is the fallback when the
child dies before it can report (``SIGKILL``, a crash, a timeout).
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HARNESS = Path(__file__).with_name("child.py")
_KB = 1024
# scanning /proc for descendants costs far more than reading one status file
_DESCENDANT_SCAN_EVERY = 10


@dataclass
class ChildRun:
    """Everything one child run produced, in bytes and seconds."""

    mode: str
    argv: list[str]
    exit_code: int | None
    signal: str | None
    timed_out: bool
    wall: float
    cpu_user: float
    cpu_system: float
    peak_rss: int | None
    peak_source: str
    timeline: list[list[float]] = field(default_factory=list)  # [t, rss, anon, file, shmem]
    tree_peak_rss: int | None = None
    descendants_seen: int = 0
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    record: dict | None = None
    error: tuple[str, str] | None = None

    @property
    def failed(self) -> bool:
        """True when the application did not exit with status 0."""
        return self.timed_out or self.exit_code != 0

    def stderr_tail(self, lines: int = 10) -> str:
        """The last lines of the application's standard error."""
        return _tail(self.stderr_path, lines)

    def stdout_tail(self, lines: int = 10) -> str:
        """The last lines of the application's standard output."""
        return _tail(self.stdout_path, lines)


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    data = path.read_bytes()[-16384:].decode("utf-8", "replace")
    return "\n".join(data.rstrip("\n").splitlines()[-lines:])


def _read_status(pid: int) -> dict[str, int] | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            data = f.read()
    except OSError:
        return None
    out = {}
    for line in data.splitlines():
        if line.startswith((b"VmHWM", b"VmRSS", b"RssAnon", b"RssFile", b"RssShmem")):
            key, _, rest = line.partition(b":")
            out[key.decode()] = int(rest.split()[0]) * _KB
    return out or None


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid``, found by walking parent links in /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: parse after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """Kill a process, its process group and every descendant found in /proc."""
    victims = descendants(pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    for p in [pid, *victims]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def harness_argv(
    python: str,
    python_args: Sequence[str],
    target: Sequence[str],
    args: Sequence[str],
    *,
    result: Path,
    mode: str,
    interval: float,
    nframes: int = 1,
) -> list[str]:
    """The command line that runs ``target`` under the harness in ``mode``."""
    return [
        python,
        *python_args,
        str(HARNESS),
        str(result),
        mode,
        f"{interval * 1000:g}",
        str(nframes),
        "--",
        *target,
        *args,
    ]


def run_child(
    python: str,
    python_args: Sequence[str],
    target: Sequence[str],
    args: Sequence[str] = (),
    *,
    mode: str = "plain",
    interval: float = 0.01,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: Path | None = None,
    workdir: Path | None = None,
    nframes: int = 1,
    on_sample: Callable[[], None] | None = None,
) -> ChildRun:
    """Run ``target`` (``[script]`` or ``["-m", module]``) once under the harness and measure it.

    ``workdir`` receives the result, stdout and stderr files (a temporary
    folder if not given).  ``on_sample`` is called at every sampling tick (the
    energy readers integrate power there).
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="memtrim-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / f"{mode}.result"
    stdout_path = workdir / f"{mode}.stdout"
    stderr_path = workdir / f"{mode}.stderr"
    for p in (result_path, stdout_path, stderr_path):
        p.unlink(missing_ok=True)
    argv = harness_argv(
        python,
        python_args,
        target,
        args,
        result=result_path,
        mode=mode,
        interval=interval,
        nframes=nframes,
    )
    stdin_file = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=stdin_file,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    if stdin_file is not subprocess.DEVNULL:
        stdin_file.close()

    timeline: list[list[float]] = []
    sampled_hwm = 0
    tree_peak = 0
    seen: set[int] = set()
    kids: list[int] = []
    timed_out = False
    tick = 0
    deadline = started + timeout if timeout else None
    status = rusage = None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter()
        st = _read_status(proc.pid)
        if st is not None and "VmRSS" in st:
            rss = st["VmRSS"]
            sampled_hwm = max(sampled_hwm, st.get("VmHWM", rss))
            timeline.append(
                [
                    round(now - started, 4),
                    rss,
                    st.get("RssAnon", 0),
                    st.get("RssFile", 0),
                    st.get("RssShmem", 0),
                ]
            )
            if tick % _DESCENDANT_SCAN_EVERY == 0:
                kids = descendants(proc.pid)
                seen.update(kids)
            kid_rss = sum((_read_status(k) or {}).get("VmRSS", 0) for k in kids)
            tree_peak = max(tree_peak, rss + kid_rss)
        if on_sample is not None:
            on_sample()
        if deadline is not None and now > deadline:
            timed_out = True
            kill_tree(proc.pid)
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        tick += 1
        time.sleep(max(0.0, interval - (time.perf_counter() - now)))
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    # the app's own children may outlive it in their session: never leave them behind
    if timed_out:
        kill_tree(proc.pid)

    record = None
    if result_path.exists():
        try:
            record = ast.literal_eval(result_path.read_text(encoding="utf-8"))
        except (ValueError, SyntaxError, MemoryError):
            record = None
    code = proc.returncode
    sig = signal.Signals(-code).name if code < 0 else None
    if record is not None and record.get("status_kb", {}).get("VmHWM"):
        peak, source = record["status_kb"]["VmHWM"] * _KB, "child VmHWM at exit"
    elif sampled_hwm:
        peak, source = sampled_hwm, "parent samples of VmHWM (child did not report)"
    else:
        peak, source = None, "unavailable (the child exited before the first sample)"
    error = tuple(record["error"]) if record and record.get("error") else None
    return ChildRun(
        mode=mode,
        argv=argv,
        exit_code=None if timed_out else code,
        signal=sig if not timed_out else "SIGKILL (timeout)",
        timed_out=timed_out,
        wall=wall,
        cpu_user=rusage.ru_utime,
        cpu_system=rusage.ru_stime,
        peak_rss=peak,
        peak_source=source,
        timeline=timeline,
        tree_peak_rss=tree_peak if seen else None,
        descendants_seen=len(seen),
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        record=record,
        error=error,  # type: ignore[arg-type]
    )
