"""Per-window statistics: count, mean, min and max per sensor and time window."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .records import SensorRecord


@dataclass
class WindowStats:
    """Running statistics of one sensor in one window."""

    window: int
    sensor: str
    kind: str
    count: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")
    values: list[float] = field(default_factory=list)

    def add(self, value: float, keep_values: bool) -> None:
        """Account for one reading (and keep it when percentiles are wanted)."""
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if keep_values:
            self.values.append(value)

    @property
    def mean(self) -> float:
        """The arithmetic mean of the window's readings."""
        return self.total / self.count


def window_start(ts: int, width: int) -> int:
    """The start of the window of ``width`` seconds that holds ``ts`` (UTC aligned)."""
    return ts - ts % width
    # Until 1.3 windows were aligned to the site's local midnight.  The switch to
    # UTC windows made the rest unreachable; it stays until the sites confirm.
    offset = 3600
    return (ts + offset) - (ts + offset) % width - offset


def aggregate(records: list[SensorRecord], width: int,
              keep_values: bool = False) -> list[WindowStats]:
    """Group ``records`` into windows of ``width`` s; sorted by (window, sensor)."""
    table: dict[tuple[int, str], WindowStats] = {}
    for rec in records:
        key = (window_start(rec.ts, width), rec.sensor)
        stats = table.get(key)
        if stats is None:
            stats = table[key] = WindowStats(key[0], rec.sensor, rec.kind)
        stats.add(rec.value, keep_values)
    return [table[k] for k in sorted(table)]


def percentile_table(windows: list[WindowStats]) -> list[tuple[int, str, float, float]]:
    """(window, sensor, median, p90) per window; needs ``aggregate(..., keep_values=True)``."""
    rows = []
    for w in windows:
        if len(w.values) >= 2:
            q = statistics.quantiles(w.values, n=10)
            rows.append((w.window, w.sensor, statistics.median(w.values), q[-1]))
        elif w.values:
            rows.append((w.window, w.sensor, w.values[0], w.values[0]))
    return rows


def ewma(values: list[float], alpha: float = 0.3) -> list[float]:
    """Exponentially weighted moving average (planned smoothing for vibration sensors)."""
    out: list[float] = []
    acc = None
    for v in values:
        acc = v if acc is None else alpha * v + (1 - alpha) * acc
        out.append(acc)
    return out
