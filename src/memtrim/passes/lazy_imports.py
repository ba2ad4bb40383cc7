"""Lazy imports: a module is loaded when one of its names is first used, not at import time.

Which imports are rewritten.  A module-level ``import`` or ``from ... import``
statement (directly in the module body) whose names are not needed while the
module body runs: they are used only inside functions, or only by other
modules (re-exports of a package ``__init__``), or never.  A name used at
import time (module body, class bodies, decorators, default values, evaluated
annotations) keeps its import eager, and so does:

- an import inside ``try``/``if``/``with`` (its failure or choice is observable),
  a ``__future__`` import, a name also bound some other way (assigned,
  declared ``global`` and written in a function);
- a private name (``from . import _distributor_init``) that nothing reads: an
  import made for its side effects;
- a package ``__init__``'s import of its own submodule whose body acts on
  state it does not own (:func:`module_effects`: ``set_global_backend(...)``,
  a registering decorator, a converter registered under a foreign key), or
  leads to a registration other modules read by name while they are imported
  (SymPy's ``S.Reals``): the package's other modules rely on the act without
  importing the actor;
- a name a package re-exports under the name of one of its own submodules
  (``sympy.core.sympify`` is a function): importing that submodule would set
  the attribute to the module before the deferred name is looked up;
- every import of a module that reads its namespace in ways a missing name
  would not make fail loudly (``globals()``, ``vars()``, ``locals()``, ``dir()``,
  ``sys.modules[__name__]``, frame globals, ``eval``/``exec`` at module level),
  except ``vars()[name]`` and inside its own ``__getattr__``/``__dir__``.

Only modules some workload loaded are rewritten: the import probe
(:func:`memtrim.analysis.modgraph.record_imports`) records the namespace each
one had right after its body ran, which makes ``from m import *``, computed
``__all__`` lists (``[s for s in dir() ...]``) and ``del`` of imported names
exact.

How.  The statement loses the deferred names.  Functions that use a name get
the same import as their first statement (after the docstring, on the same
line when possible so tracebacks keep their line numbers): after the first
call it costs one dictionary lookup in ``sys.modules``.  The module gets, where
the first deferred import was, a ``__getattr__`` (PEP 562) from the generated
helper ``_memtrim_lazy.py`` that performs the original import on first lookup
(``from m import name``, ``m.name``, pickle, ``import *``): the same object the
eager import would have bound.  An import error surfaces at that first use,
with the traceback of the failing module.  ``TYPE_CHECKING`` blocks and
annotations under ``from __future__ import annotations`` never load anything.

One edit per deferred name (per star import): any subset applies, so the
verifier can bisect.  :class:`LazyImportStep` then runs the candidate once
more under the probe and puts back (keeps eager) every deferred import whose
module was loaded anyway: those would only cost run time.
"""

from __future__ import annotations

import ast
import functools
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtrim.analysis.modgraph import ImportRecords, Namespace, record_imports
from memtrim.analysis.symbols import keep_comment_lines, relative_base
from memtrim.edits import Edit, EditError
from memtrim.passes._lazy_template import HELPER_MODULE, HELPER_SOURCE
from memtrim.program import ModuleSource, Program

if TYPE_CHECKING:
    from memtrim.pipeline import StepContext

PASS_NAME = "lazy-imports"
KIND = "lazy-import"
KIND_STAR = "lazy-star-import"

_DYNAMIC_CALLS = frozenset({"globals", "locals", "vars", "eval", "exec", "dir", "__import__"})
_OWN_BUILTINS = frozenset({"exec", "__import__", "globals", "vars", "locals", "len", "isinstance"})
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
# a module's own __getattr__/__dir__ may read globals() freely: the lazy
# __getattr__ answers for the deferred names before it is consulted
_HOOKS = frozenset({"__getattr__", "__dir__"})


# -- scopes and uses ----------------------------------------------------------------


@dataclass(eq=False)
class _Scope:
    kind: str  # module, class, function, lambda, comprehension
    node: ast.AST
    parent: _Scope | None
    names: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)


@dataclass
class _NameUses:
    """How one module-level name is read."""

    import_time: list[int] = field(default_factory=list)  # lines
    deferred: dict[int, ast.AST] = field(default_factory=dict)  # id(def) -> def node
    dels: list[ast.Delete] = field(default_factory=list)  # depth-0 `del name` statements
    in_lambda: bool = False  # read by a lambda no function encloses: cannot import there


def _scan(nodes: Iterable[ast.AST], scope: _Scope) -> None:
    """Collect the names bound directly in ``scope`` (not in the scopes nested in it)."""
    stack = list(nodes)
    while stack:
        n = stack.pop()
        t = type(n)
        if t in _DEFS or t is ast.ClassDef:
            scope.names.add(n.name)  # type: ignore[attr-defined]
            stack.extend(n.decorator_list)  # type: ignore[attr-defined]
            if t is ast.ClassDef:
                stack.extend(n.bases)  # type: ignore[attr-defined]
                stack.extend(k.value for k in n.keywords)  # type: ignore[attr-defined]
            else:
                stack.extend(d for d in n.args.defaults)  # type: ignore[attr-defined]
                stack.extend(d for d in n.args.kw_defaults if d is not None)  # type: ignore[attr-defined]
            continue
        if t is ast.Lambda:
            stack.extend(n.args.defaults)  # type: ignore[attr-defined]
            stack.extend(d for d in n.args.kw_defaults if d is not None)  # type: ignore[attr-defined]
            continue
        if t in _COMPS:
            stack.append(n.generators[0].iter)  # type: ignore[attr-defined]
            for sub in ast.walk(n):  # a walrus in a comprehension binds out here
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    scope.names.add(sub.target.id)
            continue
        if t is ast.Name:
            if not isinstance(n.ctx, ast.Load):  # type: ignore[attr-defined]
                scope.names.add(n.id)  # type: ignore[attr-defined]
            continue
        if t is ast.Import or t is ast.ImportFrom:
            for a in n.names:  # type: ignore[attr-defined]
                if a.name != "*":
                    scope.names.add(a.asname or a.name.partition(".")[0])
            continue
        if t is ast.Global:
            scope.globals.update(n.names)  # type: ignore[attr-defined]
            continue
        if t is ast.Nonlocal:
            scope.nonlocals.update(n.names)  # type: ignore[attr-defined]
            continue
        if t is ast.ExceptHandler and n.name:  # type: ignore[attr-defined]
            scope.names.add(n.name)  # type: ignore[attr-defined]
        elif t in (ast.MatchAs, ast.MatchStar) and getattr(n, "name", None):
            scope.names.add(n.name)  # type: ignore[attr-defined]
        elif t is ast.MatchMapping and n.rest:  # type: ignore[attr-defined]
            scope.names.add(n.rest)  # type: ignore[attr-defined]
        stack.extend(ast.iter_child_nodes(n))


def _args(a: ast.arguments) -> list[ast.arg]:
    out = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    if a.vararg:
        out.append(a.vararg)
    if a.kwarg:
        out.append(a.kwarg)
    return out


def _generated_call(n: ast.AST) -> bool:
    """``_memtrim_lazy.install(globals(), ...)`` or ``globals().pop(name, None)`` (ours)."""
    f = getattr(n, "func", None)
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f.value.id == HELPER_MODULE
    return (isinstance(f, ast.Attribute) and f.attr == "pop" and isinstance(f.value, ast.Call)
            and isinstance(f.value.func, ast.Name) and f.value.func.id == "globals")


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Walker:
    """Finds every read of a module-level name, and when it runs (import time or later)."""

    def __init__(self, tree: ast.Module, future_annotations: bool) -> None:
        self.tree = tree
        self.future = future_annotations
        self.uses: dict[str, _NameUses] = {}
        self.dynamic: list[tuple[int, str]] = []  # (line, what)
        self.global_writes: set[str] = set()  # names a function declares global and binds
        self.all_assign: ast.Assign | None = None  # a computed `__all__ = ...` (depth 0)
        self.module = _Scope("module", tree, None)
        self._subscripted: set[int] = set()
        _scan(tree.body, self.module)

    def run(self) -> None:
        """Walk the module."""
        for stmt in self.tree.body:
            self._stmt(stmt, self.module, None, top=True)

    # ctx: None = import time; a def node = inside that function; "lambda" = in a
    # lambda that runs later but holds no statement to import in

    def _use(self, name: str, line: int, scope: _Scope, ctx: Any) -> None:
        if not self._is_global(name, scope):
            return
        u = self.uses.setdefault(name, _NameUses())
        if ctx is None:
            u.import_time.append(line)
        elif ctx == "lambda":
            u.in_lambda = True
        else:
            u.deferred[id(ctx)] = ctx

    def _is_global(self, name: str, scope: _Scope) -> bool:
        s: _Scope | None = scope
        first = True
        while s is not None:
            if s.kind == "module":
                return True
            if s.kind == "class" and not first:
                s = s.parent
                continue
            if name in s.globals:
                return True
            if name in s.nonlocals:
                return False
            if name in s.names and s.kind != "class":
                return False
            # a name bound in a class body may be the class's own or (before
            # that) the global: counted as a use of the global, which is safe
            first = False
            s = s.parent
        return True

    def _new(self, kind: str, node: ast.AST, parent: _Scope, nodes: Iterable[ast.AST]) -> _Scope:
        s = _Scope(kind, node, parent)
        _scan(nodes, s)
        if kind == "function":
            for name in s.globals & s.names:
                self.global_writes.add(name)
        return s

    def _stmt(self, s: ast.stmt, scope: _Scope, ctx: Any, top: bool = False) -> None:
        t = type(s)
        if t in _DEFS:
            self._def(s, scope, ctx)  # type: ignore[arg-type]
        elif t is ast.ClassDef:
            for d in s.decorator_list:  # type: ignore[attr-defined]
                self._expr(d, scope, ctx)
            for b in s.bases:  # type: ignore[attr-defined]
                self._expr(b, scope, ctx)
            for k in s.keywords:  # type: ignore[attr-defined]
                self._expr(k.value, scope, ctx)
            inner = self._new("class", s, scope, s.body)  # type: ignore[attr-defined]
            for b in s.body:  # type: ignore[attr-defined]
                self._stmt(b, inner, ctx)
        elif t is ast.If and _is_type_checking(s.test):  # type: ignore[attr-defined]
            self._expr(s.test, scope, ctx)  # type: ignore[attr-defined]
            for b in s.orelse:  # type: ignore[attr-defined]
                self._stmt(b, scope, ctx)  # the body never runs
        elif t is ast.AnnAssign:
            ann: ast.AnnAssign = s  # type: ignore[assignment]
            # a function's local annotations are never evaluated (PEP 526)
            if scope.kind != "function" and not self.future:
                self._expr(ann.annotation, scope, ctx)
            if ann.value is not None:
                self._expr(ann.value, scope, ctx)
            self._expr(ann.target, scope, ctx)
        elif t is ast.Delete and top:
            for target in s.targets:  # type: ignore[attr-defined]
                if isinstance(target, ast.Name):
                    self.uses.setdefault(target.id, _NameUses()).dels.append(s)  # type: ignore[arg-type]
                else:
                    self._expr(target, scope, ctx)
        elif t is ast.Assign and top and self._computed_all(s):  # type: ignore[arg-type]
            self.all_assign = s  # type: ignore[assignment]
            # its reads are not counted: it is replaced by the recorded value
        else:
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.stmt):
                    self._stmt(child, scope, ctx)
                elif isinstance(child, ast.expr):
                    self._expr(child, scope, ctx)
                elif isinstance(child, ast.ExceptHandler):
                    if child.type is not None:
                        self._expr(child.type, scope, ctx)
                    for b in child.body:
                        self._stmt(b, scope, ctx)
                elif isinstance(child, ast.match_case):
                    self._pattern(child.pattern, scope, ctx)
                    if child.guard is not None:
                        self._expr(child.guard, scope, ctx)
                    for b in child.body:
                        self._stmt(b, scope, ctx)
                elif isinstance(child, ast.withitem):
                    self._expr(child.context_expr, scope, ctx)
                    if child.optional_vars is not None:
                        self._expr(child.optional_vars, scope, ctx)

    @staticmethod
    def _computed_all(s: ast.Assign) -> bool:
        if len(s.targets) != 1 or not isinstance(s.targets[0], ast.Name):
            return False
        if s.targets[0].id != "__all__":
            return False
        v = s.value
        literal = isinstance(v, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in v.elts)
        if literal:
            return False
        # only a value that merely lists names (other modules' __all__, dir(), string
        # filters) may be replaced by the value it had; a call that does more stays
        for n in ast.walk(v):
            if isinstance(n, ast.Call):
                f = n.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(
                    f, ast.Attribute) else ""
                if name not in ("dir", "sorted", "list", "tuple", "startswith", "endswith",
                                "isupper", "islower", "isidentifier", "set"):
                    return False
            elif isinstance(n, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom,
                                ast.Lambda)):
                return False
        return True

    def _pattern(self, p: ast.AST, scope: _Scope, ctx: Any) -> None:
        for sub in ast.walk(p):
            if isinstance(sub, ast.expr):
                self._expr(sub, scope, ctx)

    def _def(self, s: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope, ctx: Any) -> None:
        for d in s.decorator_list:
            self._expr(d, scope, ctx)
        for d in [*s.args.defaults, *(k for k in s.args.kw_defaults if k is not None)]:
            self._expr(d, scope, ctx)
        if not self.future:
            for a in _args(s.args):
                if a.annotation is not None:
                    self._expr(a.annotation, scope, ctx)
            if s.returns is not None:
                self._expr(s.returns, scope, ctx)
        inner = self._new("function", s, scope, [*_args(s.args), *s.body])
        inner.names.update(a.arg for a in _args(s.args))
        hook = scope.kind == "module" and s.name in _HOOKS
        saved = len(self.dynamic)
        for b in s.body:
            self._stmt(b, inner, s)
        if hook:
            del self.dynamic[saved:]

    def _expr(self, e: ast.expr, scope: _Scope, ctx: Any) -> None:
        stack: list[tuple[ast.AST, _Scope, Any]] = [(e, scope, ctx)]
        while stack:
            n, sc, cx = stack.pop()
            t = type(n)
            if t is ast.Name:
                if not isinstance(n.ctx, ast.Store):  # type: ignore[attr-defined]
                    self._use(n.id, n.lineno, sc, cx)  # type: ignore[attr-defined]
                continue
            if t is ast.Lambda:
                for d in [*n.args.defaults, *(k for k in n.args.kw_defaults if k)]:  # type: ignore[attr-defined]
                    stack.append((d, sc, cx))
                inner = self._new("lambda", n, sc, [n.body])  # type: ignore[attr-defined]
                inner.names.update(a.arg for a in _args(n.args))  # type: ignore[attr-defined]
                stack.append((n.body, inner, cx if cx is not None else "lambda"))  # type: ignore[attr-defined]
                continue
            if t in _COMPS:
                gens = n.generators  # type: ignore[attr-defined]
                stack.append((gens[0].iter, sc, cx))
                inner = _Scope("comprehension", n, sc)
                for g in gens:
                    _scan([g.target], inner)
                rest: list[ast.AST] = []
                for i, g in enumerate(gens):
                    if i:
                        rest.append(g.iter)
                    rest.extend(g.ifs)
                rest.extend([n.key, n.value] if t is ast.DictComp else [n.elt])  # type: ignore[attr-defined]
                for r in rest:
                    stack.append((r, inner, cx))
                continue
            if t is ast.Call and _generated_call(n):
                continue  # memtrim's own lazy-import hooks pass globals() on purpose
            if t is ast.Call and id(n) in self._subscripted:
                # vars()[name] / globals()[name]: a deferred name would raise KeyError
                # (loud, seen by the verifier), unlike globals().get(name)
                stack.extend((c, sc, cx) for c in n.args)  # type: ignore[attr-defined]
                continue
            if t is ast.Call:
                f = n.func  # type: ignore[attr-defined]
                if isinstance(f, ast.Name) and f.id in _DYNAMIC_CALLS and self._is_global(f.id, sc):
                    args = n.args  # type: ignore[attr-defined]
                    if f.id in ("dir", "vars") and args:
                        pass  # dir(obj), vars(obj): another object's names
                    elif f.id in ("eval", "exec") and cx is not None and (
                            len(args) != 1 or not isinstance(args[0], ast.Constant)):
                        # code run by a function: a deferred name it reads fails loudly
                        # (NameError), which the verifier sees; unlike globals().get()
                        pass
                    elif f.id == "__import__" and cx is not None:
                        pass  # an import made at run time
                    else:
                        self.dynamic.append((n.lineno, f.id + "()"))  # type: ignore[attr-defined]
            elif t is ast.Attribute:
                if n.attr in ("f_globals", "f_locals"):  # type: ignore[attr-defined]
                    self.dynamic.append((n.lineno, "frame globals"))  # type: ignore[attr-defined]
            elif t is ast.Subscript:
                v = n.value  # type: ignore[attr-defined]
                if (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and not v.args
                        and v.func.id in ("globals", "vars", "locals")):
                    self._subscripted.add(id(v))
                if (isinstance(v, ast.Attribute) and v.attr == "modules"
                        and isinstance(n.slice, ast.Name) and n.slice.id == "__name__"):  # type: ignore[attr-defined]
                    self.dynamic.append((n.lineno, "sys.modules[__name__]"))  # type: ignore[attr-defined]
            stack.extend((c, sc, cx) for c in ast.iter_child_nodes(n))


# -- the plan -----------------------------------------------------------------------------


@dataclass
class _Candidate:
    """One deferred name (or a whole star import) of one module."""

    stmt: ast.Import | ast.ImportFrom
    alias: ast.alias | None  # None for a star import
    occurrence: int
    names: dict[str, tuple]  # bound name -> route
    local: dict[str, str]  # bound name -> statement a function runs to bind it
    needs: set[str]  # modules the deferred import loads
    # further (statement, alias, occurrence) that bind the same name: `import a.b`
    # and `import a.c` both bind `a`, and are deferred together
    extra: list[tuple[ast.stmt, ast.alias, int]] = field(default_factory=list)


def _route_text(route: tuple) -> str:
    return repr(tuple(route))


def _has_future_annotations(tree: ast.Module) -> bool:
    for s in tree.body:
        if isinstance(s, ast.ImportFrom) and s.module == "__future__":
            if any(a.name == "annotations" for a in s.names):
                return True
        elif not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
            if not isinstance(s, ast.ImportFrom):
                break
    return False


class LazyImportPass:
    """Proposes one edit per import that can be deferred (see the module docstring)."""

    def __init__(
        self,
        records: ImportRecords,
        *,
        keep: Sequence[str] = (),
        only: Iterable[str] | None = None,
        skip: Iterable[str] = (),
    ) -> None:
        self.records = records
        self.keep = set(keep)
        self.only = set(only) if only is not None else None
        self.skip = set(skip)
        self.notes: list[str] = []  # why whole modules were left alone
        self.keep_lines: set[int] = set()
        self.known_modules: set[str] = set()
        self.star_targets: set[str] = set()
        self.star_public = False
        self._effects: dict[str, str | None] = {}
        self._attrs: dict[str, set[str]] | None = None
        self._pinned_list: list[str] | None = None

    def run(self, program: Program) -> list[Edit]:
        """The edits for ``program``; modules no workload loaded are left alone."""
        referenced = _referenced_names(program)
        self.star_targets = referenced.pop("*", set())
        self.known_modules = set(program.modules) | set(self.records.loaded)
        edits: list[Edit] = []
        for name, src in program.modules.items():
            if src.tree is None or src.text is None or src.alias_of or name == HELPER_MODULE:
                continue
            if self.only is not None and name.partition(".")[0] not in self.only:
                continue
            if name.partition(".")[0] in self.skip or name in self.skip:
                continue
            runtime_name = "__main__" if name == program.entry_module else name
            ns = self.records.namespaces.get(runtime_name) or self.records.namespaces.get(name)
            if ns is None:
                continue  # never loaded by a workload: nothing to gain, nothing to check
            edits.extend(self._module(program, name, src, ns, referenced.get(name, set())))
        return [e for e in edits if not self._effectful(program, e)]

    def _effectful(self, program: Program, edit: Edit) -> bool:
        """A package ``__init__`` would defer loading a submodule whose body acts when imported.

        A package that imports such a module (``scipy.fft`` imports ``_backend``,
        which registers the default FFT backend) makes that act part of
        importing the package, and the package's other modules rely on it
        without importing the module themselves.  Elsewhere the module that
        needs the act imports the actor, and deferring keeps the order.
        """
        importer = edit.evidence.get("module", "")
        src = program.modules.get(importer)
        if src is None or not src.is_package:
            return False
        pinned = self._pinned(program)
        for m in edit.evidence.get("needs", []):
            hit = next((p for p in pinned if p == m or p.startswith(m + ".")), None)
            if hit is not None and (m == importer or m.startswith(importer + ".")):
                self.notes.append(f"{edit.symbol}: kept eager: {hit} registers names other "
                                  f"modules read while imported ({self._effects[hit]})")
                return True
            if m.rpartition(".")[0] != importer:
                # a deeper module is loaded through its own package, whose
                # __init__ keeps the imports of its own acting modules eager
                continue
            why = self._effects_of(program, m)
            if why:
                self.notes.append(f"{edit.symbol}: kept eager: {m} acts when imported ({why})")
                return True
        return False

    def _pinned(self, program: Program) -> list[str]:
        """Loaded modules whose registrations other modules read by name at import time."""
        if self._pinned_list is None:
            out = []
            for name in program.modules:
                if name in self.records.loaded or name in self.records.namespaces:
                    why = self._effects_of(program, name)
                    if why and PINNED in why:
                        out.append(name)
            self._pinned_list = sorted(out)
        return self._pinned_list

    def _import_time_attrs(self, program: Program, exclude: str = "") -> set[str]:
        """Attribute names modules read while they are imported (``S.EmptySequence``).

        Only modules the workloads loaded count, and not ``exclude`` (a module
        reading back what it registered itself needs nothing else loaded).
        """
        if self._attrs is None:
            self._attrs = {}
            for name, src in program.modules.items():
                if src.tree is None or (name not in self.records.loaded
                                        and name != program.entry_module):
                    continue
                attrs: set[str] = set()
                stack: list[ast.AST] = list(src.tree.body)
                while stack:
                    n = stack.pop()
                    if isinstance(n, (*_DEFS, ast.Lambda)):
                        stack.extend(getattr(n, "decorator_list", []))
                        continue
                    if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
                        attrs.add(n.attr)
                        if isinstance(n.value, ast.Name):
                            attrs.add(f"{n.value.id}.{n.attr}")
                    stack.extend(ast.iter_child_nodes(n))
                self._attrs[name] = attrs
        out: set[str] = set()
        for name, attrs in self._attrs.items():
            if name != exclude:
                out |= attrs
        return out

    def _imported_def(self, program: Program, module: str, name: str, hops: int = 3
                      ) -> ast.AST | None:
        """The ``def`` that ``name`` in ``module`` refers to, following ``from`` imports."""
        src = program.modules.get(module)
        if src is None or src.tree is None or hops == 0:
            return None
        package = module if src.is_package else module.rpartition(".")[0]
        for st in src.tree.body:
            if isinstance(st, (*_DEFS, ast.ClassDef)) and st.name == name:
                return st
            if isinstance(st, ast.ImportFrom):
                for a in st.names:
                    if (a.asname or a.name) == name:
                        base = relative_base(package, st.module, st.level)
                        if base:
                            return self._imported_def(program, base, a.name, hops - 1)
        return None

    def _effects_of(self, program: Program, module: str) -> str | None:
        if module in self._effects:
            return self._effects[module]
        why = None
        src = program.modules.get(module)
        tree = src.tree if src is not None else None
        if src is not None and tree is None:
            why = "could not be parsed"
        if why is None and tree is not None:
            found = module_effects(tree, lambda n: self._imported_def(program, module, n),
                                   self._import_time_attrs(program, exclude=module))
            if found:
                first = next((f for f in found if PINNED in f[1]), found[0])
                why = f"line {first[0]}: {first[1]}"
        self._effects[module] = why
        return why

    # -- one module -----------------------------------------------------------------

    def _module(
        self, program: Program, name: str, src: ModuleSource, ns: Namespace, referenced: set[str]
    ) -> list[Edit]:
        tree = src.tree
        assert tree is not None
        future = _has_future_annotations(tree)
        walker = _Walker(tree, future)
        try:
            walker.run()
        except RecursionError:
            self.notes.append(f"{name}: nested too deeply; imports left eager")
            return []
        if walker.dynamic:
            line, what = walker.dynamic[0]
            self.notes.append(f"{name}: reads its namespace dynamically ({what}, line {line}); "
                              "imports left eager")
            return []
        if "__getattr__" in walker.module.names and not self._own_getattr_ok(tree):
            self.notes.append(f"{name}: defines __getattr__ in an unusual way; imports left eager")
            return []
        package = name if src.is_package else name.rpartition(".")[0]
        self.keep_lines = keep_comment_lines(src.text)
        self.star_public = name in self.star_targets and ns.all is None
        final = set(ns.keys)
        all_names = set(ns.all or [])
        # names bound at module level by anything other than a depth-0 import statement
        depth0: dict[str, list[tuple[ast.stmt, ast.alias]]] = {}
        for s in tree.body:
            if isinstance(s, (ast.Import, ast.ImportFrom)):
                for a in s.names:
                    if a.name != "*":
                        depth0.setdefault(a.asname or a.name.partition(".")[0], []).append((s, a))
        other_bound = _other_bindings(tree)
        candidates: list[_Candidate] = []
        for s in tree.body:
            if isinstance(s, ast.Import):
                candidates.extend(self._plain(s, depth0, other_bound, walker, final, all_names,
                                              referenced, name))
            elif isinstance(s, ast.ImportFrom):
                if s.module == "__future__":
                    continue
                base = relative_base(package, s.module, s.level)
                if base is None:
                    continue
                if any(a.name == "*" for a in s.names):
                    c = self._star(s, base, depth0, other_bound, walker, ns, name)
                    if c is not None:
                        candidates.append(c)
                else:
                    candidates.extend(self._from(s, base, depth0, other_bound, walker, final,
                                                 all_names, referenced, name))
        return [self._edit(program, name, src, tree, c, walker, ns) for c in candidates]

    @staticmethod
    def _own_getattr_ok(tree: ast.Module) -> bool:
        # a plain `def __getattr__` at depth 0 can be chained; anything else (assigned,
        # conditional) is left alone
        defs = [s for s in tree.body if isinstance(s, _DEFS) and s.name == "__getattr__"]
        return len(defs) == 1

    def _eager(
        self, bound: str, stmt: ast.stmt, depth0: dict, other_bound: set[str], walker: _Walker,
        final: set[str], module: str,
    ) -> str | None:
        """Why ``bound`` must stay eager, or None."""
        if f"{module}:{bound}" in self.keep or module in self.keep:
            return "kept by the keep-list"
        if bound in other_bound:
            return "also bound another way"
        group = depth0.get(bound, ())
        if len(group) > 1 and not all(
                isinstance(st, ast.Import) and not a.asname for st, a in group):
            return "bound by more than one import"
        if bound in walker.global_writes:
            return "rebound by a function (global)"
        u = walker.uses.get(bound)
        if u is not None:
            if u.import_time:
                return f"used at import time (line {u.import_time[0]})"
            if u.in_lambda:
                return "used in a lambda outside any function"
            if u.dels and bound in final:
                return "deleted conditionally"
        if bound not in final and not (u is not None and u.dels):
            return "not in the module's namespace after import"
        if f"{module}.{bound}" in self.known_modules and not self._is_submodule_import(
                stmt, bound, module):
            # the package re-exports an object under the name of one of its
            # submodules (sympy.core.sympify): importing that submodule would set the
            # attribute to the module before the deferred name is ever looked up
            return "shadows a submodule of the same name"
        if self.star_public and not bound.startswith("_"):
            # `from module import *` without __all__ copies what the namespace holds
            return "the module is star-imported and has no __all__"
        if self.keep_lines and any(line in self.keep_lines for line in _keep_lines(stmt)):
            return "marked '# memtrim: keep'"
        return None

    @staticmethod
    def _is_submodule_import(stmt: ast.stmt, bound: str, module: str) -> bool:
        """``from . import sub`` / ``import pkg.sub as sub``: the binding is the submodule."""
        if isinstance(stmt, ast.ImportFrom):
            return stmt.level == 1 and not stmt.module and any(
                (a.asname or a.name) == bound and a.name == bound for a in stmt.names)
        return False

    def _unused_private(self, bound: str, walker: _Walker, all_names: set[str],
                        referenced: set[str]) -> bool:
        u = walker.uses.get(bound)
        used = u is not None and (u.deferred or u.import_time or u.in_lambda)
        return (not used and bound.startswith("_") and not bound.startswith("__")
                and bound not in all_names and bound not in referenced)

    def _plain(self, s: ast.Import, depth0, other_bound, walker, final, all_names, referenced,
               module) -> list[_Candidate]:
        out = []
        seen: dict[tuple, int] = {}
        for a in s.names:
            key = (a.name, a.asname)
            occurrence = seen[key] = seen.get(key, -1) + 1
            bound = a.asname or a.name.partition(".")[0]
            if self._eager(bound, s, depth0, other_bound, walker, final, module):
                continue
            if self._unused_private(bound, walker, all_names, referenced):
                continue
            if a.asname:
                route: tuple = ("module", a.name)
                local = f"import {a.name} as {a.asname}"
                out.append(_Candidate(s, a, occurrence, {bound: route}, {bound: local},
                                      {a.name}))
                continue
            group = depth0.get(bound, [(s, a)])
            if group[0][1] is not a:
                continue  # deferred with the first import that binds the name
            dotted = list(dict.fromkeys(g[1].name for g in group))
            extra = []
            for st, al in group[1:]:
                occ = [(x.name, x.asname) for x in st.names][: st.names.index(al)].count(
                    (al.name, al.asname))
                extra.append((st, al, occ))
            out.append(_Candidate(s, a, occurrence, {bound: ("import", *dotted)},
                                  {bound: "; ".join(f"import {d}" for d in dotted)},
                                  set(dotted), extra))
        return out

    def _from(self, s: ast.ImportFrom, base: str, depth0, other_bound, walker, final,
              all_names, referenced, module) -> list[_Candidate]:
        out = []
        seen: dict[tuple, int] = {}
        dots = "." * s.level
        for a in s.names:
            key = (a.name, a.asname)
            occurrence = seen[key] = seen.get(key, -1) + 1
            bound = a.asname or a.name
            if self._eager(bound, s, depth0, other_bound, walker, final, module):
                continue
            if self._unused_private(bound, walker, all_names, referenced):
                continue
            route: tuple = ("from", base, a.name)
            sub = f"{base}.{a.name}"
            if base == module and sub in self.known_modules:
                # `from . import sub` in the package itself: the submodule
                route = ("module", sub)
            local = f"from {dots}{s.module or ''} import {a.name}"
            if a.asname:
                local += f" as {a.asname}"
            if not s.module:
                local = f"from {dots} import {a.name}" + (f" as {a.asname}" if a.asname else "")
            out.append(_Candidate(s, a, occurrence, {bound: route}, {bound: local},
                                  self._needs_from(base, a.name)))
        return out

    def _usable_provenance(self, home: str, module: str) -> bool:
        """May ``module`` import an object straight from ``home`` (where it is defined)?

        Not when ``home`` is one of its packages or was still loading when
        ``module`` was loaded (numpy re-exports ``invert`` and names it
        ``numpy.invert``, but ``numpy._core.umath`` loads while ``numpy`` runs).
        """
        if home == module or module.startswith(home + "."):
            return False
        m = self.records.loaded.get(module)
        seen = set()
        while m is not None and m.parent and m.parent not in seen:
            if m.parent == home:
                return False
            seen.add(m.parent)
            m = self.records.loaded.get(m.parent)
        return True

    def _needs_from(self, base: str, attr: str) -> set[str]:
        needs = {base}
        sub = f"{base}.{attr}"
        if sub in self.records.loaded or sub in self.records.namespaces:
            needs.add(sub)
        src_ns = self.records.namespaces.get(base)
        if src_ns is not None:
            prov = src_ns.prov.get(attr)
            if prov and prov[0] == "def":
                needs.add(prov[1])
            elif prov and prov[0] == "module" and prov[1]:
                needs.add(prov[1])
        return needs

    def _star(self, s: ast.ImportFrom, base: str, depth0, other_bound, walker, ns: Namespace,
              module: str) -> _Candidate | None:
        target = self.records.namespaces.get(base)
        if target is None:
            return None  # what it binds is unknown
        if self.star_public:
            return None  # re-exported by a star import of this module, without __all__
        star = list(target.all) if target.all is not None else [
            k for k in target.keys if not k.startswith("_")]
        final = set(ns.keys)
        names: dict[str, tuple] = {}
        local: dict[str, str] = {}
        needs: set[str] = {base}
        for n in star:
            if n in depth0 or n in other_bound:
                continue  # bound again by the module itself: that binding decides
            if f"{module}.{n}" in self.known_modules and (ns.prov.get(n) or [None, None])[
                    :2] != ["module", f"{module}.{n}"]:
                return None  # an object named like a submodule (see _eager)
            u = walker.uses.get(n)
            if u is not None and (u.import_time or u.in_lambda):
                return None
            if n in walker.global_writes:
                return None
            if n not in final:
                if u is not None and u.dels:
                    continue
                return None
            prov = ns.prov.get(n) or ["value"]
            if prov[0] == "def" and not self._usable_provenance(prov[1], module):
                prov = ["value"]  # the object's home imports this module: go the long way
            if prov[0] == "def" and prov[1] != module:
                route: tuple = ("from", prov[1], prov[2])
                stmt = f"from {prov[1]} import {prov[2]}"
                if prov[2] != n:
                    stmt += f" as {n}"
                needs.add(prov[1])
            elif prov[0] == "module" and prov[1]:
                route = ("module", prov[1])
                stmt = f"import {prov[1]} as {n}" if "." in prov[1] or prov[1] != n else \
                    f"import {n}"
                needs.add(prov[1])
            else:
                route = ("from", base, n)
                stmt = f"from {base} import {n}"
            names[n] = route
            local[n] = stmt
        if f"{module}:*" in self.keep or module in self.keep:
            return None
        return _Candidate(s, None, 0, names, local, needs)

    # -- edits ----------------------------------------------------------------------------

    def _edit(self, program: Program, module: str, src: ModuleSource, tree: ast.Module,
              c: _Candidate, walker: _Walker, ns: Namespace) -> Edit:
        path = src.path.as_posix()
        final = set(ns.keys)
        functions: list[list] = []
        for bound, stmt in c.local.items():
            u = walker.uses.get(bound)
            if u is None:
                continue
            for fn in sorted(u.deferred.values(), key=lambda f: (f.lineno, f.col_offset)):
                functions.append([fn.lineno, fn.col_offset, stmt])
        routes = {n: r for n, r in c.names.items() if n in final}
        dels = []
        for bound in c.names:
            u = walker.uses.get(bound)
            for d in (u.dels if u else []):
                dels.append([d.lineno, bound])
        # `del x` of a name only the side effect of an import binds (a submodule
        # becomes an attribute of its package): once imports are deferred it may be
        # unbound there, so the deletion must tolerate that
        bound = _other_bindings(tree) | {
            a.asname or a.name.partition(".")[0] for s in tree.body
            if isinstance(s, (ast.Import, ast.ImportFrom)) for a in s.names}
        for s in tree.body:
            if isinstance(s, ast.Delete):
                for x in s.targets:
                    if isinstance(x, ast.Name) and x.id not in bound:
                        dels.append([s.lineno, x.id, "soft"])
        rewrite_all = None
        if walker.all_assign is not None and ns.all is not None:
            rewrite_all = [walker.all_assign.lineno, ns.all]
        if c.alias is None:
            label = "*"
            kind = KIND_STAR
            target = {"line": c.stmt.lineno, "col": c.stmt.col_offset, "star": True}
            reason = (f"from {c.stmt.module or '.'} import * at line {c.stmt.lineno}: its "
                      f"{len(c.names)} names are loaded on first use")
        else:
            label = c.alias.asname or c.alias.name
            kind = KIND
            target = {"line": c.stmt.lineno, "col": c.stmt.col_offset, "alias": c.alias.name,
                      "asname": c.alias.asname, "occurrence": c.occurrence}
            if c.extra:
                target["also"] = [
                    {"line": st.lineno, "col": st.col_offset, "alias": al.name,
                     "asname": al.asname, "occurrence": occ} for st, al, occ in c.extra]
            where = (f"{len({f[0] for f in functions})} function(s)" if functions
                     else "no function of its module (re-export or unused)")
            reason = f"'{label}' is not needed at import time: used by {where}"
        return Edit(
            id=f"lazy:{path}:{c.stmt.lineno}:{label}",
            pass_name=PASS_NAME,
            kind=kind,
            path=path,
            line=c.stmt.lineno,
            symbol=f"{module}:{label}",
            reason=reason,
            evidence={
                "target": target,
                "routes": {n: list(r) for n, r in routes.items()},
                "functions": functions,
                "dels": dels,
                "rewrite_all": rewrite_all,
                "needs": sorted(c.needs),
                "module": module,
            },
        )


def _parse_path(path: Path) -> ast.Module | None:
    try:
        from memtrim.program import decode_source

        text, _ = decode_source(path.read_bytes())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
        return None


def _keep_lines(stmt: ast.stmt) -> range:
    return range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)


def _other_bindings(tree: ast.Module) -> set[str]:
    """Module-level names bound by something other than a depth-0 import statement."""
    scope = _Scope("module", tree, None)
    nodes = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    # imports nested in if/try blocks are "other" bindings too; a TYPE_CHECKING
    # block never runs and binds nothing
    nodes = [s for s in nodes if not (isinstance(s, ast.If) and _is_type_checking(s.test)
                                      and not s.orelse)]
    _scan(nodes, scope)
    # `del name` at depth 0 is not a binding (handled as a deletion)
    for s in tree.body:
        if isinstance(s, ast.Delete) and all(isinstance(t, ast.Name) for t in s.targets):
            still = _Scope("module", tree, None)
            _scan([x for x in nodes if x is not s], still)
            for t in s.targets:
                if t.id not in still.names:  # type: ignore[attr-defined]
                    scope.names.discard(t.id)  # type: ignore[attr-defined]
    return scope.names


def _is_main_guard(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


# marks an act other modules rely on by name while they are imported (S.Reals): the
# module must be loaded whenever its top-level package is
PINNED = "[read by name at import time]"
_META_HOOKS = frozenset({"__init__", "__new__", "__call__", "__init_subclass__"})
_MUTATORS = frozenset({
    "append", "add", "update", "setdefault", "insert", "extend", "pop", "remove", "clear",
    "discard", "__setitem__", "appendleft",
})
_MUTATOR_PREFIXES = ("set", "register", "install", "enable", "patch", "filter", "simplefilter")


def _root(e: ast.expr) -> str | None:
    while isinstance(e, (ast.Attribute, ast.Subscript, ast.Call)):
        e = e.func if isinstance(e, ast.Call) else e.value
    return e.id if isinstance(e, ast.Name) else None


def writes_global_state(fn: ast.AST) -> bool:
    """Does calling function ``fn`` change state it does not own? (see global_write_roots)"""
    return bool(global_write_roots(fn))


def global_write_roots(fn: ast.AST) -> set[str]:
    """Does calling function ``fn`` change state it does not own (a registry, a class)?

    Returns the global names written through: writes (``REGISTRY[name] = f``,
    ``Cls.attr = v``, ``setattr(Cls, ...)``) and mutating calls
    (``table.append(f)``, ``S.register(cls)``, ``ua.set_global_backend(...)``)
    whose target is not one of the function's own parameters or locals.
    """
    roots: set[str] = set()
    local: set[str] = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.arg):
            local.add(n.arg)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            local.add(n.id)
        elif isinstance(n, (*_DEFS, ast.ClassDef)) and n is not fn:
            local.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            local.update(a.asname or a.name.partition(".")[0] for a in n.names)
    for n in ast.walk(fn):
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = n.targets if isinstance(n, (ast.Assign, ast.Delete)) else [n.target]
            for t in targets:
                if isinstance(t, (ast.Attribute, ast.Subscript)):
                    r = _root(t)
                    if r is not None and r not in local:
                        roots.add(r)
        elif isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name) and f.id in ("setattr", "delattr") and n.args:
                r = _root(n.args[0])
                if r is not None and r not in local:
                    roots.add(r)
            elif isinstance(f, ast.Attribute):
                r = _root(f.value)
                if r is not None and r not in local and (
                        f.attr in _MUTATORS or f.attr.startswith(_MUTATOR_PREFIXES)):
                    roots.add(r)
    return roots


def module_effects(
    tree: ast.Module,
    find_def: Callable[[str], ast.AST | None] | None = None,
    import_time_attrs: set[str] | frozenset[str] = frozenset()
) -> list[tuple[int, str]]:
    """Top-level statements of a module that act on state the module does not own.

    Deferring the import of such a module would defer the act too: a backend it
    registers (``set_global_backend("scipy")``), a pickle reducer
    (``copyreg.pickle``), functions a decorator registers on a class (mpmath's
    ``@defun``), an attribute it sets on another module, a warning it issues.  A
    call whose result is bound (``log = getLogger(__name__)``), a method call on
    a name the module itself defines (``__all__.extend(...)``) and a helper of
    its own that touches nothing else only build the module's own namespace.
    ``find_def(name)`` returns the ``def`` a decorator name refers to (in this
    module or the module it was imported from), to see whether it registers.
    """
    own = _other_bindings(tree)
    defs = {st.name: st for st in tree.body if isinstance(st, _DEFS)}
    classes = {st.name: st for st in tree.body if isinstance(st, ast.ClassDef)}
    out: list[tuple[int, str]] = []

    def lookup(name: str) -> ast.AST | None:
        """The class or function ``name`` refers to (here, or where it was imported from)."""
        if name in classes:
            return classes[name]
        if name in defs:
            return defs[name]
        return find_def(name) if find_def is not None else None

    def visit(stmts: list[ast.stmt]) -> None:
        """Collect the acts among ``stmts`` (and in the top-level blocks they contain)."""
        for s in stmts:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for d in s.decorator_list:
                    f = d.func if isinstance(d, ast.Call) else d
                    if isinstance(d, ast.Call) and any(
                            isinstance(a, ast.Name) and a.id in classes for a in d.args):
                        # keyed on a class of this module (@dispatch(MyType, Expr)): it
                        # only matters once that class exists, i.e. after the import
                        continue
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    registers = "register" in name or name == "dispatch"
                    if not registers and isinstance(f, ast.Name):
                        target = lookup(f.id)
                        registers = target is not None and writes_global_state(target)
                    if registers:
                        out.append((s.lineno, f"@{ast.unparse(d)[:60]} registers {s.name}"))
                        break
                if isinstance(s, ast.ClassDef) and s.name in import_time_attrs:
                    # (the registry is read as REGISTRY.<class name>: a name some module
                    # reads while imported)
                    # a metaclass that registers the class being defined (sympy's
                    # Singleton installs it on S) matters when some module reads
                    # that registry by name while it is imported (S.EmptySequence)
                    for k in s.keywords:
                        if k.arg == "metaclass" and isinstance(k.value, ast.Name):
                            meta = lookup(k.value.id)
                            roots = set()
                            if isinstance(meta, ast.ClassDef):
                                for m in meta.body:
                                    if isinstance(m, _DEFS) and m.name in _META_HOOKS:
                                        roots |= global_write_roots(m)
                            if any(f"{r}.{s.name}" in import_time_attrs for r in roots):
                                out.append((s.lineno, f"metaclass {k.value.id} registers "
                                                      f"{s.name} {PINNED}"))
            elif isinstance(s, ast.Expr) and isinstance(s.value, (ast.Call, ast.Await)):
                call = s.value
                f = call.func if isinstance(call, ast.Call) else None
                if isinstance(call, ast.Call) and call.args and isinstance(
                        call.args[0], ast.Name) and call.args[0].id in classes:
                    continue  # copyreg.pickle(MyType, ...): keyed on this module's class
                if isinstance(f, ast.Attribute) and _root(f.value) in own:
                    continue  # a method of the module's own object
                if isinstance(f, ast.Name) and f.id in _OWN_BUILTINS:
                    continue  # exec/__import__ on the module's own namespace
                if isinstance(f, ast.Name):
                    helper = lookup(f.id)
                    if isinstance(helper, _DEFS) and not writes_global_state(helper):
                        continue  # a helper that only touches what it is given
                out.append((s.lineno, ast.unparse(s)[:80]))
            elif isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and isinstance(
                            t.slice, ast.Name) and t.slice.id in classes:
                        continue  # registry[MyType] = ...: keyed on its own class
                    for sub in ast.walk(t):
                        if isinstance(sub, (ast.Attribute, ast.Subscript)):
                            r = _root(sub)
                            if r in ("vars", "globals"):
                                continue  # vars()[name] = ...: the module's own namespace
                            if isinstance(sub, ast.Subscript) and isinstance(
                                    sub.slice, ast.Name) and sub.slice.id in classes:
                                continue  # registry[MyType] = ...: keyed on its own class
                            if r is not None and r not in own:
                                pinned = isinstance(sub, ast.Attribute) and (
                                    sub.attr in import_time_attrs)
                                out.append((s.lineno, ast.unparse(s)[:80]
                                            + (f" {PINNED}" if pinned else "")))
                                break
            elif isinstance(s, ast.If):
                if _is_main_guard(s.test):
                    continue
                if not _is_type_checking(s.test):
                    visit(s.body)
                visit(s.orelse)
            elif isinstance(s, (ast.Try, ast.For, ast.While, ast.With)):
                visit(s.body)
                for h in getattr(s, "handlers", []):
                    visit(h.body)
                visit(getattr(s, "orelse", []))
                visit(getattr(s, "finalbody", []))

    visit(tree.body)
    return out


def _referenced_names(program: Program) -> dict[str, set[str]]:
    """module -> names other modules import from it by name (``from m import name``)."""
    out: dict[str, set[str]] = {}
    for name, src in program.modules.items():
        if src.tree is None:
            continue
        package = name if src.is_package else name.rpartition(".")[0]
        for node in ast.walk(src.tree):
            if isinstance(node, ast.ImportFrom):
                base = relative_base(package, node.module, node.level)
                if base:
                    out.setdefault(base, set()).update(a.name for a in node.names)
                    if any(a.name == "*" for a in node.names):
                        out.setdefault("*", set()).add(base)
    return out


# -- applying ---------------------------------------------------------------------------------


def helper_paths(program: Program, modules: Iterable[str]) -> set[str]:
    """Where ``_memtrim_lazy.py`` must be written so each of ``modules`` can import it.

    Beside the top-level package (or module) the module belongs to: a folder on
    ``sys.path`` whenever the module itself is importable.
    """
    out = set()
    for m in modules:
        src = program.modules.get(m)
        if src is None:
            continue
        parts = m.split(".")
        folder = src.path.parent
        depth = len(parts) if src.is_package else len(parts) - 1
        for _ in range(depth):
            folder = folder.parent
        out.add((folder / f"{HELPER_MODULE}.py").as_posix())
    return out


def apply_lazy_edits(program: Program, edits: Iterable[Edit]) -> dict[str, str]:
    """Apply any subset of lazy-import edits; return the new text of every changed file."""
    by_path: dict[str, list[Edit]] = {}
    for e in edits:
        if e.kind not in (KIND, KIND_STAR):
            raise EditError(f"{e.id}: not a lazy-import edit")
        by_path.setdefault(e.path, []).append(e)
    out: dict[str, str] = {}
    modules = []
    for path, file_edits in sorted(by_path.items()):
        src = program.module_by_path(path)
        if src is None or src.text is None or src.tree is None:
            raise EditError(f"{path}: not an analysed module of the program")
        key = (path, tuple(sorted(e.id for e in file_edits)), hash(src.text))
        new = _APPLIED.get(key)
        if new is None:
            new = _apply_file(src.text, file_edits, path, src.tree)
            if len(_APPLIED) > 4000:
                _APPLIED.clear()
            _APPLIED[key] = new
        if new != src.text:
            out[path] = new
            modules.append(src.name)
    for helper in helper_paths(program, modules):
        out[helper] = HELPER_SOURCE
    return out


# (path, edit ids, text hash) -> rewritten text: bisection applies many subsets that
# differ in a few files only
_APPLIED: dict[tuple, str] = {}


@functools.lru_cache(maxsize=16)
def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


class _Text:
    """A file's text with ast positions (UTF-8 byte columns) mapped to string offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, col: int) -> int:
        """The string offset of (1-based line, UTF-8 byte column)."""
        raw = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.starts[line - 1] + len(raw.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        """The string offsets where ``node`` starts and ends."""
        return (self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
                self.offset(node.end_lineno, node.end_col_offset))  # type: ignore[attr-defined]

    def alone(self, node: ast.AST) -> bool:
        """True when nothing but whitespace (and a comment) shares the node's lines."""
        start, end = self.span(node)
        line_start = self.starts[node.lineno - 1]  # type: ignore[attr-defined]
        before = self.text[line_start:start]
        after_line = self.lines[node.end_lineno - 1]  # type: ignore[attr-defined]
        after = self.text[end:self.starts[node.end_lineno - 1] + len(after_line)]  # type: ignore[attr-defined]
        return not before.strip() and (not after.strip() or after.strip().startswith("#"))

    def indent(self, node: ast.AST) -> str:
        """The whitespace that starts the line ``node`` starts on."""
        line = self.lines[node.lineno - 1]  # type: ignore[attr-defined]
        return line[: len(line) - len(line.lstrip())]


def _import_text(stmt: ast.Import | ast.ImportFrom, aliases: list[ast.alias]) -> str:
    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in aliases)
    if isinstance(stmt, ast.Import):
        return f"import {names}"
    if stmt.module:
        return f"from {'.' * stmt.level}{stmt.module} import {names}"
    return f"from {'.' * stmt.level} import {names}"


def _apply_file(text: str, edits: list[Edit], path: str, tree: ast.Module | None = None) -> str:
    tree = tree if tree is not None else _parse(text)
    t = _Text(text)
    stmts = {(s.lineno, s.col_offset): s for s in tree.body}
    # statement -> aliases removed; star statements removed whole
    removed: dict[int, set[tuple[str, str | None, int]]] = {}
    star: set[int] = set()
    routes: dict[str, list] = {}
    functions: dict[tuple[int, int], list[str]] = {}
    dels: dict[int, set[str]] = {}
    softs: dict[int, set[str]] = {}
    rewrite_all = None
    matched = set()
    for e in sorted(edits, key=lambda e: e.line):
        first = e.evidence.get("target") or {}
        for target in [first, *first.get("also", [])]:
            s = stmts.get((int(target.get("line", -1)), int(target.get("col", -1))))
            if not isinstance(s, (ast.Import, ast.ImportFrom)):
                raise EditError(f"{e.id}: import statement not found")
            if target.get("star"):
                star.add(id(s))
            else:
                removed.setdefault(id(s), set()).add(
                    (target["alias"], target.get("asname"), int(target.get("occurrence", 0))))
        routes.update(e.evidence.get("routes", {}))
        for line, col, stmt_text in e.evidence.get("functions", []):
            lst = functions.setdefault((int(line), int(col)), [])
            if stmt_text not in lst:
                lst.append(stmt_text)
        for line, name, *soft in e.evidence.get("dels", []):
            if soft:
                softs.setdefault(int(line), set()).add(name)
            else:
                dels.setdefault(int(line), set()).add(name)
        if e.evidence.get("rewrite_all"):
            rewrite_all = e.evidence["rewrite_all"]
        matched.add(e.id)
    replacements: list[tuple[int, int, str]] = []
    first_stmt = None
    for s in tree.body:
        if id(s) in star or id(s) in removed:
            first_stmt = s
            break
    install = (f"import {HELPER_MODULE}; __getattr__ = {HELPER_MODULE}.install(globals(), "
               + "{" + ", ".join(f"{k!r}: {_route_text(tuple(v))}" for k, v in sorted(
                   routes.items())) + "})")
    for s in tree.body:
        if not isinstance(s, (ast.Import, ast.ImportFrom)) or (
                id(s) not in star and id(s) not in removed):
            continue
        keep: list[ast.alias] = []
        if id(s) not in star:
            gone = removed[id(s)]
            seen: dict[tuple, int] = {}
            for a in s.names:
                k = (a.name, a.asname)
                occ = seen[k] = seen.get(k, -1) + 1
                if (a.name, a.asname, occ) not in gone:
                    keep.append(a)
            missing = len(s.names) - len(keep) != len(gone)
            if missing:
                raise EditError(f"{path}:{s.lineno}: an alias to defer was not found")
        parts = [_import_text(s, keep)] if keep else []
        if s is first_stmt and routes:
            parts.append(install)
        replacements.append(_replace_stmt(t, s, "; ".join(parts)))
    for s in tree.body:
        if isinstance(s, ast.Delete) and (s.lineno in dels or s.lineno in softs):
            drop = dels.get(s.lineno, set())
            soft = softs.get(s.lineno, set()) - drop
            keep_t = [x for x in s.targets if not (isinstance(x, ast.Name) and x.id in drop | soft)]
            parts = ["del " + ", ".join(ast.unparse(x) for x in keep_t)] if keep_t else []
            parts += [f"globals().pop({x.id!r}, None)" for x in s.targets
                      if isinstance(x, ast.Name) and x.id in soft]
            replacements.append(_replace_stmt(t, s, "; ".join(parts)))
        elif (rewrite_all is not None and isinstance(s, ast.Assign)
              and s.lineno == int(rewrite_all[0])):
            replacements.append(_replace_stmt(t, s, f"__all__ = {list(rewrite_all[1])!r}"))
    replacements.extend(_function_inserts(t, tree, functions, path))
    new = _splice(text, replacements)
    if routes and _defines_getattr_after(tree, first_stmt):
        new = new.rstrip("\n") + f"\n__getattr__ = {HELPER_MODULE}.chain(globals())\n"
    _check_syntax(new, path)
    return new


def _check_syntax(new: str, path: str) -> None:
    """Refuse to hand out a rewrite that does not parse (a bug in an applier)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(new, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as e:
        raise EditError(f"{path}:{e.lineno}: rewritten code does not compile: {e.msg}") from None


def _defines_getattr_after(tree: ast.Module, first: ast.stmt | None) -> bool:
    if first is None:
        return False
    return any(isinstance(s, _DEFS) and s.name == "__getattr__" and s.lineno > first.lineno
               for s in tree.body)


def _replace_stmt(t: _Text, s: ast.stmt, new: str) -> tuple[int, int, str]:
    """Replace statement ``s`` by ``new`` (one line), keeping the file's line count."""
    start, end = t.span(s)
    span_lines = (s.end_lineno or s.lineno) - s.lineno
    if not new:
        new = "pass"
    return (start, end, new + "\n" * span_lines + ("" if span_lines == 0 else t.indent(s)))


def _function_inserts(t: _Text, tree: ast.Module, functions: dict, path: str
                      ) -> list[tuple[int, int, str]]:
    if not functions:
        return []
    out = []
    found = set()
    index = _defs_index(tree)
    for key, stmts in functions.items():
        node = index.get(key)
        if node is None or not stmts:
            continue
        found.add(key)
        out.append(_insert_in(t, node, "; ".join(stmts)))
    missing = set(functions) - found
    if missing:
        raise EditError(f"{path}: function(s) at {sorted(missing)} not found")
    return out


_DEF_INDEX: dict[int, tuple[ast.Module, dict]] = {}


def _defs_index(tree: ast.Module) -> dict[tuple[int, int], ast.AST]:
    """Every function of ``tree`` by (line, column); kept for the next subset of edits."""
    cached = _DEF_INDEX.get(id(tree))
    if cached is not None and cached[0] is tree:
        return cached[1]
    index = {}
    # functions are statements: walking statement lists is enough, and far cheaper
    stack: list[ast.AST] = list(tree.body)
    while stack:
        n = stack.pop()
        if isinstance(n, _DEFS):
            index[(n.lineno, n.col_offset)] = n
        for fld in ("body", "orelse", "finalbody"):
            sub = getattr(n, fld, None)
            if isinstance(sub, list):
                stack.extend(sub)
        for h in getattr(n, "handlers", ()) or ():
            stack.extend(h.body)
        for c in getattr(n, "cases", ()) or ():
            stack.extend(c.body)
    if len(_DEF_INDEX) > 4096:
        _DEF_INDEX.clear()
    _DEF_INDEX[id(tree)] = (tree, index)
    return index


def _insert_in(t: _Text, fn: ast.FunctionDef | ast.AsyncFunctionDef, imports: str
               ) -> tuple[int, int, str]:
    """Where and what to insert so ``imports`` runs first in ``fn`` (line numbers kept)."""
    body = fn.body
    first = body[0]
    doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
           and isinstance(first.value.value, str))
    if doc:
        # after the docstring, on its last line: the docstring stays the docstring
        end = t.offset(first.end_lineno, first.end_col_offset)  # type: ignore[arg-type]
        return (end, end, f"; {imports}")
    if not isinstance(first, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
                              ast.AsyncWith, ast.Try, ast.FunctionDef, ast.AsyncFunctionDef,
                              ast.ClassDef, ast.Match)) and type(first).__name__ != "TryStar":
        start = t.offset(first.lineno, first.col_offset)
        return (start, start, f"{imports}; ")
    # a compound first statement: a line of its own (later lines of the file shift)
    decorators = getattr(first, "decorator_list", None)
    line = decorators[0].lineno if decorators else first.lineno
    if line != fn.lineno:
        start = t.starts[line - 1]
        return (start, start, f"{t.indent(first)}{imports}\n")
    raise EditError(f"cannot insert an import in {fn.name} at line {fn.lineno}")


def _splice(text: str, replacements: list[tuple[int, int, str]]) -> str:
    out = []
    pos = 0
    for start, end, new in sorted(replacements, key=lambda r: (r[0], r[1])):
        if start < pos:
            raise EditError("overlapping rewrites")
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


# -- the step -------------------------------------------------------------------------------------


class LazyImportStep:
    """Step: defer imports to first use, in the application and in vendored packages.

    ``run`` records the workloads' imports (the probe), proposes the edits,
    builds the candidate once, records its imports again, and drops every
    deferred import whose module was loaded anyway (only run-time cost, no
    memory gain).  ``needs_gain``: the pipeline keeps the step only when it
    lowers the peak RSS by at least lambda %.
    """

    name = PASS_NAME
    description = "imports deferred to first use (module __getattr__ and function-local imports)"
    needs_gain = True
    # this step rewrites vendored third-party packages too: give it the whole tree
    vendored_code = True

    def __init__(self, *, refine: bool = True, only: Iterable[str] | None = None) -> None:
        self.refine = refine
        self.only = only
        self.notes: list[str] = []
        self.records: ImportRecords | None = None
        self.summary: dict | None = None

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """Probe the workloads, propose the deferrals, drop those that cannot gain."""
        req = ctx.request
        main = program.entry_module or None
        ctx.say(f"{self.name}: recording the workloads' imports")
        records = record_imports(ctx.app, req.python, req.python_args, main_name=main)
        self.records = records
        p = LazyImportPass(records, keep=[*ctx.app.keep, *req.keep], only=self.only)
        edits = p.run(program)
        self.notes = list(p.notes)
        self.summary = {
            "modules_loaded_by_workloads": len(records.loaded),
            "proposed": len(edits),
            "modules_rewritten": len({e.path for e in edits}),
            "star_imports": sum(1 for e in edits if e.kind == KIND_STAR),
            "function_local": sum(1 for e in edits if e.evidence.get("functions")),
        }
        if not edits or not self.refine:
            return edits
        ctx.say(f"{self.name}: {len(edits)} deferrals proposed; checking which modules still load")
        loaded = self._loaded_with(program, edits, ctx)
        if loaded is None:
            return edits
        refined = refine_edits(edits, loaded)
        self.summary.update({
            "modules_loaded_with_deferrals": len(loaded),
            "kept_eager_as_loaded_anyway": len(edits) - len(refined),
        })
        return refined

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """Rewrite the statements, functions and module hooks; add the helper module."""
        return apply_lazy_edits(program, edits)

    def _loaded_with(self, program: Program, edits: list[Edit], ctx: StepContext
                     ) -> set[str] | None:
        from memtrim.vendor import compile_tree

        req = ctx.request
        with tempfile.TemporaryDirectory(prefix="memtrim-lazy-") as tmp:
            cand = Path(tmp) / "tree"
            shutil.copytree(ctx.app.root, cand, symlinks=True,
                            ignore=shutil.ignore_patterns(".git", ".venv"))
            try:
                changes = self.apply(program, edits)
            except EditError as e:
                self.notes.append(f"refinement skipped: {e}")
                return None
            for rel, text in changes.items():
                target = cand / rel
                src = program.module_by_path(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(src.encode(text) if src is not None else text.encode())
            compile_tree(cand, python=req.python, python_args=req.python_args,
                         files=list(changes))
            records = record_imports(ctx.app.relocated(cand), req.python, req.python_args,
                                     main_name=program.entry_module or None)
            if records.failures:
                self.notes.append("refinement: the candidate failed under the probe ("
                                  + "; ".join(records.failures) + "); all deferrals proposed")
                return None
            return set(records.loaded)


def refine_edits(edits: Sequence[Edit], loaded: set[str]) -> list[Edit]:
    """Drop deferrals that import inside functions a module that is loaded anyway.

    A function-local import costs a lookup at every call; when its module is
    loaded in the workloads whatever we do, deferring it saves no memory.
    Deferrals served only by the module ``__getattr__`` cost nothing after the
    first lookup and are kept.
    """
    out = []
    for e in edits:
        if e.evidence.get("functions") and all(m in loaded for m in e.evidence.get("needs", [])):
            continue
        out.append(e)
    return out
