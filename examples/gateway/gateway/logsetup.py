"""Logging setup: one log file per run, with timestamps.

The timestamps make two runs' logs differ; ``memtrim.toml`` has a normalizer
for them.  Nothing else in a log line may depend on the time or the machine.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(path: Path, level: str = "INFO") -> logging.Logger:
    """Send the ``gateway`` loggers to ``path`` (replacing earlier handlers)."""
    logger = logging.getLogger("gateway")
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level, logging.INFO))
    # Records stop here: the root logger would print WARNINGs to stderr.
    logger.propagate = False
    return logger


def add_syslog_handler(address: str = "/dev/log") -> None:
    """Also send warnings to syslog (sites with a central log host)."""
    handler = logging.handlers.SysLogHandler(address=address)
    handler.setLevel(logging.WARNING)
    logging.getLogger("gateway").addHandler(handler)


def close_logging() -> None:
    """Flush and close the gateway's log handlers."""
    logger = logging.getLogger("gateway")
    for h in list(logger.handlers):
        h.flush()
        h.close()
        logger.removeHandler(h)
