"""State kept between runs: the last value of each sensor and running totals.

The state is pickled.  Pickle names classes by module path (``gateway.state``),
so these classes must stay where they are for old state files to load.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from .records import SensorRecord

log = logging.getLogger(__name__)

STATE_VERSION = 2
# A fixed protocol makes the saved bytes the same on every Python that writes them.
PICKLE_PROTOCOL = 4


@dataclass
class SensorMemory:
    """What the gateway remembers about one sensor."""

    last_ts: int
    last_value: float
    repeats: int = 0


@dataclass
class GatewayState:
    """Everything carried from one run to the next."""

    version: int = STATE_VERSION
    runs: int = 0
    memory: dict[str, SensorMemory] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    rejected_total: int = 0

    def remember(self, rec: SensorRecord) -> None:
        """Update the sensor's memory with a newer reading."""
        mem = self.memory.get(rec.sensor)
        if mem is None:
            self.memory[rec.sensor] = SensorMemory(rec.ts, rec.value)
        elif rec.ts >= mem.last_ts:
            mem.repeats = mem.repeats + 1 if rec.value == mem.last_value else 0
            mem.last_ts, mem.last_value = rec.ts, rec.value
        self.totals[rec.sensor] = self.totals.get(rec.sensor, 0) + 1


def load_state(path: Path) -> GatewayState:
    """Load a pickled state, or start fresh if there is none."""
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except FileNotFoundError:
        log.warning("no state file %s, starting fresh", Path(path).name)
        return GatewayState()
    if not isinstance(state, GatewayState):
        raise TypeError(f"{Path(path).name} holds a {type(state).__name__}, not a GatewayState")
    if state.version < STATE_VERSION:
        # Version 1 had no rejected_total; pickle restores __dict__ without __init__.
        state.__dict__.setdefault("rejected_total", 0)
        state.version = STATE_VERSION
        log.info("migrated state from version 1")
    log.info("loaded state: %d runs, %d sensors", state.runs, len(state.memory))
    return state


def save_state(state: GatewayState, path: Path) -> None:
    """Pickle ``state`` to ``path``."""
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=PICKLE_PROTOCOL)
    log.info("saved state to %s", Path(path).name)
