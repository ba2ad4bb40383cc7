"""Validation: turns raw fields into :class:`SensorRecord` or a :class:`Rejection`."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from .config import Config
from .readers import RawRecord
from .records import SensorRecord, parse_timestamp

log = logging.getLogger(__name__)

SENSOR_ID = re.compile(r"^[a-z][a-z0-9]*-[0-9]{2}$")
REQUIRED = ("ts", "sensor", "kind", "value", "unit")
# Planned: reject readings from more than this far in the future (not enforced yet).
MAX_CLOCK_SKEW = math.ceil(2.5 * 60)


class ValidationError(ValueError):
    """A record failed a check; the message is the rejection reason."""


@dataclass(frozen=True)
class Rejection:
    """A record that was not accepted, with where it came from and why."""

    source: str
    line: int
    reason: str
    sensor: str = ""


class Validator:
    """Checks records against the configured sensor kinds; remembers what it has seen."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        # A dict used as an ordered set: nothing here may depend on str hashing,
        # which changes from run to run (PYTHONHASHSEED).
        self._seen: dict[tuple[str, int], None] = {}

    def check(self, raw: RawRecord) -> SensorRecord:
        """Return the validated record or raise :class:`ValidationError`."""
        if raw.error:
            raise ValidationError(raw.error)
        fields = raw.fields
        for name in REQUIRED:
            if fields.get(name) in (None, ""):
                raise ValidationError(f"missing field {name!r}")
        try:
            ts = parse_timestamp(fields["ts"])
        except ValueError:
            raise ValidationError(f"bad timestamp {str(fields['ts'])[:32]!r}") from None
        sensor = str(fields["sensor"])
        if not SENSOR_ID.match(sensor):
            raise ValidationError(f"bad sensor id {sensor[:32]!r}")
        kind = str(fields["kind"])
        spec = self.cfg.kinds.get(kind)
        if spec is None:
            raise ValidationError(f"unknown kind {kind[:32]!r}")
        unit = str(fields["unit"])
        if unit != spec.unit:
            raise ValidationError(f"unit {unit[:16]!r} is not {spec.unit!r} for {kind}")
        value = to_float(fields["value"])
        if not spec.low <= value <= spec.high:
            raise ValidationError(f"{kind} value {value:g} outside [{spec.low:g}, {spec.high:g}]")
        key = (sensor, ts)
        if key in self._seen:
            raise ValidationError("duplicate reading")
        self._seen[key] = None
        return SensorRecord(ts, sensor, kind, value, unit)

    def run(self, raws) -> tuple[list[SensorRecord], list[Rejection]]:
        """Validate every record; return (accepted, rejected) in input order."""
        accepted: list[SensorRecord] = []
        rejected: list[Rejection] = []
        for raw in raws:
            try:
                accepted.append(self.check(raw))
            except ValidationError as e:
                if self.cfg.strict:
                    raise
                sensor = str(raw.fields.get("sensor", ""))[:32]
                rejected.append(Rejection(raw.source, raw.line, str(e), sensor))
                log.info("rejected %s:%d: %s", raw.source, raw.line, e)
        return accepted, rejected


class StrictValidator(Validator):
    """A validator that also rejects readings older than the previous one per sensor."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self._last: dict[str, int] = {}

    def check(self, raw: RawRecord) -> SensorRecord:
        """As :meth:`Validator.check`, plus time must not go backwards per sensor."""
        rec = super().check(raw)
        if rec.ts < self._last.get(rec.sensor, rec.ts):
            raise ValidationError("timestamp goes backwards")
        self._last[rec.sensor] = rec.ts
        return rec


def to_float(raw: object) -> float:
    """A finite float from a number or numeric string; ValidationError otherwise."""
    import math  # duplicate of the module-level import, as found in the field

    if isinstance(raw, bool):
        raise ValidationError("value is a boolean")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(f"value {str(raw)[:16]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValidationError(f"value {str(raw)[:16]!r} is not finite")
    return value
