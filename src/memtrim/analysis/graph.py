"""The reference graph: one node per removable definition or piece of code, edges for uses.

Node kinds:

- ``module``: a module's top-level code (what runs when it is imported);
- ``function`` / ``class``: a ``def`` or ``class`` statement, with its decorators,
  defaults, bases and body (a method is a ``function`` whose parent is a class);
- ``import``: one name bound by an import statement;
- ``variable``: one name bound by a simple assignment ``x = value``;
- ``value``: the right-hand side of such an assignment (reached through its
  targets when it is pure, always when it has side effects);
- ``opaque``: a module that could not be parsed;
- pseudo nodes ``group`` (stands for a set of nodes reached together),
  ``attr`` (an attribute name used somewhere, ``obj.name``),
  ``prefix`` (attribute names built from a constant prefix), ``escape`` (a
  module object used as a value, so any of its attributes may be read) and
  ``wild`` (a dynamic lookup that could reach any attribute).

An edge ``a -> b`` means: if the code of ``a`` is kept, ``b`` may be used.
*Members* are reached conditionally: a method or nested class of a class (or a
name of an escaped module) is reached when its container is reached and its
name is used as an attribute somewhere in reached code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Node:
    """One vertex of the reference graph."""

    id: int
    kind: str
    module: str
    qualname: str
    name: str
    line: int
    parent: int  # the node whose code contains this one (-1 for roots and pseudo nodes)
    stmt: ast.AST | None = None
    data: dict | None = None

    @property
    def symbol(self) -> str:
        """The qualified name, ``pkg.mod:Class.method``."""
        return f"{self.module}:{self.qualname}" if self.qualname else self.module


@dataclass
class Graph:
    """Nodes, edges and member tables of the whole program."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[list[int]] = field(default_factory=list)
    # container node -> [(member name, member node)]
    members_of: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    # member name -> [(container node, member node)]
    members_by_name: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    attr_nodes: dict[str, int] = field(default_factory=dict)
    prefix_nodes: dict[str, int] = field(default_factory=dict)
    escape_nodes: dict[str, int] = field(default_factory=dict)
    # container -> node that must be reached too before its members can be
    # (a module object's names exist only once the module has run)
    requires: dict[int, int] = field(default_factory=dict)
    module_nodes: dict[str, int] = field(default_factory=dict)
    roots: list[int] = field(default_factory=list)
    # Why a node is kept when a guard (not an ordinary use) keeps it.
    guard_reasons: dict[int, str] = field(default_factory=dict)
    # 1 when some code uses the node plainly (not only through a guard)
    referenced: list[int] = field(default_factory=list)
    wild: int = -1

    def __post_init__(self) -> None:
        self.wild = self.add("wild", "", "", "*", 0, -1)

    def add(
        self, kind: str, module: str, qualname: str, name: str, line: int, parent: int,
        stmt: ast.AST | None = None, data: dict | None = None,
    ) -> int:
        """Add a node and return its id."""
        nid = len(self.nodes)
        self.nodes.append(Node(nid, kind, module, qualname, name, line, parent, stmt, data))
        self.edges.append([])
        self.referenced.append(0)
        return nid

    def edge(self, src: int, dst: int) -> None:
        """Record that the code of ``src`` uses ``dst``."""
        if src != dst:  # a definition's references to itself never keep it
            self.edges[src].append(dst)
            self.referenced[dst] = 1

    def guard(self, src: int, dst: int, reason: str) -> None:
        """An edge added by a guard: ``dst`` is kept for ``reason`` whenever ``src`` is."""
        if src != dst:
            self.edges[src].append(dst)
        self.guard_reasons.setdefault(dst, reason)

    def member(self, container: int, name: str, member: int) -> None:
        """``member`` is reached when ``container`` is and ``name`` is used as an attribute."""
        self.members_of.setdefault(container, []).append((name, member))
        self.members_by_name.setdefault(name, []).append((container, member))

    def attr(self, name: str) -> int:
        """The pseudo node for attribute name ``name``."""
        nid = self.attr_nodes.get(name)
        if nid is None:
            nid = self.attr_nodes[name] = self.add("attr", "", name, name, 0, -1)
        return nid

    def prefix(self, prefix: str) -> int:
        """The pseudo node for attribute names starting with ``prefix``."""
        nid = self.prefix_nodes.get(prefix)
        if nid is None:
            nid = self.prefix_nodes[prefix] = self.add("prefix", "", prefix + "*", prefix, 0, -1)
        return nid

    def escape(self, module: str) -> int:
        """The pseudo node for module ``module`` being used as a value."""
        nid = self.escape_nodes.get(module)
        if nid is None:
            nid = self.escape_nodes[module] = self.add("escape", module, "", module, 0, -1)
        return nid
