"""Tests for memtrim.measure.energy on fake sysfs trees (and on this machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memtrim.measure import energy
from memtrim.measure.energy import (
    EnergyResult,
    HwmonReader,
    RaplReader,
    UnavailableReader,
    detect_energy_readers,
    energy_unavailable_reasons,
    measure_unavailable_reason,
)


class FakeClock:
    """A clock the test moves by hand, so integrals are exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int | None) -> Path:
    """A powercap zone; subzones live inside their package with a link at the top, like sysfs."""
    parts = zone.split(":")
    if len(parts) == 3:
        path = root / f"intel-rapl:{parts[1]}" / zone
        path.mkdir(parents=True)
        (root / zone).symlink_to(path)
    else:
        path = root / zone
        path.mkdir(parents=True)
    write(path / "name", name)
    write(path / "energy_uj", energy_uj)
    if max_uj is not None:
        write(path / "max_energy_range_uj", max_uj)
    write(path / "enabled", 1)
    return path


@pytest.fixture
def rapl_tree(tmp_path: Path) -> Path:
    root = tmp_path / "sys" / "class" / "powercap"
    root.mkdir(parents=True)
    (root / "intel-rapl").mkdir()  # the control type: not a zone
    write(root / "intel-rapl" / "enabled", 1)
    make_zone(root, "intel-rapl:0", "package-0", 1_000_000, 262_143_328_850)
    make_zone(root, "intel-rapl:0:0", "core", 500_000, 262_143_328_850)
    make_zone(root, "intel-rapl:1", "package-1", 999_000_000, 1_000_000_000)
    make_zone(root, "intel-rapl:2", "psys", 0, 262_143_328_850)
    return root


def set_uj(root: Path, zone: str, value: int) -> None:
    write(root / zone / "energy_uj", value)


def test_rapl_two_packages_subzone_and_wraparound(rapl_tree: Path) -> None:
    clock = FakeClock()
    reader = RaplReader(rapl_tree, clock=clock)
    assert reader.probe() is None
    zones = reader.zones()
    # The subzone is found once, although it appears twice in the tree.
    assert [z.zone for z in zones] == [
        "intel-rapl:0",
        "intel-rapl:0:0",
        "intel-rapl:1",
        "intel-rapl:2",
    ]

    reader.start()
    clock.now = 1.0
    set_uj(rapl_tree, "intel-rapl:0", 3_000_000)
    set_uj(rapl_tree, "intel-rapl:0:0", 2_500_000)
    set_uj(rapl_tree, "intel-rapl:1", 999_500_000)
    set_uj(rapl_tree, "intel-rapl:2", 4_000_000)
    reader.sample()
    clock.now = 2.0
    set_uj(rapl_tree, "intel-rapl:0", 6_000_000)
    set_uj(rapl_tree, "intel-rapl:0:0", 4_500_000)
    set_uj(rapl_tree, "intel-rapl:1", 1_500_000)  # wrapped at 1,000,000,000 uJ
    set_uj(rapl_tree, "intel-rapl:2", 10_000_000)
    result = reader.stop()

    assert result.available and result.reason is None
    assert result.source == "rapl"
    assert result.domains == {
        "package-0": 5.0,
        "package-0/core": 4.0,
        # 0.5 J before the wrap, then (1e9 - 999.5e6 + 1.5e6) uJ = 2 J after it
        "package-1": 2.5,
        "psys": 10.0,
    }
    # Packages only: the core subzone is inside package-0, psys covers everything.
    assert result.total_domains == ("package-0", "package-1")
    assert result.total_joules == 7.5
    assert result.samples == 3
    assert result.duration == 2.0
    assert any("package-1" in n and "wrapped 1" in n for n in result.notes)


def test_rapl_wrap_without_intermediate_sample(rapl_tree: Path) -> None:
    reader = RaplReader(rapl_tree, clock=FakeClock())
    reader.start()
    set_uj(rapl_tree, "intel-rapl:1", 250_000)
    result = reader.stop()
    assert result.domains["package-1"] == pytest.approx(1.25)  # 1,000,000 + 250,000 uJ


def test_rapl_backwards_without_range_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    make_zone(root, "intel-rapl:0", "package-0", 5_000_000, None)
    reader = RaplReader(root, clock=FakeClock())
    reader.start()
    set_uj(root, "intel-rapl:0", 1_000)
    result = reader.stop()
    assert not result.available
    assert result.total_joules is None
    assert "went backwards" in (result.reason or "")
    assert "max_energy_range_uj" in (result.reason or "")


def test_rapl_permission_denied(rapl_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # energy_uj is mode 0400 on current kernels; the tests may run as root, where
    # chmod would not stop a read, so the read itself is made to fail.
    real = energy._read_text

    def deny(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(energy, "_read_text", deny)
    reader = RaplReader(rapl_tree)
    reason = reader.probe()
    assert reason is not None
    assert "permission denied" in reason
    assert str(rapl_tree / "intel-rapl:0" / "energy_uj") in reason
    assert "root" in reason
    reader.start()
    result = reader.stop()
    assert not result.available and result.reason == reason
    sysfs = rapl_tree.parent.parent.parent
    assert detect_energy_readers(str(sysfs)) == []
    assert "permission denied" in (measure_unavailable_reason(str(sysfs)) or "")


def test_rapl_missing_and_empty(tmp_path: Path) -> None:
    assert "does not exist" in (RaplReader(tmp_path / "nope").probe() or "")
    (tmp_path / "powercap" / "intel-rapl").mkdir(parents=True)
    assert "no intel-rapl zones" in (RaplReader(tmp_path / "powercap").probe() or "")


def make_chip(root: Path, n: int, name: str, files: dict[str, object]) -> Path:
    chip = root / f"hwmon{n}"
    chip.mkdir(parents=True)
    write(chip / "name", name)
    for fname, value in files.items():
        write(chip / fname, value)
    return chip


def test_hwmon_energy_counter(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    chip = make_chip(
        root,
        0,
        "ina238",
        {"energy1_input": 10_000_000, "energy1_label": "VDD_IN", "power1_input": 7_000_000},
    )
    make_chip(root, 1, "coretemp", {"temp1_input": 42_000})
    clock = FakeClock()
    reader = HwmonReader(root, clock=clock)
    assert reader.probe() is None
    # The chip has a counter, so its power sensor is not used as well.
    assert [(s.domain, s.kind) for s in reader.sensors()] == [("hwmon0:ina238/VDD_IN", "energy")]
    reader.start()
    clock.now = 1.0
    write(chip / "energy1_input", 12_500_000)
    reader.sample()
    clock.now = 2.0
    write(chip / "energy1_input", 14_000_000)
    result = reader.stop()
    assert result.available
    assert result.domains == {"hwmon0:ina238/VDD_IN": 4.0}
    assert result.total_joules == 4.0
    assert result.method == "hwmon energy counters"


def test_hwmon_power_integration(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    chip = make_chip(root, 0, "power_meter", {"power1_input": 2_000_000})
    clock = FakeClock()
    reader = HwmonReader(root, clock=clock)
    reader.start()  # t=0: 2 W
    clock.now = 1.0
    write(chip / "power1_input", 4_000_000)
    reader.sample()  # t=1: 4 W
    clock.now = 3.0
    result = reader.stop()  # t=3: 4 W
    # Trapezoids: (2 + 4) / 2 * 1 s + (4 + 4) / 2 * 2 s = 3 J + 8 J
    assert result.available
    assert result.domains == {"hwmon0:power_meter/power1": 11.0}
    assert result.total_joules == 11.0
    assert result.samples == 3
    assert result.method == "power integrated (trapezoid) from 3 samples"


def test_hwmon_power_average_is_used_without_input(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    make_chip(root, 0, "acpi_power_meter", {"power1_average": 5_000_000, "power1_cap": 1})
    clock = FakeClock()
    reader = HwmonReader(root, clock=clock)
    assert [s.path.name for s in reader.sensors()] == ["power1_average"]
    reader.start()
    clock.now = 2.0
    assert reader.stop().total_joules == 10.0


def test_hwmon_counter_going_backwards(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    chip = make_chip(root, 0, "ina238", {"energy1_input": 10_000_000})
    reader = HwmonReader(root, clock=FakeClock())
    reader.start()
    write(chip / "energy1_input", 5)
    result = reader.stop()
    assert not result.available
    assert "went backwards" in (result.reason or "")


def test_hwmon_without_sensors_names_the_chips(tmp_path: Path) -> None:
    root = tmp_path / "hwmon"
    make_chip(root, 0, "coretemp", {"temp1_input": 42_000})
    make_chip(root, 1, "acpitz", {"temp1_input": 27_800})
    reason = HwmonReader(root).probe()
    assert reason is not None
    assert "2 device(s) (coretemp, acpitz)" in reason
    assert "energyN_input" in reason


def test_detect_orders_rapl_first(rapl_tree: Path) -> None:
    sysfs = rapl_tree.parent.parent.parent
    make_chip(sysfs / "sys" / "class" / "hwmon", 0, "ina238", {"energy1_input": 1})
    readers = detect_energy_readers(str(sysfs))
    assert [r.name for r in readers] == ["rapl", "hwmon"]
    assert measure_unavailable_reason(str(sysfs)) is None
    assert energy_unavailable_reasons(str(sysfs)) == {}


def test_nothing_in_an_empty_sysfs(tmp_path: Path) -> None:
    assert detect_energy_readers(str(tmp_path)) == []
    reasons = energy_unavailable_reasons(str(tmp_path))
    assert set(reasons) == {"rapl", "hwmon"}
    reason = measure_unavailable_reason(str(tmp_path))
    assert reason is not None
    assert str(tmp_path / "sys/class/powercap") in reason
    assert str(tmp_path / "sys/class/hwmon") in reason


def test_this_machine_gives_a_reason_or_a_reader() -> None:
    readers = detect_energy_readers()
    reason = measure_unavailable_reason()
    if readers:
        assert reason is None
    else:
        # These VMs expose no RAPL and no hwmon power sensor: say exactly why.
        assert reason is not None and "rapl:" in reason and "hwmon:" in reason
        result = UnavailableReader(reason).stop()
        assert not result.available and result.reason == reason


def test_result_to_dict_is_json() -> None:
    result = EnergyResult(
        source="rapl",
        available=True,
        domains={"package-0": 1.5},
        total_joules=1.5,
        total_domains=("package-0",),
        notes=("x",),
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["total_domains"] == ["package-0"] and data["domains"] == {"package-0": 1.5}
    gone = EnergyResult.unavailable("hwmon", "no sensor").to_dict()
    assert gone["available"] is False and gone["reason"] == "no sensor"
    assert gone["total_joules"] is None
