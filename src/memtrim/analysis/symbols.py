"""Scopes, bindings and raw references of one module, collected in a single AST walk.

The walk creates a graph node for everything that could be removed (imports,
simple assignments, functions, classes) and records, for every piece of code,
which node *owns* it: the module's top-level code, a function, a class, or the
right-hand side of an assignment.  Names are not resolved here (a function
may use a global bound further down); :mod:`memtrim.analysis.resolve` does
that once every module has been walked.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from dataclasses import dataclass, field

from memtrim.analysis.graph import Graph
from memtrim.program import ModuleSource

_KEEP_COMMENT = re.compile(r"#[ \t]*memtrim:[ \t]*keep\b")
# "pkg.mod.func" or "pkg.mod:func" in a string: a name looked up by a framework.
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.:][A-Za-z_][A-Za-z0-9_]*)+")

# Fields that never hold child nodes (or hold names as strings).
_NON_NODE = frozenset({
    "ctx", "op", "ops", "id", "arg", "attr", "name", "names", "module", "level", "kind",
    "type_comment", "type_ignores", "is_async", "conversion", "simple", "tag", "rest",
    "kwd_attrs", "asname",
})
_FIELDS: dict[type, tuple[str, ...]] = {}

# Calls and attributes that may look names up dynamically; judged in guards.py.
DYNAMIC_CALLS = frozenset({
    "eval", "exec", "compile", "getattr", "setattr", "hasattr", "delattr", "globals",
    "locals", "vars", "dir", "__import__",
})
DYNAMIC_CALL_ATTRS = frozenset({
    "import_module", "attrgetter", "methodcaller", "getmembers", "getmembers_static",
    "__import__", "__getattribute__", "getattr_static",
})
DYNAMIC_ATTRS = frozenset({"__dict__", "f_globals", "f_locals", "modules"})

_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(eq=False, slots=True)
class Binding:
    """One way a name gets bound in a scope.

    ``kind`` is ``import``, ``def``, ``class``, ``assign`` (removable
    ``x = value``), ``param`` or ``other`` (loop targets, ``with ... as``,
    augmented assignment, tuple targets...).  ``node`` is the graph node of
    a removable binding, else -1.  ``index`` is the position of the binding
    statement among its scope's top-level statements (-1 when nested in an
    ``if``/``try``/loop, i.e. conditional).
    """

    name: str
    kind: str
    scope: Scope
    node: int
    line: int
    index: int
    stmt: ast.AST | None = None
    module: str | None = None  # import: the module named (absolute); None if unresolvable
    attr: str | None = None  # from-import: the imported name
    bound_module: str | None = None  # import: the module object the name is bound to


@dataclass(eq=False, slots=True)
class Scope:
    """A module, class, function, lambda or comprehension scope."""

    kind: str
    qualname: str
    parent: Scope | None
    info: ModuleInfo
    node: ast.AST
    owner: int
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    globals: set[str] | None = None
    nonlocals: set[str] | None = None
    live: dict[str, list[Binding]] | None = None  # cache of resolve.live_bindings


@dataclass(eq=False)
class ModuleInfo:
    """Everything the walk found in one module."""

    name: str
    source: ModuleSource
    package: str
    node: int
    scope: Scope | None = None
    # (scope, name, attributes read after it, owner node, used as a value?)
    chains: list[tuple[Scope, str, tuple[str, ...], int, bool]] = field(default_factory=list)
    attr_refs: list[tuple[int, str]] = field(default_factory=list)
    # (what, scope, node, owner) for guards.py
    dynamic: list[tuple[str, Scope, ast.AST, int]] = field(default_factory=list)
    # (scope, value expression, owner of the statement, value node)
    values: list[tuple[Scope, ast.expr, int, int]] = field(default_factory=list)
    defs: list[int] = field(default_factory=list)
    imports: list[Binding] = field(default_factory=list)
    star_imports: list[tuple[str | None, int]] = field(default_factory=list)
    all_names: list[tuple[str, int]] | None = None  # names in __all__, with their line
    all_dynamic: bool = False
    keep_lines: set[int] = field(default_factory=set)
    uses_pickle: bool = False
    imported: set[str] = field(default_factory=set)
    members: dict[str, list[int]] = field(default_factory=dict)  # module-level name -> nodes
    scopes: list[Scope] = field(default_factory=list)
    dotted_strings: list[tuple[str, int]] = field(default_factory=list)  # (text, owner)
    # names passed as call arguments (scope, name, attributes, owner): a class passed
    # to a callee may have its methods called by name there
    # (..., the callee's name when it is a plain name, else "")
    passed: list[tuple[Scope, str, tuple[str, ...], int, str]] = field(default_factory=list)

    def release(self) -> None:
        """Break the scope <-> binding cycles so the analysis is freed by reference counting."""
        for scope in self.scopes:
            scope.bindings = {}
            scope.live = None
        self.scopes = []
        self.scope = None
        self.chains = []
        self.passed = []
        self.dotted_strings = []
        self.dynamic = []
        self.values = []
        self.imports = []


def keep_comment_lines(text: str | None) -> set[int]:
    """Line numbers carrying a ``# memtrim: keep`` comment."""
    if not text or "memtrim" not in text:
        return set()
    return {text.count("\n", 0, m.start()) + 1 for m in _KEEP_COMMENT.finditer(text)}


def relative_base(info_package: str, module: str | None, level: int) -> str | None:
    """The absolute module a ``from`` import names, or None when it climbs out of the tree."""
    if level == 0:
        return module
    parts = info_package.split(".") if info_package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not module):
        return None
    base = parts[: len(parts) - (level - 1)]
    if module:
        base.append(module)
    return ".".join(base) if base else None


class SymbolBuilder:
    """Walks one module's tree, filling a :class:`ModuleInfo` and adding nodes to the graph."""

    def __init__(self, graph: Graph, source: ModuleSource) -> None:
        self.g = graph
        self.src = source
        name = source.name
        package = name if source.is_package else name.rpartition(".")[0]
        node = graph.add("module", name, "", name, 1, -1)
        graph.module_nodes[name] = node
        self.info = ModuleInfo(name, source, package, node)
        self.info.keep_lines = keep_comment_lines(source.text)
        self.index = -1
        self.import_guard = False
        self.in_try = False  # inside the body of a try statement of the current scope
        self.type_checking = False  # inside `if TYPE_CHECKING:`
        self.in_annotation = False
        self.handlers = {
            ast.FunctionDef: self._v_def,
            ast.AsyncFunctionDef: self._v_def,
            ast.ClassDef: self._v_class,
            ast.Import: self._v_import,
            ast.ImportFrom: self._v_importfrom,
            ast.Assign: self._v_assign,
            ast.AnnAssign: self._v_annassign,
            ast.AugAssign: self._v_augassign,
            ast.Name: self._v_name,
            ast.Attribute: self._v_attribute,
            ast.Call: self._v_call,
            ast.BinOp: self._v_binop,
            ast.Subscript: self._v_subscript,
            ast.Constant: self._v_constant,
            ast.Lambda: self._v_lambda,
            ast.ListComp: self._v_comp,
            ast.SetComp: self._v_comp,
            ast.GeneratorExp: self._v_comp,
            ast.DictComp: self._v_comp,
            ast.NamedExpr: self._v_namedexpr,
            ast.Global: self._v_global,
            ast.Nonlocal: self._v_nonlocal,
            ast.Try: self._v_try,
            ast.ExceptHandler: self._v_excepthandler,
            ast.MatchAs: self._v_matchname,
            ast.MatchStar: self._v_matchname,
            ast.MatchMapping: self._v_matchmapping,
            ast.If: self._v_if,
            ast.For: self._v_compound,
            ast.AsyncFor: self._v_compound,
            ast.While: self._v_compound,
            ast.With: self._v_compound,
            ast.AsyncWith: self._v_compound,
            ast.Match: self._v_compound,
        }
        try_star = getattr(ast, "TryStar", None)
        if try_star is not None:
            self.handlers[try_star] = self._v_try

    # -- driver -------------------------------------------------------------

    def build(self) -> ModuleInfo:
        """Walk the module and return what was found (RecursionError if nested too deeply)."""
        info = self.info
        tree = self.src.tree
        assert tree is not None
        self.scope = info.scope = self._new_scope("module", "", tree, info.node)
        self.owner = info.node
        # Deeply nested generated code; Python-to-Python calls use no C stack in 3.11+.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))
        try:
            self._body(tree.body, top=True)
        finally:
            sys.setrecursionlimit(limit)
            self.handlers = {}  # bound methods: a cycle through self
        return info

    def _new_scope(self, kind: str, qualname: str, node: ast.AST, owner: int) -> Scope:
        parent = self.scope if kind != "module" else None
        scope = Scope(kind, qualname, parent, self.info, node, owner)
        self.info.scopes.append(scope)
        return scope

    def _visit(self, node: ast.AST) -> None:
        handler = self.handlers.get(node.__class__)
        if handler is not None:
            handler(node)
        else:
            self._generic(node)

    def _generic(self, node: ast.AST) -> None:
        cls = node.__class__
        fields = _FIELDS.get(cls)
        if fields is None:
            fields = _FIELDS[cls] = tuple(f for f in cls._fields if f not in _NON_NODE)
        # The children are dispatched here rather than through visit(): this walk
        # is most of the analysis time, and a call less per node is a third of it.
        handlers = self.handlers
        generic = self._generic
        AST = ast.AST
        for f in fields:
            value = getattr(node, f, None)
            if value is None:
                continue
            if value.__class__ is list:
                for item in value:
                    if item is not None and isinstance(item, AST):
                        handler = handlers.get(item.__class__)
                        if handler is not None:
                            handler(item)
                        else:
                            generic(item)
            elif isinstance(value, AST):
                handler = handlers.get(value.__class__)
                if handler is not None:
                    handler(value)
                else:
                    generic(value)

    def _body(self, stmts: list[ast.stmt], top: bool) -> None:
        saved = self.index
        visit = self._visit
        if top:
            for i, stmt in enumerate(stmts):
                self.index = i
                visit(stmt)
        else:
            self.index = -1
            for stmt in stmts:
                visit(stmt)
        self.index = saved

    # -- bindings -----------------------------------------------------------

    def _qual(self, name: str) -> str:
        q = self.scope.qualname
        return f"{q}.{name}" if q else name

    def _bind(
        self, name: str, kind: str, node: int = -1, stmt: ast.AST | None = None,
        scope: Scope | None = None, **extra: str | None,
    ) -> Binding:
        scope = scope or self.scope
        index = self.index if scope is self.scope else -1
        if scope.kind != "module":
            if scope.globals and name in scope.globals:
                scope, kind, index = self.info.scope, "other", -1  # type: ignore[assignment]
            elif scope.nonlocals and name in scope.nonlocals:
                target = self._nonlocal_scope(scope, name)
                if target is not None:
                    scope, kind, index = target, "other", -1
        line = getattr(stmt, "lineno", 0) if stmt is not None else 0
        b = Binding(name, kind, scope, node, line, index, stmt, **extra)  # type: ignore[arg-type]
        scope.bindings.setdefault(name, []).append(b)
        if scope.kind == "module" and node >= 0:
            self.info.members.setdefault(name, []).append(node)
        return b

    @staticmethod
    def _nonlocal_scope(scope: Scope, name: str) -> Scope | None:
        s = scope.parent
        while s is not None and s.kind != "module":
            if s.kind != "class" and name in s.bindings:
                return s
            s = s.parent
        return None

    def _removable_name(self, name: str) -> bool:
        """A simple assignment to ``name`` in the current scope may be removed."""
        scope = self.scope
        if name.startswith("__") and name.endswith("__"):
            return False  # __all__, __version__, __tracebackhide__: read implicitly
        if scope.globals and name in scope.globals:
            return False
        return not (scope.nonlocals and name in scope.nonlocals)

    def _kept(self, nid: int, first: int, last: int) -> None:
        """Pin ``nid`` when a ``# memtrim: keep`` comment is on one of its lines."""
        lines = self.info.keep_lines
        if lines and any(line in lines for line in range(first, last + 1)):
            self.g.roots.append(nid)
            self.g.guard_reasons.setdefault(nid, "marked '# memtrim: keep'")

    # -- definitions --------------------------------------------------------

    def _v_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        g, scope = self.g, self.scope
        qual = self._qual(node.name)
        data = {"scope": scope, "decorators": node.decorator_list}
        nid = g.add("function", self.info.name, qual, node.name, node.lineno, self.owner, node,
                    data)
        self._bind(node.name, "def", nid, node)
        if scope.kind == "class":
            g.member(scope.owner, node.name, nid)
        self.info.defs.append(nid)
        self._kept(nid, *_header_lines(node))
        saved_owner = self.owner
        self.owner = nid
        for dec in node.decorator_list:
            self._visit(dec)
        args = node.args
        for default in args.defaults:
            self._visit(default)
        for default in args.kw_defaults:
            if default is not None:
                self._visit(default)
        all_args = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        if args.vararg:
            all_args.append(args.vararg)
        if args.kwarg:
            all_args.append(args.kwarg)
        for a in all_args:
            if a.annotation is not None:
                self._annotation(a.annotation)
        if node.returns is not None:
            self._annotation(node.returns)
        fscope = self._new_scope("function", qual, node, nid)
        self.scope = fscope
        for a in all_args:
            self._bind(a.arg, "param")
        saved_try, self.in_try = self.in_try, False
        self._body(node.body, top=True)
        self.in_try = saved_try
        self.scope = scope
        self.owner = saved_owner

    def _v_class(self, node: ast.ClassDef) -> None:
        g, scope = self.g, self.scope
        qual = self._qual(node.name)
        data = {"scope": scope, "decorators": node.decorator_list, "in_try": self.in_try}
        nid = g.add("class", self.info.name, qual, node.name, node.lineno, self.owner, node, data)
        self._bind(node.name, "class", nid, node)
        if scope.kind == "class":
            g.member(scope.owner, node.name, nid)
        self.info.defs.append(nid)
        self._kept(nid, *_header_lines(node))
        saved_owner = self.owner
        self.owner = nid
        for dec in node.decorator_list:
            self._visit(dec)
        for base in node.bases:
            self._visit(base)
        for kw in node.keywords:
            self._visit(kw.value)
        cscope = data["body_scope"] = self._new_scope("class", qual, node, nid)
        self.scope = cscope
        saved_try, self.in_try = self.in_try, False
        self._body(node.body, top=True)
        self.in_try = saved_try
        self.scope = scope
        self.owner = saved_owner

    # -- imports ------------------------------------------------------------

    def _import_node(self, node: ast.stmt, bound: str, data: dict) -> int:
        g = self.g
        data["scope"] = self.scope
        data["guarded"] = self.import_guard
        data["type_checking"] = self.type_checking
        nid = g.add("import", self.info.name, self._qual(bound), bound, node.lineno, self.owner,
                    node, data)
        self._kept(nid, node.lineno, node.end_lineno or node.lineno)
        if self.scope.kind == "class":
            g.guard(self.owner, nid, "import in a class body binds a class attribute")
        return nid

    def _v_import(self, node: ast.Import) -> None:
        seen: dict[tuple[str, str | None], int] = {}
        for alias in node.names:
            key = (alias.name, alias.asname)
            occurrence = seen[key] = seen.get(key, -1) + 1
            if alias.asname:
                bound, bound_module = alias.asname, alias.name
            else:
                bound = bound_module = alias.name.partition(".")[0]
            data = {"alias": alias.name, "asname": alias.asname, "occurrence": occurrence}
            nid = self._import_node(node, bound, data)
            b = self._bind(bound, "import", nid, node, module=alias.name, bound_module=bound_module)
            data["binding"] = b
            if b.kind != "import":  # `global x` then `import x`: keep it
                self.g.guard(self.owner, nid, "import binds a global declared in a function")
            self.info.imports.append(b)
            self.info.imported.add(alias.name)

    def _v_importfrom(self, node: ast.ImportFrom) -> None:
        base = relative_base(self.info.package, node.module, node.level)
        info = self.info
        if base:
            info.imported.add(base)
        seen: dict[tuple[str, str | None], int] = {}
        for alias in node.names:
            key = (alias.name, alias.asname)
            occurrence = seen[key] = seen.get(key, -1) + 1
            data = {"alias": alias.name, "asname": alias.asname, "occurrence": occurrence,
                    "from": base, "level": node.level}
            if alias.name == "*":
                nid = self._import_node(node, "*", data)
                self.g.guard(self.owner, nid, "star import")
                if self.scope.kind == "module":
                    info.star_imports.append((base, nid))
                b = Binding("*", "import", self.scope, nid, node.lineno, self.index, node,
                            module=base, attr="*")
                data["binding"] = b
                info.imports.append(b)
                continue
            bound = alias.asname or alias.name
            nid = self._import_node(node, bound, data)
            b = self._bind(bound, "import", nid, node, module=base, attr=alias.name)
            data["binding"] = b
            if b.kind != "import":
                self.g.guard(self.owner, nid, "import binds a global declared in a function")
            if base == "__future__":
                self.g.guard(self.owner, nid, "__future__ import changes how the module compiles")
            elif base:
                info.imported.add(f"{base}.{alias.name}")
            info.imports.append(b)

    # -- assignments ----------------------------------------------------------

    def _value_node(self, node: ast.stmt, targets: list[str], value: ast.expr) -> None:
        """A simple assignment: one node per target name and one for the value."""
        g, scope = self.g, self.scope
        label = "=".join(targets)
        target_nodes: list[int] = []
        vid = g.add("value", self.info.name, self._qual(label) + "=", label, node.lineno,
                    self.owner, node, {"scope": scope, "expr": value, "targets": target_nodes})
        pinned = False
        for name in targets:
            if self._removable_name(name):
                tid = g.add("variable", self.info.name, self._qual(name), name, node.lineno,
                            self.owner, node, {"value": vid, "targets": targets})
                self._bind(name, "assign", tid, node)
                g.edge(tid, vid)
                target_nodes.append(tid)
                self._kept(tid, node.lineno, node.end_lineno or node.lineno)
            else:
                self._bind(name, "other", -1, node)
                pinned = True
        if pinned:
            g.edge(self.owner, vid)
        saved = self.owner
        self.owner = vid
        self._visit(value)
        self.owner = saved
        self.info.values.append((scope, value, saved, vid))

    def _v_assign(self, node: ast.Assign) -> None:
        scope = self.scope
        targets = node.targets
        if scope.kind == "module" and any(
            t.__class__ is ast.Name and t.id == "__all__" for t in targets
        ):
            self._all_names(node.value, reset=True)
        if scope.kind in ("module", "function") and all(t.__class__ is ast.Name for t in targets):
            self._value_node(node, [t.id for t in targets], node.value)  # type: ignore[attr-defined]
            return
        self._visit(node.value)
        for t in targets:
            self._visit(t)

    def _v_annassign(self, node: ast.AnnAssign) -> None:
        # Only a function's locals: at module level the annotation lands in __annotations__.
        if (
            self.scope.kind == "function" and node.value is not None
            and node.target.__class__ is ast.Name
        ):
            target: ast.Name = node.target  # type: ignore[assignment]
            saved = self.owner
            self._value_node(node, [target.id], node.value)
            self.owner = saved
            return
        if self.scope.kind == "module" and node.value is not None and (
            node.target.__class__ is ast.Name and node.target.id == "__all__"  # type: ignore[attr-defined]
        ):
            self._all_names(node.value, reset=True)
        self._annotation(node.annotation)
        if node.value is not None:
            self._visit(node.value)
        self._visit(node.target)

    def _v_augassign(self, node: ast.AugAssign) -> None:
        target = node.target
        if target.__class__ is ast.Name:
            name = target.id  # type: ignore[attr-defined]
            if self.scope.kind == "module" and name == "__all__":
                self._all_names(node.value, reset=False)
            self.info.chains.append((self.scope, name, (), self.owner, False))
            self._bind(name, "other", -1, node)
        else:
            self._visit(target)
            if target.__class__ is ast.Attribute:  # obj.x += 1 reads obj.x
                self.info.attr_refs.append((self.owner, target.attr))  # type: ignore[attr-defined]
        self._visit(node.value)

    def _all_names(self, value: ast.expr, reset: bool) -> None:
        info = self.info
        if reset or info.all_names is None:
            info.all_names = []
        if isinstance(value, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ):
            info.all_names.extend((e.value, e.lineno) for e in value.elts)  # type: ignore[attr-defined]
        else:
            info.all_dynamic = True

    # -- expressions --------------------------------------------------------

    def _v_name(self, node: ast.Name) -> None:
        ctx = node.ctx.__class__
        if ctx is ast.Store:
            self._bind(node.id, "other")
        elif ctx is ast.Load:
            self.info.chains.append((self.scope, node.id, (), self.owner, True))
        else:  # del x: needs x bound (a use), and unbinds it (so x is not a plain import)
            self.info.chains.append((self.scope, node.id, (), self.owner, False))
            self._bind(node.id, "other")

    def _v_attribute(self, node: ast.Attribute) -> None:
        attrs = []
        cur: ast.expr = node
        while cur.__class__ is ast.Attribute:
            attrs.append(cur.attr)  # type: ignore[attr-defined]
            cur = cur.value  # type: ignore[attr-defined]
        attrs.reverse()
        for a in attrs:
            if a in DYNAMIC_ATTRS:
                self.info.dynamic.append(("." + a, self.scope, node, self.owner))
        if node.ctx.__class__ is not ast.Load:
            attrs.pop()  # obj.x = v / del obj.x: x is written, not read
            as_value = False
        else:
            as_value = True
        if cur.__class__ is ast.Name:
            self.info.chains.append((self.scope, cur.id, tuple(attrs), self.owner, as_value))  # type: ignore[attr-defined]
        else:
            self._visit(cur)
            refs = self.info.attr_refs
            for a in attrs:
                refs.append((self.owner, a))

    def _sys_modules(self, node: ast.AST, expr: ast.expr) -> bool:
        """``sys.modules[key]`` or ``sys.modules.get(key)``: judged by the key (guards.py)."""
        if not (isinstance(expr, ast.Attribute) and expr.attr == "modules"):
            return False
        self.info.dynamic.append(("sys.modules[]", self.scope, node, self.owner))
        self._visit(expr.value)  # not the attribute itself: that would be any module
        return True

    def _dict_key(self, expr: ast.expr, key: ast.expr | None) -> bool:
        """``obj.__dict__["name"]`` (or ``.get("name")``): a use of attribute ``name``."""
        if not (isinstance(expr, ast.Attribute) and expr.attr == "__dict__"):
            return False
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return False
        self.info.attr_refs.append((self.owner, key.value))
        self._visit(expr.value)
        return True

    def _v_subscript(self, node: ast.Subscript) -> None:
        if self._sys_modules(node, node.value):
            self._visit(node.slice)
        elif self._dict_key(node.value, node.slice):
            pass
        else:
            self._generic(node)

    def _v_call(self, node: ast.Call) -> None:
        func = node.func
        info = self.info
        if isinstance(func, ast.Attribute) and (
            (func.attr == "get" and self._sys_modules(node, func.value))
            or (func.attr in ("get", "setdefault", "pop") and node.args
                and self._dict_key(func.value, node.args[0]))
        ):
            for arg in node.args:
                self._visit(arg)
            for kw in node.keywords:
                self._visit(kw.value)
            return
        if func.__class__ is ast.Name:
            if func.id in DYNAMIC_CALLS:  # type: ignore[attr-defined]
                info.dynamic.append((func.id, self.scope, node, self.owner))  # type: ignore[attr-defined]
        elif func.__class__ is ast.Attribute:
            attr = func.attr  # type: ignore[attr-defined]
            if attr in DYNAMIC_CALL_ATTRS:
                info.dynamic.append(("." + attr, self.scope, node, self.owner))
            elif (
                attr in ("extend", "append") and self.scope.kind == "module"
                and func.value.__class__ is ast.Name and func.value.id == "__all__"  # type: ignore[attr-defined]
            ):
                arg = node.args[0] if node.args else None
                if attr == "append" and isinstance(arg, ast.Constant):
                    arg = ast.List([arg], ast.Load())
                self._all_names(arg, reset=False)  # type: ignore[arg-type]
        for kw in node.keywords:
            if kw.arg == "allow_pickle":
                info.uses_pickle = True
        callee = func.id if func.__class__ is ast.Name else ""  # type: ignore[attr-defined]
        for arg in [*node.args, *(kw.value for kw in node.keywords)]:
            attrs: list[str] = []
            while arg.__class__ is ast.Attribute:
                attrs.append(arg.attr)  # type: ignore[attr-defined]
                arg = arg.value  # type: ignore[attr-defined]
            if arg.__class__ is ast.Name:
                attrs.reverse()
                info.passed.append((self.scope, arg.id, tuple(attrs), self.owner, callee))  # type: ignore[attr-defined]
        self._generic(node)

    def _v_binop(self, node: ast.BinOp) -> None:
        # a + b + c + ... nests to the left; generated code has chains thousands long.
        rights = []
        cur: ast.expr = node
        while cur.__class__ is ast.BinOp:
            rights.append(cur.right)  # type: ignore[attr-defined]
            cur = cur.left  # type: ignore[attr-defined]
        self._visit(cur)
        for right in reversed(rights):
            self._visit(right)

    def _v_constant(self, node: ast.Constant) -> None:
        value = node.value
        if value.__class__ is str and not self.in_annotation:
            if 2 < len(value) < 200 and _DOTTED.fullmatch(value):  # type: ignore[arg-type]
                self.info.dotted_strings.append((value, self.owner))  # type: ignore[arg-type]
            return
        # A string annotation ("Foo", List["Foo"]) names Foo.
        if self.in_annotation and isinstance(node.value, str):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "1st", "3d" in a string annotation
                    expr = ast.parse(node.value.strip(), mode="eval").body
            except (SyntaxError, ValueError):
                return
            for sub in ast.walk(expr):
                sub.lineno = node.lineno  # type: ignore[attr-defined]
            self._visit(expr)

    def _annotation(self, node: ast.expr) -> None:
        saved = self.in_annotation
        self.in_annotation = True
        self._visit(node)
        self.in_annotation = saved

    def _v_lambda(self, node: ast.Lambda) -> None:
        args = node.args
        for default in args.defaults:
            self._visit(default)
        for default in args.kw_defaults:
            if default is not None:
                self._visit(default)
        scope = self.scope
        self.scope = self._new_scope("lambda", scope.qualname, node, self.owner)
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                self._bind(a.arg, "param")
        self._visit(node.body)
        self.scope = scope

    def _v_comp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        gens = node.generators
        self._visit(gens[0].iter)  # evaluated in the enclosing scope
        scope = self.scope
        self.scope = self._new_scope("comprehension", scope.qualname, node, self.owner)
        for i, gen in enumerate(gens):
            if i:
                self._visit(gen.iter)
            self._visit(gen.target)
            for cond in gen.ifs:
                self._visit(cond)
        if isinstance(node, ast.DictComp):
            self._visit(node.key)
            self._visit(node.value)
        else:
            self._visit(node.elt)
        self.scope = scope

    def _v_namedexpr(self, node: ast.NamedExpr) -> None:
        self._visit(node.value)
        scope = self.scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        self._bind(node.target.id, "other", scope=scope)

    # -- statements -----------------------------------------------------------

    def _v_global(self, node: ast.Global) -> None:
        if self.scope.kind != "module":
            if self.scope.globals is None:
                self.scope.globals = set()
            self.scope.globals.update(node.names)

    def _v_nonlocal(self, node: ast.Nonlocal) -> None:
        if self.scope.nonlocals is None:
            self.scope.nonlocals = set()
        self.scope.nonlocals.update(node.names)
        for name in node.names:  # needs the enclosing binding to exist: a use of it
            self.info.chains.append((self.scope, name, (), self.owner, False))

    def _v_compound(self, node: ast.stmt) -> None:
        saved = self.index
        self.index = -1
        self._generic(node)
        self.index = saved

    def _v_if(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else (
            test.attr if isinstance(test, ast.Attribute) else "")
        if name != "TYPE_CHECKING":
            self._v_compound(node)
            return
        saved_index, saved_flag = self.index, self.type_checking
        self.index = -1
        self._visit(test)
        self.type_checking = True  # never runs: its imports have no effect to keep
        self._body(node.body, top=False)
        self.type_checking = saved_flag
        self._body(node.orelse, top=False)
        self.index = saved_index

    def _v_try(self, node: ast.Try) -> None:
        saved_index, saved_guard, saved_try = self.index, self.import_guard, self.in_try
        self.index = -1
        if any(_catches_import_error(h) for h in node.handlers):
            self.import_guard = True  # the import's failure is observable
        self.in_try = bool(node.handlers)
        self._body(node.body, top=False)
        self.import_guard, self.in_try = saved_guard, saved_try
        for handler in node.handlers:
            self._visit(handler)
        self._body(node.orelse, top=False)
        self._body(node.finalbody, top=False)
        self.index = saved_index

    def _v_excepthandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self._visit(node.type)
        if node.name:
            self._bind(node.name, "other")
        self._body(node.body, top=False)

    def _v_matchname(self, node: ast.MatchAs | ast.MatchStar) -> None:
        pattern = getattr(node, "pattern", None)
        if pattern is not None:
            self._visit(pattern)
        if node.name:
            self._bind(node.name, "other")

    def _v_matchmapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            self._visit(key)
        for pattern in node.patterns:
            self._visit(pattern)
        if node.rest:
            self._bind(node.rest, "other")


def _header_lines(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> tuple[int, int]:
    """First and last line of a definition's decorators and header (where a keep comment goes)."""
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    body_line = node.body[0].lineno
    return first, body_line - 1 if body_line > node.lineno else node.lineno


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kind = handler.type
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    for n in names:
        name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
        if name in _IMPORT_ERRORS:
            return True
    return False
