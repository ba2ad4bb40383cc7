"""One measured run of any command: peak RSS read inside the process, wall and CPU time.

``memtrim profile`` reads VmHWM inside the child through a Python harness
(``measure/child.py``).  ``bench`` also runs programs that are not Python
scripts (a Nuitka binary, a launcher script), and every variant must be
measured the same way, so it uses a tiny preloaded shared library instead: its
destructor copies ``/proc/self/status`` to a file as the process exits, after
the interpreter has finalized.  That is still VmHWM *read inside the measured
process*.  ``ru_maxrss`` from ``wait4`` is never used: the kernel folds the
high-water mark of the address space that ``exec`` replaced into it, and that
space is a copy of this (Python, large) parent.

The library acts only in the process the bench started (the leader of its
own session; ``exec`` keeps the pid), and removes itself from the environment
there, so the program's own children are not measured and the program sees its
usual environment.  Shells and wrappers named in ``MEMTRIM_VMHWM_SKIP``
(``sh``, ``env``, ``perf``...) pass it on untouched to the program they
``exec``; helpers a launcher script runs first (``dirname``) are not the
session leader and do nothing.

If the library cannot be built (no C compiler) or the process does not run its
destructors (``os._exit``, a signal, a timeout), the peak is the highest VmHWM
that the parent saw while sampling ``/proc/PID/status``; the run says which
(``peak_source``).
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PROBE_SOURCE",
    "Measured",
    "build_probe",
    "llc_unavailable_reason",
    "parse_status",
    "run_measured",
]

_KB = 1024
# Programs that only start the measured one: the library must not stop at them.
DEFAULT_SKIP = "sh,dash,bash,env,nice,perf,time,timeout"

PROBE_SOURCE = r"""
/* memtrim bench: copy /proc/self/status to $MEMTRIM_VMHWM_OUT when the process exits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out_path[4096];
static int active;

static int skipped(void) {
    const char *skip = getenv("MEMTRIM_VMHWM_SKIP");
    char exe[4096];
    ssize_t n;
    const char *base, *p;
    size_t len;
    if (!skip) return 0;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    len = strlen(base);
    for (p = skip; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == len && strncmp(p, base, l) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

__attribute__((constructor)) static void memtrim_vmhwm_init(void) {
    const char *out = getenv("MEMTRIM_VMHWM_OUT");
    const char *rest;
    if (!out || skipped()) return;
    /* Only the process the bench started (it leads its own session; exec keeps the pid),
       not a helper a launcher script runs before exec'ing the program. */
    if (!getenv("MEMTRIM_VMHWM_ANY_PID") && getpid() != getsid(0)) return;
    strncpy(out_path, out, sizeof out_path - 1);
    active = 1;
    /* Leave the program (and its children) the environment they would have had. */
    rest = getenv("MEMTRIM_VMHWM_PRELOAD_REST");
    if (rest && *rest) setenv("LD_PRELOAD", rest, 1); else unsetenv("LD_PRELOAD");
    unsetenv("MEMTRIM_VMHWM_PRELOAD_REST");
    unsetenv("MEMTRIM_VMHWM_OUT");
    unsetenv("MEMTRIM_VMHWM_SKIP");
    unsetenv("MEMTRIM_VMHWM_ANY_PID");
}

__attribute__((destructor)) static void memtrim_vmhwm_fini(void) {
    char buf[16384];
    ssize_t n, total = 0;
    int in, out;
    if (!active) return;
    active = 0;
    in = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (in < 0) return;
    while (total < (ssize_t)sizeof buf && (n = read(in, buf + total, sizeof buf - total)) > 0)
        total += n;
    close(in);
    out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return;
    if (write(out, buf, (size_t)total) < 0) { /* nothing to do: the parent falls back */ }
    close(out);
}
"""


def build_probe(cache_dir: Path, cc: str | None = None) -> tuple[Path | None, str | None]:
    """Compile the probe library into ``cache_dir`` (once per source); return (path, reason).

    The path is None, with the reason, when no C compiler is found or it fails.
    """
    cc = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler (cc/gcc) to build the VmHWM probe"
    digest = hashlib.sha256(PROBE_SOURCE.encode()).hexdigest()[:12]
    lib = cache_dir / f"memtrim-vmhwm-{digest}.so"
    if lib.is_file():
        return lib, None
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        src = Path(tmp) / "vmhwm.c"
        src.write_text(PROBE_SOURCE, encoding="utf-8")
        out = Path(tmp) / lib.name
        proc = subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            return None, f"building the VmHWM probe failed: {proc.stderr.strip()[-300:]}"
        os.replace(out, lib)  # atomic: a concurrent builder never sees half a library
    return lib, None


def parse_status(text: str) -> dict[str, int]:
    """The ``Vm*``/``Rss*`` fields of a ``/proc/PID/status`` text, in bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmPeak")):
            key, _, rest = line.partition(":")
            try:
                out[key] = int(rest.split()[0]) * _KB
            except (IndexError, ValueError):
                continue
    return out


def _read_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            return parse_status(f.read()).get("VmHWM")
    except OSError:
        return None


@dataclass
class Measured:
    """What one measured run produced (bytes and seconds)."""

    argv: list[str]
    exit_code: int | None  # None when it timed out
    signal: str | None
    timed_out: bool
    wall: float
    cpu_user: float
    cpu_system: float
    peak_rss: int | None
    peak_source: str
    stdout_path: Path
    stderr_path: Path
    llc: dict | None = None  # {"misses": n, "loads": n, "miss_pct": x} when perf counted them

    @property
    def cpu(self) -> float:
        """User plus system CPU time of the process and the children it waited for."""
        return self.cpu_user + self.cpu_system


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def run_measured(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    workdir: Path,
    probe: Path | None,
    timeout: float | None = None,
    stdin: Path | None = None,
    interval: float = 0.02,
    on_sample: Callable[[], None] | None = None,
    perf_events: bool = False,
) -> Measured:
    """Run ``argv`` once in its own session and measure it.

    stdout and stderr go to files in ``workdir``.  The parent waits on a pidfd
    so that the wall time ends when the process does, not at the next polling
    tick; every ``interval`` it samples VmHWM (the fallback peak) and calls
    ``on_sample`` (energy readers integrate there).  On timeout the whole
    process group is killed.  With ``perf_events`` the command runs under
    ``perf stat`` counting LLC loads and misses.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    status_path = workdir / "status.txt"
    stdout_path = workdir / "stdout"
    stderr_path = workdir / "stderr"
    perf_path = workdir / "perf.csv"
    for p in (status_path, stdout_path, stderr_path, perf_path):
        p.unlink(missing_ok=True)
    run_env = dict(env)
    if probe is not None:
        rest = run_env.get("LD_PRELOAD", "")
        run_env["LD_PRELOAD"] = f"{probe}:{rest}" if rest else str(probe)
        run_env["MEMTRIM_VMHWM_PRELOAD_REST"] = rest
        run_env["MEMTRIM_VMHWM_OUT"] = str(status_path)
        run_env["MEMTRIM_VMHWM_SKIP"] = DEFAULT_SKIP
    cmd = list(argv)
    if perf_events:
        # perf forks the program: it is not the session leader, so lift that check
        run_env["MEMTRIM_VMHWM_ANY_PID"] = "1"
        cmd = ["perf", "stat", "-x", ",", "-e", "LLC-load-misses,LLC-loads",
               "-o", str(perf_path), "--", *cmd]
    stdin_file = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
    try:
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=cwd, env=run_env, stdin=stdin_file, stdout=out,
                                    stderr=err, start_new_session=True)
    finally:
        if stdin_file is not subprocess.DEVNULL:
            stdin_file.close()
    pidfd = None
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # old kernel or Python: poll with sleeps instead
        pidfd = None
    poller = None
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
    sampled = 0
    timed_out = False
    deadline = started + timeout if timeout else None
    status = rusage = None
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm = _read_hwm(proc.pid)
            if hwm:
                sampled = max(sampled, hwm)
            if on_sample is not None:
                on_sample()
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                timed_out = True
                _kill_group(proc.pid)
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            wait = interval if deadline is None else max(0.0, min(interval, deadline - now))
            if poller is not None:
                poller.poll(wait * 1000)
            else:
                time.sleep(wait)
    except BaseException:  # interrupted: kill the run, then let the interruption through
        _kill_group(proc.pid)
        os.wait4(proc.pid, 0)
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)
    wall = time.perf_counter() - started
    # Whatever the program left running in its session dies with it.
    _kill_group(proc.pid)
    code = os.waitstatus_to_exitcode(status)
    sig = signal.Signals(-code).name if code < 0 else None
    peak, source = None, "unavailable (the process exited before the first sample)"
    if status_path.is_file():
        peak = parse_status(status_path.read_text(encoding="ascii", errors="replace")).get("VmHWM")
        if peak:
            source = "VmHWM at exit (probe)"
    if not peak and sampled:
        peak, source = sampled, "parent samples of VmHWM (no reading at exit)"
    llc = _parse_perf(perf_path) if perf_events else None
    return Measured(
        argv=list(argv),
        exit_code=None if timed_out else code,
        signal="SIGKILL (timeout)" if timed_out else sig,
        timed_out=timed_out,
        wall=wall,
        cpu_user=rusage.ru_utime,
        cpu_system=rusage.ru_stime,
        peak_rss=peak,
        peak_source=source,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        llc=llc,
    )


def _parse_perf(path: Path) -> dict | None:
    """LLC loads and misses from ``perf stat -x ,`` output; None if not counted."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            counts[fields[2].split(":")[0]] = int(float(fields[0]))
        except ValueError:  # "<not supported>", "<not counted>"
            continue
    misses, loads = counts.get("LLC-load-misses"), counts.get("LLC-loads")
    if misses is None or not loads:
        return None
    return {"misses": misses, "loads": loads, "miss_pct": 100.0 * misses / loads}


def llc_unavailable_reason(sysfs_root: str = "/") -> str | None:
    """Why LLC misses cannot be counted here, or None if ``perf stat`` can count them.

    A hardware PMU shows up as ``/sys/bus/event_source/devices/cpu`` (or
    ``cpu_core`` on hybrid CPUs); virtual machines often expose none, and then
    ``perf`` reports the cache events as ``<not supported>``.
    """
    devices = Path(sysfs_root) / "sys/bus/event_source/devices"
    pmu = any((devices / d).exists() for d in ("cpu", "cpu_core", "armv8_pmuv3_0"))
    reasons = []
    if not pmu:
        reasons.append(f"no hardware PMU exposed ({devices}/cpu is missing)")
    if shutil.which("perf") is None:
        reasons.append("perf is not installed")
    if reasons:
        return "; ".join(reasons)
    proc = subprocess.run(["perf", "stat", "-x", ",", "-e", "LLC-load-misses,LLC-loads", "--",
                           "true"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or "<not supported>" in proc.stderr or "<not counted>" in proc.stderr:
        return "perf cannot count LLC-load-misses here: " + (proc.stderr.strip()[-200:] or
                                                             f"exit {proc.returncode}")
    return None
