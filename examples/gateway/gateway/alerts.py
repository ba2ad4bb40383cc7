"""Alerts: handlers registered by name with ``@register``, chosen by the configuration.

A deployment lists the alert rules it wants (``{"type": "threshold", ...}``); the
engine looks each type up in :data:`REGISTRY`.  Handlers that no shipped config
names (``email``, ``webhook``) are reachable only through the registry.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from pathlib import Path

from .net import post_json
from .records import SensorRecord
from .state import GatewayState, SensorMemory
from .util import fmt

log = logging.getLogger(__name__)

REGISTRY: dict[str, type[AlertHandler]] = {}


def register(name: str):
    """Class decorator: make an :class:`AlertHandler` available as alert type ``name``."""

    def deco(cls: type[AlertHandler]) -> type[AlertHandler]:
        if name in REGISTRY:
            raise ValueError(f"alert type {name!r} registered twice")
        REGISTRY[name] = cls
        cls.type_name = name
        return cls

    return deco


class AlertSink:
    """Writes alert lines to a file and counts them per alert type."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "w", encoding="utf-8")  # closed by close()
        self.counts: dict[str, int] = {}

    def emit(self, rule: str, rec: SensorRecord, message: str) -> None:
        """Record one alert raised by ``rule`` on ``rec``."""
        self._f.write(f"{rec.iso()} {rule} {rec.sensor} {message}\n")
        self.counts[rule] = self.counts.get(rule, 0) + 1

    def total(self) -> int:
        """How many alerts were raised."""
        return sum(self.counts.values())

    def close(self) -> None:
        """Flush and close the alert file."""
        self._f.close()


class AlertHandler:
    """Base class: a rule checked against each accepted reading, in time order."""

    type_name = "?"

    def __init__(self, spec: dict, sink: AlertSink):
        self.spec = spec
        self.sink = sink
        self.kind = spec.get("kind")
        self.sensor = spec.get("sensor")

    def applies(self, rec: SensorRecord) -> bool:
        """Whether this rule watches ``rec``'s kind and sensor."""
        return (self.kind is None or rec.kind == self.kind) and (
            self.sensor is None or rec.sensor == self.sensor)

    def check(self, rec: SensorRecord, mem: SensorMemory | None) -> None:
        """Raise alerts for ``rec``; ``mem`` is the sensor's memory before it."""
        raise NotImplementedError


@register("threshold")
class ThresholdHandler(AlertHandler):
    """Alert when a value is above ``above`` or below ``below``."""

    def check(self, rec: SensorRecord, mem: SensorMemory | None) -> None:
        """See class docstring."""
        above, below = self.spec.get("above"), self.spec.get("below")
        if above is not None and rec.value > above:
            self.sink.emit("threshold", rec, f"value {fmt(rec.value)} above {fmt(above)}")
        elif below is not None and rec.value < below:
            self.sink.emit("threshold", rec, f"value {fmt(rec.value)} below {fmt(below)}")


@register("rate_of_change")
class RateOfChangeHandler(AlertHandler):
    """Alert when a value moves more than ``max_delta`` since the previous reading.

    The previous reading may come from the last run (the pickled state); it counts
    only if it is at most ``max_gap`` seconds old (default 600).
    """

    def check(self, rec: SensorRecord, mem: SensorMemory | None) -> None:
        """See class docstring."""
        if mem is None or not 0 < rec.ts - mem.last_ts <= self.spec.get("max_gap", 600):
            return
        delta = rec.value - mem.last_value
        if abs(delta) > self.spec["max_delta"]:
            self.sink.emit("rate_of_change", rec,
                           f"changed by {fmt(delta)} in {rec.ts - mem.last_ts} s")


@register("stuck")
class StuckHandler(AlertHandler):
    """Alert once when a sensor reports the same value ``repeats`` times in a row."""

    def check(self, rec: SensorRecord, mem: SensorMemory | None) -> None:
        """See class docstring."""
        if mem is None or rec.value != mem.last_value:
            return
        # mem.repeats counts the repeats before this reading; +2 = first + this one.
        if mem.repeats + 2 == self.spec.get("repeats", 5):
            self.sink.emit("stuck", rec, f"stuck at {fmt(rec.value)} for "
                                         f"{mem.repeats + 2} readings")


@register("email")
class EmailHandler(AlertHandler):
    """Mail threshold breaches to the site operator (sites with an SMTP relay)."""

    def check(self, rec: SensorRecord, mem: SensorMemory | None) -> None:
        """See class docstring."""
        if rec.value <= self.spec["above"]:
            return
        msg = EmailMessage()
        msg["From"] = self.spec.get("from", "gateway@localhost")
        msg["To"] = self.spec["to"]
        msg["Subject"] = f"[gateway] {rec.sensor} at {fmt(rec.value)}"
        msg.set_content(f"{rec.iso()} {rec.sensor} {rec.kind} {fmt(rec.value)} {rec.unit}\n")
        with smtplib.SMTP(self.spec.get("relay", "localhost"), timeout=10) as smtp:
            smtp.send_message(msg)
        self.sink.emit("email", rec, f"mailed {self.spec['to']}")


@register("webhook")
class WebhookHandler(AlertHandler):
    """POST each breach as JSON to an HTTP endpoint."""

    def check(self, rec: SensorRecord, mem: SensorMemory | None) -> None:
        """See class docstring."""
        if rec.value <= self.spec["above"]:
            return
        status = post_json(self.spec["url"], {"ts": rec.ts, "sensor": rec.sensor,
                                              "value": rec.value})
        self.sink.emit("webhook", rec, f"posted, HTTP {status}")


class AlertEngine:
    """Runs the configured rules over the readings and keeps the sensor memory current."""

    def __init__(self, specs: list[dict], sink: AlertSink):
        self.sink = sink
        self.handlers: list[AlertHandler] = []
        for spec in specs:
            cls = REGISTRY.get(spec.get("type", ""))
            if cls is None:
                log.error("unknown alert type %r, rule ignored", spec.get("type"))
                continue
            self.handlers.append(cls(spec, sink))

    def process(self, records: list[SensorRecord], state: GatewayState) -> None:
        """Check every reading (in the given order), then remember it in ``state``."""
        for rec in records:
            mem = state.memory.get(rec.sensor)
            for h in self.handlers:
                if h.applies(rec):
                    h.check(rec, mem)
            state.remember(rec)
        for rule, n in sorted(self.sink.counts.items()):
            log.warning("%d %s alert(s)", n, rule)
