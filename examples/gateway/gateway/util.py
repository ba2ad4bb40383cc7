"""Small helpers shared by the gateway modules."""

from __future__ import annotations

import decimal
import functools
import os
import os.path  # noqa: F401  (duplicated import, as found in the field)
import time
from collections.abc import Iterable, Iterator


def fmt(value: float) -> str:
    """Format a measured value for reports: three decimals, no negative zero."""
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Yield lists of ``size`` items (the last may be shorter)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def retry(times: int = 3, delay: float = 0.5):
    """Decorator: call the function again on OSError, up to ``times`` attempts."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for attempt in range(times):
                try:
                    return fn(*args, **kwargs)
                except OSError:
                    if attempt == times - 1:
                        raise
                    time.sleep(delay)
            return None

        return wrapper

    return deco


def round_half_even(value: float, places: int = 2) -> str:
    """Round like the billing backend does (decimal, half-even)."""
    q = decimal.Decimal(1).scaleb(-places)
    return str(decimal.Decimal(repr(value)).quantize(q, rounding=decimal.ROUND_HALF_EVEN))


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def out_path(out_dir: str, name: str) -> str:
    """Where an output file goes."""
    return os.path.join(out_dir, name)
