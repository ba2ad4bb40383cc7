"""Edge boards and their RAM, from Table 1 of the seed paper, and a lookup by name or size.

The paper's Table 1 ("Memory specifications (RAM) of indicative state-of-the-art
embedded boards") has two columns of boards and merged memory cells; read back
from the text, it gives:

=====================  ======  ==========================================
board                  RAM     note
=====================  ======  ==========================================
RT5350F-OLinuXino      32 MB
Arduino Yún            64 MB   one merged cell covers Arduino Yún, STM32 MCU
STM32 MCU              64 MB   and LC-CherryPi-PC-V3S
LC-CherryPi-PC-V3S     64 MB
Giant Board            128 MB
Intel Galileo Gen 1&2  256 MB  one merged cell covers Galileo and BeagleBone
BeagleBone Black       256 MB
=====================  ======  ==========================================

The merged cells are confirmed by the paper's own use of the table: the
original biomedical application (258 MB) "could not be deployed on a Giant
Board, on an Intel Galileo, or on a BeagleBone Black", so both of the last two
have 256 MB in the paper.  Board RAM is sold in binary units, so ``64 MB`` here
is 64 x 1,048,576 bytes, and sizes given to :func:`device` are read the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Device:
    """A board (or a bare RAM budget): its name, RAM in bytes and where the figure comes from."""

    name: str
    ram_bytes: int
    notes: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def ram_label(self) -> str:
        """The RAM as boards are labelled: binary units, e.g. ``64 MB``."""
        return size_label(self.ram_bytes)


_TABLE1 = "seed 000, Table 1"

# The data: the paper's Table 1 in its own order (left column, then right).
BOARDS: tuple[Device, ...] = (
    Device("RT5350F-OLinuXino", 32 * MIB, _TABLE1, ("olinuxino", "rt5350f")),
    Device("Arduino Yún", 64 * MIB, _TABLE1 + " (merged 64 MB cell)", ("arduino yun", "yun")),
    Device("STM32 MCU", 64 * MIB, _TABLE1 + " (merged 64 MB cell)", ("stm32",)),
    Device("LC-CherryPi-PC-V3S", 64 * MIB, _TABLE1 + " (merged 64 MB cell)",
           ("cherrypi", "cherry pi", "v3s")),
    Device("Giant Board", 128 * MIB, _TABLE1, ("giant",)),
    Device("Intel Galileo Gen 1 & 2", 256 * MIB, _TABLE1 + " (merged 256 MB cell)",
           ("galileo", "intel galileo")),
    Device("BeagleBone Black", 256 * MIB,
           _TABLE1 + " (merged 256 MB cell; the board's own datasheet lists 512 MB DDR3L, "
           "the paper's deployability claims use 256 MB)", ("beaglebone", "bbb")),
)

_UNITS = {"": 1, "b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def size_label(nbytes: int) -> str:
    """A byte count in the binary units RAM is sold in: ``67108864`` -> ``64 MB``."""
    for unit, factor in (("GB", 1024 * MIB), ("MB", MIB), ("kB", 1024)):
        if nbytes >= factor:
            value = nbytes / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{nbytes} B"


def parse_size(text: str) -> int | None:
    """``64MB``, ``64M``, ``64MiB``, ``0.5G``, ``512k`` or ``67108864`` in bytes; None otherwise.

    Units are binary (RAM is sold that way): ``64MB`` is 67,108,864 bytes.
    """
    m = _SIZE.match(text)
    if not m:
        return None
    # Bare numbers are bytes; a unit letter alone ("64M") or with B/iB means the same.
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    return int(value) if value >= 1 else None


def _key(text: str) -> str:
    # Compare names without case, spaces or punctuation: "beaglebone-black" == "BeagleBone Black".
    return re.sub(r"[^0-9a-z]+", "", text.lower().replace("ú", "u"))


def device(name_or_size: str, boards: Iterable[Device] = BOARDS) -> Device:
    """The board called ``name_or_size`` (name, alias or unique prefix), or a bare RAM budget.

    Sizes like ``64MB``, ``64M`` or ``67108864`` give a ``Device`` named after the
    size.  Raises ValueError, with the known board names, for anything else.
    """
    boards = tuple(boards)
    key = _key(name_or_size)
    if key:
        for board in boards:
            if key == _key(board.name) or key in (_key(a) for a in board.aliases):
                return board
        prefixed = [b for b in boards if _key(b.name).startswith(key)]
        if len(prefixed) == 1:
            return prefixed[0]
    nbytes = parse_size(name_or_size)
    if nbytes is not None:
        return Device(f"{size_label(nbytes)} budget", nbytes, "a RAM size given by the user")
    names = ", ".join(b.name for b in boards)
    raise ValueError(f"unknown device {name_or_size!r}: give a size like 64MB or one of: {names}")


def device_fit(
    peak_original: int | None,
    peak_optimized: int | None,
    boards: Iterable[Device] = BOARDS,
) -> dict[str, dict]:
    """Which boards the original and the optimized program fit, by peak RSS.

    The shape is the optimize report's ``device`` section (docs/report.md):
    ``{board name: {ram_bytes, fits_original, fits_optimized, headroom_bytes}}``;
    a fit is None when its peak is unknown; ``headroom_bytes`` is RAM minus the
    optimized peak (the original's when the optimized one is unknown).
    """
    out: dict[str, dict] = {}
    for board in boards:
        ram = board.ram_bytes
        basis = peak_optimized if peak_optimized is not None else peak_original
        out[board.name] = {
            "ram_bytes": ram,
            "fits_original": None if peak_original is None else peak_original <= ram,
            "fits_optimized": None if peak_optimized is None else peak_optimized <= ram,
            "headroom_bytes": None if basis is None else ram - basis,
        }
    return out


def fit_verdict(
    board: Device,
    peak_original: int | None,
    peak_optimized: int | None,
    *,
    reserve_bytes: int = 0,
) -> dict[str, Any]:
    """The verdict for one target device (``--device``): does each program fit, with headroom.

    The budget is the board's RAM minus ``reserve_bytes`` (what its own OS keeps;
    0 compares with the whole RAM, as the paper does).  ``fits_*`` is
    ``peak <= budget`` (None when the peak is unknown); ``headroom_bytes`` and
    ``headroom_pct`` are the budget minus the optimized peak (the original's when
    there is no optimized one), negative when it does not fit.  ``enforced`` is
    None here: :func:`memtrim.measure.limits.enforced_fit` runs the programs under
    the budget and fills it in.
    """
    budget = board.ram_bytes - reserve_bytes
    basis = peak_optimized if peak_optimized is not None else peak_original
    headroom = None if basis is None else budget - basis
    return {
        "device": board.name,
        "ram_bytes": board.ram_bytes,
        "ram_label": board.ram_label,
        "reserve_bytes": reserve_bytes,
        "budget_bytes": budget,
        "peak_original": peak_original,
        "peak_optimized": peak_optimized,
        "fits_original": None if peak_original is None else peak_original <= budget,
        "fits_optimized": None if peak_optimized is None else peak_optimized <= budget,
        "headroom_bytes": headroom,
        "headroom_pct": None if headroom is None else round(100.0 * headroom / budget, 1),
        "enforced": None,
        "notes": board.notes,
    }


def verdict_line(verdict: Mapping[str, Any]) -> str:
    """One line for the terminal: ``Giant Board (128 MB): original does not fit ...``."""

    def mb(n: int) -> str:
        return f"{n / 1e6:.1f} MB"

    parts = []
    for label in ("original", "optimized"):
        fits = verdict.get(f"fits_{label}")
        peak = verdict.get(f"peak_{label}")
        if fits is None and peak is None:
            continue
        budget = verdict["budget_bytes"]
        where = f" (peak {mb(peak)})" if peak is not None else ""
        if fits is None:
            parts.append(f"{label}: unknown{where}")
        elif fits:
            room = f", {mb(budget - peak)} headroom" if peak is not None else ""
            parts.append(f"{label} fits{where}{room}")
        else:
            over = f", {mb(peak - budget)} over" if peak is not None and peak > budget else ""
            parts.append(f"{label} does not fit{where}{over}")
    if verdict.get("enforced"):
        how = f"enforced with {verdict.get('mechanism')}"
    elif verdict.get("enforced") is False:
        how = f"limit not enforced: {verdict.get('reason')}"
    else:
        how = "from measured peaks"
    name = verdict["device"]
    if not name.endswith(" budget") or verdict.get("reserve_bytes"):
        name += f" ({size_label(verdict['budget_bytes'])} budget)"
    return f"{name}: " + \
        "; ".join(parts or ["nothing measured"]) + f" [{how}]"


def boards_by_name(boards: Iterable[Device] = BOARDS) -> Mapping[str, Device]:
    """The boards keyed by their display name."""
    return {b.name: b for b in boards}
