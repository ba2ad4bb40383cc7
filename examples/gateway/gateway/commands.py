"""Commands run after aggregation, named in the configuration (``"commands": [...]``).

:meth:`Commands.dispatch` finds ``cmd_<name>`` with ``getattr``, so a method is
used only if some deployment's config names it: nothing in the code calls
``cmd_export_xml`` or ``cmd_histogram`` directly.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import statistics
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .aggregate import WindowStats, percentile_table
from .config import Config
from .records import SensorRecord, iso_utc
from .state import GatewayState
from .util import fmt
from .validate import Rejection

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """Everything a command may report on."""

    cfg: Config
    out_dir: Path
    accepted: list[SensorRecord]
    rejected: list[Rejection]
    windows: list[WindowStats]
    state: GatewayState
    alert_counts: dict[str, int]


class UnknownCommand(LookupError):
    """The configuration names a command that does not exist."""


class Commands:
    """The report and export commands; one method ``cmd_<name>`` per command."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def dispatch(self, name: str) -> None:
        """Run the command called ``name`` (from the config file)."""
        method = getattr(self, f"cmd_{name}", None)
        if method is None or not callable(method):
            raise UnknownCommand(name)
        log.info("command %s", name)
        method()

    # -- commands named in the shipped config ------------------------------------

    def cmd_summarize(self) -> None:
        """Write ``summary.txt``: totals, rejections by reason, alerts."""
        c = self.ctx
        lines = [
            f"site: {c.cfg.site}",
            f"accepted: {len(c.accepted)}",
            f"rejected: {len(c.rejected)}",
            f"sensors: {len({r.sensor: None for r in c.accepted})}",
            f"windows: {len({w.window: None for w in c.windows})} x {c.cfg.window_seconds} s",
        ]
        if c.accepted:
            lines.append(f"span: {c.accepted[0].iso()} .. {c.accepted[-1].iso()}")
        reasons: dict[str, int] = {}
        for rej in c.rejected:
            # Group by the reason without its particulars:
            # "value 'abc' is not a number" -> "value is not a number".
            key = re.sub(r"(?<![\w.])-?[0-9]+(?:\.[0-9]+)?", "N",
                         re.sub(r" ?'[^']*'", "", rej.reason))
            key = key.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        for reason, n in sorted(reasons.items()):
            lines.append(f"  rejected {n:3d}  {reason}")
        for rule, n in sorted(c.alert_counts.items()):
            lines.append(f"alerts {rule}: {n}")
        lines.append(f"state: run {c.state.runs}, rejected so far {c.state.rejected_total}")
        self._write("summary.txt", "\n".join(lines) + "\n")
        print("\n".join(lines[:3]))

    def cmd_export_csv(self) -> None:
        """Write ``aggregates.csv``: one row per sensor and window."""
        path = self.ctx.out_dir / "aggregates.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["window_start", "sensor", "kind", "count", "mean", "min", "max"])
            for s in self.ctx.windows:
                w.writerow([iso_utc(s.window), s.sensor, s.kind, s.count,
                            fmt(s.mean), fmt(s.low), fmt(s.high)])
        log.info("wrote %d aggregate rows", len(self.ctx.windows))

    def cmd_top_sensors(self) -> None:
        """Append the sensors with the most readings (all time) to ``summary.txt``."""
        totals = self.ctx.state.totals
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[: self.ctx.cfg.top_n]
        text = "top sensors (all runs):\n" + "".join(
            f"  {sensor:10s} {n:6d}\n" for sensor, n in ranked)
        with open(self.ctx.out_dir / "summary.txt", "a", encoding="utf-8") as f:
            f.write(text)

    def cmd_export_rejected(self) -> None:
        """Write ``rejected.csv``: source, line, sensor and reason of each rejection."""
        with open(self.ctx.out_dir / "rejected.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["source", "line", "sensor", "reason"])
            for r in self.ctx.rejected:
                w.writerow([r.source, r.line, r.sensor, r.reason])

    # -- commands only some deployments enable ----------------------------------

    def cmd_export_json(self) -> None:
        """Write ``aggregates.json`` (for the dashboard sites)."""
        rows = [{"window": iso_utc(s.window), "sensor": s.sensor, "count": s.count,
                 "mean": round(s.mean, 3), "min": s.low, "max": s.high}
                for s in self.ctx.windows]
        self._write("aggregates.json", json.dumps(rows, indent=1) + "\n")

    def cmd_export_xml(self) -> None:
        """Write ``aggregates.xml`` (for the SCADA bridge)."""
        root = ET.Element("aggregates", site=self.ctx.cfg.site)
        for s in self.ctx.windows:
            ET.SubElement(root, "window", start=iso_utc(s.window), sensor=s.sensor,
                          count=str(s.count), mean=fmt(s.mean))
        ET.ElementTree(root).write(self.ctx.out_dir / "aggregates.xml", encoding="utf-8",
                                   xml_declaration=True)

    def cmd_histogram(self) -> None:
        """Write ``histogram.txt``: spread of the window means per kind."""
        by_kind: dict[str, list[float]] = {}
        for s in self.ctx.windows:
            by_kind.setdefault(s.kind, []).append(s.mean)
        lines = []
        for kind, means in sorted(by_kind.items()):
            spread = statistics.pstdev(means) if len(means) > 1 else 0.0
            lines.append(f"{kind}: n={len(means)} mean={fmt(statistics.fmean(means))} "
                         f"sd={fmt(spread)}")
        if self.ctx.cfg.percentiles:
            for window, sensor, med, p90 in percentile_table(self.ctx.windows):
                lines.append(f"{iso_utc(window)} {sensor} median={fmt(med)} p90={fmt(p90)}")
        self._write("histogram.txt", "\n".join(lines) + "\n")

    def _write(self, name: str, text: str) -> None:
        (self.ctx.out_dir / name).write_text(text, encoding="utf-8")
