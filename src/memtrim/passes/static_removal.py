"""Step 4 of the method, static half: redundant data removal (the seed's Algorithm 1).

Finds unused imports (also third-party ones, duplicated and shadowed ones),
unused variables, and unused functions, classes and methods across modules,
recursion-aware, and proposes one :class:`~memtrim.edits.Edit` for each.

"Unused" means *not reachable* from the entry module's top-level code (or
from anything kept) in the program's reference graph, so a function whose
only caller is itself, or a pair that only call each other, is found; and an
import used only by a removed function is found too (the later "rounds" of
Algorithm 1).  Each such edit names the edits it depends on in
``evidence["depends_on"]`` and its ``evidence["round"]``: applied alone it is
still valid Python, but the code it leaves behind only runs correctly once
those other edits are applied too.
"""

from __future__ import annotations

import ast
import gc
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from memtrim.analysis.effects import SideEffects, definition_effects, is_pure_value
from memtrim.analysis.graph import Graph, Node
from memtrim.analysis.graphs import strongly_connected
from memtrim.analysis.guards import declared_entry_points, decorator_is_pure
from memtrim.analysis.reachability import solve
from memtrim.analysis.references import ProgramGraph, build_graph
from memtrim.edits import Edit
from memtrim.program import Program

PASS_NAME = "static"

_EDIT_KINDS = frozenset({"function", "class", "import", "variable"})
_WHITELIST_LINE = re.compile(r"(?:_\.)?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


@dataclass(frozen=True)
class KeptNote:
    """Something otherwise unused that a guard or the keep-list kept, and why."""

    symbol: str
    path: str
    line: int
    reason: str


def read_vulture_whitelist(path: Path) -> list[str]:
    """Keep-list entries from a vulture whitelist: ``_.name`` and ``name`` lines.

    Whitelist names are unqualified, so each becomes ``*:name`` (every
    definition, method or attribute of that name, in any module).
    """
    entries: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        code = line.split("#", 1)[0].strip()
        m = _WHITELIST_LINE.fullmatch(code)
        if m:
            entries.append("*:" + m.group(1).rpartition(".")[2])
    return entries


class StaticRemovalPass:
    """Proposes removal of unused imports, variables, functions, classes and methods.

    ``keep`` overrides everything: ``pkg.mod:func``, ``pkg.mod:Class.method``,
    ``pkg.mod:*`` (everything in the module), ``*:name`` (any definition or
    attribute called ``name``), ``pkg.mod`` (one more entry module: its
    top-level code runs, so what it uses stays), or the path of a vulture
    whitelist file (``.py``, relative to the program root or absolute).
    ``pure_modules`` extends the allow-list of modules whose import has no
    observable side effect.

    After :meth:`run`: ``kept`` explains what guards kept, ``notes`` lists
    the dynamic-use sites in code that runs, which made the analysis conservative,
    ``unreached_modules`` the modules the entry never imports (left as they
    are), ``unmatched_keep`` keep entries that named nothing, and ``stats``
    the sizes and timings.
    """

    name = PASS_NAME

    def __init__(self, keep: Sequence[str] = (), *, pure_modules: Sequence[str] = ()) -> None:
        self.keep = tuple(keep)
        self.pure_modules = frozenset(pure_modules)
        self.kept: list[KeptNote] = []
        self.notes: list[str] = []
        self.unreached_modules: list[str] = []
        self.unmatched_keep: list[str] = []
        self.stats: dict[str, float | int] = {}

    def run(self, program: Program) -> list[Edit]:
        """Analyse ``program`` (read-only); return the proposed edits, sorted by file and line."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(program)
        finally:
            if was_enabled:
                gc.enable()

    def _run(self, program: Program) -> list[Edit]:
        t0 = time.perf_counter()
        pg = build_graph(program)
        t1 = time.perf_counter()
        g = pg.graph
        effects = SideEffects(pg.resolver, self.pure_modules)
        roots = self._roots(program, pg)
        pinned: list[int] = []

        def pin_check(nid: int) -> str | None:
            reason = _pin_reason(pg, effects, g.nodes[nid])
            if reason is not None:
                pinned.append(nid)
            return reason

        reached = solve(g, roots, pin_check)
        t2 = time.perf_counter()
        edits = _EditMaker(pg, reached, effects).make()
        t3 = time.perf_counter()
        self.notes = sorted({text for owner, text in pg.notes if reached[owner]})
        self.unreached_modules = sorted(
            name for name, nid in g.module_nodes.items() if not reached[nid]
        )
        self.kept = _kept_notes(pg, reached, pinned, roots)
        pg.release()
        self.stats = {
            "modules": len(program.modules),
            "nodes": len(g.nodes),
            "edges": sum(len(e) for e in g.edges),
            "graph_seconds": round(t1 - t0, 3),
            "reach_seconds": round(t2 - t1, 3),
            "edit_seconds": round(t3 - t2, 3),
            "edits": len(edits),
        }
        return edits

    # -- roots --------------------------------------------------------------

    def _roots(self, program: Program, pg: ProgramGraph) -> list[int]:
        g = pg.graph
        roots = list(g.roots)
        entry = program.entry_module
        if entry and entry in g.module_nodes:
            roots.append(g.module_nodes[entry])
        else:  # no entry: a library, every module may be imported
            roots.extend(g.module_nodes.values())
        entries = list(self.keep)
        for ep in declared_entry_points(program.root):
            entries.append(ep)
        index: dict[tuple[str, str], list[int]] = {}
        by_name: dict[str, list[int]] = {}
        by_module: dict[str, list[int]] = {}
        for node in g.nodes:
            if node.kind in _EDIT_KINDS:
                index.setdefault((node.module, node.qualname), []).append(node.id)
                by_name.setdefault(node.name, []).append(node.id)
                by_module.setdefault(node.module, []).append(node.id)
        self.unmatched_keep = []
        while entries:
            entry_text = entries.pop(0).strip()
            if entry_text.endswith(".py"):
                path = Path(entry_text)
                path = path if path.is_absolute() else program.root / path
                try:
                    entries.extend(read_vulture_whitelist(path))
                except OSError:
                    self.unmatched_keep.append(entry_text)
                continue
            found = self._keep_entry(entry_text, pg, index, by_name, by_module)
            if not found:
                self.unmatched_keep.append(entry_text)
            for nid in found:
                g.guard_reasons.setdefault(nid, f"on the keep-list ({entry_text})")
            roots.extend(found)
        # Keeping a method keeps its class; keeping a nested function, its function.
        nodes = g.nodes
        for nid in list(roots):
            p = nodes[nid].parent
            while p >= 0 and nodes[p].kind != "module":
                roots.append(p)
                p = nodes[p].parent
        return roots

    @staticmethod
    def _keep_entry(
        entry: str, pg: ProgramGraph, index: dict, by_name: dict, by_module: dict
    ) -> list[int]:
        g = pg.graph
        module, _, qual = entry.partition(":")
        if module == "*":
            found = [n for n in by_name.get(qual.rpartition(".")[2], [])
                     if g.nodes[n].qualname == qual or g.nodes[n].qualname.endswith("." + qual)]
            return [*found, g.attr(qual.rpartition(".")[2])]
        full = pg.resolver.module_name(module)
        if full is None:
            return []
        if qual == "":  # one more entry module: its top-level code runs
            return [g.module_nodes[full]]
        if qual == "*":  # everything in it stays
            return [g.module_nodes[full], *by_module.get(full, [])]
        found = list(index.get((full, qual), []))
        if not found:  # pkg:name re-exported by the package: keep what it names
            for kind, value in pg.resolver.member(full, qual):
                if kind == "binding" and value.node >= 0:  # type: ignore[attr-defined]
                    found.append(value.node)  # type: ignore[attr-defined]
        # Whoever uses the kept name imports its module first.
        return [*found, g.module_nodes[full]] if found else []


def _pin_reason(pg: ProgramGraph, effects: SideEffects, node: Node) -> str | None:
    """Why an otherwise unused node whose enclosing code runs must stay (None: it may go)."""
    r, g = pg.resolver, pg.graph
    kind = node.kind
    data = node.data or {}
    if kind in ("function", "class"):
        scope = data["scope"]
        for d in data["decorators"]:
            if not decorator_is_pure(d, scope, r, g):
                return f"decorator @{ast.unparse(d)} is not known to be pure: it may register it"
        if data.get("in_try"):
            return "defined inside a try statement: whether creating it raises may be observed"
        why = definition_effects(
            node.stmt, scope, data.get("body_scope"), r,  # type: ignore[arg-type]
            lambda d, s: decorator_is_pure(d, s, r, g),
        )
        if why is not None:
            return f"creating it does more than define it: {why}"
        return None
    if kind == "import":
        b = data["binding"]
        if node.id in r.duplicates or data.get("type_checking"):
            return None  # imported already by the first import / never run
        if data.get("guarded"):
            return "import inside try/except ImportError: whether it fails is observable"
        if b.module is None:
            return "relative import that leaves the source tree: it would fail"
        loaded = _running_modules(node.module)
        for module, optional in _imported_modules(b):
            ok, why = effects.module(module, optional, loaded)
            if not ok:
                return f"importing {module} may have side effects: {why}"
        return None
    if kind == "value":
        if not is_pure_value(data["expr"], data["scope"], r):
            return "the assigned value may have side effects (kept as a statement)"
    return None


def _running_modules(module: str) -> frozenset[str]:
    """A module and its packages: already imported while its own imports run."""
    parts = module.split(".")
    return frozenset(".".join(parts[:i]) for i in range(1, len(parts) + 1))


def _imported_modules(b: object) -> list[tuple[str, bool]]:
    module = b.module  # type: ignore[attr-defined]
    attr = b.attr  # type: ignore[attr-defined]
    if attr is None:
        return [(module, False)]
    return [(module, False), (f"{module}.{attr}", True)]


def _kept_notes(
    pg: ProgramGraph, reached: bytearray, pinned: list[int], roots: list[int]
) -> list[KeptNote]:
    g = pg.graph
    notes = []
    candidates = set(pinned) | {n for n in g.guard_reasons if not g.referenced[n]} | set(roots)
    for nid in sorted(candidates):
        node = g.nodes[nid]
        if node.kind not in _EDIT_KINDS or not reached[nid] or nid not in g.guard_reasons:
            continue
        if g.guard_reasons[nid].startswith("__future__"):
            continue  # never a candidate: not worth a line in the report
        src = pg.program.modules.get(node.module)
        path = src.path.as_posix() if src else node.module
        notes.append(KeptNote(node.symbol, path, node.line, g.guard_reasons[nid]))
    return notes


class _EditMaker:
    """Turns unreached nodes into edits with reasons, evidence and dependencies."""

    def __init__(self, pg: ProgramGraph, reached: bytearray, effects: SideEffects) -> None:
        self.pg = pg
        self.g: Graph = pg.graph
        self.reached = reached
        self.effects = effects
        self.nodes = self.g.nodes
        program = pg.program
        self.entry = (f"entry module {program.entry_module}" if program.entry_module
                      else "any module (no entry given)")
        self.searched = sum(1 for i in pg.infos.values() if i.scope is not None)

    def make(self) -> list[Edit]:
        g, reached, nodes = self.g, self.reached, self.nodes
        program = self.pg.program
        chosen: list[Node] = []
        for node in nodes:
            if node.kind not in _EDIT_KINDS or reached[node.id] or node.parent < 0:
                continue
            if not reached[node.parent] or node.module in self.pg.frozen_modules:
                continue
            if node.kind == "import" and node.name == "*":
                continue
            src = program.modules.get(node.module)
            if src is None or src.tree is None or src.text is None:
                continue
            chosen.append(node)
        ids: dict[int, str] = {}
        used_ids: set[str] = set()
        for node in chosen:
            ids[node.id] = self._edit_id(node, used_ids)
        # Reverse edges among unreached nodes: who still refers to what is removed.
        rev: dict[int, list[int]] = {}
        for src_id in range(len(nodes)):
            if reached[src_id]:
                continue
            for dst in g.edges[src_id]:
                if not reached[dst]:
                    rev.setdefault(dst, []).append(src_id)
        self.rev = rev
        self.ids = ids
        node_of = {eid: nid for nid, eid in ids.items()}
        deps = {nid: self._dependencies(nid) for nid in ids}
        rounds = _rounds({nid: {node_of[d] for d in ds} for nid, ds in deps.items()})
        edits = [self._edit(node, ids, deps[node.id], rounds[node.id]) for node in chosen]
        edits.sort(key=lambda e: (e.path, e.line, e.kind, e.id))
        return edits

    def _edit_id(self, node: Node, used: set[str]) -> str:
        kind = self._kind(node)
        path = self.pg.program.modules[node.module].path.as_posix()
        label = node.qualname
        if node.kind == "import" and isinstance(node.stmt, ast.Import):
            label = (node.data or {})["alias"]  # the module: import numpy -> ...:numpy
        base = f"static:{kind}:{path}:{node.line}:{label}"
        eid, n = base, 1
        while eid in used:
            n += 1
            eid = f"{base}#{n}"
        used.add(eid)
        return eid

    def _kind(self, node: Node) -> str:
        if node.kind == "import":
            return "duplicate-import" if node.id in self.pg.resolver.duplicates else "unused-import"
        if node.kind == "variable":
            return "unused-variable"
        if node.kind == "class":
            return "unused-class"
        return "unused-method" if self.nodes[node.parent].kind == "class" else "unused-function"

    # -- dependencies ---------------------------------------------------------

    def _referrers(self, nid: int) -> list[int]:
        node = self.nodes[nid]
        refs = list(self.rev.get(nid, ()))
        if self.nodes[node.parent].kind == "class" or node.kind in ("function", "class"):
            attr = self.g.attr_nodes.get(node.name)
            if attr is not None:
                refs.extend(self.rev.get(attr, ()))
        return refs

    def _referrer_symbols(self, nid: int) -> set[str]:
        """Where the removed code that still names ``nid`` is (its own code excluded)."""
        out = set()
        for r in self._referrers(nid):
            node = self.nodes[r]
            if node.kind == "value":  # x = <uses nid>: x is the referrer
                out.update(self.nodes[t].symbol for t in (node.data or {}).get("targets", ()))
            elif node.kind in ("function", "class", "import", "variable", "module"):
                out.add(node.symbol)
        out.discard(self.nodes[nid].symbol)
        return out

    def _covering(self, nid: int, seen: set[int]) -> set[str]:
        """The edits whose application removes the code of node ``nid``."""
        if nid in seen:
            return set()
        seen.add(nid)
        if nid in self.ids:
            return {self.ids[nid]}
        node = self.nodes[nid]
        out: set[str] = set()
        if node.kind == "value":
            for t in (node.data or {}).get("targets", ()):
                out |= self._covering(t, seen)
            return out
        if node.parent >= 0 and not self.reached[node.parent]:
            return self._covering(node.parent, seen)
        if node.kind in ("module", "attr", "prefix", "escape", "group"):
            for ref in self.rev.get(nid, ()):
                out |= self._covering(ref, seen)
        return out

    def _dependencies(self, nid: int) -> set[str]:
        own = self.ids[nid]
        out: set[str] = set()
        for ref in self._referrers(nid):
            out |= self._covering(ref, {nid})
        out.discard(own)
        return out

    # -- the edit -------------------------------------------------------------

    def _edit(self, node: Node, ids: dict[int, str], deps: set[str], round_: int) -> Edit:
        kind = self._kind(node)
        src = self.pg.program.modules[node.module]
        path = src.path.as_posix()
        ref_symbols = sorted(self._referrer_symbols(node.id))
        evidence: dict = {
            "references_in_kept_code": 0,
            "references_in_removed_code": len(ref_symbols),
            "referenced_from": ref_symbols[:10],
            "modules_searched": self.searched,
            "reachable_from": self.entry,
            "depends_on": sorted(deps),
            "round": round_,
        }
        data = node.data or {}
        if node.kind == "import":
            evidence["target"] = {"line": node.line, "alias": data["alias"],
                                  "asname": data.get("asname"),
                                  "occurrence": data.get("occurrence", 0)}
            reason = self._import_reason(node, kind, evidence)
        elif node.kind == "variable":
            value = data["value"]
            keeps_call = bool(self.reached[value])
            evidence["target"] = {"line": node.line, "name": node.name, "keeps_call": keeps_call}
            evidence["value_has_side_effects"] = keeps_call
            reason = f"'{node.name}' is assigned but never read" + (
                "; its value may have side effects, so the expression stays as a statement"
                if keeps_call else "; its value has no side effects, so the statement goes")
        else:
            evidence["target"] = {"line": node.line, "name": node.name}
            what = {"unused-class": "class", "unused-method": "method"}.get(kind, "function")
            if kind == "unused-method":
                reason = (
                    f"method {node.qualname} is never called: no '.{node.name}' attribute use "
                    "appears in kept code (attributes of objects of unknown type are matched "
                    "by name, conservatively)"
                )
            else:
                reason = (
                    f"{what} {node.qualname} is not reachable from the {self.entry} or from "
                    "anything kept (references from inside it do not count)"
                )
        if deps:
            reason += f"; it is only referred to by code that other edits remove ({len(deps)})"
        return Edit(
            id=ids[node.id], pass_name=PASS_NAME, kind=kind, path=path, line=node.line,
            symbol=node.symbol, reason=reason, evidence=evidence,
        )

    def _import_reason(self, node: Node, kind: str, evidence: dict) -> str:
        data = node.data or {}
        b = data["binding"]
        r = self.pg.resolver
        src = node.stmt
        if isinstance(src, ast.ImportFrom):
            stmt = f"from {'.' * src.level}{src.module or ''} import {data['alias']}"
        else:
            stmt = f"import {data['alias']}"
        if data.get("asname"):
            stmt += f" as {data['asname']}"
        if kind == "duplicate-import":
            first = r.duplicates[node.id]
            evidence["duplicate_of_line"] = first.line
            return (
                f"'{node.name}' ({stmt}) repeats the import at line {first.line}, which already "
                "bound the same module object to it; a module is loaded once, so the repeat "
                "changes nothing"
            )
        shadow = r.shadowed.get(node.id)
        modules = _imported_modules(b)
        loaded = _running_modules(node.module)
        why = [self.effects.module(m, opt, loaded)[1] for m, opt in modules]
        evidence["imports"] = [m for m, _ in modules]
        evidence["side_effect_free"] = why[0]
        if shadow is not None:
            evidence["shadowed_by_line"] = shadow.line
            head = f"'{node.name}' ({stmt}) is rebound at line {shadow.line} before any use"
        else:
            head = f"'{node.name}' ({stmt}) is never used"
        return f"{head}; importing {modules[0][0]} has no side effects: {why[0]}"


def _rounds(deps: dict[int, set[int]]) -> dict[int, int]:
    """Algorithm 1's round in which each edit would be found: 1 + the latest it depends on.

    Edits that depend on each other (mutual recursion) share a round: the
    strongly connected components are found with Tarjan's algorithm, which
    completes a component only after every component it depends on.
    """
    comps = strongly_connected(deps, lambda v: deps[v])
    comp = {v: ci for ci, members in enumerate(comps) for v in members}
    round_of: list[int] = []
    for ci, members in enumerate(comps):
        r = 1
        for m in members:
            for d in deps[m]:
                if comp[d] != ci:
                    r = max(r, round_of[comp[d]] + 1)
        round_of.append(r)
    return {v: round_of[comp[v]] for v in deps}
