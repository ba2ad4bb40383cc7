"""Readers for the two input formats: CSV from the wired sensors, JSON Lines from radio ones.

Readers never validate values; they turn each line into a :class:`RawRecord` or,
when the line cannot even be split into fields, a reader-level rejection.
"""

from __future__ import annotations

import csv
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CSV_FIELDS = ("timestamp", "sensor_id", "kind", "value", "unit")


@dataclass
class RawRecord:
    """Fields of one input line, before validation; ``error`` is set if unreadable."""

    source: str
    line: int
    fields: dict = field(default_factory=dict)
    error: str | None = None


def read_csv(path: Path) -> Iterator[RawRecord]:
    """Yield the rows of a CSV file with header ``timestamp,sensor_id,kind,value,unit``."""
    name = Path(path).name  # only the name: logs must not depend on where the app lives
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            log.warning("%s: empty file", name)
            return
        if tuple(h.strip() for h in header) != CSV_FIELDS:
            log.warning("%s: unexpected header %s", name, ",".join(header))
        for row in reader:
            lineno = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(CSV_FIELDS):
                yield RawRecord(name, lineno,
                                error=f"expected {len(CSV_FIELDS)} fields, got {len(row)}")
                continue
            f_ = dict(zip(CSV_FIELDS, (c.strip() for c in row), strict=True))
            yield RawRecord(name, lineno, {
                "ts": f_["timestamp"], "sensor": f_["sensor_id"], "kind": f_["kind"],
                "value": f_["value"], "unit": f_["unit"],
            })


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    """Yield the objects of a JSON Lines file (one JSON object per line)."""
    name = Path(path).name
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                yield RawRecord(name, lineno, error=f"bad JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(obj, dict):
                yield RawRecord(name, lineno, error=f"not an object: {type(obj).__name__}")
                continue
            yield RawRecord(name, lineno, dict(obj))


def read_json_array(path: Path) -> Iterator[RawRecord]:
    """Yield the objects of a file holding one JSON array (the 1.x upload format)."""
    name = Path(path).name
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for i, obj in enumerate(data, start=1):
        yield RawRecord(name, i, dict(obj) if isinstance(obj, dict) else {},
                        None if isinstance(obj, dict) else "not an object")


def read_xml(path: Path) -> Iterator[RawRecord]:
    """Yield ``<reading ts= sensor= kind= value= unit=/>`` elements (legacy loggers)."""
    name = Path(path).name
    tree = ET.parse(path)
    for i, el in enumerate(tree.getroot().iter("reading"), start=1):
        yield RawRecord(name, i, {k: el.get(k) for k in ("ts", "sensor", "kind", "value", "unit")})
