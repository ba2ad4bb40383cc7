"""Parse the text that ``sys._debugmallocstats()`` writes, and summarize it over time.

The dump is CPython's own accounting of its small-object allocator (pymalloc):
one row per size class (pools, blocks in use, free blocks), then the arena
counters, then where every arena byte goes.  Captured periodically in the
measured child, it gives the paper's Table 3 ("average number of arenas and
pools") for any CPython version.

What the text looks like, from captures of CPython 3.9-3.13 (see
``tests/fixtures/mallocstats``):

* Arena and pool sizes are printed, never assumed: ``N arenas * 262144
  bytes/arena`` and ``N unused pools * 4096 bytes`` on 3.9; 1 MiB arenas and
  16 KiB pools from 3.10 on (the paper's 256 KiB / 4 KiB are the older sizes).
* 3.10+ builds with the arena radix tree add an ``arena map counts`` section
  with its own ``Total`` line; it must not be taken for the arena total.
* While tracemalloc is tracing, tracemalloc's hooks replace pymalloc as the
  object allocator and CPython's ``_PyObject_DebugMallocStats()`` returns
  before printing anything: the whole pymalloc part (size classes and
  arenas) is missing, only the per-type free lists remain.  The same happens
  with ``PYTHONMALLOC=malloc``.  Such text holds no malloc stats.
* 3.13 with ``PYTHONMALLOC=mimalloc`` (and free-threaded builds) prints a
  mimalloc summary instead: no arenas, no pools.
* ``printone()`` writes a label, then its padding one ``fputc`` at a time, to
  an unbuffered stderr.  Another writer on fd 2 can therefore land in the
  middle of a line (``# arenas reclaimedJUNK...``) and push the ``= value``
  part onto a later line.  The parser reattaches such values to their label.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArenaSummary",
    "MallocStats",
    "MimallocStats",
    "SizeClass",
    "parse_mallocstats",
    "split_samples",
    "summarize",
]

_HEADER = re.compile(r"^Small block threshold = (\d+), in (\d+) size classes\.\s*$")
_TABLE_HEADER = re.compile(r"^class\s+size\s+num pools\s+blocks in use\s+avail blocks\s*$")
_TABLE_RULE = re.compile(r"^-----\s+----\s+-+\s+-+\s+-+\s*$")
_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
_NUM = r"\d[\d,]*"
# printone() pads its label to column 35, writes '=', then the value right-
# aligned in exactly 21 characters (with thousands separators), in one write.
# Requiring that exact shape keeps look-alike foreign lines ("Total = 5") out.
_LABEL_WIDTH = 35
_FIELD = re.compile(r" *=(?P<v> *\d[\d,]*)$")  # used with match(line, pos): no "^"
# A value that a foreign write separated from its label: what is left of the
# padding, maybe the '=', then the intact 21-character value field.
_ORPHAN_VALUE = re.compile(r"^ *?=?(?P<v> *\d[\d,]*)$")  # lazy: the field keeps its spaces
_FIELD_WIDTH = 21
_ARENA_MAP_HEADER = re.compile(r"^arena map counts\s*$")
# The first label CPython prints after the table (the first one in debug builds).
_TABLE_END = re.compile(r"^# (arenas allocated total|times object malloc called)")

# Labels printed by printone(), matched at the start of a line.  The regex
# stops at the label so that a foreign write glued onto it does not matter.
# Groups named a/b carry the numbers that are part of the label itself.
_LABELS: list[tuple[str, re.Pattern[str]]] = [
    ("times_object_malloc_called", re.compile(r"^# times object malloc called")),
    ("arenas_allocated_total", re.compile(r"^# arenas allocated total")),
    ("arenas_reclaimed", re.compile(r"^# arenas reclaimed")),
    ("arenas_highwater", re.compile(r"^# arenas highwater mark")),
    ("arenas_allocated_current", re.compile(r"^# arenas allocated current")),
    ("arenas_bytes", re.compile(r"^(?P<a>\d[\d,]*) arenas \* (?P<b>\d[\d,]*) bytes/arena")),
    ("bytes_in_allocated_blocks", re.compile(r"^# bytes in allocated blocks")),
    ("bytes_in_available_blocks", re.compile(r"^# bytes in available blocks")),
    ("unused_pool_bytes", re.compile(r"^(?P<a>\d[\d,]*) unused pools \* (?P<b>\d[\d,]*) bytes")),
    ("bytes_lost_to_pool_headers", re.compile(r"^# bytes lost to pool headers")),
    ("bytes_lost_to_quantization", re.compile(r"^# bytes lost to quantization")),
    ("bytes_lost_to_arena_alignment", re.compile(r"^# bytes lost to arena alignment")),
    ("arena_map_mid_nodes", re.compile(r"^# arena map mid nodes")),
    ("arena_map_bot_nodes", re.compile(r"^# arena map bot nodes")),
    ("arena_map_root_bytes", re.compile(r"^# bytes lost to arena map root")),
    ("arena_map_mid_bytes", re.compile(r"^# bytes lost to arena map mid")),
    ("arena_map_bot_bytes", re.compile(r"^# bytes lost to arena map bot")),
    ("total", re.compile(r"^Total")),
]

# mimalloc summary (3.13+): "Medium block threshold = N" and "    Key: N" lines.
_MI_LINES: list[tuple[str, re.Pattern[str]]] = [
    ("medium_block_threshold", re.compile(rf"^Medium block threshold = ({_NUM})\s*$")),
    ("large_object_max_size", re.compile(rf"^Large object max size = ({_NUM})\s*$")),
    ("allocated_blocks", re.compile(rf"^\s+Allocated Blocks: ({_NUM})\s*$")),
    ("allocated_bytes", re.compile(rf"^\s+Allocated Bytes: ({_NUM})\s*$")),
    (
        "allocated_bytes_with_overhead",
        re.compile(rf"^\s+Allocated Bytes w/ Overhead: ({_NUM})\s*$"),
    ),
    ("bytes_reserved", re.compile(rf"^\s+Bytes Reserved: ({_NUM})\s*$")),
    ("bytes_committed", re.compile(rf"^\s+Bytes Committed: ({_NUM})\s*$")),
]


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass(frozen=True)
class SizeClass:
    """One row of the size-class table (``class`` is the size-class index)."""

    index: int
    size: int
    num_pools: int
    blocks_in_use: int
    avail_blocks: int

    @property
    def bytes_in_use(self) -> int:
        """Bytes held by allocated blocks of this class."""
        return self.size * self.blocks_in_use


@dataclass(frozen=True)
class MimallocStats:
    """The summary 3.13+ prints when the object allocator is mimalloc."""

    medium_block_threshold: int | None = None
    large_object_max_size: int | None = None
    allocated_blocks: int | None = None
    allocated_bytes: int | None = None
    allocated_bytes_with_overhead: int | None = None
    bytes_reserved: int | None = None
    bytes_committed: int | None = None


@dataclass(frozen=True)
class MallocStats:
    """One parsed ``sys._debugmallocstats()`` dump.

    Every field the text did not contain is ``None``: nothing is derived from
    assumed allocator constants.  ``pools_in_use`` is the sum of the
    ``num pools`` column, and is ``None`` unless the whole table was seen.
    """

    allocator: str  # "pymalloc", "mimalloc", or "unknown" (only the header was seen)
    small_block_threshold: int
    num_size_classes: int
    size_classes: tuple[SizeClass, ...] | None = None
    pools_in_use: int | None = None
    times_object_malloc_called: int | None = None  # debug builds only
    arenas_allocated_total: int | None = None
    arenas_reclaimed: int | None = None
    arenas_highwater: int | None = None
    arenas_allocated_current: int | None = None
    arena_size: int | None = None
    arenas_bytes: int | None = None  # the "N arenas * M bytes/arena" value
    pool_size: int | None = None
    unused_pools: int | None = None
    unused_pool_bytes: int | None = None
    bytes_in_allocated_blocks: int | None = None
    bytes_in_available_blocks: int | None = None
    bytes_lost_to_pool_headers: int | None = None
    bytes_lost_to_quantization: int | None = None
    bytes_lost_to_arena_alignment: int | None = None
    total_bytes: int | None = None
    arena_map_mid_nodes: int | None = None
    arena_map_bot_nodes: int | None = None
    arena_map_bytes: int | None = None  # the radix tree's own "Total" (3.10+)
    mimalloc: MimallocStats | None = None

    def inconsistencies(self) -> list[str]:
        """Check the identities CPython's accounting guarantees; return what does not hold.

        An empty list means every check whose inputs are present passed.  A
        non-empty one flags a damaged or partial capture (for instance a
        foreign write that swallowed a table row).
        """
        problems: list[str] = []

        def check(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        if self.arenas_allocated_current is not None and self.arena_size is not None:
            if self.arenas_bytes is not None:
                check(
                    self.arenas_allocated_current * self.arena_size == self.arenas_bytes,
                    f"{self.arenas_allocated_current} arenas * {self.arena_size} bytes "
                    f"!= {self.arenas_bytes}",
                )
            if self.total_bytes is not None:
                check(
                    self.arenas_allocated_current * self.arena_size == self.total_bytes,
                    f"arena bytes != Total ({self.total_bytes})",
                )
        if (
            self.arenas_allocated_total is not None
            and self.arenas_reclaimed is not None
            and self.arenas_allocated_current is not None
        ):
            check(
                self.arenas_allocated_total - self.arenas_reclaimed
                == self.arenas_allocated_current,
                "arenas allocated total - reclaimed != current",
            )
        if self.arenas_highwater is not None and self.arenas_allocated_current is not None:
            check(
                self.arenas_highwater >= self.arenas_allocated_current,
                "highwater mark below current arenas",
            )
        parts = (
            self.bytes_in_allocated_blocks,
            self.bytes_in_available_blocks,
            self.unused_pool_bytes,
            self.bytes_lost_to_pool_headers,
            self.bytes_lost_to_quantization,
            self.bytes_lost_to_arena_alignment,
        )
        if self.total_bytes is not None and all(p is not None for p in parts):
            check(
                sum(p for p in parts if p is not None) == self.total_bytes,
                "the byte accounting does not add up to Total",
            )
        if self.unused_pools is not None and self.pool_size is not None:
            if self.unused_pool_bytes is not None:
                check(
                    self.unused_pools * self.pool_size == self.unused_pool_bytes,
                    "unused pools * pool size != unused pool bytes",
                )
        if self.pools_in_use is not None and self.size_classes is not None:
            used = sum(c.blocks_in_use * c.size for c in self.size_classes)
            free = sum(c.avail_blocks * c.size for c in self.size_classes)
            if self.bytes_in_allocated_blocks is not None:
                check(used == self.bytes_in_allocated_blocks, "rows do not sum to allocated bytes")
            if self.bytes_in_available_blocks is not None:
                check(free == self.bytes_in_available_blocks, "rows do not sum to available bytes")
            headers = self.bytes_lost_to_pool_headers
            if headers is not None and self.pools_in_use:
                # Every used pool carries one header of the same (platform) size.
                overhead, rest = divmod(headers, self.pools_in_use)
                check(rest == 0, "pool header bytes are not a multiple of pools in use")
                if rest == 0 and self.pool_size and self.bytes_lost_to_quantization is not None:
                    # CPython: quantization += pools * ((POOL_SIZE - POOL_OVERHEAD) % size)
                    quant = sum(
                        c.num_pools * ((self.pool_size - overhead) % c.size)
                        for c in self.size_classes
                    )
                    check(
                        quant == self.bytes_lost_to_quantization,
                        "quantization does not match the rows and pool size",
                    )
        return problems

    def to_dict(self) -> dict[str, Any]:
        """The stats as plain JSON-ready data."""
        return dataclasses.asdict(self)


def split_samples(text: str) -> list[str]:
    """Split concatenated dumps: one string per ``Small block threshold`` header.

    Text before the first header (other stderr output, or a dump without a
    header, such as one taken under tracemalloc) is dropped.
    """
    chunks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if _HEADER.match(line):
            if current is not None:
                chunks.append("".join(current))
            current = []
        if current is not None:
            current.append(line)
    if current is not None:
        chunks.append("".join(current))
    return chunks


def parse_mallocstats(text: str) -> MallocStats | None:
    """Parse the first ``sys._debugmallocstats()`` dump found in ``text``.

    Lines that belong to no dump (other stderr output) are ignored, also when
    they were written into the middle of a dump line.  Returns ``None`` when
    the text holds no allocator statistics (for example a dump taken while
    tracemalloc was tracing, or under ``PYTHONMALLOC=malloc``).  Use
    :func:`split_samples` for text holding several dumps.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if start is None:
        return None
    head = _HEADER.match(lines[start])
    assert head is not None
    threshold, nclasses = int(head.group(1)), int(head.group(2))
    # Size classes are multiples of the alignment: size == (index + 1) * align.
    align = threshold // nclasses if nclasses else 0

    values: dict[str, int] = {}
    mi: dict[str, int] = {}
    rows: list[SizeClass] | None = None
    # The table ends at the blank line CPython prints after it, or at the
    # first arena label.  Rows after a blank line are still taken (a foreign
    # empty line may sit inside the table) until a label closes the table.
    table_closed = False
    table_done = False
    in_arena_map = False
    pending: str | None = None  # label whose "= value" has not arrived yet

    def store(key: str, value: int) -> None:
        if key == "total":
            key = "arena_map_bytes" if in_arena_map else "total_bytes"
        # First value wins: a later duplicate can only come from foreign text.
        values.setdefault(key, value)

    for line in lines[start + 1 :]:
        if _HEADER.match(line):
            break  # the next dump starts
        if rows is None and _TABLE_HEADER.match(line):
            rows = []
            continue
        if rows is not None and not table_done:
            row = _ROW.match(line)
            if row:
                cls = SizeClass(*(int(g) for g in row.groups()))
                prev = rows[-1].index if rows else -1
                # Rows come in increasing class order with a fixed size per
                # class; anything else is not a row of this table.
                if prev < cls.index < nclasses and cls.size == (cls.index + 1) * align:
                    rows.append(cls)
                continue
            if _TABLE_RULE.match(line):
                continue
            if not line.strip():
                table_closed = True
            elif _TABLE_END.match(line):
                table_closed = table_done = True
        if _ARENA_MAP_HEADER.match(line):
            in_arena_map = True
            pending = None
            continue
        matched = False
        for key, pattern in _LABELS:
            m = pattern.match(line)
            if not m:
                continue
            matched = True
            if "a" in m.groupdict():
                count, unit = _int(m.group("a")), _int(m.group("b"))
                if key == "arenas_bytes":
                    values.setdefault("arenas_in_label", count)
                    values.setdefault("arena_size", unit)
                else:
                    values.setdefault("unused_pools", count)
                    values.setdefault("pool_size", unit)
            whole = _FIELD.match(line, m.end())
            if (
                whole
                and len(whole.group("v")) == _FIELD_WIDTH
                and line.index("=", m.end()) == max(_LABEL_WIDTH, m.end())
            ):
                store(key, _int(whole.group("v")))
                pending = None
            else:
                pending = key  # the value comes on a later line
            break
        if matched:
            continue
        if pending is not None:
            orphan = _ORPHAN_VALUE.match(line)
            if orphan and len(orphan.group("v")) == _FIELD_WIDTH:
                store(pending, _int(orphan.group("v")))
                pending = None
            continue
        for key, pattern in _MI_LINES:
            m = pattern.match(line)
            if m:
                mi.setdefault(key, _int(m.group(1)))
                break

    if rows is None and not values:
        return MallocStats(
            # A header alone (a dump cut short) does not say which allocator.
            allocator="mimalloc" if mi else "unknown",
            small_block_threshold=threshold,
            num_size_classes=nclasses,
            mimalloc=MimallocStats(**mi) if mi else None,
        )
    pools_in_use = sum(r.num_pools for r in rows) if rows is not None and table_closed else None
    return MallocStats(
        allocator="pymalloc",
        small_block_threshold=threshold,
        num_size_classes=nclasses,
        size_classes=tuple(rows) if rows is not None else None,
        pools_in_use=pools_in_use,
        times_object_malloc_called=values.get("times_object_malloc_called"),
        arenas_allocated_total=values.get("arenas_allocated_total"),
        arenas_reclaimed=values.get("arenas_reclaimed"),
        arenas_highwater=values.get("arenas_highwater"),
        arenas_allocated_current=values.get(
            "arenas_allocated_current", values.get("arenas_in_label")
        ),
        arena_size=values.get("arena_size"),
        arenas_bytes=values.get("arenas_bytes"),
        pool_size=values.get("pool_size"),
        unused_pools=values.get("unused_pools"),
        unused_pool_bytes=values.get("unused_pool_bytes"),
        bytes_in_allocated_blocks=values.get("bytes_in_allocated_blocks"),
        bytes_in_available_blocks=values.get("bytes_in_available_blocks"),
        bytes_lost_to_pool_headers=values.get("bytes_lost_to_pool_headers"),
        bytes_lost_to_quantization=values.get("bytes_lost_to_quantization"),
        bytes_lost_to_arena_alignment=values.get("bytes_lost_to_arena_alignment"),
        total_bytes=values.get("total_bytes"),
        arena_map_mid_nodes=values.get("arena_map_mid_nodes"),
        arena_map_bot_nodes=values.get("arena_map_bot_nodes"),
        arena_map_bytes=values.get("arena_map_bytes"),
    )


@dataclass(frozen=True)
class ArenaSummary:
    """Arenas and pools over a run: the paper's Table 3 columns, plus context.

    Averages are plain means over the samples, which the profiler takes at a
    fixed interval, so they are averages over the run's duration.  Samples
    that lack the arena section (or a complete size-class table) are counted
    in ``sample_count`` but left out of the arena (or pool) figures.
    """

    sample_count: int
    arena_samples: int
    pool_samples: int
    arenas_avg: float | None
    arenas_max: int | None
    pools_avg: float | None
    pools_max: int | None
    max_bytes_in_allocated_blocks: int | None
    arena_size: int | None
    pool_size: int | None
    duration: float | None  # seconds between the first and the last sample

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready data."""
        return dataclasses.asdict(self)


def _mean(xs: Sequence[int]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _one_size(sizes: Iterable[int | None], what: str) -> int | None:
    found = {s for s in sizes if s is not None}
    if len(found) > 1:
        # One process has one arena size; mixing means samples of two interpreters.
        raise ValueError(f"samples disagree on the {what}: {sorted(found)}")
    return found.pop() if found else None


def summarize(samples: list[tuple[float, MallocStats]]) -> ArenaSummary:
    """Average and maximum arenas and pools in use over ``(time, stats)`` samples.

    Raises ``ValueError`` if the samples report different arena or pool sizes
    (they cannot come from one process).
    """
    stats = [s for _, s in samples]
    arenas = [s.arenas_allocated_current for s in stats if s.arenas_allocated_current is not None]
    pools = [s.pools_in_use for s in stats if s.pools_in_use is not None]
    allocated = [
        s.bytes_in_allocated_blocks for s in stats if s.bytes_in_allocated_blocks is not None
    ]
    times = [t for t, _ in samples]
    return ArenaSummary(
        sample_count=len(samples),
        arena_samples=len(arenas),
        pool_samples=len(pools),
        arenas_avg=_mean(arenas),
        arenas_max=max(arenas) if arenas else None,
        pools_avg=_mean(pools),
        pools_max=max(pools) if pools else None,
        max_bytes_in_allocated_blocks=max(allocated) if allocated else None,
        arena_size=_one_size((s.arena_size for s in stats), "arena size"),
        pool_size=_one_size((s.pool_size for s in stats), "pool size"),
        duration=(max(times) - min(times)) if times else None,
    )
