"""Validated sensor readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple  # noqa: F401  (left over from the 1.x record type)


@dataclass(frozen=True, slots=True)
class SensorRecord:
    """One accepted reading: UTC epoch seconds, sensor id, kind, value and unit."""

    ts: int
    sensor: str
    kind: str
    value: float
    unit: str

    def iso(self) -> str:
        """The timestamp as ISO 8601 UTC (``2026-03-01T08:00:00Z``)."""
        return iso_utc(self.ts)


@dataclass(frozen=True)
class CalibratedRecord:
    """A reading with a per-sensor linear calibration applied (not used by the gateway yet)."""

    record: SensorRecord
    gain: float = 1.0
    offset: float = 0.0

    @property
    def value(self) -> float:
        """The calibrated value."""
        return self.record.value * self.gain + self.offset


def iso_utc(ts: int) -> str:
    """Format epoch seconds as ISO 8601 UTC with a ``Z`` suffix."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(raw: object) -> int:
    """Epoch seconds from an int, a digit string, or an ISO 8601 string; ValueError if bad."""
    if isinstance(raw, bool):
        raise ValueError("boolean timestamp")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            return int(text)
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            # Sensors without a clock zone are configured to send UTC.
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp())
    raise ValueError(f"unsupported timestamp type {type(raw).__name__}")
