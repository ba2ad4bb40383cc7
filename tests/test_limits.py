"""Enforced memory limits (cgroups) and the device verdict."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from memtrim.app import App, Workload
from memtrim.devices import MIB, device, fit_verdict, verdict_line
from memtrim.measure.limits import (
    LimitError,
    enforced_fit,
    find_memory_controller,
    run_under_limit,
)

MECHANISM, PARENT, WHY = find_memory_controller()
needs_cgroup = pytest.mark.skipif(MECHANISM is None, reason=f"no writable memory cgroup: {WHY}")


def alloc(mb: int) -> list[str]:
    # touch every page, so the memory is really resident
    return [sys.executable, "-c", f"b = bytearray({mb} * 1024 * 1024); print(len(b) >> 20)"]


def leftover_groups() -> set[str]:
    if PARENT is None:
        return set()
    return {p.name for p in PARENT.iterdir() if p.name.startswith("memtrim-")}


@needs_cgroup
def test_over_the_limit_is_reported_not_raised():
    before = leftover_groups()
    run = run_under_limit(alloc(200), 64 * MIB, timeout=60)
    assert run.enforced and run.mechanism == MECHANISM and run.reason is None
    assert run.oom_killed and run.signal == "SIGKILL" and run.fits is False
    assert run.peak_bytes is not None and run.peak_bytes <= 64 * MIB
    assert leftover_groups() == before  # the group was removed


@needs_cgroup
def test_under_the_limit_fits_with_its_peak():
    run = run_under_limit(alloc(30), 128 * MIB, timeout=60)
    assert run.enforced and not run.oom_killed and run.exit_code == 0 and run.fits
    assert run.stdout == b"30\n"
    # the group's peak holds the 30 MB buffer; the process's own peak RSS too
    assert 30 * MIB < run.peak_bytes < 128 * MIB
    assert run.maxrss_bytes is not None and run.maxrss_bytes > 30 * MIB


@needs_cgroup
def test_swap_cannot_hide_the_limit(tmp_path):
    # the child reads its own cgroup's limits: memsw (when the kernel has it) equals the limit
    code = textwrap.dedent("""
        import pathlib
        line = [l for l in open('/proc/self/cgroup') if ':memory:' in l or l.startswith('0::')]
        rel = line[0].strip().split(':', 2)[2]
        for root in ('/sys/fs/cgroup/memory', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'):
            d = pathlib.Path(root + rel)
            for name in ('memory.limit_in_bytes', 'memory.memsw.limit_in_bytes',
                         'memory.max', 'memory.swap.max'):
                if (d / name).exists():
                    print(name, (d / name).read_text().strip())
    """)
    run = run_under_limit([sys.executable, "-c", code], 96 * MIB, timeout=60)
    seen = dict(line.split() for line in run.stdout.decode().splitlines())
    limit = str(96 * MIB)
    if MECHANISM == "cgroup-v1":
        assert seen["memory.limit_in_bytes"] == limit
        if "memory.memsw.limit_in_bytes" in seen:
            assert seen["memory.memsw.limit_in_bytes"] == limit
    else:
        assert seen["memory.max"] == limit
        assert seen.get("memory.swap.max", "0") == "0"


@needs_cgroup
def test_processes_left_behind_are_killed(tmp_path):
    marker = tmp_path / "alive"
    child = tmp_path / "child.py"
    child.write_text(f"import time, pathlib\ntime.sleep(2)\n"
                     f"pathlib.Path({str(marker)!r}).touch()\n")
    parent = tmp_path / "parent.py"
    parent.write_text(f"import subprocess, sys\nsubprocess.Popen([sys.executable, "
                      f"{str(child)!r}], start_new_session=True)\n")
    before = leftover_groups()
    run = run_under_limit([sys.executable, str(parent)], 128 * MIB, timeout=60)
    assert run.exit_code == 0
    time.sleep(2.5)
    assert not marker.exists()  # the grandchild died with the group
    assert leftover_groups() == before


def test_not_enforced_says_why(tmp_path):
    # a parent that is not a cgroup: the program still runs, the result says why
    run = run_under_limit(alloc(10), 64 * MIB, timeout=60, cgroup_parent=str(tmp_path))
    assert not run.enforced and run.mechanism is None and run.fits is None
    assert run.reason and str(tmp_path) in run.reason
    assert run.exit_code == 0 and run.stdout == b"10\n"


def test_bad_limit():
    with pytest.raises(LimitError, match="positive"):
        run_under_limit(alloc(1), 0)


def _app(tmp_path: Path, name: str, mb: int) -> App:
    root = tmp_path / name
    root.mkdir()
    script = root / "main.py"
    script.write_text(f"b = bytearray({mb} * 1024 * 1024)\nprint('done')\n")
    return App(root=root, script=script, workloads=(Workload("w", timeout=60),))


@needs_cgroup
def test_device_fit_original_does_not_fit_optimized_does(tmp_path):
    board = device("64MB")
    original, optimized = _app(tmp_path, "orig", 120), _app(tmp_path, "opt", 20)
    verdict = enforced_fit(board, original, optimized, python=sys.executable,
                           peak_original=131 * 10**6, peak_optimized=31 * 10**6)
    assert verdict["enforced"] is True and verdict["mechanism"] == MECHANISM
    assert verdict["fits_original"] is False and verdict["fits_optimized"] is True
    run = verdict["original"]["workloads"]["w"]
    assert run["oom_killed"] and "OOM" in run["why"]
    assert verdict["optimized"]["workloads"]["w"]["exit_code"] == 0
    assert verdict["headroom_bytes"] == 64 * MIB - 31 * 10**6 and verdict["headroom_pct"] > 50
    line = verdict_line(verdict)
    assert "original does not fit" in line and "optimized fits" in line and MECHANISM in line


@needs_cgroup
def test_enforced_run_overrides_an_optimistic_peak(tmp_path):
    # the measured peak says it fits, but under the limit it is killed: it does not fit
    board = device("32MB")
    verdict = enforced_fit(board, _app(tmp_path, "big", 60), python=sys.executable,
                           peak_original=20 * 10**6)
    assert verdict["fits_original"] is False


def test_fit_verdict_without_enforcement():
    board = device("Giant Board")
    v = fit_verdict(board, 173_600_000, 120_000_000, reserve_bytes=8 * MIB)
    assert v["budget_bytes"] == 120 * MIB
    assert v["fits_original"] is False and v["fits_optimized"] is True
    assert v["headroom_bytes"] == 120 * MIB - 120_000_000
    assert v["enforced"] is None
    assert "from measured peaks" in verdict_line(v)
    unknown = fit_verdict(board, None, None)
    assert unknown["fits_original"] is None and unknown["headroom_pct"] is None
    with pytest.raises(LimitError, match="leaves nothing"):
        enforced_fit(device("32MB"), App(root=Path(".")), python=sys.executable,
                     reserve_bytes=64 * MIB)
