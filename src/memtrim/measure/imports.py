"""The memory cost of every import, as a tree: self and cumulative, RSS and traced bytes.

Like ``python -X importtime`` but in bytes.  The harness records one event per
module load: ``[name, parent_index, rss0, rss1, traced0, traced1, t0, t1, ok]``,
where the parent is the module whose execution triggered the import.  RSS comes
from a run without tracemalloc (whose own bookkeeping would inflate RSS), traced
bytes from the tracemalloc run; both are joined by module name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class ImportNode:
    """One module load: its cumulative cost (with its imports) and its self cost."""

    name: str
    cum_rss: int = 0
    cum_traced: int | None = None
    cum_time: float = 0.0
    ok: bool = True
    children: list[ImportNode] = field(default_factory=list)

    @property
    def self_rss(self) -> int:
        """RSS growth while this module ran, minus what its own imports grew it by."""
        return self.cum_rss - sum(c.cum_rss for c in self.children)

    @property
    def self_traced(self) -> int | None:
        """Traced bytes allocated by this module's code itself (not its imports)."""
        if self.cum_traced is None:
            return None
        return self.cum_traced - sum(c.cum_traced or 0 for c in self.children)

    @property
    def self_time(self) -> float:
        """Seconds spent in this module's own code."""
        return self.cum_time - sum(c.cum_time for c in self.children)

    def walk(self, depth: int = 0) -> Iterable[tuple[int, ImportNode]]:
        """Yield ``(depth, node)`` for this node and every descendant, depth first."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def to_dict(self) -> dict:
        """A JSON-able form: costs in bytes and seconds, children nested."""
        return {
            "module": self.name,
            "self_rss": self.self_rss,
            "cum_rss": self.cum_rss,
            "self_traced": self.self_traced,
            "cum_traced": self.cum_traced,
            "self_time": round(self.self_time, 6),
            "cum_time": round(self.cum_time, 6),
            "ok": self.ok,
            "children": [c.to_dict() for c in self.children],
        }


def _nodes(events: Sequence[Sequence]) -> list[ImportNode]:
    """Turn harness events into a forest, keeping the first load of each name."""
    nodes: list[ImportNode | None] = []
    roots: list[ImportNode] = []
    seen: set[str] = set()
    for name, parent, rss0, rss1, _tr0, _tr1, t0, t1, ok in events:
        if name in seen:  # a reload, or a second load after `del sys.modules[...]`
            nodes.append(None)
            continue
        seen.add(name)
        node = ImportNode(name, cum_rss=rss1 - rss0, cum_time=max(0.0, t1 - t0), ok=bool(ok))
        nodes.append(node)
        parent_node = nodes[parent] if 0 <= parent < len(nodes) else None
        (parent_node.children if parent_node is not None else roots).append(node)
    return roots


def build_import_tree(
    rss_events: Sequence[Sequence] | None, traced_events: Sequence[Sequence] | None
) -> list[ImportNode]:
    """Join the RSS run's events with the tracemalloc run's into one forest of modules.

    The tree's shape comes from the RSS run when there is one; traced bytes are
    added by module name.  Either list may be missing (its run was skipped).
    """
    traced_cum = {
        ev[0]: ev[5] - ev[4] for ev in reversed(traced_events or [])
    }  # reversed: the first load of a name wins
    if rss_events:
        roots = _nodes(rss_events)
        for root in roots:
            for _, node in root.walk():
                node.cum_traced = traced_cum.get(node.name)
        return roots
    roots = _nodes(traced_events or [])
    for root in roots:
        for _, node in root.walk():
            node.cum_traced = traced_cum.get(node.name)
            node.cum_rss = 0
    return roots


def flatten(roots: Sequence[ImportNode]) -> list[ImportNode]:
    """Every node of the forest, depth first."""
    return [node for root in roots for _, node in root.walk()]


def prune(
    roots: Sequence[ImportNode], *, min_cum_rss: int, limit: int
) -> list[tuple[int, ImportNode]]:
    """The rows worth printing: nodes whose cumulative RSS is at least ``min_cum_rss``.

    Siblings are ordered by cumulative cost, and at most ``limit`` rows are kept.
    """
    rows: list[tuple[int, ImportNode]] = []

    def visit(nodes: Sequence[ImportNode], depth: int) -> None:
        for node in sorted(nodes, key=lambda n: n.cum_rss, reverse=True):
            if len(rows) >= limit or node.cum_rss < min_cum_rss:
                continue
            rows.append((depth, node))
            visit(node.children, depth + 1)

    visit(roots, 0)
    return rows
