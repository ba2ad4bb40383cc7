"""Guards: where the program may reach names in ways a reference graph cannot see.

Each guard adds edges (or roots) so that whatever the program could reach
dynamically stays, and records why.  The guards:

- ``eval``/``exec``/``compile`` (a constant string is parsed and its names
  count as uses; anything else keeps every name of the enclosing scopes and
  every attribute); ``getattr``/``setattr``/``hasattr``/``delattr``,
  ``operator.attrgetter``/``methodcaller``, ``inspect.getmembers``, ``dir``,
  ``vars``, ``__dict__`` and ``__getattribute__`` (a constant name is an
  ordinary attribute use; a non-constant one keeps every attribute of the
  object, or every attribute with a known constant prefix);
  ``globals()``/``locals()``, frame ``f_globals``/``f_locals``,
  ``sys.modules``, ``importlib.import_module``/``__import__``;
- a module ``__getattr__`` (the module's names may all be looked up by string);
- decorators not known to be pure (they may register the function);
- metaclasses, ``__init_subclass__`` and base classes from outside the program
  (class creation may register it; the base may call its methods by name);
- classes in modules whose objects may be pickled (unpickling finds a class
  by module path and name);
- dunder and protocol methods of used classes (called implicitly);
- re-exports in a package's ``__init__.py`` and names listed in ``__all__``;
- entry points declared in ``pyproject.toml`` or ``setup.cfg``.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from memtrim.analysis.graph import Graph
from memtrim.analysis.resolve import Resolver
from memtrim.analysis.symbols import Binding, ModuleInfo, Scope

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Decorators that return the function (or a wrapper of it) and register nothing.
PURE_DECORATORS = frozenset({
    "builtins.staticmethod", "builtins.classmethod", "builtins.property",
    "functools.wraps", "functools.lru_cache", "functools.cache", "functools.cached_property",
    "functools.total_ordering", "functools.singledispatch", "functools.singledispatchmethod",
    "dataclasses.dataclass", "abc.abstractmethod", "abc.abstractclassmethod",
    "abc.abstractstaticmethod", "abc.abstractproperty", "contextlib.contextmanager",
    "contextlib.asynccontextmanager", "enum.unique", "types.coroutine",
} | {
    f"{m}.{n}" for m in ("typing", "typing_extensions")
    for n in ("overload", "final", "no_type_check", "runtime_checkable", "override")
})

INERT_METACLASSES = frozenset({
    "builtins.type", "abc.ABCMeta", "enum.EnumMeta", "enum.EnumType",
})

# External bases that neither register subclasses nor call their methods by name
# (beyond dunders).  Any other external base may do either.
INERT_BASES = frozenset({
    "abc.ABC", "typing.Generic", "typing.Protocol", "typing.NamedTuple", "typing.TypedDict",
    "typing_extensions.Protocol", "typing_extensions.TypedDict", "typing_extensions.NamedTuple",
    "enum.Enum", "enum.IntEnum", "enum.Flag", "enum.IntFlag", "enum.StrEnum", "enum.ReprEnum",
    "collections.namedtuple",
})

# Standard-library bases whose subclasses are found by enumeration.
REGISTERING_BASES = frozenset({
    "unittest.TestCase", "unittest.IsolatedAsyncioTestCase", "unittest.case.TestCase",
})

# Methods the interpreter or the standard library call on objects by name
# without the program spelling ``obj.name`` (file-like and mapping protocols).
PROTOCOL_METHODS = frozenset({
    # file-like objects (print(file=), json.dump, shutil.copyfileobj, sys.stdout = obj)
    "keys", "read", "readline", "readlines", "readinto", "write", "writelines", "flush",
    "close", "fileno", "seek", "tell", "isatty", "truncate", "readable", "writable",
    "seekable",
    # generators, logging filters and formatters, import finders and loaders
    "send", "throw", "filter", "format", "find_spec", "create_module", "exec_module",
    "find_module", "load_module",
})

PICKLE_MODULES = frozenset({
    "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "copyreg",
})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")

ChainAdder = Callable[[Scope, str, tuple[str, ...], int, bool], None]


def is_pure_decorator_name(name: str | None) -> bool:
    """True when the dotted ``name`` is a decorator known to register nothing."""
    return bool(name) and name in PURE_DECORATORS


def is_dunder(name: str) -> bool:
    """``__name__``-style names, called implicitly by the interpreter."""
    return len(name) > 4 and name[:2] == "__" and name[-2:] == "__"


def is_sunder(name: str) -> bool:
    """``_name_``-style names (``enum`` hooks such as ``_missing_``)."""
    return len(name) > 2 and name[0] == "_" and name[-1] == "_" and name[1] != "_"


def _where(info: ModuleInfo, node: ast.AST) -> str:
    return f"{info.source.path.as_posix()}:{getattr(node, 'lineno', '?')}"


# -- decorators -------------------------------------------------------------------------


def decorator_is_pure(expr: ast.expr, scope: Scope, resolver: Resolver, graph: Graph) -> bool:
    """True when the decorator ``expr`` only wraps or returns the function it decorates."""
    func = expr.func if isinstance(expr, ast.Call) else expr
    if isinstance(expr, ast.Call) and any(
        isinstance(n, ast.Call) for a in [*expr.args, *(k.value for k in expr.keywords)]
        for n in ast.walk(a)
    ):
        return False
    if isinstance(func, ast.Attribute) and func.attr in ("setter", "getter", "deleter"):
        return True  # @prop.setter
    if is_pure_decorator_name(resolver.external_name(scope, func)):
        return True
    fn = _program_function(func, scope, resolver, graph)
    if fn is None:
        return False
    if isinstance(expr, ast.Call):
        return _pure_factory(fn)
    return _pure_wrapper(fn)


def _program_function(
    expr: ast.expr, scope: Scope, resolver: Resolver, graph: Graph
) -> ast.FunctionDef | None:
    """The ``def`` a name in the program refers to, if exactly one."""
    if isinstance(expr, ast.Name):
        s = resolver.lookup(scope, expr.id)
        if s is None:
            return None
        bindings = resolver.live(s, expr.id)
    elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        s = resolver.lookup(scope, expr.value.id)
        if s is None:
            return None
        bindings = []
        for b in resolver.live(s, expr.value.id):
            for kind, target in resolver.follow(b):
                if kind == "module":
                    bindings += [t[1] for t in resolver.member(str(target), expr.attr)
                                 if t[0] == "binding"]  # type: ignore[misc]
    else:
        return None
    resolved: list[Binding] = []
    for b in bindings:
        if b.kind == "import":
            if any(kind == "module" for kind, _ in resolver.follow(b)):
                return None
            module = resolver.module_name(b.module)
            if module and b.attr:
                resolved += [t[1] for t in resolver.member(module, b.attr)
                             if t[0] == "binding"]  # type: ignore[misc]
        else:
            resolved.append(b)
    if len(resolved) != 1 or resolved[0].kind != "def":
        return None
    stmt = resolved[0].stmt
    return stmt if isinstance(stmt, ast.FunctionDef) else None


def _pure_factory(fn: ast.FunctionDef) -> bool:
    """``def deco(arg): def inner(f): ...; return inner`` with a pure ``inner``."""
    nested = {s.name: s for s in fn.body if isinstance(s, ast.FunctionDef)}
    for stmt in fn.body:
        if isinstance(stmt, ast.Return):
            return isinstance(stmt.value, ast.Name) and stmt.value.id in nested and (
                _pure_wrapper(nested[stmt.value.id])
            )
        if not (isinstance(stmt, ast.FunctionDef) or _is_docstring(stmt)):
            return False
    return False


def _pure_wrapper(fn: ast.FunctionDef) -> bool:
    """A decorator whose own body (not its wrapper's) only defines and returns."""
    local_defs = {s.name for s in fn.body if isinstance(s, ast.FunctionDef)}
    for stmt in fn.body:
        if _is_docstring(stmt) or isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.FunctionDef):
            if not all(_is_wraps(d) for d in stmt.decorator_list):
                return False
            continue
        if isinstance(stmt, ast.Return):
            if stmt.value is not None and not _calls_free(stmt.value, allow_wraps=True):
                return False
            continue
        if isinstance(stmt, ast.Assign) and _calls_free(stmt.value, allow_wraps=True):
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    continue
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and (
                    t.value.id in local_defs
                ):
                    continue  # wrapper.cache = {}
                return False
            continue
        return False
    return True


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _is_wraps(d: ast.expr) -> bool:
    func = d.func if isinstance(d, ast.Call) else d
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "wraps"


def _calls_free(e: ast.expr, allow_wraps: bool) -> bool:
    for n in ast.walk(e):
        if isinstance(n, ast.Call):
            func = n.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if not (allow_wraps and name in ("wraps", "update_wrapper", "partial")):
                return False
        elif isinstance(n, (ast.Await, ast.Yield, ast.YieldFrom, ast.Lambda)):
            return False
    return True


# -- classes ------------------------------------------------------------------------------


def class_guards(graph: Graph, resolver: Resolver, resolve_classes: Callable) -> dict:
    """Apply the class guards; return {class node: [in-program base class nodes]}.

    ``resolve_classes(scope, expr)`` gives the program class nodes an
    expression may name.
    """
    parents: dict[int, list[int]] = {}
    external: dict[int, list[str]] = {}  # non-inert outside bases (None-like: unknown)
    registers: dict[int, str] = {}  # class -> why its creation may register it
    for_subclasses: dict[int, str] = {}  # class -> why its subclasses register
    stdlib = sys.stdlib_module_names
    classes = [n for n in graph.nodes if n.kind == "class"]
    for node in classes:
        stmt = node.stmt
        assert isinstance(stmt, ast.ClassDef) and node.data is not None
        scope: Scope = node.data["scope"]
        bases: list[int] = []
        for base in stmt.bases:
            expr = base.value if isinstance(base, ast.Subscript) else base
            found = resolve_classes(scope, expr)
            if found:
                bases.extend(found)
                continue
            func = expr.func if isinstance(expr, ast.Call) else expr
            name = resolver.external_name(scope, func)
            if name is None:
                if isinstance(expr, (ast.Name, ast.Attribute)) and _is_object(expr):
                    continue
                external.setdefault(node.id, []).append(ast.unparse(base))
                continue
            if name.startswith("builtins.") or name in INERT_BASES:
                continue
            external.setdefault(node.id, []).append(name)
            top = name.partition(".")[0]
            if name in REGISTERING_BASES:
                registers[node.id] = f"its base {name} finds subclasses by enumeration"
            elif top not in stdlib:
                registers[node.id] = (
                    f"its base {name} (outside the program) may register subclasses through "
                    "its metaclass or __init_subclass__"
                )
        parents[node.id] = bases
        for kw in stmt.keywords:
            if kw.arg != "metaclass":
                continue
            name = resolver.external_name(scope, kw.value)
            if name not in INERT_METACLASSES:
                label = name or ast.unparse(kw.value)
                registers[node.id] = f"its metaclass {label} runs code when the class is created"
                for_subclasses[node.id] = registers[node.id]
        if any(n == "__init_subclass__" for n, _ in graph.members_of.get(node.id, ())):
            for_subclasses[node.id] = f"{node.qualname} defines __init_subclass__"

    def ancestors(cid: int) -> list[int]:
        out, stack, seen = [], list(parents.get(cid, ())), {cid}
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            out.append(p)
            stack.extend(parents.get(p, ()))
        return out

    for node in classes:
        cid = node.id
        up = ancestors(cid)
        reason = registers.get(cid)
        if reason is None:
            for a in up:
                if a in for_subclasses:
                    reason = f"a base class registers its subclasses ({for_subclasses[a]})"
                    break
                if a in registers and a in external:
                    reason = registers[a]
                    break
        if reason is not None:
            graph.guard(node.parent, cid, f"class creation may register it: {reason}")
        outside = external.get(cid) or next((external[a] for a in up if a in external), None)
        members = graph.members_of.get(cid, ())
        for name, member in members:
            if outside:
                graph.guard(cid, member, (
                    f"base class {outside[0]} is outside the program and may call its "
                    "methods by name"))
            elif is_dunder(name):
                graph.guard(cid, member, "dunder method, called implicitly")
            elif is_sunder(name):
                graph.guard(cid, member, "_sunder_ hook, called implicitly (enum)")
            elif name in PROTOCOL_METHODS:
                graph.guard(cid, member, f"'{name}' is a protocol method callers use implicitly")
    return parents


def _is_object(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Name) and expr.id == "object"


def children_of(parents: dict[int, list[int]]) -> dict[int, list[int]]:
    """Invert a class -> bases map."""
    children: dict[int, list[int]] = {}
    for c, ps in parents.items():
        for p in ps:
            children.setdefault(p, []).append(c)
    return children


def family(parents: dict[int, list[int]], children: dict[int, list[int]], cid: int) -> set[int]:
    """A class with its program ancestors (methods it inherits) and descendants (overrides)."""
    out: set[int] = {cid}
    for links in (parents, children):
        stack = list(links.get(cid, ()))
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(links.get(c, ()))
    return out


# -- dynamic name use -----------------------------------------------------------------


class DynamicGuards:
    """Turns the dynamic uses recorded by the symbol walk into edges."""

    def __init__(
        self, graph: Graph, resolver: Resolver, add_chain: ChainAdder,
        module_bindings: Callable[[str], list[int]], escape: Callable[[str], int],
    ) -> None:
        self.g = graph
        self.r = resolver
        self.add_chain = add_chain
        self.module_bindings = module_bindings
        self.escape = escape
        self.family_requests: list[tuple[int, int, str]] = []  # (owner, class node, reason)
        self.notes: list[tuple[int, str]] = []  # (owner, text): reported if owner runs

    def apply(self, info: ModuleInfo) -> None:
        """Handle every dynamic use found in ``info``."""
        for what, scope, node, owner in info.dynamic:
            if what == "sys.modules[]":
                self._sys_modules(info, scope, node, owner)  # type: ignore[arg-type]
            elif what.startswith("."):
                self._attribute_use(what[1:], info, scope, node, owner)
            elif self.r.lookup(scope, what) is None:  # the builtin, not a local of that name
                self._builtin_call(what, info, scope, node, owner)  # type: ignore[arg-type]
        bindings = info.scope.bindings if info.scope else {}
        if "__getattr__" in bindings or "__dir__" in bindings:
            why = f"module {info.name} defines __getattr__: its names may be looked up by string"
            self.pin_module(info.node, info.name, why)
            self.notes.append((info.node, f"{info.source.path.as_posix()}: {why}"))
        if info.all_dynamic:
            why = f"{info.name}.__all__ is computed: every name may be exported"
            self.pin_module(info.node, info.name, why)

    def pin_module(self, owner: int, module: str, why: str) -> None:
        """Keep every top-level name of ``module`` whenever ``owner`` is kept."""
        for nid in self.module_bindings(module):
            self.g.guard(owner, nid, why)

    def pin_scope(self, owner: int, scope: Scope, why: str) -> None:
        """Keep every binding of ``scope`` (and, for a class body, every member)."""
        for bindings in scope.bindings.values():
            for b in bindings:
                if b.node >= 0:
                    self.g.guard(owner, b.node, why)
        if scope.kind == "class":
            for _name, member in self.g.members_of.get(scope.owner, ()):
                self.g.guard(owner, member, why)

    def _wild(self, owner: int, why: str, info: ModuleInfo, node: ast.AST) -> None:
        self.g.guard(owner, self.g.wild, why)
        self.notes.append((owner, f"{_where(info, node)}: {why}"))

    # -- builtins ---------------------------------------------------------------

    def _builtin_call(
        self, name: str, info: ModuleInfo, scope: Scope, node: ast.Call, owner: int
    ) -> None:
        args = node.args
        where = _where(info, node)
        if name in ("eval", "exec", "compile"):
            code = args[0] if args else None
            if isinstance(code, ast.Constant) and isinstance(code.value, str):
                if self._constant_code(code.value, scope, owner):
                    return
            s: Scope | None = scope
            why = f"{name}() with a non-constant argument at {where}"
            while s is not None:
                if s.kind != "class" or s is scope:
                    self.pin_scope(owner, s, why)
                s = s.parent
            self._wild(owner, why + ": any attribute may be used", info, node)
        elif name in ("getattr", "hasattr", "delattr", "setattr"):
            if len(args) >= 2:
                self._attr_lookup(name, args[0], args[1], info, scope, node, owner)
        elif name == "globals":
            self.pin_module(owner, info.name, f"globals() at {where}")
            note = f"{where}: globals(): every top-level name of {info.name} kept"
            self.notes.append((owner, note))
        elif name in ("locals", "vars", "dir") and not args:
            why = f"{name}() at {where}"
            if scope.kind == "module":
                self.pin_module(owner, info.name, why)
            else:
                self.pin_scope(owner, scope, why)
        elif name in ("vars", "dir"):
            obj = args[0]
            if name == "vars" and isinstance(obj, ast.Name) and obj.id == "self":
                return  # the instance dict: attributes, not methods
            self._object_dynamic(obj, None, info, scope, node, owner, f"{name}()")
        elif name == "__import__":
            self._import_call(args, node, info, scope, owner, package=None)

    def _constant_code(self, code: str, scope: Scope, owner: int) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(code.strip())
        except (SyntaxError, ValueError):
            return False
        for n in ast.walk(tree):
            if isinstance(n, ast.Name):
                self.add_chain(scope, n.id, (), owner, True)
            elif isinstance(n, ast.Attribute):
                self.g.edge(owner, self.g.attr(n.attr))
            elif isinstance(n, (ast.Call,)) and isinstance(n.func, ast.Name) and n.func.id in (
                "eval", "exec", "getattr", "globals", "locals", "vars", "__import__"
            ):
                return False  # dynamic inside dynamic: give up
        return True

    def _attr_lookup(
        self, fn: str, obj: ast.expr, name: ast.expr, info: ModuleInfo, scope: Scope,
        node: ast.Call, owner: int,
    ) -> None:
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            attr = name.value
            base = _chain(obj)
            if base is not None and _IDENTIFIER.match(attr):
                self.add_chain(scope, base[0], (*base[1], attr), owner, True)
            else:
                self.g.edge(owner, self.g.attr(attr))
            return
        self._object_dynamic(obj, _constant_prefix(name), info, scope, node, owner, f"{fn}()")

    def _object_dynamic(
        self, obj: ast.expr, prefix: str | None, info: ModuleInfo, scope: Scope,
        node: ast.AST, owner: int, what: str,
    ) -> None:
        """A name computed at run time is looked up on ``obj``."""
        where = _where(info, node)
        base = _chain(obj)
        if base is not None and not base[1] and self.r.external_name(scope, obj):
            return  # getattr(logging, level): a module outside the program
        modules = self._modules_of(obj, scope)
        if modules:
            for m in modules:
                why = f"{what} with a computed name on module {m} at {where}"
                for nid in self.module_bindings(m):
                    if prefix is None or self.g.nodes[nid].name.startswith(prefix):
                        self.g.guard(owner, nid, why)
            return
        cls = self._self_class(obj, scope)
        if cls is not None and prefix is None:
            self.family_requests.append((owner, cls, (
                f"{what} with a computed name on self at {where}: every method of the class, "
                "its bases and subclasses kept")))
            return
        if prefix:
            why = f"{what} with names '{prefix}...' at {where}"
            self.g.guard(owner, self.g.prefix(prefix), why)
            note = f"{where}: {what}: every attribute named '{prefix}...' kept"
            self.notes.append((owner, note))
            return
        self._wild(owner, f"{what} with a computed name at {where}: any attribute may be used",
                  info, node)

    def _modules_of(self, obj: ast.expr, scope: Scope) -> list[str]:
        base = _chain(obj)
        if base is None:
            return []
        s = self.r.lookup(scope, base[0])
        if s is None:
            return []
        targets = [t for b in self.r.live(s, base[0]) for t in self.r.follow(b)]
        for attr in base[1]:
            nxt = []
            for kind, value in targets:
                if kind == "module":
                    for t in self.r.member(str(value), attr):
                        if t[0] == "binding":
                            nxt.extend(self.r.follow(t[1]))  # type: ignore[arg-type]
                        else:
                            nxt.append(t)
            targets = nxt
        return [str(v) for k, v in targets if k == "module"]

    @staticmethod
    def _self_class(obj: ast.expr, scope: Scope) -> int | None:
        """The class whose method ``obj`` (``self`` or ``cls``) is the first parameter of."""
        if not isinstance(obj, ast.Name):
            return None
        s: Scope | None = scope
        while s is not None and s.kind in ("lambda", "comprehension"):
            s = s.parent
        if s is None or s.kind != "function" or s.parent is None or s.parent.kind != "class":
            return None
        fn = s.node
        args = fn.args.posonlyargs + fn.args.args  # type: ignore[attr-defined]
        if args and args[0].arg == obj.id:
            return s.parent.owner
        return None

    def _sys_modules(
        self, info: ModuleInfo, scope: Scope, node: ast.Subscript | ast.Call, owner: int
    ) -> None:
        """``sys.modules[key]`` / ``sys.modules.get(key)``: the module named by the key escapes."""
        if isinstance(node, ast.Subscript):
            attr, key = node.value, node.slice
            if not isinstance(node.ctx, ast.Load):
                return  # sys.modules[name] = module: registers, reads nothing
        else:
            attr = node.func.value  # type: ignore[attr-defined]
            key = node.args[0] if node.args else None
        if self.r.external_name(scope, attr) != "sys.modules":
            return
        if isinstance(key, ast.Name) and key.id == "__name__":
            self.g.edge(owner, self.escape(info.name))
            return
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            module = self.r.module_name(key.value)
            if module is not None:
                self.g.edge(owner, self.escape(module))
            return
        where = _where(info, node)
        why = f"sys.modules[...] with a computed name at {where}: any module may be used"
        for module in self.r.infos:
            self.g.guard(owner, self.escape(module), why)
        self.notes.append((owner, f"{where}: {why}"))

    # -- attributes and library calls ----------------------------------------------

    def _attribute_use(
        self, what: str, info: ModuleInfo, scope: Scope, node: ast.AST, owner: int
    ) -> None:
        where = _where(info, node)
        if what == "__dict__":
            inner = _strip_to(node, "__dict__")
            if isinstance(inner, ast.Attribute):
                value = inner.value
                if isinstance(value, ast.Name) and value.id == "self":
                    return  # instance attributes, not methods
                self._object_dynamic(value, None, info, scope, node, owner, "__dict__")
            return
        if what in ("f_globals", "f_locals"):
            why = f"frame.{what} at {where}: any name of any module may be read"
            for module in self.r.infos:
                self.g.guard(owner, self.escape(module), why)
            self._wild(owner, why, info, node)
            return
        if what == "modules":
            if self.r.external_name(scope, _strip_to(node, "modules")) == "sys.modules":
                why = f"sys.modules at {where}: any module may be used as an object"
                for module in self.r.infos:
                    self.g.guard(owner, self.escape(module), why)
                self.notes.append((owner, f"{where}: sys.modules: every module may escape"))
            return
        if not isinstance(node, ast.Call):
            return
        args = node.args
        func = node.func
        fname = self.r.external_name(scope, func) or ""
        if what == "import_module" or what == "__import__":
            package = None
            for kw in node.keywords:
                if kw.arg == "package" and isinstance(kw.value, ast.Constant):
                    package = kw.value.value
            if len(args) > 1 and isinstance(args[1], ast.Constant):
                package = args[1].value
            if package is None and any(kw.arg == "package" for kw in node.keywords):
                package = info.package
            self._import_call(args, node, info, scope, owner, package)
        elif what in ("attrgetter", "methodcaller"):
            consts = [a for a in args[: (None if what == "attrgetter" else 1)]]
            if consts and all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                              for a in consts):
                for a in consts:
                    for part in a.value.split("."):  # type: ignore[attr-defined]
                        self.g.edge(owner, self.g.attr(part))
            else:
                self._wild(owner, f"{what}() with a computed name at {where}", info, node)
        elif what in ("getmembers", "getmembers_static"):
            if args:
                self._object_dynamic(args[0], None, info, scope, node, owner, fname or what)
        elif what in ("__getattribute__", "getattr_static"):
            obj = args[0] if len(args) >= 2 else (
                func.value if isinstance(func, ast.Attribute) else None)
            name = args[-1] if args else None
            if obj is not None and name is not None:
                self._attr_lookup(what, obj, name, info, scope, node, owner)

    def _import_call(
        self, args: list[ast.expr], node: ast.Call, info: ModuleInfo, scope: Scope, owner: int,
        package: str | None,
    ) -> None:
        where = _where(info, node)
        name = args[0] if args else None
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            target = name.value
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                base = package or info.package
                parts = base.split(".")[: len(base.split(".")) - (level - 1)]
                target = ".".join([*parts, target.lstrip(".")]).strip(".")
            full = self.r.module_name(target)
            if full is None:
                return
            parts = full.split(".")
            for i in range(1, len(parts) + 1):
                module = ".".join(parts[:i])
                nid = self.g.module_nodes.get(module)
                if nid is not None:
                    self.g.edge(owner, nid)
                self.g.edge(owner, self.escape(module))
            return
        prefix = _constant_prefix(name) if name is not None else None
        if prefix and prefix.startswith("."):
            prefix = None  # relative to a package given at run time
        if prefix:
            why = (f"module imported by a computed name at {where}: every module named "
                   f"'{prefix}...' may be loaded")
        else:
            why = f"module imported by a computed name at {where}: every module may be loaded"
        for module, nid in self.g.module_nodes.items():
            if prefix is None or module.startswith(prefix):
                self.g.guard(owner, nid, why)
                self.g.guard(owner, self.escape(module), why)
        self.notes.append((owner, f"{where}: {why}"))


def _chain(expr: ast.expr) -> tuple[str, tuple[str, ...]] | None:
    attrs = []
    while isinstance(expr, ast.Attribute):
        attrs.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        return expr.id, tuple(reversed(attrs))
    return None


def _strip_to(node: ast.AST, attr: str) -> ast.expr:
    """From ``a.b.modules.x`` get the ``a.b.modules`` part."""
    cur = node
    while isinstance(cur, ast.Attribute) and cur.attr != attr:
        cur = cur.value
    return cur  # type: ignore[return-value]


def _constant_prefix(expr: ast.expr) -> str | None:
    """``"visit_" + name`` or ``f"do_{cmd}"``: the constant start of a computed name."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left = expr.left
        if isinstance(left, ast.Constant) and isinstance(left.value, str) and left.value:
            return left.value
        return _constant_prefix(left)
    if isinstance(expr, ast.JoinedStr) and expr.values:
        first = expr.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
            return first.value
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and (
        expr.func.attr == "format" and isinstance(expr.func.value, ast.Constant)
    ):
        text = expr.func.value.value
        if isinstance(text, str) and "{" in text and text.index("{") > 0:
            return text[: text.index("{")]
    return None


# -- pickle -------------------------------------------------------------------------


def pickle_modules(infos: dict[str, ModuleInfo], resolver: Resolver) -> dict[str, str]:
    """Modules whose classes may be pickled or unpickled -> why.

    A module that uses pickle (or joblib, dill, shelve, ``allow_pickle``) and
    every program module it imports, directly or not: a pickle names classes
    by module path, and any of them may be in it.
    """
    users = {
        name: info for name, info in infos.items()
        if info.uses_pickle or any(m.partition(".")[0] in PICKLE_MODULES for m in info.imported)
    }
    involved: dict[str, str] = {}
    for user in sorted(users):
        why = f"{user} pickles or unpickles objects"
        stack = [user]
        while stack:
            name = stack.pop()
            if name in involved:
                continue
            involved[name] = why if name == user else (
                f"{user} (which imports it) {why[len(user) + 1:]}")
            info = infos.get(name)
            if info is None:
                continue
            for imported in info.imported:
                full = resolver.module_name(imported)
                if full and full in infos and full not in involved:
                    stack.append(full)
    return involved


# -- entry points ---------------------------------------------------------------------


def declared_entry_points(root: Path) -> list[str]:
    """``module:function`` targets of console scripts and entry points declared in root."""
    found: list[str] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
        project = data.get("project", {})
        groups = [project.get("scripts", {}), project.get("gui-scripts", {})]
        groups += list(project.get("entry-points", {}).values())
        poetry = data.get("tool", {}).get("poetry", {})
        groups.append(poetry.get("scripts", {}))
        for group in groups:
            if isinstance(group, dict):
                found += [v for v in group.values() if isinstance(v, str)]
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(setup_cfg, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            pass
        if parser.has_section("options.entry_points"):
            for value in parser["options.entry_points"].values():
                found += [line.split("=", 1)[1] for line in value.splitlines() if "=" in line]
    out = []
    for spec in found:
        spec = spec.split("[")[0].strip()
        if ":" in spec:
            out.append(spec)
    return out
