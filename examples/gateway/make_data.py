"""Regenerate the gateway's shipped inputs in ``data/`` (deterministic; already shipped).

    python make_data.py

Writes ``readings.csv`` / ``readings.jsonl`` (a clean 80-minute capture of six
sensors), ``malformed.csv`` / ``malformed.jsonl`` (a 40-minute capture with
broken records injected) and ``initial_state.pkl`` (the state of a previous run).
"""

from __future__ import annotations

import json
import math
import pickle
import random
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway.state import PICKLE_PROTOCOL, GatewayState, SensorMemory  # noqa: E402

DATA = HERE / "data"
CSV_SENSORS = {"temp-01": ("temperature", "C"), "temp-02": ("temperature", "C"),
               "hum-01": ("humidity", "%")}
JSON_SENSORS = {"press-01": ("pressure", "hPa"), "co2-01": ("co2", "ppm"),
                "vib-01": ("vibration", "mm/s")}


def epoch(iso: str) -> int:
    """Epoch seconds of an ISO 8601 UTC time."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp())


def iso(ts: int) -> str:
    """ISO 8601 UTC with Z."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def value(sensor: str, minute: int, rng: random.Random) -> float:
    """A plausible reading of ``sensor`` at ``minute``, with the scripted incidents."""
    noise = rng.gauss(0, 1)
    if sensor == "temp-01":
        v = 21 + 0.05 * minute + 0.2 * noise
        if 40 <= minute < 44:  # a hot spot: threshold alerts
            v = 28.6 + 0.4 * (minute - 40)
        return v
    if sensor == "temp-02":
        return 19 + 0.3 * noise
    if sensor == "hum-01":
        return 45 + 12 * math.sin(minute / 9) - (30 if 65 <= minute < 68 else 0) + noise
    if sensor == "press-01":
        return 1013 + 0.2 * noise + (2.5 if minute >= 55 else 0)  # a front: rate alert
    if sensor == "co2-01":
        return 600 + 8 * minute + 15 * noise  # ventilation off: crosses 1000 ppm
    if sensor == "vib-01":
        return 3.14 if 20 <= minute < 28 else 2.0 + 0.3 * abs(noise)  # stuck sensor
    raise KeyError(sensor)


def capture(start: int, minutes: int, seed: int) -> tuple[list[list[str]], list[dict]]:
    """CSV rows and JSON objects for ``minutes`` of readings from ``start``."""
    rng = random.Random(seed)
    rows, objs = [], []
    for m in range(minutes):
        for sensor, (kind, unit) in CSV_SENSORS.items():
            ts = start + 60 * m + rng.randrange(0, 5)
            # Some loggers send epoch seconds instead of ISO time.
            stamp = str(ts) if m % 17 == 3 else iso(ts)
            rows.append([stamp, sensor, kind, f"{value(sensor, m, rng):.2f}", unit])
        for sensor, (kind, unit) in JSON_SENSORS.items():
            ts = start + 60 * m + rng.randrange(0, 5)
            v = round(value(sensor, m, rng), 2)
            objs.append({"ts": ts, "sensor": sensor, "kind": kind,
                         # Older radio firmware sends numbers as strings.
                         "value": f"{v}" if m % 13 == 5 else v, "unit": unit})
    return rows, objs


def write_csv(path: Path, rows: list) -> None:
    """Rows (lists or ready-made raw lines) to a CSV file with the header."""
    lines = ["timestamp,sensor_id,kind,value,unit"]
    lines += [r if isinstance(r, str) else ",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_jsonl(path: Path, objs: list) -> None:
    """Objects (or ready-made raw lines) to a JSON Lines file."""
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    """Write every file in ``data/``."""
    start = epoch("2026-03-01T08:00:00")
    rows, objs = capture(start, 80, seed=20260301)
    write_csv(DATA / "readings.csv", rows)
    write_jsonl(DATA / "readings.jsonl", objs)

    mstart = epoch("2026-03-02T08:00:00")
    rows, objs = capture(mstart, 40, seed=20260302)
    t = iso(mstart + 1800)
    bad_rows = [
        f"{t},temp-01,temperature,21.5",                   # 4 fields
        f"{t},temp-02,temperature,21.5,C,extra",           # 6 fields
        f"{t},temp-01,temperature,abc,C",                  # not a number
        f"{t},temp-02,temperature,NaN,C",                  # not finite
        f"{t},hum-01,humidity,1e400,%",                    # overflows to inf
        f"{t},temp-01,temperature,150.0,C",                # out of range
        f"{t},temp-01,temprature,21.0,C",                  # unknown kind
        f"{t},temp-02,temperature,70.0,F",                 # wrong unit
        "2026-02-30T08:00:00Z,temp-01,temperature,21.0,C",  # no such date
        f"{t},TEMP_01,temperature,21.0,C",                 # bad sensor id
        f"{t},hum-01,humidity,,%",                         # empty value
        ",".join(rows[30]),                                # duplicate of a good row
    ]
    for i, bad in enumerate(bad_rows):
        rows.insert(7 + 9 * i, bad)
    write_csv(DATA / "malformed.csv", rows)
    ts = mstart + 1200
    bad_objs = [
        f'{{"ts": {ts}, "sensor": "press-01", "kind": "pres',    # truncated
        "[1, 2, 3]",                                            # not an object
        json.dumps({"ts": ts, "sensor": "co2-01", "kind": "co2", "unit": "ppm"}),
        json.dumps({"ts": ts, "sensor": "vib-01", "kind": "vibration", "value": True,
                    "unit": "mm/s"}),
        json.dumps({"ts": ts, "sensor": "co2-01", "kind": "co2", "value": "n/a",
                    "unit": "ppm"}),
        json.dumps({"ts": "yesterday", "sensor": "press-01", "kind": "pressure",
                    "value": 1012.0, "unit": "hPa"}),
        json.dumps({"ts": ts, "sensor": "co2-01", "kind": "co2", "value": -5,
                    "unit": "ppm"}),
        json.dumps({"ts": ts, "sensor": "vib-01", "kind": None, "value": 2.0,
                    "unit": "mm/s"}),
        json.dumps({"ts": ts, "sensor": "vib-01", "kind": "vibration", "value": 2.0,
                    "unit": "mm/s"}) + " x",                     # trailing garbage
        '"hello"',                                              # a bare string
    ]
    for i, bad in enumerate(bad_objs):
        objs.insert(5 + 11 * i, bad)
    write_jsonl(DATA / "malformed.jsonl", objs)

    # The state a previous run (the 41st) left: last readings just before 08:00.
    before = start - 55
    state = GatewayState(runs=41, rejected_total=7)
    last = {"temp-01": 20.9, "temp-02": 19.1, "hum-01": 44.0, "press-01": 1010.8,
            "co2-01": 590.0, "vib-01": 2.1}
    for sensor, v in last.items():
        state.memory[sensor] = SensorMemory(before, v)
        state.totals[sensor] = 4800 + 13 * len(sensor)
    with open(DATA / "initial_state.pkl", "wb") as f:
        pickle.dump(state, f, protocol=PICKLE_PROTOCOL)


if __name__ == "__main__":
    main()
