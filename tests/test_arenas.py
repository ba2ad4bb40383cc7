"""Tests for memtrim.measure.arenas on real ``sys._debugmallocstats()`` captures.

The fixtures in tests/fixtures/mallocstats were captured from the pyenv
interpreters 3.9-3.13 (see the README there for the exact commands).  The
expected numbers below were read off the fixture text by eye; the tests also
check CPython's own accounting identities, which hold only if every field was
attributed to the right line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memtrim.measure.arenas import (
    MallocStats,
    parse_mallocstats,
    split_samples,
    summarize,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mallocstats"
VERSIONS = ["3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0"]
KIB = 1024
MIB = 1024 * 1024

# version: (arena size, pool size, arenas, Total, arena map Total, bytes in allocated blocks)
BARE = {
    "3.9.18": (256 * KIB, 4 * KIB, 4, 1_048_576, None, 925_920),
    "3.10.13": (MIB, 16 * KIB, 2, 2_097_152, 18_432, 974_512),
    "3.11.7": (MIB, 16 * KIB, 1, 1_048_576, 655_360, 657_792),
    "3.12.1": (MIB, 16 * KIB, 1, 1_048_576, 655_360, 667_488),
    "3.13.0": (MIB, 16 * KIB, 2, 2_097_152, 655_360, 997_952),
}
# version: arenas while 200k tuples are alive, arenas after they are freed
LOADED = {
    "3.9.18": (203, 8),
    "3.10.13": (51, 4),
    "3.11.7": (51, 4),
    "3.12.1": (48, 3),
    "3.13.0": (48, 4),
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def parsed(name: str) -> MallocStats:
    stats = parse_mallocstats(fixture(name))
    assert stats is not None, name
    return stats


def column_sum(text: str, column: int) -> int:
    """Sum one column of the first size-class table, read independently of the parser."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----"))
    total = 0
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        total += int(line.split()[column])
    return total


@pytest.mark.parametrize("version", VERSIONS)
def test_bare_interpreter_sizes_and_totals(version: str) -> None:
    arena_size, pool_size, arenas, total, arena_map, allocated = BARE[version]
    s = parsed(f"{version}-bare.txt")
    assert s.allocator == "pymalloc"
    assert (s.small_block_threshold, s.num_size_classes) == (512, 32)
    assert s.arena_size == arena_size
    assert s.pool_size == pool_size
    assert s.arenas_allocated_current == arenas
    assert s.total_bytes == total
    assert s.arena_map_bytes == arena_map  # the second "Total" is not the arena total
    assert s.bytes_in_allocated_blocks == allocated
    # The "N arenas * M bytes/arena = X" line, and the accounting Total.
    assert s.arenas_allocated_current * s.arena_size == s.arenas_bytes == s.total_bytes
    assert s.inconsistencies() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_pools_in_use_is_the_column_sum(version: str) -> None:
    text = fixture(f"{version}-bare.txt")
    s = parsed(f"{version}-bare.txt")
    assert s.size_classes is not None
    assert s.pools_in_use == column_sum(text, 2)
    assert sum(c.blocks_in_use for c in s.size_classes) == column_sum(text, 3)
    # Each used pool has one 48-byte header on x86-64, where these were captured.
    assert s.bytes_lost_to_pool_headers == 48 * s.pools_in_use
    # Every class is a multiple of the 16-byte alignment.
    assert all(c.size == 16 * (c.index + 1) for c in s.size_classes)


@pytest.mark.parametrize("version", VERSIONS)
def test_loaded_capture_holds_two_samples(version: str) -> None:
    chunks = split_samples(fixture(f"{version}-loaded.txt"))
    assert len(chunks) == 2
    full, freed = (parse_mallocstats(c) for c in chunks)
    assert full is not None and freed is not None
    assert (full.arenas_allocated_current, freed.arenas_allocated_current) == LOADED[version]
    # Freeing the objects returned whole arenas to the OS, and CPython counts them.
    assert freed.arenas_highwater == full.arenas_allocated_current
    assert freed.arenas_reclaimed == full.arenas_allocated_current - freed.arenas_allocated_current
    assert freed.arenas_allocated_total == full.arenas_allocated_total
    assert full.bytes_in_allocated_blocks > 40 * MIB > freed.bytes_in_allocated_blocks
    assert full.inconsistencies() == [] and freed.inconsistencies() == []


def test_first_dump_only_without_split() -> None:
    text = fixture("3.11.7-loaded.txt")
    assert parse_mallocstats(text) == parse_mallocstats(split_samples(text)[0])


@pytest.mark.parametrize("version", VERSIONS)
def test_tracemalloc_capture_has_no_malloc_stats(version: str) -> None:
    # Under tracemalloc, CPython skips the whole pymalloc section (size classes
    # and arenas alike), leaving only the per-type free lists.
    text = fixture(f"{version}-tracemalloc.txt")
    assert "free PyDictObjects" in text
    assert "size classes" not in text
    assert parse_mallocstats(text) is None
    assert split_samples(text) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_system_malloc_capture_has_no_malloc_stats(version: str) -> None:
    assert parse_mallocstats(fixture(f"{version}-malloc.txt")) is None


def test_dump_cut_before_the_arena_section() -> None:
    # The real 3.11 capture, cut where the arena section begins: size classes
    # are there, every arena and byte field must be None rather than guessed.
    text = fixture("3.11.7-bare.txt")
    cut = text[: text.index("# arenas allocated total")]
    s = parse_mallocstats(cut)
    assert s is not None
    full = parsed("3.11.7-bare.txt").size_classes
    assert s.size_classes is not None and full is not None
    assert s.size_classes == full
    assert s.pools_in_use == column_sum(text, 2)
    for name in (
        "arenas_allocated_current",
        "arenas_allocated_total",
        "arenas_reclaimed",
        "arenas_highwater",
        "arena_size",
        "pool_size",
        "unused_pools",
        "bytes_in_allocated_blocks",
        "total_bytes",
        "arena_map_bytes",
    ):
        assert getattr(s, name) is None, name


def test_dump_cut_inside_the_table_gives_no_pool_count() -> None:
    text = fixture("3.11.7-bare.txt")
    lines = text.splitlines(keepends=True)
    rule = next(i for i, line in enumerate(lines) if line.startswith("-----"))
    s = parse_mallocstats("".join(lines[: rule + 4]))
    assert s is not None
    assert s.size_classes is not None and len(s.size_classes) == 3
    assert s.pools_in_use is None  # three rows of an unfinished table are not a total


def test_whole_junk_lines_are_ignored() -> None:
    clean = fixture("3.12.1-bare.txt")
    junk = [
        "Traceback (most recent call last):",
        "    7   1000       5       5      5",  # looks like a row but is not a size class
        "Total time: 3.2 s",
        "",
        "WARNING: something = 12",
    ]
    noisy = []
    for i, line in enumerate(clean.splitlines()):
        noisy.append(line)
        noisy.append(junk[i % len(junk)])
    noisy_text = "\n".join(["some output before the dump", *noisy]) + "\n"
    assert parse_mallocstats(noisy_text) == parse_mallocstats(clean)


def test_junk_written_into_the_middle_of_lines() -> None:
    # Real capture: a concurrent process wrote to the same fd 2 while 3.11
    # dumped twice; its lines landed inside printone()'s label/padding/value.
    text = fixture("3.11.7-junk.txt")
    assert re.search(r"^# arenas \w+ \w+ *JUNK", text, flags=re.M)  # the damage is real
    chunks = split_samples(text)
    assert len(chunks) == 2
    for chunk in chunks:
        s = parse_mallocstats(chunk)
        assert s is not None
        assert s.arenas_allocated_current == 3
        assert s.arena_size == MIB and s.pool_size == 16 * KIB
        assert s.total_bytes == 3_145_728
        assert s.bytes_in_allocated_blocks == 2_090_448
        assert s.unused_pools == 44
        assert s.arena_map_bytes == 655_360
        assert s.pools_in_use == 145
        assert s.inconsistencies() == []


def test_mimalloc_has_no_arenas_or_pools() -> None:
    chunks = split_samples(fixture("3.13.0-mimalloc.txt"))
    assert len(chunks) == 2
    s = parse_mallocstats(chunks[0])
    assert s is not None
    assert s.allocator == "mimalloc"
    assert (s.small_block_threshold, s.num_size_classes) == (16384, 73)
    assert s.arenas_allocated_current is None and s.pools_in_use is None
    assert s.arena_size is None and s.pool_size is None and s.size_classes is None
    assert s.mimalloc is not None
    assert s.mimalloc.allocated_bytes == 53_105_072
    assert s.mimalloc.bytes_committed == 53_475_600
    assert s.mimalloc.large_object_max_size == 16_777_216


def test_no_stats_at_all() -> None:
    assert parse_mallocstats("") is None
    assert parse_mallocstats("just some stderr\nTotal = 5\n") is None
    assert split_samples("just some stderr\n") == []


def test_inconsistencies_catch_a_wrong_value() -> None:
    text = fixture("3.10.13-bare.txt").replace(
        "# bytes in allocated blocks        =              974,512",
        "# bytes in allocated blocks        =              974,528",
    )
    s = parse_mallocstats(text)
    assert s is not None and s.bytes_in_allocated_blocks == 974_528
    problems = s.inconsistencies()
    assert "rows do not sum to allocated bytes" in problems
    assert "the byte accounting does not add up to Total" in problems


@pytest.mark.parametrize("version", VERSIONS)
def test_summarize_loaded_run(version: str) -> None:
    samples = [
        (0.5 * i, s)
        for i, c in enumerate(split_samples(fixture(f"{version}-loaded.txt")))
        if (s := parse_mallocstats(c)) is not None
    ]
    full, freed = samples[0][1], samples[1][1]
    summary = summarize(samples)
    assert summary.sample_count == summary.arena_samples == summary.pool_samples == 2
    assert summary.arenas_avg == sum(LOADED[version]) / 2
    assert summary.arenas_max == LOADED[version][0]
    assert summary.pools_max == full.pools_in_use
    assert summary.pools_avg == (full.pools_in_use + freed.pools_in_use) / 2
    assert summary.max_bytes_in_allocated_blocks == full.bytes_in_allocated_blocks
    assert summary.arena_size == BARE[version][0] and summary.pool_size == BARE[version][1]
    assert summary.duration == 0.5
    assert json.loads(json.dumps(summary.to_dict()))["arenas_max"] == LOADED[version][0]


def test_summarize_skips_samples_without_arenas() -> None:
    s = parsed("3.12.1-bare.txt")
    mi = parse_mallocstats(split_samples(fixture("3.13.0-mimalloc.txt"))[0])
    assert mi is not None
    summary = summarize([(0.0, s), (1.0, mi)])
    assert summary.sample_count == 2
    assert summary.arena_samples == 1
    assert summary.arenas_avg == 1.0 and summary.pools_max == s.pools_in_use


def test_summarize_empty_and_mixed() -> None:
    empty = summarize([])
    assert empty.sample_count == 0 and empty.arenas_avg is None and empty.duration is None
    with pytest.raises(ValueError, match="arena size"):
        summarize([(0.0, parsed("3.9.18-bare.txt")), (1.0, parsed("3.11.7-bare.txt"))])


def test_stats_to_dict_is_json() -> None:
    d = parsed("3.13.0-bare.txt").to_dict()
    again = json.loads(json.dumps(d))
    assert again["arena_size"] == MIB
    # The first table row of that fixture: "    0     16           1              24           997"
    assert again["size_classes"][0] == {
        "index": 0,
        "size": 16,
        "num_pools": 1,
        "blocks_in_use": 24,
        "avail_blocks": 997,
    }
