"""Application settings, read from the ``config.json`` shipped beside ``run.py``."""

import json
import os  # noqa: F401  - left over from when paths came from environment variables
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Everything the recognizer needs to know about the deployment."""

    sensor_position: str
    clf_method: str | None
    sampling_rate_hz: float
    window_samples: int
    chunk_windows: int
    lowpass_hz: float
    data_dir: Path
    model_dir: Path
    report_per_class: bool


def load_config(path):
    """Read the settings from the JSON file ``path``.

    Relative directories are resolved against the folder holding the file, so the
    application finds its data wherever it is started from.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    base = path.resolve().parent
    return Settings(
        sensor_position=raw.get("sensor_position", "chest"),
        # ``None`` on purpose when absent: the recognizer picks its own default.
        clf_method=raw.get("clf_method"),
        sampling_rate_hz=float(raw.get("sampling_rate_hz", 32.0)),
        window_samples=int(raw.get("window_samples", 128)),
        chunk_windows=int(raw.get("chunk_windows", 16)),
        lowpass_hz=float(raw.get("lowpass_hz", 0.5)),
        data_dir=base / raw.get("data_dir", "data"),
        model_dir=base / raw.get("model_dir", "model"),
        report_per_class=bool(raw.get("report_per_class", False)),
    )


def save_config(settings, path):
    """Write ``settings`` back as JSON (used by the calibration tool, not by the app)."""
    raw = {
        "sensor_position": settings.sensor_position,
        "clf_method": settings.clf_method,
        "sampling_rate_hz": settings.sampling_rate_hz,
        "window_samples": settings.window_samples,
        "chunk_windows": settings.chunk_windows,
        "lowpass_hz": settings.lowpass_hz,
        "data_dir": str(settings.data_dir),
        "model_dir": str(settings.model_dir),
        "report_per_class": settings.report_per_class,
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(raw, fh, indent=2)
        fh.write("\n")
