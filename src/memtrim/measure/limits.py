"""Run a program under an enforced memory limit, the way a small board would hold it.

A board with 64 MB of RAM does not report "peak RSS 70 MB": the program is
killed, or thrashes.  :func:`run_under_limit` gives a child process exactly
that budget with a memory cgroup of its own:

- **cgroup v1** (the ``memory`` controller mounted on its own hierarchy, e.g.
  ``/sys/fs/cgroup/memory``): a new group ``memtrim-PID-N`` with
  ``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes`` set to the same
  value when the kernel accounts swap (otherwise swap would hide the limit);
  the peak is ``memory.max_usage_in_bytes``, an OOM kill shows in
  ``memory.oom_control`` (``oom_kill``) and ``memory.failcnt``.
- **cgroup v2** (``memory`` in the unified hierarchy): ``memory.max`` and
  ``memory.swap.max = 0``; the peak is ``memory.peak`` where the kernel has it
  (5.19+), OOM kills are counted in ``memory.events``.
- otherwise the program still runs, but the result says the limit was **not
  enforced** and why (no writable memory controller, not root, ...).

The child is moved into the group between ``fork`` and ``exec``, so nothing it
allocates escapes the limit.  The group is removed afterwards, after killing
anything the program left running in it.  A cgroup charges what the kernel
holds for the group: anonymous memory and the page cache of the files it reads
(shared libraries, data files), so its peak is at or above the process's peak
RSS; page cache is reclaimed before an OOM kill, as on the board.

:func:`enforced_fit` runs every workload of the original and the optimized
program under a device's RAM and gives the verdict of the report's ``device``
section: fits or not, with the headroom.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app import App
from ..devices import Device, fit_verdict
from ..workload_run import RunRecord, list_files, workload_env

_COUNTER = itertools.count()
_MOUNTINFO = Path("/proc/self/mountinfo")


class LimitError(RuntimeError):
    """Bad input to a limited run (a non-positive limit); one line."""


@dataclass
class LimitedRun:
    """One run under a memory limit: whether it was enforced, and how the program ended.

    ``peak_bytes`` is the cgroup's own high-water mark (``None`` when the kernel
    does not keep one or the limit was not enforced); ``maxrss_bytes`` is the
    child's peak RSS from ``wait4`` (the largest single process).
    """

    argv: list[str]
    limit_bytes: int
    enforced: bool
    mechanism: str | None
    reason: str | None
    exit_code: int | None
    signal: str | None
    oom_killed: bool
    timed_out: bool
    wall: float
    peak_bytes: int | None
    maxrss_bytes: int | None
    failcnt: int | None = None
    cgroup: str | None = None
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def fits(self) -> bool | None:
        """True when the program ran to a normal end within an enforced limit; None if unknown."""
        if not self.enforced:
            return None
        return not self.oom_killed and not self.timed_out and self.signal is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (no output bytes)."""
        d = dataclasses.asdict(self)
        d.pop("stdout")
        d.pop("stderr")
        d["fits"] = self.fits
        return d


# --------------------------------------------------------------------------- cgroups


@dataclass
class _Group:
    """A memory cgroup made for one run."""

    mechanism: str
    path: Path
    procs: Path
    notes: list[str] = field(default_factory=list)

    def read_int(self, name: str) -> int | None:
        try:
            text = (self.path / name).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def read_key(self, name: str, key: str) -> int | None:
        try:
            for line in (self.path / name).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == key and v.strip().isdigit():
                    return int(v)
        except OSError:
            pass
        return None

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in self.procs.read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Kill what is left in the group, then remove it (retrying while the kernel lets go)."""
        for _ in range(50):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup mount."""
    out = []
    try:
        lines = _MOUNTINFO.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstype in ("cgroup", "cgroup2"):
            point = fields[4].replace("\\040", " ")
            out.append((point, fstype, set(rfields[2].split(","))))
    return out


def _own_cgroup_v2() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


def find_memory_controller(parent: str | None = None) -> tuple[str | None, Path | None, str]:
    """Where a memory cgroup can be made: (mechanism, parent directory, reason if none).

    ``parent`` (or ``MEMTRIM_CGROUP_PARENT``) names the directory to create groups
    in; by default the root of the v1 memory hierarchy, or for v2 the root when it
    is writable, else the current process's own group.
    """
    parent = parent or os.environ.get("MEMTRIM_CGROUP_PARENT")
    mounts = _mounts()
    v1 = next((m for m in mounts if m[1] == "cgroup" and "memory" in m[2]), None)
    v2 = next((m for m in mounts if m[1] == "cgroup2"), None)
    reasons = []
    if v1 is not None:
        base = Path(parent) if parent else Path(v1[0])
        if (base / "memory.limit_in_bytes").exists() or (base / "cgroup.procs").exists():
            if os.access(base, os.W_OK):
                return "cgroup-v1", base, ""
            reasons.append(f"{base} is not writable (memtrim must run as root or be delegated "
                           "a cgroup: set MEMTRIM_CGROUP_PARENT)")
        else:
            reasons.append(f"{base} is not a memory cgroup")
    if v2 is not None:
        root = Path(v2[0])
        candidates = [Path(parent)] if parent else [root]
        own = _own_cgroup_v2()
        if not parent and own and own != "/":
            candidates.append(root / own.lstrip("/"))
        for base in candidates:
            try:
                controllers = (base / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if "memory" not in controllers:
                reasons.append(f"the memory controller is not available in {base} (cgroup v2)")
                continue
            if not os.access(base, os.W_OK):
                reasons.append(f"{base} is not writable (cgroup v2)")
                continue
            return "cgroup-v2", base, ""
    if v1 is None and v2 is None:
        reasons.append("no cgroup file system is mounted")
    return None, None, "; ".join(reasons) or "no memory cgroup controller found"


def _make_group(limit: int, parent: str | None) -> tuple[_Group | None, str]:
    mechanism, base, reason = find_memory_controller(parent)
    if mechanism is None or base is None:
        return None, reason
    path = base / f"memtrim-{os.getpid()}-{next(_COUNTER)}"
    try:
        path.mkdir()
    except OSError as e:
        return None, f"cannot create {path}: {e.strerror}"
    group = _Group(mechanism, path, path / "cgroup.procs")
    try:
        if mechanism == "cgroup-v1":
            (path / "memory.limit_in_bytes").write_text(str(limit))
            memsw = path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                # memsw counts memory + swap: equal to the limit means no swap at all
                memsw.write_text(str(limit))
            elif _swap_total() > 0:
                group.notes.append("swap is on and the kernel does not account it per cgroup "
                                   "(memory.memsw.* missing): the program may swap instead "
                                   "of being killed")
        else:
            if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                (base / "cgroup.subtree_control").write_text("+memory")
            (path / "memory.max").write_text(str(limit))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
    except OSError as e:
        group.remove()
        return None, f"cannot set the limit in {path}: {e.strerror or e}"
    return group, ""


def _swap_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("SwapTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_under_limit(
    argv: Sequence[str],
    limit_bytes: int,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdin: Path | None = None,
    cgroup_parent: str | None = None,
) -> LimitedRun:
    """Run ``argv`` with at most ``limit_bytes`` of memory, enforced by a cgroup if possible.

    Never raises for the program's own failure: an OOM kill, a crash or a
    timeout is reported in the result.  When no cgroup can be used the program
    runs unlimited and the result says ``enforced=False`` with the reason.
    Raises :class:`LimitError` for a limit that is not positive and OSError when
    ``argv`` cannot be started.
    """
    if limit_bytes <= 0:
        raise LimitError(f"the memory limit must be positive, not {limit_bytes}")
    group, reason = _make_group(limit_bytes, cgroup_parent)
    preexec = None
    if group is not None:
        procs = str(group.procs)

        def preexec() -> None:  # in the child, before exec: nothing escapes the limit
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

    stdin_file = open(stdin, "rb") if stdin is not None else None  # noqa: SIM115
    timed_out = False
    maxrss = None
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        popen_kw: dict[str, Any] = dict(
            cwd=cwd, env=dict(env) if env is not None else None,
            stdin=stdin_file if stdin_file is not None else subprocess.DEVNULL,
            stdout=out_f, stderr=err_f, start_new_session=True,
        )
        started = time.perf_counter()
        try:
            try:
                proc = subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kw)
            except subprocess.SubprocessError as e:  # the move into the group failed
                if group is not None:
                    group.remove()
                group, reason = None, f"cannot move the program into the cgroup: {e}"
                proc = subprocess.Popen(list(argv), **popen_kw)
        finally:
            if stdin_file is not None:
                stdin_file.close()
        deadline = started + timeout if timeout else None
        # wait4 rather than wait: the child's own peak RSS comes with it
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                for victim in (group.pids() if group is not None else []):
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = rusage.ru_maxrss * 1024  # kB on Linux
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    wall = time.perf_counter() - started
    code = proc.returncode
    sig = signal.Signals(-code).name if code is not None and code < 0 else None
    peak = failcnt = None
    oom = False
    cg = None
    try:
        if group is not None:
            cg = str(group.path)
            if group.mechanism == "cgroup-v1":
                peak = group.read_int("memory.max_usage_in_bytes")
                failcnt = group.read_int("memory.failcnt")
                kills = group.read_key("memory.oom_control", "oom_kill")
                # older kernels have no oom_kill counter: a SIGKILL at the limit is the OOM killer
                oom = bool(kills) if kills is not None else (sig == "SIGKILL" and bool(failcnt))
            else:
                peak = group.read_int("memory.peak")
                kills = group.read_key("memory.events", "oom_kill")
                oom = bool(kills)
                failcnt = group.read_key("memory.events", "max")
            if group.notes:
                reason = "; ".join(group.notes)
    finally:
        if group is not None:
            group.remove()
    return LimitedRun(
        argv=list(argv),
        limit_bytes=limit_bytes,
        enforced=group is not None,
        mechanism=group.mechanism if group is not None else None,
        reason=reason or None,
        exit_code=None if timed_out else code,
        signal=sig if not timed_out else "SIGKILL (timeout)",
        oom_killed=oom and not timed_out,
        timed_out=timed_out,
        wall=wall,
        peak_bytes=peak,
        maxrss_bytes=maxrss,
        failcnt=failcnt,
        cgroup=cg,
        stdout=out or b"",
        stderr=err or b"",
    )


# --------------------------------------------------------------------------- device fit


def run_workloads_under_limit(
    app: App,
    limit_bytes: int,
    *,
    python: str,
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    oracle: Any | None = None,
    cgroup_parent: str | None = None,
) -> dict[str, Any]:
    """Run every workload of ``app`` under ``limit_bytes``; one entry per workload.

    With an ``oracle`` (:class:`memtrim.verify.Oracle`) each run is also compared
    with the original's recorded behaviour: a program that survives the limit but
    prints something else (it caught a ``MemoryError``) does not fit either.
    """
    from ..verify import compare

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="memtrim-limit-") as tmp:
        for i, workload in enumerate(app.workloads):
            w = workload.expand(app.root)
            scratch = Path(tmp) / f"w{i}"
            scratch.mkdir()
            run_env = workload_env(app, w)
            if env:
                run_env.update(env)
            stdin = None
            if w.stdin is not None:
                stdin = Path(w.stdin) if Path(w.stdin).is_absolute() else app.root / w.stdin
            argv = [python, *flags, *app.entry_argv(), *w.args]
            run = run_under_limit(argv, limit_bytes, cwd=scratch, env=run_env,
                                  timeout=w.timeout, stdin=stdin, cgroup_parent=cgroup_parent)
            entry = run.to_json()
            expected = w.expect_exit
            entry["expected_exit"] = expected
            ok = run.fits
            if ok and expected is not None and run.exit_code != expected:
                ok = False
                entry["why"] = f"exit code {run.exit_code}, expected {expected}"
            if run.oom_killed:
                entry["why"] = "killed by the OOM killer at the limit"
            elif run.timed_out:
                entry["why"] = f"timed out after {w.timeout:g} s (thrashing at the limit?)"
            if oracle is not None and w.name in oracle.records and run.enforced and ok:
                record = RunRecord(
                    workload=w.name, argv=tuple(argv), root=str(app.root), cwd=str(scratch),
                    exit_code=run.exit_code if run.exit_code is not None else -9,
                    stdout=run.stdout, stderr=run.stderr,
                    outputs={n: (scratch / n).read_bytes() if (scratch / n).is_file() else None
                             for n in w.outputs},
                    files=list_files(scratch), duration=run.wall, timed_out=run.timed_out,
                    compare_stderr=w.compare_stderr,
                )
                diffs = compare(oracle.records[w.name], record, oracle.normalizers)
                if diffs:
                    ok = False
                    entry["why"] = "behaves differently under the limit: " + diffs[0].summary()
                entry["identical"] = not diffs
            entry["fits"] = ok
            out[w.name] = entry
    return out


def enforced_fit(
    device: Device,
    original: App,
    optimized: App | None = None,
    *,
    python: str,
    flags: Sequence[str] = (),
    optimized_flags: Sequence[str] | None = None,
    optimized_env: Mapping[str, str] | None = None,
    optimized_python: str | None = None,
    peak_original: int | None = None,
    peak_optimized: int | None = None,
    reserve_bytes: int = 0,
    oracle: Any | None = None,
    cgroup_parent: str | None = None,
) -> dict[str, Any]:
    """The ``--device`` verdict: do the original and the optimized program fit, with headroom.

    ``peak_*`` are the measured peak RSS (the largest over the workloads); the
    verdict compares them with the device's RAM minus ``reserve_bytes`` (what the
    board's OS keeps).  Every workload is then run under that budget, enforced by
    a cgroup where one is writable: a program killed at the limit does not fit,
    whatever its measured peak said, and one that survives fits only if its
    measured peak fits too.  When the limit cannot be enforced the verdict says so
    and rests on the measured peaks alone.
    """
    budget = device.ram_bytes - reserve_bytes
    if budget <= 0:
        raise LimitError(f"the reserve ({reserve_bytes} bytes) leaves nothing of "
                         f"{device.name}'s {device.ram_label}")
    verdict = fit_verdict(device, peak_original, peak_optimized, reserve_bytes=reserve_bytes)
    programs: list[tuple[str, App, str, Sequence[str], Mapping[str, str] | None]] = [
        ("original", original, python, flags, None)]
    if optimized is not None:
        programs.append(("optimized", optimized, optimized_python or python,
                         flags if optimized_flags is None else optimized_flags, optimized_env))
    enforced_any = False
    for label, app, py, fl, env in programs:
        runs = run_workloads_under_limit(app, budget, python=py, flags=fl, env=env,
                                         oracle=oracle, cgroup_parent=cgroup_parent)
        first = next(iter(runs.values()), {})
        enforced = bool(runs) and all(r["enforced"] for r in runs.values())
        enforced_any = enforced_any or enforced
        fits = all(r["fits"] for r in runs.values()) if enforced else None
        cg_peaks = [r["peak_bytes"] for r in runs.values() if r.get("peak_bytes")]
        verdict[label] = {
            "fits_enforced": fits,
            "cgroup_peak_bytes": max(cg_peaks) if cg_peaks else None,
            "workloads": runs,
        }
        verdict["mechanism"] = first.get("mechanism")
        if not enforced:
            verdict["enforced"] = False
            verdict["reason"] = first.get("reason") or "the limit could not be enforced"
        elif fits is not None:
            # both must hold: a kill at the limit is final, and a survival can be
            # optimistic (pages of shared libraries charged to another group are not
            # counted here, but occupy the board's RAM all the same)
            by_peak = verdict[f"fits_{label}"]
            verdict[f"fits_{label}_by_peak"] = by_peak
            verdict[f"fits_{label}"] = fits if by_peak is None else (fits and by_peak)
    if verdict.get("enforced") is None:
        verdict["enforced"] = enforced_any
    verdict["limit_bytes"] = budget
    return verdict


# The name the pipeline's interface uses; ``memtrim.devices.device_fit`` is the
# table over every board, this is the verdict for one target, enforced.
device_fit = enforced_fit
