"""The reference graph of a whole program.

Walks every module (:mod:`symbols`), resolves every recorded use
(:mod:`resolve`) into edges, links imports to what they import, modules to
their parent packages, ``__all__`` to the names it lists, and applies the
guards (:mod:`guards`).  What is *used* is then a question of reachability
(:mod:`reachability`).
"""

from __future__ import annotations

import ast
import gc
import re
from dataclasses import dataclass, field

from memtrim.analysis.graph import Graph
from memtrim.analysis.guards import (
    DynamicGuards,
    children_of,
    class_guards,
    family,
    pickle_modules,
)
from memtrim.analysis.resolve import BUILTIN_NAMES, Resolver, Target
from memtrim.analysis.symbols import Binding, ModuleInfo, Scope, SymbolBuilder
from memtrim.program import Program


@dataclass
class ProgramGraph:
    """The graph plus what the passes need to explain it."""

    program: Program
    graph: Graph
    infos: dict[str, ModuleInfo]
    resolver: Resolver
    # guard sites worth reporting: (node whose code holds the site, text)
    notes: list[tuple[int, str]] = field(default_factory=list)
    frozen_modules: set[str] = field(default_factory=set)  # never edited
    class_parents: dict[int, list[int]] = field(default_factory=dict)

    def release(self) -> None:
        """Free the analysis promptly (it is cyclic; the collector would take seconds)."""
        for info in self.infos.values():
            info.release()
        self.resolver.duplicates.clear()
        self.resolver.shadowed.clear()
        for node in self.graph.nodes:
            node.data = None


def build_graph(program: Program) -> ProgramGraph:
    """Build the reference graph of ``program`` (read-only)."""
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects: see program.py
    try:
        return _Builder(program).build()
    finally:
        if was_enabled:
            gc.enable()


class _Builder:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.g = Graph()
        self.infos: dict[str, ModuleInfo] = {}
        self.children: dict[str, list[str]] = {}
        self._registered: set[str] = set()
        self.importers: dict[str, list[int]] = {}  # module -> import nodes that load it
        self.loads: dict[str, set[str]] = {}  # module -> modules its own imports load
        self._leads: dict[str, int] = {}

    def build(self) -> ProgramGraph:
        g = self.g
        self.failed: dict[str, int] = {}  # modules too deeply nested to walk -> node
        for name, src in self.program.modules.items():
            package = name if src.is_package else name.rpartition(".")[0]
            if src.tree is not None:
                try:
                    self.infos[name] = SymbolBuilder(g, src).build()
                    continue
                except RecursionError:
                    node = self.failed[name] = g.module_nodes[name]
            else:
                node = g.add("module", name, "", name, 1, -1)
                g.module_nodes[name] = node
            self.infos[name] = ModuleInfo(name, src, package, node)
        for name in self.infos:
            parent = name.rpartition(".")[0]
            if parent:
                self.children.setdefault(parent, []).append(name)
        self.r = Resolver(self.infos, self.program.search_prefixes)
        result = ProgramGraph(self.program, g, self.infos, self.r)
        for info in self.infos.values():
            mine = self.loads[info.name] = set()
            for b in info.imports:
                module = self.r.module_name(b.module)
                if module is None:
                    continue
                full = f"{module}.{b.attr}" if b.attr and b.attr != "*" else module
                parts = full.split(".")
                for k in range(1, len(parts) + 1):
                    name = ".".join(parts[:k])
                    self.importers.setdefault(name, []).append(b.node)
                    mine.add(name)
        for info in self.infos.values():
            self._module_links(info)
            if info.scope is None:
                self._opaque(info)
                continue
            for scope, name, attrs, owner, as_value in info.chains:
                self.add_chain(scope, name, attrs, owner, as_value)
            for owner, attr in info.attr_refs:
                g.edge(owner, g.attr(attr))
            self._imports(info)
            self._exports(info)
        for info in self.infos.values():
            for text, owner in info.dotted_strings:
                self._dotted_string(text, owner)
        guards = DynamicGuards(g, self.r, self.add_chain, self.module_bindings, self.escape)
        for info in self.infos.values():
            if info.scope is not None:
                guards.apply(info)
        result.class_parents = class_guards(g, self.r, self.classes_of)
        self._passed_classes(result.class_parents)
        children = children_of(result.class_parents)
        families: dict[int, int] = {}
        for owner, cls, why in guards.family_requests:
            group = families.get(cls)
            if group is None:
                node = g.nodes[cls]
                group = families[cls] = g.add("group", node.module,
                                              f"<methods of {node.qualname}'s family>",
                                              node.name, 0, -1)
                for member_of in family(result.class_parents, children, cls):
                    for _name, member in g.members_of.get(member_of, ()):
                        g.guard(group, member, why)
            g.edge(owner, group)
            result.notes.append((owner, why))
        for module, why in pickle_modules(self.infos, self.r).items():
            self._pickle(module, why)
        result.notes.extend(guards.notes)
        result.frozen_modules = self._aliases() | set(self.failed)
        for name, node in self.failed.items():
            path = self.infos[name].source.path.as_posix()
            result.notes.append((node, f"{path}: nested too deeply to analyse; treated as "
                                       "opaque (every name it mentions is kept)"))
        return result

    # -- modules ------------------------------------------------------------

    def _module_links(self, info: ModuleInfo) -> None:
        """Importing a module runs its parent packages first."""
        parts = info.name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            parent = self.g.module_nodes.get(".".join(parts[:i]))
            if parent is not None:
                self.g.edge(info.node, parent)
                break

    def module_bindings(self, module: str) -> list[int]:
        """Every top-level binding node of ``module``."""
        info = self.infos.get(module)
        if info is None:
            return []
        return [n for nodes in info.members.values() for n in nodes]

    def escape(self, module: str) -> int:
        """The escape node of ``module``; its names become members reached by attribute use."""
        g = self.g
        nid = g.escape(module)
        if module not in self._registered:
            self._registered.add(module)
            if module in g.module_nodes:
                g.requires[nid] = g.module_nodes[module]
            info = self.infos.get(module)
            if info is not None:
                for name, nodes in info.members.items():
                    for n in nodes:
                        g.member(nid, name, n)
            for sub in self.children.get(module, ()):
                node = g.module_nodes.get(sub)
                if node is not None:
                    g.member(nid, sub.rpartition(".")[2], node)
        return nid

    def _opaque(self, info: ModuleInfo) -> None:
        """A module that could not be parsed keeps every name it mentions, everywhere."""
        g = self.g
        names = info.source.opaque_names
        if names is None:  # parsed, but too deep to walk
            names = frozenset(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", info.source.text or ""))
        g.roots.append(info.node)
        g.guard_reasons[info.node] = "module could not be parsed"
        for name in names:
            g.edge(info.node, g.attr(name))
        for other in self.infos.values():
            if other is info:
                continue
            if other.name.rpartition(".")[2] in names:
                g.edge(info.node, other.node)
            for name in names & other.members.keys():
                for n in other.members[name]:
                    g.guard(info.node, n, f"named in {info.source.path.as_posix()}, which could "
                            "not be parsed")

    def _aliases(self) -> set[str]:
        """Modules that are the same file through a symlink: kept whole, never edited."""
        frozen = set()
        for name, src in self.program.modules.items():
            if src.alias_of and src.alias_of in self.infos:
                frozen.update((name, src.alias_of))
        if frozen:
            for node in self.g.nodes:
                if node.module in frozen and node.kind in ("function", "class", "import",
                                                           "variable", "value"):
                    self.g.guard(self.g.module_nodes[node.module], node.id,
                                 "module is the same file as another through a symlink")
        return frozen

    # -- uses -----------------------------------------------------------------

    def add_chain(
        self, scope: Scope, name: str, attrs: tuple[str, ...], owner: int, as_value: bool
    ) -> None:
        """A use of ``name`` (then ``.attr.attr...``) from the code of ``owner``."""
        g, r = self.g, self.r
        s = r.lookup(scope, name)
        if s is None:
            targets = self._star(scope.info, name)
            if targets is None:
                if name not in BUILTIN_NAMES:
                    for a in attrs:  # an unknown name (injected, or from a star import)
                        g.edge(owner, g.attr(a))
                return
            self._targets(owner, targets, attrs, 0, as_value)
            return
        unfollowed = False
        for b in r.live(s, name):
            if b.node >= 0:
                g.edge(owner, b.node)
            if attrs or as_value:
                objs = r.follow(b)
                if objs:
                    for obj in objs:
                        self._walk(owner, obj, attrs, 0, as_value)
                elif attrs:
                    unfollowed = True
        if unfollowed:
            for a in attrs:
                g.edge(owner, g.attr(a))

    def _star(self, info: ModuleInfo, name: str) -> list[Target] | None:
        for base, _node in info.star_imports:
            module = self.r.module_name(base)
            if module is not None and self.r._star_exports(module, name):
                found = self.r.member(module, name)
                if found:
                    return found
        return None

    def _targets(
        self, owner: int, targets: list[Target], attrs: tuple[str, ...], i: int, as_value: bool
    ) -> None:
        g, r = self.g, self.r
        for kind, value in targets:
            if kind == "binding":
                b: Binding = value  # type: ignore[assignment]
                if b.node >= 0:
                    g.edge(owner, b.node)
                objs = r.follow(b)
                for obj in objs:
                    self._walk(owner, obj, attrs, i + 1, as_value)
                if not objs:
                    for a in attrs[i + 1:]:
                        g.edge(owner, g.attr(a))
            else:
                node = g.module_nodes.get(str(value))
                if node is not None:
                    g.edge(owner, node)
                if kind == "module" and str(value) not in self.loads.get(
                    g.nodes[owner].module, ()
                ):
                    # pkg.sub reached as an attribute of pkg exists only because some
                    # module imported pkg.sub: keep those imports, and the imports
                    # that make their modules run.
                    g.edge(owner, self._leads_to(str(value)))
                self._walk(owner, (kind, value), attrs, i + 1, as_value)

    def _walk(
        self, owner: int, obj: Target, attrs: tuple[str, ...], i: int, as_value: bool
    ) -> None:
        """Follow ``attrs[i:]`` from ``obj``: module members by name, anything else by attribute."""
        kind, value = obj
        g = self.g
        if i >= len(attrs):
            if as_value and kind == "module":
                g.edge(owner, self.escape(str(value)))
            return
        if kind == "module":
            found = self.r.member(str(value), attrs[i])
            if found:
                self._targets(owner, found, attrs, i, as_value)
                return
        elif kind == "external":
            return  # attributes of a module outside the program
        for a in attrs[i:]:
            g.edge(owner, g.attr(a))

    def classes_of(self, scope: Scope, expr: object) -> list[int]:
        """Program classes an expression (a name or dotted name) may stand for."""
        attrs: list[str] = []
        cur = expr
        while isinstance(cur, ast.Attribute):
            attrs.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            return []
        attrs.reverse()
        r = self.r
        s = r.lookup(scope, cur.id)
        if s is None:
            objs = [o for t in (self._star(scope.info, cur.id) or []) for o in
                    (r.follow(t[1]) if t[0] == "binding" else [t])]  # type: ignore[arg-type]
        else:
            objs = [o for b in r.live(s, cur.id) for o in r.follow(b)]
        for a in attrs:
            nxt: list[Target] = []
            for kind, value in objs:
                if kind == "module":
                    for t in r.member(str(value), a):
                        nxt.extend(r.follow(t[1]) if t[0] == "binding" else [t])  # type: ignore[arg-type]
            objs = nxt
        return [int(v) for k, v in objs if k == "class"]  # type: ignore[call-overload]

    # -- imports and exports ------------------------------------------------------

    def _passed_classes(self, parents: dict[int, list[int]]) -> None:
        """A class passed as an argument: the callee may call any of its methods by name.

        (``conn.create_aggregate("avg", 1, Avg)`` makes sqlite call ``Avg.step``.)
        """
        g = self.g
        groups: dict[int, int] = {}
        for info in self.infos.values():
            for scope, name, attrs, owner, callee in info.passed:
                if callee in BUILTIN_NAMES and self.r.lookup(scope, callee) is None:
                    continue  # isinstance(x, C), super(C, self): builtins only call dunders
                expr: ast.expr = ast.Name(name, ast.Load())
                for a in attrs:
                    expr = ast.Attribute(expr, a, ast.Load())
                for cls in self.classes_of(scope, expr):
                    group = groups.get(cls)
                    if group is None:
                        group = groups[cls] = self._all_methods(cls, parents)
                    g.edge(owner, group)

    def _all_methods(self, cls: int, parents: dict[int, list[int]]) -> int:
        """A node reaching every method of ``cls`` and of its program base classes."""
        g = self.g
        node = g.nodes[cls]
        group = g.add("group", node.module, f"<methods of {node.qualname}>", node.name, 0, -1)
        why = (f"class {node.qualname} is passed as an argument: the callee may call its "
               "methods by name")
        stack, seen = [cls], set()
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            for _name, member in g.members_of.get(c, ()):
                g.guard(group, member, why)
            stack.extend(parents.get(c, ()))
        return group

    def _leads_to(self, module: str) -> int:
        """A node reaching every import that loads ``module``, directly or by importing a
        module that does."""
        group = self._leads.get(module)
        if group is not None:
            return group
        g = self.g
        group = self._leads[module] = g.add("group", module, f"<imports of {module}>", module,
                                           0, -1)
        seen = {module}
        queue = [module]
        while queue:
            target = queue.pop()
            for imp in self.importers.get(target, ()):
                node = g.nodes[imp]
                if g.nodes[node.parent].kind != "module":
                    continue  # an import inside a function loads nothing until it is called
                b = (node.data or {}).get("binding")
                if b is not None and b.name != "*":
                    self.r.live(b.scope, b.name)  # finds out whether it repeats another
                if imp in self.r.duplicates:
                    continue  # the import it repeats loads the module anyway
                g.edge(group, imp)
                importer = node.module
                if importer not in seen:
                    seen.add(importer)
                    queue.append(importer)
        return group

    def _dotted_string(self, text: str, owner: int) -> None:
        """A string naming a program module or something in one ("pkg.mod:func"): a use of it.

        Frameworks (logging configuration, plugin tables, task queues) look
        such names up with importlib and getattr.
        """
        parts = re.split("[.:]", text)
        if parts[0] not in self.r.tops:
            return
        for i in range(len(parts), 0, -1):
            module = self.r.module_name(".".join(parts[:i]))
            if module is None:
                continue
            node = self.g.module_nodes.get(module)
            if node is not None:
                self.g.guard(owner, node, f"named in the string {text!r}")
            self._walk(owner, ("module", module), tuple(parts[i:]), 0, True)
            return

    def _imports(self, info: ModuleInfo) -> None:
        """An import that is kept runs its module and needs the name it imports to exist."""
        g, r = self.g, self.r
        is_package = info.source.is_package
        for b in info.imports:
            nid = b.node
            if is_package and b.scope is info.scope:
                g.guard(info.node, nid, f"re-export in package {info.name}'s __init__.py")
            if b.module is None:
                continue
            module = r.module_name(b.module)
            if module is None:
                continue
            parts = module.split(".")
            for k in range(1, len(parts) + 1):
                node = g.module_nodes.get(".".join(parts[:k]))
                if node is not None:
                    g.edge(nid, node)
            if b.attr is None or b.attr == "*":
                continue
            for kind, value in r.member(module, b.attr):
                if kind == "binding":
                    target: Binding = value  # type: ignore[assignment]
                    if target.node >= 0:
                        g.edge(nid, target.node)
                else:
                    node = g.module_nodes.get(str(value))
                    if node is not None:
                        g.edge(nid, node)

    def _exports(self, info: ModuleInfo) -> None:
        """Names listed in ``__all__`` are the module's public interface: kept."""
        if not info.all_names:
            return
        g = self.g
        for name, _line in info.all_names:
            for kind, value in self.r.member(info.name, name):
                if kind == "binding":
                    b: Binding = value  # type: ignore[assignment]
                    if b.node >= 0:
                        g.guard(info.node, b.node, f"listed in {info.name}.__all__")
                else:
                    node = g.module_nodes.get(str(value))
                    if node is not None:
                        g.guard(info.node, node, f"listed in {info.name}.__all__")

    def _pickle(self, module: str, why: str) -> None:
        """Keep every class of a module whose objects may be pickled, under its name."""
        info = self.infos.get(module)
        if info is None or info.scope is None:
            return
        g = self.g
        reason = f"class may be pickled or unpickled by module path: {why}"
        for nid in info.defs:
            node = g.nodes[nid]
            if node.kind != "class":
                continue
            parent = g.nodes[node.parent]
            if parent.kind == "module" or parent.kind == "class":
                g.guard(node.parent, nid, reason)
