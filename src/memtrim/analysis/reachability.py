"""What the program may use: everything reachable from its roots in the reference graph.

Plain edges are followed as they are.  Members (methods of a class, names of a
module used as a value) are reached when their container is reached *and*
their name is used as an attribute by reached code; a reached ``wild`` node
makes every name count as used, a reached ``prefix`` node every name with
that prefix.

Some reasons to keep a node are expensive to decide (is this import's module
free of side effects? does this decorator register?) and only matter for a
node that is otherwise unused but whose enclosing code runs.  ``solve`` asks
``pin_check`` about exactly those nodes, keeps the ones it gives a reason
for, and continues until nothing changes: the fixed point.
"""

from __future__ import annotations

from collections.abc import Callable

from memtrim.analysis.graph import Graph

# Node kinds that may need a lazy decision (see pin_check).
_CHECKED_KINDS = frozenset({"function", "class", "import", "value"})


class Reachability:
    """Incremental worklist reachability over a :class:`Graph`."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.reached = bytearray(len(graph.nodes))
        self.attrs: set[str] = set()
        self.prefixes: tuple[str, ...] = ()
        self.wild = False
        self._queue: list[int] = []

    def add(self, nid: int) -> None:
        """Mark ``nid`` reached (its uses are processed by the next :meth:`run`)."""
        if not self.reached[nid]:
            self.reached[nid] = 1
            self._queue.append(nid)

    def _member_used(self, name: str) -> bool:
        return self.wild or name in self.attrs or (
            bool(self.prefixes) and name.startswith(self.prefixes))

    def _active(self, container: int) -> bool:
        if not self.reached[container]:
            return False
        required = self.g.requires.get(container)
        return required is None or bool(self.reached[required])

    def _open(self, container: int) -> None:
        """Reach the members of an active container whose names are used."""
        reached, queue = self.reached, self._queue
        for name, member in self.g.members_of.get(container, ()):
            if not reached[member] and self._member_used(name):
                reached[member] = 1
                queue.append(member)

    def run(self) -> None:
        """Process the queue until every use of every reached node is reached."""
        g = self.g
        nodes, edges = g.nodes, g.edges
        members_of, members_by_name = g.members_of, g.members_by_name
        reached, queue = self.reached, self._queue
        if g.requires and not hasattr(self, "_activates"):
            self._activates: dict[int, list[int]] = {}
            for container, required in g.requires.items():
                self._activates.setdefault(required, []).append(container)
        activates = getattr(self, "_activates", {})
        while queue:
            nid = queue.pop()
            for dst in edges[nid]:
                if not reached[dst]:
                    reached[dst] = 1
                    queue.append(dst)
            if nid in members_of and self._active(nid):
                self._open(nid)
            for container in activates.get(nid, ()):
                if self._active(container):
                    self._open(container)
            kind = nodes[nid].kind
            if kind == "attr":
                name = nodes[nid].name
                self.attrs.add(name)
                for container, member in members_by_name.get(name, ()):
                    if not reached[member] and self._active(container):
                        reached[member] = 1
                        queue.append(member)
            elif kind == "prefix":
                prefix = nodes[nid].name
                self.prefixes = (*self.prefixes, prefix)
                for name, pairs in members_by_name.items():
                    if name.startswith(prefix):
                        for container, member in pairs:
                            if not reached[member] and self._active(container):
                                reached[member] = 1
                                queue.append(member)
            elif kind == "wild":
                self.wild = True
                for container in members_of:
                    if self._active(container):
                        self._open(container)


def solve(
    graph: Graph, roots: list[int], pin_check: Callable[[int], str | None]
) -> bytearray:
    """Reach from ``roots``; keep what ``pin_check`` has a reason for; repeat to a fixed point.

    ``pin_check(node)`` is called once per node that is unreached while the
    code containing it is reached; a returned reason keeps the node (and is
    recorded in ``graph.guard_reasons``).
    """
    r = Reachability(graph)
    for root in roots:
        r.add(root)
    candidates = [n.id for n in graph.nodes if n.kind in _CHECKED_KINDS and n.parent >= 0]
    checked = bytearray(len(graph.nodes))
    reached = r.reached
    nodes = graph.nodes
    while True:
        r.run()
        pinned = False
        for nid in candidates:
            if reached[nid] or checked[nid] or not reached[nodes[nid].parent]:
                continue
            checked[nid] = 1
            reason = pin_check(nid)
            if reason is not None:
                graph.guard_reasons.setdefault(nid, reason)
                r.add(nid)
                r.run()  # at once: what it uses is then not asked about (nor reported)
                pinned = True
        if not pinned:
            return reached
