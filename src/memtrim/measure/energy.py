"""Energy readers: RAPL (powercap) and hwmon sensors, read from sysfs.

The parent sampler calls ``start()`` before the measured run, ``sample()`` at
every sampling tick, and ``stop()`` after it.  A reader reports what the
hardware measured, or ``unavailable`` with the reason: it never substitutes
an estimate (TDP times time, CPU-time models, ...) for a measurement.

The figures are whole-machine (or whole-package) energy while the run was
going on; neither RAPL nor hwmon attributes energy to a process.

* RAPL (``/sys/class/powercap/intel-rapl:N[:M]``): ``energy_uj`` counters that
  wrap at ``max_energy_range_uj``.  ``sample()`` accumulates every interval so
  that a wrap is seen (at most one wrap per interval is assumed: with ~262 J
  to ~262 kJ ranges that is minutes to hours at typical package power).
  Since the PLATYPUS fix (CVE-2020-8694, Linux 5.10 and stable backports)
  ``energy_uj`` is readable by root only.
* hwmon (``/sys/class/hwmon/hwmonN``): ``energyN_input`` counters in
  microjoules are used where a chip has them; otherwise ``powerN_input``
  (or ``powerN_average``) in microwatts is integrated over the samples with
  the trapezoid rule, and the result says from how many samples.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

__all__ = [
    "EnergyReader",
    "EnergyResult",
    "HwmonReader",
    "HwmonSensor",
    "RaplReader",
    "RaplZone",
    "UnavailableReader",
    "detect_energy_readers",
    "energy_unavailable_reasons",
    "measure_unavailable_reason",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class EnergyResult:
    """What one reader measured over one run, or why it could not.

    ``domains`` maps a domain (``package-0``, ``package-0/core``,
    ``hwmon2:ina238/energy1``...) to joules.  ``total_joules`` sums only the
    domains listed in ``total_domains``, chosen so that nothing is counted
    twice (RAPL subzones are parts of their package).
    """

    source: str
    available: bool
    domains: dict[str, float] = field(default_factory=dict)
    total_joules: float | None = None
    total_domains: tuple[str, ...] = ()
    reason: str | None = None
    method: str | None = None
    samples: int = 0
    duration: float | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def unavailable(cls, source: str, reason: str) -> EnergyResult:
        """A result that says energy could not be measured, and why."""
        return cls(source=source, available=False, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data."""
        out = dataclasses.asdict(self)
        out["total_domains"] = list(self.total_domains)
        out["notes"] = list(self.notes)
        return out


class EnergyReader(ABC):
    """A source of energy figures, driven by the profiler's parent sampler."""

    name: str = "energy"

    @abstractmethod
    def probe(self) -> str | None:
        """Return why this reader cannot measure on this machine, or None if it can."""

    @abstractmethod
    def start(self) -> None:
        """Take the starting reading, just before the measured run."""

    @abstractmethod
    def sample(self) -> None:
        """Take an intermediate reading (counters: catch wraps; power: integrate)."""

    @abstractmethod
    def stop(self) -> EnergyResult:
        """Take the final reading and return the energy used since ``start()``."""


class UnavailableReader(EnergyReader):
    """A reader that always reports unavailable, so callers need no special case."""

    def __init__(self, reason: str, name: str = "energy") -> None:
        self.name = name
        self.reason = reason

    def probe(self) -> str | None:
        """Always the reason given at construction."""
        return self.reason

    def start(self) -> None:
        """Nothing to read."""

    def sample(self) -> None:
        """Nothing to read."""

    def stop(self) -> EnergyResult:
        """An unavailable result carrying the reason."""
        return EnergyResult.unavailable(self.name, self.reason)


def _read_text(path: Path) -> str:
    # One place for every sysfs read, so that tests can simulate what the
    # filesystem cannot (permission denied while running as root).
    return path.read_text(encoding="ascii", errors="replace").strip()


def _describe_os_error(path: Path, exc: OSError) -> str:
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied reading {path}"
    return f"cannot read {path}: {exc.strerror or exc}"


# ---------------------------------------------------------------------------
# RAPL

_RAPL_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class RaplZone:
    """One powercap RAPL zone: a package (``intel-rapl:N``) or a subzone (``intel-rapl:N:M``)."""

    zone: str
    path: Path
    name: str  # the zone's own name file: "package-0", "core", "dram", "psys"...
    domain: str  # as reported: "package-0", or "package-0/core" for a subzone
    parent: str | None
    max_energy_range_uj: int | None


class RaplReader(EnergyReader):
    """Read Intel/AMD RAPL energy counters through the powercap sysfs interface."""

    name = "rapl"

    def __init__(
        self, root: str | os.PathLike[str] = "/sys/class/powercap", clock: Clock = time.monotonic
    ) -> None:
        self.root = Path(root)
        self.clock = clock
        self._zones: list[RaplZone] = []
        self._last: dict[str, int] = {}
        self._acc: dict[str, int] = {}
        self._samples = 0
        self._t0: float | None = None
        self._error: str | None = None
        self._wraps: dict[str, int] = {}

    def zones(self) -> list[RaplZone]:
        """Discover the RAPL zones under ``root`` (packages first, then their subzones)."""
        if not self.root.is_dir():
            return []
        found: dict[str, Path] = {}
        for entry in sorted(self.root.iterdir()):
            if _RAPL_ZONE.match(entry.name):
                found.setdefault(entry.name, entry)
                # Subzones also live inside their package's directory.
                if entry.is_dir():
                    for sub in sorted(entry.iterdir()):
                        if _RAPL_ZONE.match(sub.name):
                            found.setdefault(sub.name, sub)
        zones: list[RaplZone] = []
        names: dict[str, str] = {}
        for zone_id in sorted(found, key=_zone_key):
            path = found[zone_id]
            m = _RAPL_ZONE.match(zone_id)
            assert m is not None
            parent = f"intel-rapl:{m.group(1)}" if m.group(2) is not None else None
            try:
                name = _read_text(path / "name") or zone_id
            except OSError:
                name = zone_id
            # Subzone names ("core", "dram") repeat across packages: qualify them.
            domain = name if parent is None else f"{names.get(parent, parent)}/{name}"
            names[zone_id] = domain
            try:
                max_range: int | None = int(_read_text(path / "max_energy_range_uj"))
            except (OSError, ValueError):
                max_range = None
            zones.append(RaplZone(zone_id, path, name, domain, parent, max_range))
        return zones

    def probe(self) -> str | None:
        """Return why RAPL cannot be read here (missing, no zones, unreadable), or None."""
        if not self.root.exists():
            return (
                f"{self.root} does not exist (no powercap support in this kernel, "
                "or a virtual machine that does not expose RAPL)"
            )
        zones = self.zones()
        if not zones:
            return f"{self.root} has no intel-rapl zones (RAPL not exposed on this machine)"
        for z in zones:
            try:
                int(_read_text(z.path / "energy_uj"))
            except PermissionError:
                return (
                    f"permission denied reading {z.path / 'energy_uj'}: RAPL energy counters "
                    "are readable by root only since the PLATYPUS fix (CVE-2020-8694, "
                    "Linux 5.10 and backports); run as root or grant read access"
                )
            except OSError as exc:
                return _describe_os_error(z.path / "energy_uj", exc)
            except ValueError:
                return f"{z.path / 'energy_uj'} does not hold an integer"
        return None

    def _read_all(self) -> dict[str, int] | None:
        values: dict[str, int] = {}
        for z in self._zones:
            path = z.path / "energy_uj"
            try:
                values[z.zone] = int(_read_text(path))
            except PermissionError:
                self._error = f"permission denied reading {path}"
                return None
            except OSError as exc:
                self._error = _describe_os_error(path, exc)
                return None
            except ValueError:
                self._error = f"{path} does not hold an integer"
                return None
        return values

    def start(self) -> None:
        """Discover the zones and read every counter."""
        self._zones = self.zones()
        self._acc = {z.zone: 0 for z in self._zones}
        self._samples = 0
        self._wraps = {}
        self._error = self.probe()
        self._t0 = self.clock()
        if self._error is None:
            values = self._read_all()
            if values is not None:
                self._last = values
                self._samples = 1

    def sample(self) -> None:
        """Read every counter and add the increase since the last reading (wrap-aware)."""
        if self._error is not None or not self._last:
            return
        values = self._read_all()
        if values is None:
            return
        for z in self._zones:
            before, now = self._last[z.zone], values[z.zone]
            if now >= before:
                self._acc[z.zone] += now - before
            elif z.max_energy_range_uj is not None:
                # The counter wrapped at max_energy_range_uj.  (The kernel's
                # range is the largest readable value, so the true modulus is
                # one energy unit more: some 15-61 uJ per wrap, far below noise.)
                self._acc[z.zone] += z.max_energy_range_uj - before + now
                self._wraps[z.domain] = self._wraps.get(z.domain, 0) + 1
            else:
                self._error = (
                    f"{z.path / 'energy_uj'} went backwards and max_energy_range_uj "
                    "is unknown, so the wrap cannot be undone"
                )
                return
        self._last = values
        self._samples += 1

    def stop(self) -> EnergyResult:
        """Take the last reading and return joules per zone and the package total."""
        self.sample()
        duration = (self.clock() - self._t0) if self._t0 is not None else None
        if self._error is not None:
            return EnergyResult.unavailable(self.name, self._error)
        if not self._last:
            return EnergyResult.unavailable(self.name, "stop() called without start()")
        domains = {z.domain: self._acc[z.zone] / 1e6 for z in self._zones}
        tops = [z for z in self._zones if z.parent is None]
        # Subzones (core, uncore, dram) are parts of or beside their package and
        # psys covers the whole platform: summing them all would count twice.
        packages = [z for z in tops if z.name.startswith("package")]
        notes = [f"{d}: counter wrapped {n} time(s), undone" for d, n in self._wraps.items()]
        if packages:
            chosen = packages
        else:
            chosen = tops
            notes.append("no package zone: the total sums the top-level zones")
        return EnergyResult(
            source=self.name,
            available=True,
            domains=domains,
            total_joules=sum(domains[z.domain] for z in chosen),
            total_domains=tuple(z.domain for z in chosen),
            method=f"RAPL energy counters, read {self._samples} times",
            samples=self._samples,
            duration=duration,
            notes=tuple(notes),
        )


def _zone_key(zone_id: str) -> tuple[int, int]:
    m = _RAPL_ZONE.match(zone_id)
    assert m is not None
    return int(m.group(1)), -1 if m.group(2) is None else int(m.group(2))


# ---------------------------------------------------------------------------
# hwmon

_ENERGY_FILE = re.compile(r"^energy(\d+)_input$")
_POWER_FILE = re.compile(r"^power(\d+)_(input|average)$")


@dataclass(frozen=True)
class HwmonSensor:
    """One hwmon energy counter (microjoules) or power sensor (microwatts)."""

    domain: str
    path: Path
    kind: str  # "energy" or "power"


class HwmonReader(EnergyReader):
    """Read hwmon energy counters, or integrate hwmon power sensors over the samples."""

    name = "hwmon"

    def __init__(
        self, root: str | os.PathLike[str] = "/sys/class/hwmon", clock: Clock = time.monotonic
    ) -> None:
        self.root = Path(root)
        self.clock = clock
        self._sensors: list[HwmonSensor] = []
        self._first: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._power: dict[str, list[tuple[float, float]]] = {}
        self._samples = 0
        self._t0: float | None = None
        self._error: str | None = None

    def chips(self) -> list[Path]:
        """The hwmon device directories under ``root``."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir())

    def sensors(self) -> list[HwmonSensor]:
        """Energy counters and power sensors; a chip with energy counters gives only those."""
        out: list[HwmonSensor] = []
        for chip in self.chips():
            try:
                chip_name = _read_text(chip / "name") or chip.name
            except OSError:
                chip_name = chip.name
            # Older drivers put their attributes in the device directory.
            for where in (chip, chip / "device"):
                found = self._chip_sensors(chip.name, chip_name, where)
                if found:
                    out.extend(found)
                    break
        return out

    def _chip_sensors(self, dirname: str, chip_name: str, where: Path) -> list[HwmonSensor]:
        if not where.is_dir():
            return []
        energy: dict[int, Path] = {}
        power: dict[int, Path] = {}
        for f in where.iterdir():
            if m := _ENERGY_FILE.match(f.name):
                energy[int(m.group(1))] = f
            elif m := _POWER_FILE.match(f.name):
                n = int(m.group(1))
                # powerN_input is instantaneous; powerN_average only where no input.
                if m.group(2) == "input" or n not in power:
                    power[n] = f
        # The same chip's counters and power readings measure the same thing:
        # a counter is exact, so the power sensors of such a chip are not used.
        kind, chosen = ("energy", energy) if energy else ("power", power)
        out = []
        for n in sorted(chosen):
            try:
                label = _read_text(where / f"{kind}{n}_label") or f"{kind}{n}"
            except OSError:
                label = f"{kind}{n}"
            out.append(HwmonSensor(f"{dirname}:{chip_name}/{label}", chosen[n], kind))
        return out

    def probe(self) -> str | None:
        """Return why hwmon gives no energy here (missing, no sensors, unreadable), or None."""
        if not self.root.exists():
            return f"{self.root} does not exist (no hwmon devices)"
        chips = self.chips()
        sensors = self.sensors()
        if not sensors:
            names = []
            for chip in chips:
                try:
                    names.append(_read_text(chip / "name") or chip.name)
                except OSError:
                    names.append(chip.name)
            listed = f" ({', '.join(names)})" if names else ""
            return (
                f"{self.root} has {len(chips)} device(s){listed} but no energyN_input "
                "or powerN_input sensor"
            )
        for s in sensors:
            try:
                int(_read_text(s.path))
            except OSError as exc:
                return _describe_os_error(s.path, exc)
            except ValueError:
                return f"{s.path} does not hold an integer"
        return None

    def _read(self) -> dict[str, int] | None:
        values: dict[str, int] = {}
        for s in self._sensors:
            try:
                values[s.domain] = int(_read_text(s.path))
            except OSError as exc:
                self._error = _describe_os_error(s.path, exc)
                return None
            except ValueError:
                self._error = f"{s.path} does not hold an integer"
                return None
        return values

    def start(self) -> None:
        """Discover the sensors and take the first reading."""
        self._sensors = self.sensors()
        self._first, self._last = {}, {}
        self._power = {s.domain: [] for s in self._sensors if s.kind == "power"}
        self._samples = 0
        self._error = self.probe()
        self._t0 = self.clock()
        if self._error is None:
            self._take()
            self._first = dict(self._last)

    def _take(self) -> None:
        now = self.clock()
        values = self._read()
        if values is None:
            return
        for s in self._sensors:
            v = values[s.domain]
            if s.kind == "power":
                self._power[s.domain].append((now, v / 1e6))
            elif s.domain in self._last and v < self._last[s.domain]:
                # hwmon gives no wrap range: a smaller value cannot be undone.
                self._error = f"{s.path} went backwards (counter reset or wrap)"
                return
        self._last = values
        self._samples += 1

    def sample(self) -> None:
        """Take one more reading (power sensors need them for the integral)."""
        if self._error is None and self._samples:
            self._take()

    def stop(self) -> EnergyResult:
        """Take the last reading and return joules per sensor and their total."""
        self.sample()
        duration = (self.clock() - self._t0) if self._t0 is not None else None
        if self._error is not None:
            return EnergyResult.unavailable(self.name, self._error)
        if not self._samples:
            return EnergyResult.unavailable(self.name, "stop() called without start()")
        domains: dict[str, float] = {}
        methods = []
        counters = [s for s in self._sensors if s.kind == "energy"]
        powers = [s for s in self._sensors if s.kind == "power"]
        for s in counters:
            domains[s.domain] = (self._last[s.domain] - self._first[s.domain]) / 1e6
        if counters:
            methods.append("hwmon energy counters")
        if powers:
            n = self._samples
            if n < 2:
                return EnergyResult.unavailable(
                    self.name, "power sensors need at least 2 samples to integrate, got 1"
                )
            for s in powers:
                domains[s.domain] = _trapezoid(self._power[s.domain])
            methods.append(f"power integrated (trapezoid) from {n} samples")
        return EnergyResult(
            source=self.name,
            available=True,
            domains=domains,
            total_joules=sum(domains.values()),
            total_domains=tuple(domains),
            method="; ".join(methods),
            samples=self._samples,
            duration=duration,
        )


def _trapezoid(points: list[tuple[float, float]]) -> float:
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(points))


# ---------------------------------------------------------------------------
# detection


def _readers(sysfs_root: str) -> list[EnergyReader]:
    base = Path(sysfs_root)
    return [
        RaplReader(base / "sys/class/powercap"),
        HwmonReader(base / "sys/class/hwmon"),
    ]


def detect_energy_readers(sysfs_root: str = "/") -> list[EnergyReader]:
    """The readers that can measure on this machine, RAPL first; empty if none.

    RAPL and hwmon may overlap (a board-level power sensor includes the CPU
    package), so summing their totals is only right when they measure
    disjoint parts.
    """
    return [r for r in _readers(sysfs_root) if r.probe() is None]


def energy_unavailable_reasons(sysfs_root: str = "/") -> dict[str, str]:
    """For each reader that cannot measure here, why (empty dict if all can)."""
    reasons = {}
    for r in _readers(sysfs_root):
        why = r.probe()
        if why is not None:
            reasons[r.name] = why
    return reasons


def measure_unavailable_reason(sysfs_root: str = "/") -> str | None:
    """One sentence saying why no energy can be measured here, or None if some can."""
    readers = _readers(sysfs_root)
    reasons = []
    for r in readers:
        why = r.probe()
        if why is None:
            return None
        reasons.append(f"{r.name}: {why}")
    return "no energy sensor readable: " + "; ".join(reasons)
