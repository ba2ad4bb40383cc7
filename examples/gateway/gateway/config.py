"""The gateway's configuration file (JSON).

Which commands run, which alerts are active, the window width and the sensor kinds
all come from here, so several code paths are taken only for some deployments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """The configuration file is missing, not JSON, or has wrong values."""


@dataclass(frozen=True)
class KindSpec:
    """The unit and the physically possible range of one sensor kind."""

    unit: str
    low: float
    high: float


@dataclass
class Config:
    """Settings read from ``config.json``."""

    site: str
    window_seconds: int
    kinds: dict[str, KindSpec]
    alerts: list[dict]
    commands: list[str]
    log_level: str = "INFO"
    strict: bool = False
    percentiles: bool = False
    upload_url: str | None = None
    top_n: int = 3
    extra: dict = field(default_factory=dict)


def load_config(path: Path) -> Config:
    """Read and check ``path``; raise :class:`ConfigError` with a readable message."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {Path(path).name}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{Path(path).name}: not JSON: {e}") from None
    if "window" in raw and "window_seconds" not in raw:
        # 1.x configs gave the window in minutes.
        raw["window_seconds"] = int(raw.pop("window")) * 60
    try:
        kinds = {k: KindSpec(v["unit"], float(v["min"]), float(v["max"]))
                 for k, v in raw["kinds"].items()}
        cfg = Config(
            site=str(raw["site"]),
            window_seconds=int(raw["window_seconds"]),
            kinds=kinds,
            alerts=list(raw.get("alerts", [])),
            commands=[str(c) for c in raw.get("commands", ["summarize"])],
            log_level=str(raw.get("log_level", "INFO")).upper(),
            strict=bool(raw.get("strict", False)),
            percentiles=bool(raw.get("percentiles", False)),
            upload_url=raw.get("upload_url"),
            top_n=int(raw.get("top_n", 3)),
            extra={k: v for k, v in raw.items() if k.startswith("x_")},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{Path(path).name}: bad or missing setting: {e}") from None
    if cfg.window_seconds <= 0:
        raise ConfigError("window_seconds must be positive")
    return cfg
