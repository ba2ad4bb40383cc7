"""Name and import resolution across the modules of a program.

Given the scopes built by :mod:`memtrim.analysis.symbols`, this answers:

- which scope a name used in some scope is bound in (LEGB, with class scopes
  invisible to the functions nested in them, ``global`` and ``nonlocal``);
- which of a scope's bindings of a name are *live*: an import rebound before
  any use (shadowed), or a second identical import (duplicate), is not;
- what ``module.name`` refers to: a binding at the module's top level, a
  submodule of a package, a name from a ``from m import *``, or the module's
  ``__getattr__``; following re-exports through ``__init__.py``;
- where relative imports point.
"""

from __future__ import annotations

import ast
import builtins

from memtrim.analysis.symbols import Binding, ModuleInfo, Scope

BUILTIN_NAMES = frozenset(dir(builtins))

# What a name or attribute can stand for while following a dotted chain.
# ("binding", Binding) | ("module", str) | ("external", str) | ("opaque", str)
Target = tuple[str, object]


class Resolver:
    """Resolves names across the modules of one program."""

    def __init__(self, infos: dict[str, ModuleInfo], prefixes: tuple[str, ...] = ("",)) -> None:
        self.infos = infos
        self.prefixes = prefixes
        self.tops = {name.partition(".")[0] for name in infos}
        for p in prefixes:
            if p:
                self.tops.update(n[len(p) + 1:].partition(".")[0] for n in infos
                                 if n.startswith(p + "."))
        # Packages that exist only as directories (namespace packages).
        self.namespaces: set[str] = set()
        for name in infos:
            parts = name.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent not in infos:
                    self.namespaces.add(parent)
        # import binding node -> the earlier import it duplicates
        self.duplicates: dict[int, Binding] = {}
        # import binding node -> the binding that shadows it before any use
        self.shadowed: dict[int, Binding] = {}

    # -- modules ------------------------------------------------------------

    def module_name(self, name: str | None) -> str | None:
        """The program's name for module ``name`` (trying the script's directory first)."""
        if not name:
            return None
        for p in self.prefixes:
            full = f"{p}.{name}" if p else name
            if full in self.infos or full in self.namespaces:
                return full
        return None

    def info(self, name: str | None) -> ModuleInfo | None:
        """The walked module called ``name``, if it is part of the program."""
        full = self.module_name(name)
        return self.infos.get(full) if full else None

    def is_external(self, name: str) -> bool:
        """True when ``name`` cannot be a module of this program."""
        return name.partition(".")[0] not in self.tops

    def module_target(self, name: str) -> Target:
        """What importing module ``name`` gives: a program module, or an external one."""
        full = self.module_name(name)
        if full is not None:
            info = self.infos.get(full)
            if info is not None and info.scope is None:
                return ("opaque", full)
            return ("module", full)
        return ("external", name)

    # -- scopes -------------------------------------------------------------

    def lookup(self, scope: Scope, name: str) -> Scope | None:
        """The scope ``name`` is bound in, as seen from ``scope``; None for builtins/unknown."""
        s: Scope | None = scope
        if scope.kind != "module" and scope.globals and name in scope.globals:
            return scope.info.scope
        first = True
        while s is not None:
            if s.kind == "class" and not first:
                s = s.parent  # a class body is invisible to the scopes nested in it
                continue
            first = False
            if name in s.bindings and not (s.nonlocals and name in s.nonlocals):
                return s
            s = s.parent
        return None

    def live(self, scope: Scope, name: str) -> list[Binding]:
        """The bindings of ``name`` in ``scope`` a use can see (not shadowed, not duplicate)."""
        bindings = scope.bindings.get(name)
        if not bindings:
            return []
        if scope.live is not None and name in scope.live:
            return scope.live[name]
        if scope.live is None:
            scope.live = {}
        result = bindings
        if any(b.kind == "import" for b in bindings):
            dead = self._dead_imports(scope, name, bindings)
            if dead:
                result = [b for b in bindings if b.node not in dead]
            if not result:
                # Every import here repeats the module's own: a use here is a use of that.
                result = [self.duplicates[bindings[0].node]]
        scope.live[name] = result
        return result

    def _dead_imports(self, scope: Scope, name: str, bindings: list[Binding]) -> set[int]:
        dead: set[int] = set()
        first = bindings[0]
        key = (first.module, first.attr, first.bound_module)
        same = all(b.kind == "import" and (b.module, b.attr, b.bound_module) == key
                   for b in bindings)
        if same and first.module and first.attr != "*":
            if len(bindings) > 1 and first.index >= 0:
                for b in bindings[1:]:
                    self.duplicates[b.node] = first
                    dead.add(b.node)
            elif scope.kind == "function":
                # A function-level import of what the module already imported at top level.
                outer = self._module_import(scope, name, key)
                if outer is not None:
                    for b in bindings:
                        self.duplicates[b.node] = outer
                        dead.add(b.node)
            return dead
        if len(bindings) < 2:
            return dead
        body = getattr(scope.node, "body", None)
        if not isinstance(body, list):
            return dead
        for i, b in enumerate(bindings[:-1]):
            if b.kind != "import" or b.index < 0 or b.node in dead:
                continue
            nxt = bindings[i + 1]
            if nxt.index <= b.index or nxt.kind == "param":
                continue
            if nxt.index < 0:
                continue  # rebound conditionally: the import may still be what a use sees
            between = body[b.index + 1: nxt.index]
            if all(_inert(stmt, name) for stmt in between) and _inert_rebinding(
                body[nxt.index], name
            ):
                self.shadowed[b.node] = nxt
                dead.add(b.node)
        return dead

    def _module_import(self, scope: Scope, name: str, key: tuple) -> Binding | None:
        top = scope
        while top.parent is not None and top.parent.kind != "module":
            top = top.parent
        module_scope = scope.info.scope
        if module_scope is None or top.parent is not module_scope:
            return None
        outer = module_scope.bindings.get(name)
        if not outer:
            return None
        if not all(b.kind == "import" and (b.module, b.attr, b.bound_module) == key for b in outer):
            return None
        first = outer[0]
        start = _first_line(top.node)
        end = getattr(first.stmt, "end_lineno", None) or first.line
        if first.index < 0 or end >= start:
            return None
        return first

    # -- module members -------------------------------------------------------

    def member(self, module: str, name: str, _depth: int = 0) -> list[Target]:
        """What ``module.name`` is: bindings, a submodule, a star-imported name, or nothing."""
        full = self.module_name(module) or module
        info = self.infos.get(full)
        if info is not None and info.scope is None:
            return [("opaque", full)]
        if info is not None:
            assert info.scope is not None
            found = self.live(info.scope, name)
            if found:
                return [("binding", b) for b in found]
        sub = f"{full}.{name}"
        if sub in self.infos or sub in self.namespaces:
            return [self.module_target(sub)]
        if info is None or _depth > 20:
            return []
        for base, _node in info.star_imports:
            star = self.module_name(base)
            if star is not None and star != full:
                if not self._star_exports(star, name):
                    continue
                found_star = self.member(star, name, _depth + 1)
                if found_star:
                    return found_star
        getattr_bindings = info.scope.bindings.get("__getattr__") if info.scope else None
        if getattr_bindings:
            return [("binding", b) for b in getattr_bindings]
        return []

    def _star_exports(self, module: str, name: str) -> bool:
        """``from module import *`` binds ``name``: it is in ``__all__``, or public without one."""
        info = self.infos.get(module)
        if info is not None and info.all_names is not None and not info.all_dynamic:
            return any(n == name for n, _ in info.all_names)
        return not name.startswith("_")

    def follow(self, binding: Binding, _depth: int = 0) -> list[Target]:
        """The object a binding names, when it leads further: a module, a class, an import."""
        kind = binding.kind
        if kind == "class":
            return [("class", binding.node)]
        if kind != "import" or binding.module is None or _depth > 20:
            return []
        if binding.attr is None:
            assert binding.bound_module is not None
            return [self.module_target(binding.bound_module)]
        if binding.attr == "*":
            return []
        target = self.module_target(binding.module)
        if target[0] == "external":
            return [("external", f"{binding.module}.{binding.attr}")]
        if target[0] == "opaque":
            return [target]
        out: list[Target] = []
        for t in self.member(str(target[1]), binding.attr):
            if t[0] == "binding":
                b = t[1]
                assert isinstance(b, Binding)
                if b.kind in ("import", "class"):
                    out.extend(self.follow(b, _depth + 1))
            else:
                out.append(t)
        return out

    def external_name(self, scope: Scope, expr: ast.expr) -> str | None:
        """The dotted name of an expression naming something outside the program.

        ``wraps`` after ``from functools import wraps`` is ``functools.wraps``;
        an unbound ``property`` is ``builtins.property``.  None when the
        expression names something in the program or is not a plain name.
        """
        parts: list[str] = []
        cur = expr
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            return None
        parts.reverse()
        s = self.lookup(scope, cur.id)
        if s is None:
            if cur.id in BUILTIN_NAMES:
                return ".".join(["builtins", cur.id, *parts])
            return None
        bindings = self.live(s, cur.id)
        if len(bindings) != 1 or bindings[0].kind != "import":
            return None
        for kind, value in self.follow(bindings[0]):
            if kind == "external":
                return ".".join([str(value), *parts])
        return None


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        return decorators[0].lineno
    return getattr(node, "lineno", 0)


def _inert(node: ast.AST, name: str) -> bool:
    """True when running ``node`` cannot read ``name`` (no use of it, no call that might)."""
    stack = [node]
    while stack:
        n = stack.pop()
        cls = n.__class__
        if cls is ast.Call or cls is ast.Await or cls is ast.Yield or cls is ast.YieldFrom:
            return False
        if cls is ast.Name and n.id == name and n.ctx.__class__ is not ast.Store:  # type: ignore[attr-defined]
            return False
        if cls in (ast.FunctionDef, ast.AsyncFunctionDef):
            # The body runs later (and no call runs before the rebinding).
            stack.extend(n.decorator_list)  # type: ignore[attr-defined]
            stack.append(n.args)  # type: ignore[attr-defined]
            if n.returns is not None:  # type: ignore[attr-defined]
                stack.append(n.returns)  # type: ignore[attr-defined]
            continue
        if cls is ast.Lambda:
            stack.append(n.args)  # type: ignore[attr-defined]
            continue
        stack.extend(ast.iter_child_nodes(n))
    return True


def _inert_rebinding(stmt: ast.stmt, name: str) -> bool:
    """The statement that rebinds ``name`` evaluates nothing that could read the old value."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return _inert(stmt, name)
    if isinstance(stmt, ast.Assign):
        return _inert(stmt.value, name)
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        return _inert(stmt.value, name) and _inert(stmt.annotation, name)
    return False
