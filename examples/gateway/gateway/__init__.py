"""gateway: an edge sensor gateway built on the standard library only.

It reads sensor readings (CSV and JSON Lines), validates them, aggregates them
per time window, raises alerts through registered handlers, runs the commands
its configuration names, and keeps its state between runs in a pickle.

The package re-exports its public names so that integrations can write
``from gateway import read_csv, aggregate``; ``run.py`` itself uses only a few.
"""

from .aggregate import WindowStats, aggregate, percentile_table
from .alerts import REGISTRY, AlertSink, register
from .commands import Commands, RunContext
from .config import Config, ConfigError, load_config
from .readers import RawRecord, read_csv, read_json_array, read_jsonl
from .records import CalibratedRecord, SensorRecord
from .state import GatewayState, SensorMemory, load_state, save_state
from .validate import Rejection, StrictValidator, Validator

__version__ = "1.4.2"

__all__ = [
    "REGISTRY",
    "AlertSink",
    "CalibratedRecord",
    "Commands",
    "Config",
    "ConfigError",
    "GatewayState",
    "RawRecord",
    "Rejection",
    "RunContext",
    "SensorMemory",
    "SensorRecord",
    "StrictValidator",
    "Validator",
    "WindowStats",
    "__version__",
    "aggregate",
    "load_config",
    "load_state",
    "percentile_table",
    "read_csv",
    "read_json_array",
    "read_jsonl",
    "register",
    "save_state",
]
