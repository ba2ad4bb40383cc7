"""Cold-code outlining (safe mode): code no profiled workload ran moves to a module loaded on use.

Seed 000 (section 4.3.1, Algorithm 2 lines 1-16) deletes the code that did not
run.  That is only right for fixed inputs (:mod:`memtrim.passes.specialize`).
Safe mode keeps every input working: cold functions, methods and large
untaken branches are *outlined* into a companion module next to their file,
``pkg/_memtrim_cold_mod.py``, which nothing imports until that code is reached.

What stays in the original module, in place of the cold code:

- a **function stub**: the same ``def`` line, decorators, signature (defaults
  are still evaluated once, in the original module), docstring and kind
  (a generator stub is a generator: ``return (yield from ...)``; a coroutine
  stub awaits), whose body loads the cold module and forwards every argument.
  The stub *is* the function object: ``__name__``, ``__qualname__``,
  ``__module__``, ``__doc__``, ``__wrapped__`` chains built by decorators,
  ``inspect.signature``, pickling by reference, identity checks all see it.
- a **block stub**: one call into the cold module that passes the local
  variables the block reads, then re-binds the ones it assigns and replays its
  ``return``/``break``/``continue``.

How the cold code runs (the robust choice): it is compiled in the cold module,
but every function is re-created with ``types.FunctionType(code,
original_module.__dict__, ...)``, so it reads and writes the *original*
module's globals, live (rebinding, ``global`` statements, monkeypatching all
behave as before); no global reference is rewritten.  The stub hands the cold
module a probe, ``lambda: (free, vars)``: its ``__globals__`` is the original
module's namespace and its ``__closure__`` holds the very cells the original
function would have closed over (enclosing functions' variables, and
``__class__``, so zero-argument ``super()`` works).  In the cold module each
piece keeps its enclosing classes (name mangling) and enclosing functions
(as parameter-only wrappers, so the compiler gives it the same free variables).

Imports used only by outlined code move too: they run, into the original
module's globals, when the first piece that reads them is loaded.  Only
imports whose deferral cannot be observed are moved (no guard of the static
analysis, no use from other modules, a module free of import side effects).
This is what makes outlining lower peak RSS: ``smtplib`` or ``http.client``
used by one cold handler is no longer loaded at all on the profiled paths.

Every line of code that stays keeps its line number (stubs are padded), so
tracebacks, warnings and ``%(lineno)d`` in logs are unchanged on the profiled
paths; the cold module mirrors the original's line numbers where it can.

The edits are independent: any subset applies.  An import is moved only when
every outlined piece that reads it is in the subset; otherwise it stays.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import symtable
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtrim.analysis.deadcode import (
    DeadCodeReport,
    block_span,
    blocks_of,
    classify,
    first_line,
    has_code,
    header_end,
    is_docstring,
    qualname_of,
)
from memtrim.analysis.symbols import keep_comment_lines
from memtrim.edits import Edit, EditError
from memtrim.program import ModuleSource, Program

if TYPE_CHECKING:
    from memtrim.analysis.coverage_run import CoverageResult
    from memtrim.analysis.references import ProgramGraph
    from memtrim.pipeline import StepContext

PASS_NAME = "outline"
COLD_PREFIX = "_memtrim_cold_"
BRANCH_KINDS = frozenset({"if", "else", "loop-body", "loop-else", "except", "try-else", "case"})

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_TRY = tuple(getattr(ast, n) for n in ("Try", "TryStar") if hasattr(ast, n))
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
# Local names the stubs use; a function that already uses them is left alone.
_STUB_NAMES = frozenset({"_memtrim_c", "_memtrim_r"})
# Methods the interpreter calls in states where loading a module is unsafe
# (interpreter shutdown, half-built objects during unpickling, attribute lookup).
_NEVER_OUTLINE = frozenset({
    "__del__", "__getattr__", "__getattribute__", "__setattr__", "__delattr__",
})
# Code that looks at its callers' frames would see the stub instead.
_FRAME_WORDS = frozenset({
    "_getframe", "currentframe", "f_back", "getouterframes", "extract_stack",
    "format_stack", "print_stack", "stacklevel", "stack",
})
# Code that reads the local namespace as a whole (a moved block would not see it).
_NAMESPACE_CALLS = frozenset({"locals", "vars", "dir", "eval", "exec"})

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


# -- text helpers -------------------------------------------------------------------------


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split only where Python's tokenizer ends a line."""
    return _LINE.findall(text)


def newline_of(text: str) -> str:
    """The file's line ending (the first one found; ``\\n`` by default)."""
    m = re.search(r"\r\n|\r|\n", text)
    return m.group(0) if m else "\n"


def char_col(line: str, byte_col: int) -> int:
    """An AST column (UTF-8 bytes) as an index into ``line`` (characters)."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def leading(line: str) -> str:
    """The indentation of ``line``."""
    return line[: len(line) - len(line.lstrip(" \t"))]


@dataclass(frozen=True)
class LineEdit:
    """Replace lines ``first..last`` by ``new`` (at most as many lines; the rest is blank)."""

    first: int
    last: int
    new: tuple[str, ...]


def apply_line_edits(text: str, edits: Iterable[LineEdit]) -> str:
    """Apply non-overlapping line edits; every line keeps its number (blank padding)."""
    lines = split_lines(text)
    nl = newline_of(text)
    ordered = sorted(edits, key=lambda e: e.first, reverse=True)
    prev_first = None
    for e in ordered:
        if prev_first is not None and e.last >= prev_first:
            raise EditError(f"overlapping edits at lines {e.first}-{e.last}")
        prev_first = e.first
        count = e.last - e.first + 1
        if len(e.new) > count:
            raise EditError(f"replacement of lines {e.first}-{e.last} is longer than them")
        old_last = lines[e.last - 1]
        ending = old_last[len(old_last.rstrip("\r\n")):]
        repl = [ln + nl for ln in e.new] + [nl] * (count - len(e.new))
        repl[-1] = repl[-1][: len(repl[-1]) - len(nl)] + ending
        lines[e.first - 1: e.last] = repl
    return "".join(lines)


def check_compiles(text: str, path: str) -> None:
    """EditError unless ``text`` compiles (a generated file is never handed out broken)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise EditError(f"{path}:{e.lineno}: rewritten code does not compile: {e.msg}") from None


# -- scopes -------------------------------------------------------------------------------


class Scopes:
    """The symbol tables of one module, found by the AST node they belong to."""

    def __init__(self, text: str, path: str) -> None:
        self.top = symtable.symtable(text, path, "exec")
        self._by_key: dict[tuple[str, str, int], symtable.SymbolTable] = {}
        stack = [self.top]
        while stack:
            t = stack.pop()
            for c in t.get_children():
                self._by_key.setdefault((c.get_type(), c.get_name(), c.get_lineno()), c)
                stack.append(c)

    def table(self, node: ast.AST | None) -> symtable.SymbolTable:
        """The table of a def or class (the module's for None)."""
        if node is None:
            return self.top
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        t = self._by_key.get((kind, node.name, node.lineno))  # type: ignore[attr-defined]
        if t is None:
            raise EditError(f"no symbol table for {node.name} at line {node.lineno}")  # type: ignore[attr-defined]
        return t

    def frees(self, fn: ast.AST) -> tuple[str, ...]:
        """The free variables of a function (names from enclosing functions, ``__class__``)."""
        t = self.table(fn)
        assert isinstance(t, symtable.Function)
        return tuple(sorted(t.get_frees()))


def _param_names(args: ast.arguments) -> list[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg:
        names.append(args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append(args.kwarg.arg)
    return names


def _bare_params(args: ast.arguments) -> str:
    """A parameter list with the same names and kinds, without defaults or annotations."""
    parts = [a.arg for a in args.posonlyargs]
    if args.posonlyargs:
        parts.append("/")
    parts += [a.arg for a in args.args]
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        parts.append("*")
    parts += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return ", ".join(parts)


def _forward_args(args: ast.arguments) -> str:
    """The call arguments that pass every parameter on, by position or keyword as declared."""
    parts = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    parts += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return ", ".join(parts)


def _walk_own(nodes: Iterable[ast.AST]) -> Iterable[ast.AST]:
    """Walk ``nodes`` without entering nested function, lambda or class bodies."""
    stack = list(nodes)
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, (*_FUNCS, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(n))


def _contains_yield(nodes: Iterable[ast.AST]) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _walk_own(nodes))


def _names_in(nodes: Iterable[ast.AST]) -> set[str]:
    return {n.id for root in nodes for n in ast.walk(root) if isinstance(n, ast.Name)}


def _frame_use(nodes: Iterable[ast.AST]) -> str | None:
    for root in nodes:
        for n in ast.walk(root):
            word = None
            if isinstance(n, ast.Name):
                word = n.id
            elif isinstance(n, ast.Attribute):
                word = n.attr
            elif isinstance(n, ast.keyword):
                word = n.arg
            if word in _FRAME_WORDS:
                return word
    return None


def _target_names(t: ast.expr) -> list[str]:
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, (ast.Tuple, ast.List)):
        return [n for e in t.elts for n in _target_names(e)]
    if isinstance(t, ast.Starred):
        return _target_names(t.value)
    return []


def _definite(stmts: Sequence[ast.stmt]) -> set[str]:
    """Names that running ``stmts`` to their end binds for certain (conservative)."""
    out: set[str] = set()
    for s in stmts:
        if isinstance(s, ast.Assign):
            for t in s.targets:
                out.update(_target_names(t))
        elif isinstance(s, (ast.AnnAssign, ast.AugAssign)):
            if isinstance(s.target, ast.Name) and (
                not isinstance(s, ast.AnnAssign) or s.value is not None
            ):
                out.add(s.target.id)
        elif isinstance(s, (ast.Import, ast.ImportFrom)):
            for a in s.names:
                if a.name != "*":
                    out.add(a.asname or a.name.split(".")[0])
        elif isinstance(s, (*_FUNCS, ast.ClassDef)):
            out.add(s.name)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:
                    out.update(_target_names(item.optional_vars))
        elif isinstance(s, ast.If) and s.orelse:
            out |= _definite(s.body) & _definite(s.orelse)
    return out


def _deleted(nodes: Iterable[ast.AST]) -> set[str]:
    out = set()
    for n in _walk_own(nodes):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del):
            out.add(n.id)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)  # unbound again at the end of the handler
    return out


def _pattern_names(p: ast.pattern) -> set[str]:
    out = set()
    for n in ast.walk(p):
        for attr in ("name", "rest"):
            v = getattr(n, attr, None)
            if isinstance(v, str):
                out.add(v)
    return out


# -- units ----------------------------------------------------------------------------------


class Rejected(Exception):
    """This piece of cold code cannot be outlined; the message says why."""


@dataclass
class Unit:
    """One piece of cold code to outline: a function body or a block."""

    kind: str  # "function" | "block"
    key: str
    qualname: str  # the function's, or the enclosing scope's for a block
    chain: tuple[ast.AST, ...]  # enclosing classes/functions of the cold def, outermost first
    first: int  # the original lines the stub replaces
    last: int
    node: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    stmts: list[ast.stmt] = field(default_factory=list)
    owner: ast.AST | None = None  # block: the header (or handler/case) that owns it
    free: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    globals_written: tuple[str, ...] = ()
    nonlocals_written: tuple[str, ...] = ()
    module_level: bool = False
    names: frozenset[str] = frozenset()
    statements: int = 0
    alias: str | None = None  # the cold def's name when the original's is taken (a setter)

    @property
    def cold_name(self) -> str:
        """The name of the def in the cold module."""
        if self.alias:
            return self.alias
        if self.kind == "function":
            assert self.node is not None
            return self.node.name
        return f"_memtrim_block_{self.first}"

    @property
    def body_nodes(self) -> list[ast.AST]:
        """The AST that moves to the cold module (a function's body, a block's statements)."""
        if self.kind == "function":
            assert self.node is not None
            return list(self.node.body)
        return list(self.stmts)


class ModulePlan:
    """Everything outlining needs to know about one module (text, trees, scopes)."""

    def __init__(self, program: Program, src: ModuleSource, entry_script: str | None) -> None:
        assert src.text is not None and src.tree is not None
        self.src = src
        self.path = src.path.as_posix()
        self.text = src.text
        self.tree = src.tree
        self.lines = split_lines(self.text)
        self.scopes = Scopes(self.text, self.path)
        stem = src.path.stem
        self.cold_stem = COLD_PREFIX + stem
        self.cold_path = (src.path.parent / f"{self.cold_stem}.py").as_posix()
        self.keep_lines = keep_comment_lines(self.text)
        self.import_form = _import_form(program, src, entry_script)
        self.program = program
        self.program_modules = set(program.modules)
        self.prefixes = program.search_prefixes
        self._imported_from: dict[str, str] | None = None

    def imported_from(self) -> dict[str, str]:
        """Top-level names bound by imports -> the module they come from (absolute)."""
        if self._imported_from is None:
            out: dict[str, str] = {}
            for s in self.tree.body:
                if isinstance(s, (ast.Import, ast.ImportFrom)):
                    for a in s.names:
                        if a.name != "*":
                            out[a.asname or a.name.split(".")[0]] = _absolute(self, s, a)
            self._imported_from = out
        return self._imported_from

    def in_program(self, module: str) -> bool:
        """Whether ``module`` (absolute, as imported) is one of the program's modules."""
        mods = self.program_modules
        return any((f"{p}.{module}" if p else module) in mods for p in self.prefixes)

    def line(self, n: int) -> str:
        """Line ``n`` without its ending."""
        return self.lines[n - 1].rstrip("\r\n")

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node``."""
        seg = ast.get_source_segment(self.text, node)
        if seg is None:
            raise Rejected("no source text")
        return seg

    # -- stubs -----------------------------------------------------------------

    def import_lines(self, ind: str) -> list[str]:
        """The lines that bind ``_memtrim_c`` to the cold module, from where the stub runs."""
        name = self.cold_stem
        if self.import_form == "relative":
            return [f"{ind}from . import {name} as _memtrim_c"]
        if self.import_form == "absolute":
            return [f"{ind}import {name} as _memtrim_c"]
        return [
            f"{ind}if __package__: from . import {name} as _memtrim_c",
            f"{ind}else: import {name} as _memtrim_c",
        ]

    @staticmethod
    def probe(free: Sequence[str]) -> str:
        """The probe lambda: its globals and closure are the original's."""
        if not free:
            return "lambda: 0"
        return "lambda: (" + ", ".join(free) + ",)"


def _import_form(program: Program, src: ModuleSource, entry_script: str | None) -> str:
    """How a stub imports the cold module: ``relative``, ``absolute``, or ``either``."""
    if entry_script is not None and src.path.as_posix() == entry_script:
        return "absolute"  # run as __main__: its directory is sys.path[0]
    parent = src.path.parent
    if parent == Path("."):
        return "absolute"
    if src.is_package or program.module_by_path(parent / "__init__.py") is not None:
        return "relative"
    return "either"  # a namespace package: decided at run time by __package__


def _chain_ok(chain: Sequence[ast.AST]) -> None:
    for c in chain:
        if not isinstance(c, (*_FUNCS, ast.ClassDef)):
            raise Rejected("not inside functions and classes only")


def plan_function(plan: ModulePlan, fn: ast.AST, chain: tuple[ast.AST, ...],
                  min_lines: int) -> Unit:
    """A function whose body can move to the cold module, or Rejected."""
    assert isinstance(fn, _FUNCS)
    _chain_ok(chain)
    if fn.name in _NEVER_OUTLINE:
        raise Rejected(f"{fn.name} may run where loading a module is unsafe")
    if fn.name.startswith("_memtrim"):
        raise Rejected("generated by memtrim")
    is_gen = _contains_yield(fn.body)
    if isinstance(fn, ast.AsyncFunctionDef) and is_gen:
        raise Rejected("async generator (a stub cannot forward asend/athrow)")
    doc = fn.body[0] if fn.body and is_docstring(fn.body[0]) else None
    body = fn.body[1:] if doc is not None else fn.body
    if not body or not has_code(body):
        raise Rejected("no code")
    body_first = first_line(body[0])
    if first_line(fn.body[0]) <= header_end(fn) or body_first <= (doc.end_lineno if doc else 0):
        raise Rejected("body shares a line with its header or docstring")
    last = fn.end_lineno or fn.lineno
    if last - body_first + 1 < min_lines:
        raise Rejected(f"body shorter than {min_lines} lines")
    params = set(_param_names(fn.args))
    if params & _STUB_NAMES:
        raise Rejected("a parameter is named like memtrim's stub variables")
    word = _frame_use(body)
    if word is not None:
        raise Rejected(f"uses '{word}' (it would see the stub's frame)")
    if any(line in plan.keep_lines for line in range(first_line(fn), last + 1)):
        raise Rejected("marked '# memtrim: keep'")
    for d in fn.decorator_list:
        why = _decorator_blocker(plan, d)
        if why:
            raise Rejected(why)
    free = plan.scopes.frees(fn)
    qual = qualname_of((*chain, fn))
    unit = Unit(
        kind="function", key=f"{qual}@{fn.lineno}", qualname=qual, chain=chain,
        first=first_line(fn.body[0]), last=last, node=fn, free=free,
        names=frozenset(_names_in(body)),
        statements=sum(1 for s in body for n in ast.walk(s) if isinstance(n, ast.stmt)),
    )
    _stub_function(plan, unit)  # raises Rejected when the stub does not fit
    return unit


# Decorators that only wrap, mark or register the function object: they are happy
# with the stub (they never look at its code).
_SAFE_DECORATORS = frozenset({
    "staticmethod", "classmethod", "property", "setter", "getter", "deleter", "abstractmethod",
    "cache", "lru_cache", "cached_property", "wraps", "contextmanager", "asynccontextmanager",
    "overload", "override", "final", "singledispatch", "singledispatchmethod", "register",
    "total_ordering", "no_type_check", "coroutine", "unique", "dataclass",
})


def _decorator_blocker(plan: ModulePlan, d: ast.expr) -> str | None:
    """Why decorator ``d`` may not see a stub in place of the function (None: it may)."""
    func = d.func if isinstance(d, ast.Call) else d
    last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if last in _SAFE_DECORATORS:
        return None
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    if isinstance(root, ast.Name):
        if root.id in _module_bindings(plan.tree) and root.id not in plan.imported_from():
            return None  # defined in this module
        module = plan.imported_from().get(root.id)
        if module is not None and (module.startswith(".") or plan.in_program(module)):
            return None
        if module is not None and plan.src.name.rpartition(".")[0] and module.startswith(
                plan.src.name.rpartition(".")[0] + "."):
            return None
    return (f"decorator @{ast.unparse(func)} comes from outside the program and may look at "
            "the function's code")


def _stub_function(plan: ModulePlan, unit: Unit) -> LineEdit:
    fn = unit.node
    assert fn is not None
    doc = fn.body[0] if is_docstring(fn.body[0]) else None
    body = fn.body[1:] if doc is not None else fn.body
    ind = leading(plan.lines[first_line(body[0]) - 1])
    out: list[str] = []
    if doc is not None:
        out += [plan.line(n) for n in range(first_line(doc), (doc.end_lineno or doc.lineno) + 1)]
    call = (f"_memtrim_c._memtrim_get({unit.key!r}, {plan.probe(unit.free)})"
            f"({_forward_args(fn.args)})")
    if _contains_yield(fn.body):
        ret = f"return (yield from {call})"
    elif isinstance(fn, ast.AsyncFunctionDef):
        ret = f"return await {call}"
    else:
        ret = f"return {call}"
    imports = plan.import_lines(ind)
    if len(imports) == 1:
        out.append(f"{imports[0]}; {ret.strip()}")
    else:
        out += imports + [ind + ret]
    if len(out) > unit.last - unit.first + 1:
        raise Rejected("the stub would be longer than the body")
    return LineEdit(unit.first, unit.last, tuple(out))


def _path_to(
    body: list[ast.stmt], block_first: ast.stmt
) -> list[tuple[list[ast.stmt], int, ast.AST, list[ast.stmt]]]:
    """From a function body down to the block starting with ``block_first``.

    One entry per level: (statements, index of the compound statement, the
    node owning the block descended into (the statement, a handler or a case),
    that block).
    """
    for i, s in enumerate(body):
        if isinstance(s, (*_FUNCS, ast.ClassDef)):
            continue
        for _f, stmts, owner in blocks_of(s):
            if not stmts:
                continue
            if stmts[0] is block_first:
                return [(body, i, owner, stmts)]
            sub = _path_to(stmts, block_first)
            if sub:
                return [(body, i, owner, stmts), *sub]
    return []


class _BlockNames(ast.NodeVisitor):
    """Reads and writes of one block at the level of its enclosing scope."""

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.deletes: set[str] = set()
        self.nested_names: set[str] = set()  # every name inside nested lambdas/defs/classes
        self.declared: list[str] = []  # global/nonlocal statements inside the block
        self.calls: set[str] = set()
        self.super_or_class = False

    def visit_Name(self, n: ast.Name) -> None:
        if isinstance(n.ctx, ast.Load):
            self.reads.add(n.id)
            if n.id in ("super", "__class__"):
                self.super_or_class = True
        elif isinstance(n.ctx, ast.Store):
            self.writes.add(n.id)
        else:
            self.deletes.add(n.id)

    def visit_AugAssign(self, n: ast.AugAssign) -> None:
        if isinstance(n.target, ast.Name):
            self.reads.add(n.target.id)
        self.generic_visit(n)

    def visit_Call(self, n: ast.Call) -> None:
        if isinstance(n.func, ast.Name):
            self.calls.add(n.func.id)
        self.generic_visit(n)

    def visit_Global(self, n: ast.Global) -> None:
        self.declared += n.names

    def visit_Nonlocal(self, n: ast.Nonlocal) -> None:
        self.declared += n.names

    def _alias(self, n: ast.Import | ast.ImportFrom) -> None:
        for a in n.names:
            if a.name == "*":
                self.declared.append("*")
            else:
                self.writes.add(a.asname or a.name.split(".")[0])

    visit_Import = _alias
    visit_ImportFrom = _alias

    def visit_ExceptHandler(self, n: ast.ExceptHandler) -> None:
        if n.name:
            self.writes.add(n.name)
            self.deletes.add(n.name)
        self.generic_visit(n)

    def visit_MatchAs(self, n: ast.MatchAs) -> None:
        if n.name:
            self.writes.add(n.name)
        self.generic_visit(n)

    def visit_MatchStar(self, n: ast.MatchStar) -> None:
        if n.name:
            self.writes.add(n.name)

    def visit_MatchMapping(self, n: ast.MatchMapping) -> None:
        if n.rest:
            self.writes.add(n.rest)
        self.generic_visit(n)

    def _scope(self, n: ast.AST, outer: list[ast.AST], inner: list[ast.AST]) -> None:
        for o in outer:
            self.visit(o)
        self.nested_names |= _names_in(inner)

    def visit_FunctionDef(self, n: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.writes.add(n.name)
        a = n.args
        outer: list[ast.AST] = [*n.decorator_list, *a.defaults,
                                *(d for d in a.kw_defaults if d is not None)]
        self._scope(n, outer, [*n.body, a])

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, n: ast.ClassDef) -> None:
        self.writes.add(n.name)
        self._scope(n, [*n.decorator_list, *n.bases, *n.keywords], list(n.body))

    def visit_Lambda(self, n: ast.Lambda) -> None:
        a = n.args
        self._scope(n, [*a.defaults, *(d for d in a.kw_defaults if d is not None)], [n.body])

    def visit_GeneratorExp(self, n: ast.GeneratorExp) -> None:
        # lazy: it may run after the block, so it must not close over the block's locals
        self.visit(n.generators[0].iter)
        self.nested_names |= _names_in([n.elt, *n.generators])

    def _comp(self, n: ast.ListComp | ast.SetComp | ast.DictComp) -> None:
        # run at once: the names it reads are reads of the block (its own targets excepted)
        own = {t for g in n.generators for t in _target_names(g.target)}
        for node in ast.walk(n):
            if isinstance(node, ast.Name) and node.id not in own:
                if isinstance(node.ctx, ast.Load):
                    self.reads.add(node.id)
            elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                self.writes.add(node.target.id)
            elif isinstance(node, _SCOPE_NODES):
                self.nested_names |= _names_in([node])

    visit_ListComp = _comp
    visit_SetComp = _comp
    visit_DictComp = _comp


def plan_block(plan: ModulePlan, stmts: list[ast.stmt], owner: ast.AST, header: ast.stmt,
               chain: tuple[ast.AST, ...], min_lines: int) -> Unit:
    """A block whose statements can move to the cold module, or Rejected."""
    _chain_ok(chain)
    if chain and isinstance(chain[-1], ast.ClassDef):
        raise Rejected("a block of a class body")
    enc = chain[-1] if chain else None
    first, last = block_span(stmts)
    if first <= header_end(header) or first <= getattr(owner, "lineno", 0):
        raise Rejected("block shares a line with its header")
    if last - first + 1 < min_lines:
        raise Rejected(f"block shorter than {min_lines} lines")
    if any(line in plan.keep_lines for line in range(first, last + 1)):
        raise Rejected("marked '# memtrim: keep'")
    for n in _walk_own(stmts):
        if isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            raise Rejected("yields or awaits")
    names = _BlockNames()
    for s in stmts:
        names.visit(s)
    if names.declared:
        raise Rejected("declares global/nonlocal or imports *")
    if names.super_or_class:
        raise Rejected("uses super() or __class__")
    if names.calls & _NAMESPACE_CALLS:
        raise Rejected(f"calls {sorted(names.calls & _NAMESPACE_CALLS)[0]}()")
    word = _frame_use(stmts)
    if word is not None:
        raise Rejected(f"uses '{word}'")
    flags = _flags(stmts)
    qual = qualname_of(chain)
    key = f"{qual or '<module>'}#{first}"
    unit = Unit(
        kind="block", key=key, qualname=qual, chain=chain[:-1] if enc else (), first=first,
        last=last, stmts=list(stmts), owner=owner, flags=flags,
        names=frozenset(_names_in(stmts)),
        statements=sum(1 for s in stmts for n in ast.walk(s) if isinstance(n, ast.stmt)),
    )
    if enc is None:
        if flags & {"break", "continue"}:
            raise Rejected("break/continue at module level")
        unit.module_level = True
        unit.globals_written = tuple(sorted(names.writes | names.deletes))
    else:
        _block_locals(plan, unit, enc, names)
    _stub_block(plan, unit)  # raises Rejected when it does not fit
    return unit


def _flags(stmts: list[ast.stmt]) -> frozenset[str]:
    """``return``/``break``/``continue`` of the block that leave it."""
    out: set[str] = set()

    def walk(nodes: Sequence[ast.AST], in_loop: bool) -> None:
        for n in nodes:
            if isinstance(n, (*_FUNCS, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(n, ast.Return):
                out.add("return")
            elif isinstance(n, ast.Break) and not in_loop:
                out.add("break")
            elif isinstance(n, ast.Continue) and not in_loop:
                out.add("continue")
            if isinstance(n, _LOOPS):
                walk([n.target] if isinstance(n, (ast.For, ast.AsyncFor)) else [n.test],
                     in_loop)
                walk(n.body, True)
                walk(n.orelse, in_loop)
            else:
                walk(list(ast.iter_child_nodes(n)), in_loop)

    walk(stmts, False)
    return frozenset(out)


def _block_locals(plan: ModulePlan, unit: Unit, enc: ast.AST, names: _BlockNames) -> None:
    """Inputs, outputs and declarations of a block inside function ``enc``."""
    assert isinstance(enc, _FUNCS)
    table = plan.scopes.table(enc)
    enc_names = _BlockNames()
    for s in enc.body:
        enc_names.visit(s)
    if enc_names.calls & _NAMESPACE_CALLS:
        raise Rejected("the function reads its namespace (locals/vars/dir/eval/exec)")
    if enc_names.reads & _STUB_NAMES or enc_names.writes & _STUB_NAMES:
        raise Rejected("the function uses memtrim's stub variable names")

    def sym(name: str) -> symtable.Symbol | None:
        try:
            return table.lookup(name)
        except KeyError:
            return None

    locals_ = {n for n in table.get_identifiers() if (s := sym(n)) and s.is_local()}
    for n in names.nested_names & locals_:
        raise Rejected(f"a nested function or generator in it closes over local {n!r}")
    block_ids = {id(n) for s in unit.stmts for n in ast.walk(s)}
    outside_names = {
        n.id for n in ast.walk(enc) if isinstance(n, ast.Name) and id(n) not in block_ids
    } | set(_param_names(enc.args))
    # names bound by headers (for targets, with/except/match captures) outside the block
    for n in ast.walk(enc):
        if id(n) in block_ids:
            continue
        if isinstance(n, ast.ExceptHandler) and n.name:
            outside_names.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            outside_names |= {a.asname or a.name.split(".")[0] for a in n.names}
        elif isinstance(n, (*_FUNCS, ast.ClassDef)) and n is not enc:
            outside_names.add(n.name)
        elif isinstance(n, ast.pattern):
            outside_names |= _pattern_names(n)
    path = _path_to(enc.body, unit.stmts[0])
    if not path:
        raise Rejected("block not found in its function")
    bound = set(_param_names(enc.args))
    entry: set[str] = set()  # bound by the headers on the way in, right before the inner code
    handlers_on_path: set[int] = set()
    in_guarded = False
    for stmts, index, owner, inner in path:
        bound |= _definite(stmts[:index])
        stmt = stmts[index]
        if isinstance(stmt, (*_TRY, ast.With, ast.AsyncWith)):
            in_guarded = True
        if isinstance(stmt, (ast.For, ast.AsyncFor)) and inner is stmt.body:
            entry |= set(_target_names(stmt.target))
        elif isinstance(stmt, (ast.With, ast.AsyncWith)) and inner is stmt.body:
            for item in stmt.items:
                if item.optional_vars is not None:
                    entry |= set(_target_names(item.optional_vars))
        elif isinstance(stmt, _TRY) and inner is stmt.orelse:
            bound |= _definite(stmt.body)
        if isinstance(owner, ast.ExceptHandler):
            handlers_on_path.add(id(owner))
            if owner.name:
                entry.add(owner.name)
        elif isinstance(owner, ast.match_case):
            entry |= _pattern_names(owner.pattern)
        for n in _walk_own([getattr(stmt, "test", None) or ast.Pass()]):
            if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                entry.add(n.target.id)
    dels = {n.id for n in _walk_own(enc.body)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del)}
    # `except E as e` unbinds e when the handler ends: e is unsure after other handlers
    other_handlers = {n.name for n in _walk_own(enc.body) if isinstance(n, ast.ExceptHandler)
                      and n.name and id(n) not in handlers_on_path}
    bound = (bound - dels - other_handlers) | (entry - dels)
    inputs: set[str] = set()
    outputs: set[str] = set()
    gwrites: set[str] = set()
    nwrites: set[str] = set()
    free: set[str] = set()
    for n in sorted(names.reads | names.writes | names.deletes):
        s = sym(n)
        if s is None:
            continue
        if s.is_free():
            free.add(n)
            if n in names.writes or n in names.deletes:
                nwrites.add(n)
            continue
        if s.is_global() or s.is_declared_global():
            if n in names.writes or n in names.deletes:
                gwrites.add(n)
            continue
        if not s.is_local():
            continue
        if n in names.reads and n in outside_names:
            if n not in bound:
                raise Rejected(f"local {n!r} may be unbound when the block starts")
            inputs.add(n)
        if (n in names.writes or n in names.deletes) and n in outside_names:
            outputs.add(n)
    if outputs:
        if names.deletes & outputs:
            raise Rejected("deletes a local the function uses elsewhere")
        if unit.flags & {"break", "continue"}:
            raise Rejected("leaves a loop after assigning locals the function uses")
        if in_guarded:
            raise Rejected("assigns locals inside try/with (an exception would lose them)")
        done = _definite(unit.stmts) - _deleted(unit.stmts)
        missing = outputs - done
        if missing:
            raise Rejected(f"may not assign {sorted(missing)[0]!r} on every path")
    unit.inputs = tuple(sorted(inputs))
    unit.outputs = tuple(sorted(outputs))
    unit.free = tuple(sorted(free))
    unit.globals_written = tuple(sorted(gwrites))
    unit.nonlocals_written = tuple(sorted(nwrites))


def _stub_block(plan: ModulePlan, unit: Unit) -> LineEdit:
    ind = leading(plan.lines[unit.first - 1])
    call = (f"_memtrim_c._memtrim_get({unit.key!r}, {plan.probe(unit.free)})"
            f"({', '.join(unit.inputs)})")
    needs_r = bool(unit.outputs or unit.flags)
    imports = plan.import_lines(ind)
    out: list[str] = []
    first_stmt = f"_memtrim_r = {call}" if needs_r else call
    if unit.module_level:
        first_stmt += "; del _memtrim_c"
    if len(imports) == 1:
        out.append(f"{imports[0]}; {first_stmt}")
    else:
        out += imports + [ind + first_stmt]
    if "return" in unit.flags:
        out.append(f"{ind}if _memtrim_r[0] == 1: return _memtrim_r[1]")
    if "break" in unit.flags:
        out.append(f"{ind}if _memtrim_r[0] == 2: break")
    if "continue" in unit.flags:
        out.append(f"{ind}if _memtrim_r[0] == 3: continue")
    if unit.outputs:
        out.append(f"{ind}{', '.join(unit.outputs)}, = _memtrim_r[1]")
    if len(out) > unit.last - unit.first + 1:
        raise Rejected("the stub would be longer than the block")
    return LineEdit(unit.first, unit.last, tuple(out))


# -- the cold module ------------------------------------------------------------------------


@dataclass(frozen=True)
class MovedImport:
    """One name bound by a top-level import, moved into the cold module's loader.

    ``name`` is the global it binds, or the dotted submodule whose loading moved
    (``logging.handlers``: the name ``logging`` stays bound by ``import logging``).
    """

    name: str
    line: int
    code: str  # statements binding the local ``value`` (one per line)
    static: str  # the import as written, for the static-analysis block
    binds: bool = True


def _cold_def(plan: ModulePlan, unit: Unit) -> tuple[int, list[str]]:
    """(first line, lines) of the unit's def in the cold module, mirroring the original lines."""
    if unit.kind == "function":
        fn = unit.node
        assert fn is not None
        ind = leading(plan.lines[fn.lineno - 1])
        kw = "async def" if isinstance(fn, ast.AsyncFunctionDef) else "def"
        header = f"{ind}{kw} {unit.cold_name}({_bare_params(fn.args)}):"
        body_first = first_line(fn.body[0])
        lines = [plan.line(n) for n in range(body_first, unit.last + 1)]
        pad = body_first - fn.lineno - 1
        return fn.lineno, [header, *([""] * pad), *lines]
    # a block: a function of its own, next to the function that held it
    ind_body = leading(plan.lines[unit.first - 1])
    if unit.module_level:
        def_ind = ""
    else:
        enc_line = _enc_def_line(plan, unit)
        def_ind = leading(plan.lines[enc_line - 1])
    body = [plan.line(n) for n in range(unit.first, unit.last + 1)]
    body = _rewrite_exits(plan, unit, body)
    decls = []
    if unit.globals_written:
        decls.append("global " + ", ".join(unit.globals_written))
    if unit.nonlocals_written:
        decls.append("nonlocal " + ", ".join(unit.nonlocals_written))
    head = [f"{def_ind}def {unit.cold_name}({', '.join(unit.inputs)}):"]
    if unit.outputs or unit.flags:
        tail = f"return (0, ({', '.join(unit.outputs)}{',' if unit.outputs else ''}))"
        last_stmt = unit.stmts[-1]
        if isinstance(last_stmt, (ast.Return, ast.Raise, ast.Break, ast.Continue)):
            pass  # the block never falls through
        elif (_is_simple(last_stmt) and last_stmt.end_lineno == unit.last
              and body[-1] == plan.line(unit.last)):
            # on the last statement's line, so that the next line stays free
            col = char_col(body[-1], last_stmt.end_col_offset or 0)
            body[-1] = body[-1][:col] + "; " + tail + body[-1][col:]
        else:
            body.append(ind_body + tail)
    if decls:
        first_stmt = unit.stmts[0]
        if _is_simple(first_stmt) and body[0] == plan.line(unit.first):
            col = char_col(body[0], first_stmt.col_offset)
            body[0] = body[0][:col] + "; ".join(decls) + "; " + body[0][col:]
        else:
            head.append(ind_body + "; ".join(decls))
    return unit.first - len(head), [*head, *body]


def _is_simple(s: ast.stmt) -> bool:
    return not isinstance(s, (*_FUNCS, ast.ClassDef, ast.If, *_LOOPS, ast.With, ast.AsyncWith,
                              *_TRY, ast.Match))


def _enc_def_line(plan: ModulePlan, unit: Unit) -> int:
    for fn in ast.walk(plan.tree):
        if isinstance(fn, _FUNCS) and fn.lineno <= unit.first <= (fn.end_lineno or 0):
            if qualname_of(_chain_of(plan.tree, fn)) == unit.qualname:
                return fn.lineno
    raise Rejected("enclosing function not found")


def _chain_of(tree: ast.Module, target: ast.AST) -> tuple[ast.AST, ...]:
    def search(body: Sequence[ast.stmt], chain: tuple[ast.AST, ...]) -> tuple[ast.AST, ...] | None:
        for s in body:
            if s is target:
                return (*chain, s)
            if isinstance(s, (*_FUNCS, ast.ClassDef)):
                found = search(s.body, (*chain, s))
            else:
                found = None
                for _f, stmts, _o in blocks_of(s):
                    found = search(stmts, chain)
                    if found:
                        break
            if found:
                return found
        return None

    return search(tree.body, ()) or ()


def _rewrite_exits(plan: ModulePlan, unit: Unit, body: list[str]) -> list[str]:
    """``return x`` -> ``return (1, (x))``, ``break`` -> ``return (2, None)``... in a block."""
    if not unit.flags:
        return body
    edits: list[tuple[int, int, int, int, str]] = []

    def walk(nodes: Sequence[ast.AST], in_loop: bool) -> None:
        for n in nodes:
            if isinstance(n, (*_FUNCS, ast.ClassDef, ast.Lambda)):
                continue
            new = None
            if isinstance(n, ast.Return):
                value = "None" if n.value is None else f"({plan.segment(n.value)})"
                new = f"return (1, {value})"
            elif isinstance(n, ast.Break) and not in_loop:
                new = "return (2, None)"
            elif isinstance(n, ast.Continue) and not in_loop:
                new = "return (3, None)"
            if new is not None:
                edits.append((n.lineno, n.col_offset, n.end_lineno or n.lineno,
                              n.end_col_offset or 0, new))
                continue
            if isinstance(n, _LOOPS):
                walk(n.body, True)
                walk(n.orelse, in_loop)
            else:
                walk(list(ast.iter_child_nodes(n)), in_loop)

    walk(unit.stmts, False)
    for line, col, end_line, end_col, new in sorted(edits, reverse=True):
        i, j = line - unit.first, end_line - unit.first
        start = char_col(plan.line(line), col)
        stop = char_col(plan.line(end_line), end_col)
        merged = body[i][:start] + new + body[j][stop:]
        # keep the line count: the lines the statement spanned become blank
        body[i: j + 1] = [merged] + [""] * (j - i)
    return body


def _container_params(plan: ModulePlan, units: Sequence[Unit]) -> dict[int, list[str]]:
    """For each enclosing function (by id), the cells its wrapper must declare as parameters."""
    params: dict[int, set[str]] = {}
    for u in units:
        for v in u.free:
            if v == "__class__":
                continue
            for c in reversed(u.chain):
                if isinstance(c, _FUNCS):
                    t = plan.scopes.table(c)
                    try:
                        s = t.lookup(v)
                    except KeyError:
                        continue
                    if s.is_local():
                        params.setdefault(id(c), set()).add(v)
                        break
            else:
                raise EditError(f"{u.key}: cannot find the scope that owns {v!r}")
    return {k: sorted(v) for k, v in params.items()}


def cold_module_text(
    plan: ModulePlan, units: Sequence[Unit], moved: Sequence[MovedImport],
    needs: dict[str, tuple[str, ...]],
) -> str:
    """The text of the cold module for ``units`` of ``plan``'s module."""
    nl = newline_of(plan.text)
    out: list[str] = [
        f"# Cold code of {plan.path}, outlined by memtrim: no profiled workload ran it.",
        "# Each piece runs with the globals of that module when its stub there first needs",
        "# it (see _memtrim_get at the end); line numbers mirror the original's.",
    ]
    futures = [s for s in plan.tree.body if isinstance(s, ast.ImportFrom)
               and s.module == "__future__"]
    for s in futures:
        out.append(plan.segment(s).replace("\n", " ").replace("\\", ""))
    params = _container_params(plan, units)
    seen: set[tuple[tuple[int, ...], str]] = set()
    for u in sorted(units, key=lambda u: u.first):
        slot = (tuple(id(c) for c in u.chain), u.cold_name)
        if slot in seen:  # @property def x / @x.setter def x: one name, two functions
            u.alias = f"{u.cold_name}__memtrim{u.first}"
        seen.add((tuple(id(c) for c in u.chain), u.cold_name))
    stack: list[ast.AST] = []
    paths: dict[str, tuple[str, ...]] = {}

    def emit_at(line: int, texts: list[str]) -> None:
        while len(out) + 1 < line:
            out.append("")
        out.extend(texts)

    placed = sorted(((_cold_def(plan, u), u) for u in units), key=lambda t: t[0][0])
    for (line, texts), u in placed:
        chain = list(u.chain)
        common = 0
        while common < min(len(stack), len(chain)) and stack[common] is chain[common]:
            common += 1
        del stack[common:]
        for c in chain[common:]:
            ind = leading(plan.lines[c.lineno - 1])  # type: ignore[attr-defined]
            if isinstance(c, ast.ClassDef):
                head = f"{ind}class {c.name}:"
            else:
                head = f"{ind}def {c.name}({', '.join(params.get(id(c), []))}):"  # type: ignore[attr-defined]
            emit_at(c.lineno, [head])  # type: ignore[attr-defined]
            stack.append(c)
        emit_at(line, texts)
        paths[u.key] = (*(c.name for c in chain), u.cold_name)  # type: ignore[attr-defined]
    out += ["", ""]
    out += _runtime(plan, units, paths, moved, needs)
    return nl.join(out) + nl


def _runtime(plan: ModulePlan, units: Sequence[Unit], paths: dict[str, tuple[str, ...]],
             moved: Sequence[MovedImport], needs: dict[str, tuple[str, ...]]) -> list[str]:
    out = [
        "# -- memtrim runtime " + "-" * 60,
        "",
        "_MEMTRIM_UNITS = {",
    ]
    for u in sorted(units, key=lambda u: u.first):
        out.append(f"    {u.key!r}: ({paths[u.key]!r}, {needs.get(u.key, ())!r}),")
    out += [
        "}",
        "",
        "",
        "def _memtrim_code(path):",
        '    """The code object of the piece at ``path`` (names from this module\'s top)."""',
        "    obj = globals()[path[0]]",
        "    for name in path[1:]:",
        "        if isinstance(obj, type):",
        "            obj = obj.__dict__[name]",
        "        else:",
        "            code = getattr(obj, '__code__', obj)",
        "            obj = next(c for c in code.co_consts if getattr(c, 'co_name', None) == name)",
        "    return getattr(obj, '__code__', obj)",
        "",
        "",
        "def _memtrim_import(g, name):",
        '    """Run the import memtrim moved here for ``name``, into the module\'s globals."""',
    ]
    if moved:
        for i, m in enumerate(sorted(moved, key=lambda m: m.name)):
            out.append(f"    {'if' if i == 0 else 'elif'} name == {m.name!r}:")
            out += [f"        {line}" for line in m.code.splitlines()]
            out.append("        g[name] = value" if m.binds else "        return")
        out += ["    else:", "        raise KeyError(name)"]
    else:
        out.append("    raise KeyError(name)")
    out += [
        "",
        "",
        "def _memtrim_get(key, probe, _bound={}):",
        '    """The cold function ``key``, run with the globals and cells of ``probe``."""',
        "    g = probe.__globals__",
        "    entry = _bound.get(id(g))",
        "    if entry is None or entry[0] is not g:",
        "        entry = _bound[id(g)] = (g, {})",
        "    fn = entry[1].get(key)",
        "    if fn is not None:",
        "        return fn",
        "    path, needs = _MEMTRIM_UNITS[key]",
        "    for name in needs:",
        "        if name not in g:",
        "            _memtrim_import(g, name)",
        "    code = _memtrim_code(path)",
        "    make = type(_memtrim_get)",
        "    if code.co_freevars:",
        "        cells = dict(zip(probe.__code__.co_freevars, probe.__closure__ or ()))",
        "        closure = tuple(cells[n] for n in code.co_freevars)",
        "        return make(code, g, code.co_name, None, closure)",
        "    fn = entry[1][key] = make(code, g, code.co_name)",
        "    return fn",
    ]
    statics = _static_imports(plan, units, moved)
    if statics:
        out += [
            "",
            "",
            "if False:  # never runs: tells static analysis what the code above reads",
            *[f"    {s}" for s in statics],
        ]
    return out


def _module_bindings(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for n in _walk_own(tree.body):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, (*_FUNCS, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= {a.asname or a.name.split(".")[0] for a in n.names if a.name != "*"}
    return out


def _static_imports(plan: ModulePlan, units: Sequence[Unit],
                    moved: Sequence[MovedImport]) -> list[str]:
    moved_names = {m.name for m in moved}
    top_names = {u.chain[0].name if u.chain else u.cold_name for u in units}  # type: ignore[attr-defined]
    wanted = set().union(*(u.names for u in units)) & _module_bindings(plan.tree)
    wanted -= moved_names | top_names | _STUB_NAMES
    out = [m.static for m in sorted(moved, key=lambda m: m.line)]
    if wanted:
        if plan.import_form != "relative":
            base = plan.src.name
        elif plan.src.is_package:
            base = "."
        else:
            base = "." + plan.src.name.rpartition(".")[2]
        out.append(f"from {base} import " + ", ".join(sorted(wanted)))
    return out


# -- imports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportChoice:
    """A top-level import alias whose only users are pieces of cold code."""

    line: int
    name: str  # the name it binds
    alias: str
    asname: str | None
    module: str  # absolute module imported
    users: tuple[str, ...]  # unit keys that read it
    why: str


def movable_imports(
    plan: ModulePlan, units: Sequence[Unit], pg: ProgramGraph | None, effects: Any,
) -> tuple[list[ImportChoice], dict[str, str]]:
    """Top-level imports read only by ``units``, whose deferral nothing can observe.

    Returns the choices and, for imports that were considered but stay, why.
    """
    tree = plan.tree
    inside: set[int] = set()
    for u in units:
        for root in u.body_nodes:
            inside.update(id(n) for n in ast.walk(root))
    uses_outside: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and id(n) not in inside:
            uses_outside.add(n.id)
    # string annotations are evaluated by typing.get_type_hints in the stub's globals
    for n in ast.walk(tree):
        ann = []
        if isinstance(n, _FUNCS):
            a = n.args
            ann = [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs,
                                          a.vararg, a.kwarg) if x is not None and x.annotation]
            ann += [n.returns] if n.returns is not None else []
        elif isinstance(n, ast.AnnAssign):
            ann = [n.annotation]
        for a in ann:
            for c in ast.walk(a):
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    uses_outside |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", c.value))
    bindings: dict[str, int] = {}
    for n in ast.walk(tree):
        names: list[str] = []
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names = [n.id]
        elif isinstance(n, (*_FUNCS, ast.ClassDef)):
            names = [n.name]
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names = [a.asname or a.name.split(".")[0] for a in n.names]
        for name in names:
            bindings[name] = bindings.get(name, 0) + 1
    users: dict[str, list[str]] = {}
    chains_in: dict[str, set[str]] = {}
    for u in units:
        for name in u.names:
            users.setdefault(name, []).append(u.key)
        chains_in[u.key] = {c for root in u.body_nodes for c in _chains(root)}
    chains_outside = {
        c for n in ast.walk(tree) if isinstance(n, ast.Attribute) and id(n) not in inside
        for c in [_dotted(n)] if c
    }
    graph_info = _graph_imports(pg, plan.src.name) if pg is not None else None
    choices: list[ImportChoice] = []
    stays: dict[str, str] = {}
    for s in tree.body:
        if not isinstance(s, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(s, ast.ImportFrom) and s.module == "__future__":
            continue
        for a in s.names:
            if a.name == "*":
                continue
            name = a.asname or a.name.split(".")[0]
            module = _absolute(plan, s, a)
            if (isinstance(s, ast.Import) and a.asname is None and "." in a.name
                    and bindings.get(name, 0) > 1):
                # `import logging.handlers` next to `import logging`: only the submodule's
                # loading can be deferred, when `logging.handlers` is used in cold code only
                readers = sorted(k for k, cs in chains_in.items()
                                 if any(c == a.name or c.startswith(a.name + ".") for c in cs))
                if not readers:
                    continue
                why = _submodule_blocker(plan, s, a, name, chains_outside, graph_info, effects)
                label = a.name
            else:
                if name not in users:
                    continue
                readers = sorted(users[name])
                why = _import_blocker(plan, s, a, name, uses_outside, bindings, graph_info,
                                      effects)
                label = name
            if why is None:
                why = _relied_on_elsewhere(plan, module)
            if why is not None:
                stays[label] = why
                continue
            choices.append(ImportChoice(
                line=s.lineno, name=label, alias=a.name, asname=a.asname, module=module,
                users=tuple(readers),
                why=f"read only by outlined code ({', '.join(readers)})",
            ))
    return choices, stays


def _dotted(n: ast.AST) -> str | None:
    parts = []
    while isinstance(n, ast.Attribute):
        parts.append(n.attr)
        n = n.value
    if isinstance(n, ast.Name):
        return ".".join([n.id, *reversed(parts)])
    return None


def _chains(root: ast.AST) -> set[str]:
    return {c for n in ast.walk(root) if isinstance(n, ast.Attribute) for c in [_dotted(n)] if c}


def _submodule_blocker(
    plan: ModulePlan, s: ast.Import, a: ast.alias, name: str, chains_outside: set[str],
    graph_info: dict | None, effects: Any,
) -> str | None:
    """Why the loading of submodule ``a.name`` must stay (None: it may be deferred)."""
    if any(c == a.name or c.startswith(a.name + ".") for c in chains_outside):
        return f"{a.name} is also used by code that stays"
    for n in ast.walk(plan.tree):
        if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, (ast.Store, ast.Del)):
            return f"'{name}' is assigned in the module"
        if isinstance(n, (ast.Import, ast.ImportFrom)) and n not in plan.tree.body:
            if any((al.asname or al.name.split(".")[0]) == name for al in n.names):
                return f"'{name}' is also imported inside a block"
        if isinstance(n, ast.ImportFrom) and any(al.asname == name or (
                al.asname is None and al.name == name) for al in n.names):
            return f"'{name}' is also bound by a from-import"
        if isinstance(n, ast.Import) and any(al.asname == name for al in n.names):
            return f"'{name}' is also bound by an 'import ... as'"
    if graph_info is not None:
        info = graph_info.get((s.lineno, name))
        if info is not None and info["guard"]:
            return f"kept by a guard: {info['guard']}"
    return _effects_blocker(plan, a.name, None, effects)


def _relied_on_elsewhere(plan: ModulePlan, module: str) -> str | None:
    """A module of the program that uses dotted ``module`` without importing it itself."""
    if "." not in module:
        return None
    pat = re.compile(r"(?<![\w.])" + re.escape(module) + r"(?!\w)")
    for other in plan.program.modules.values():
        if other is plan.src or other.text is None or other.path.stem.startswith(COLD_PREFIX):
            continue
        if not pat.search(other.text):
            continue
        if other.tree is None:
            return f"{other.name} names {module} and could not be parsed"
        if not _imports_module(other.tree, module):
            return f"{other.name} uses {module} without importing it (it relies on this import)"
    return None


def _imports_module(tree: ast.Module, module: str) -> bool:
    for n in ast.walk(tree):
        if isinstance(n, ast.Import) and any(
                a.name == module or a.name.startswith(module + ".") for a in n.names):
            return True
        if isinstance(n, ast.ImportFrom) and not n.level and n.module and (
            n.module == module or n.module.startswith(module + ".")
            or any(f"{n.module}.{a.name}" == module for a in n.names)
        ):
            return True
    return False


def _effects_blocker(plan: ModulePlan, module: str, attr: str | None, effects: Any) -> str | None:
    if effects is None:
        return None
    checks = [(module, False)]
    if attr is not None:
        checks.append((f"{module}.{attr}", True))
    parts = plan.src.name.split(".")
    loaded = frozenset(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    for mod, optional in checks:
        ok, why = effects.module(mod, optional, loaded)
        if not ok:
            return f"importing {mod} may have side effects: {why}"
    return None


def _absolute(plan: ModulePlan, s: ast.Import | ast.ImportFrom, a: ast.alias) -> str:
    if isinstance(s, ast.Import):
        return a.name
    if not s.level:
        return s.module or ""
    parts = plan.src.name.split(".")
    if not plan.src.is_package:
        parts = parts[:-1]
    base = parts[: len(parts) - (s.level - 1)] if s.level > 1 else parts
    return ".".join([*base, *([s.module] if s.module else [])])


# One pass over the graph's edges serves every module (cached per graph object).
_GRAPH_INDEX: dict[int, tuple[Any, dict[str, dict]]] = {}


def _graph_imports(pg: ProgramGraph, module: str) -> dict[Any, Any]:
    """For each import binding of ``module`` (line, name): its guard and outside users.

    Under the key ``"__attrs__"``: attribute names read somewhere on objects the
    analysis could not follow (``x.name``): such an ``x`` may be this module.
    """
    cached = _GRAPH_INDEX.get(id(pg))
    if cached is None or cached[0] is not pg:
        g = pg.graph
        attrs = {name for name, nid in g.attr_nodes.items() if g.referenced[nid]}
        by_module: dict[str, dict] = {}
        imports: dict[int, dict] = {}
        for node in g.nodes:
            if node.kind == "import":
                info = {"guard": g.guard_reasons.get(node.id), "outside": [], "node": node}
                by_module.setdefault(node.module, {"__attrs__": attrs})[
                    (node.line, node.name)] = info
                imports[node.id] = info
        for src_id, targets in enumerate(g.edges):
            src = g.nodes[src_id]
            for t in targets:
                info = imports.get(t)
                if info is not None and src.module != info["node"].module:
                    info["outside"].append(src.symbol or src.module)
        _GRAPH_INDEX.clear()  # one program at a time: do not keep old graphs alive
        cached = _GRAPH_INDEX[id(pg)] = (pg, by_module)
    return cached[1].get(module) or {"__attrs__": set()}


def _import_blocker(
    plan: ModulePlan, s: ast.Import | ast.ImportFrom, a: ast.alias, name: str,
    uses_outside: set[str], bindings: dict[str, int], graph_info: dict | None, effects: Any,
) -> str | None:
    """Why this import alias must stay where it is (None: it may move)."""
    if name in uses_outside:
        return "also read by code that stays"
    if bindings.get(name, 0) != 1:
        return f"'{name}' is bound more than once in the module"
    if graph_info is not None:
        info = graph_info.get((s.lineno, name))
        if info is None:
            return "not found in the reference graph"
        if info["guard"]:
            return f"kept by a guard: {info['guard']}"
        if info["outside"]:
            return f"read from other modules ({', '.join(sorted(set(info['outside']))[:3])})"
        if name in graph_info.get("__attrs__", ()):
            return f"'.{name}' is read as an attribute somewhere (maybe of this module)"
    return _effects_blocker(plan, _absolute(plan, s, a),
                            a.name if isinstance(s, ast.ImportFrom) else None, effects)


def _moved_import(plan: ModulePlan, s: ast.Import | ast.ImportFrom, a: ast.alias,
                  label: str) -> MovedImport:
    name = a.asname or a.name.split(".")[0]
    if label != name:  # a submodule whose package name stays bound
        return MovedImport(name=label, line=s.lineno, code=f"import {a.name}",
                           static=f"import {a.name}", binds=False)
    if isinstance(s, ast.Import):
        code = f"import {a.name} as value" if a.asname or "." not in a.name else (
            f"import {a.name}\nvalue = {name}")
        static = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
    else:
        mod = "." * s.level + (s.module or "")
        code = f"from {mod} import {a.name} as value"
        static = f"from {mod} import {a.name}" + (f" as {a.asname}" if a.asname else "")
    return MovedImport(name=name, line=s.lineno, code=code, static=static)


def import_removal(plan: ModulePlan, s: ast.Import | ast.ImportFrom,
                   drop: set[int]) -> LineEdit | None:
    """The line edit that removes aliases ``drop`` (indices) of import statement ``s``."""
    keep = [a for i, a in enumerate(s.names) if i not in drop]
    if len(keep) == len(s.names):
        return None
    first, last = s.lineno, s.end_lineno or s.lineno
    before = plan.line(first)[: char_col(plan.line(first), s.col_offset)]
    after = plan.line(last)[char_col(plan.line(last), s.end_col_offset or 0):]
    if keep:
        if isinstance(s, ast.Import):
            text = "import " + ", ".join(
                a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
        else:
            text = f"from {'.' * s.level}{s.module or ''} import " + ", ".join(
                a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
    else:
        text = "pass"
    if not before.strip() and (not after.strip() or after.strip().startswith("#")):
        if not keep and _alone_in_block(plan, s):
            return LineEdit(first, last, (before + "pass",))
        if not keep:
            return LineEdit(first, last, ())
        return LineEdit(first, last, (before + text,))
    return LineEdit(first, last, (before + text + after,))


def _alone_in_block(plan: ModulePlan, s: ast.stmt) -> bool:
    for n in ast.walk(plan.tree):
        for _f, stmts, _o in blocks_of(n) if isinstance(n, ast.stmt) else []:
            if s in stmts:
                return len(stmts) == 1
    return False


# -- the pass -----------------------------------------------------------------------------


def _keep_matches(keep: Sequence[str], module: str, qualname: str) -> bool:
    for entry in keep:
        mod, _, qual = entry.strip().partition(":")
        if mod == "*" and qual and (qualname == qual or qualname.endswith("." + qual)
                                    or qualname.rpartition(".")[2] == qual):
            return True
        if mod == module and (qual == "*" or qual == qualname or (
                qual and qualname.startswith(qual + "."))):
            return True
    return False


@dataclass
class OutlineSummary:
    """What the pass looked at and chose, for the report."""

    statements: int = 0
    outlined_statements: int = 0
    candidate_statements: int = 0  # before the measured-gain filter
    functions: int = 0
    blocks: int = 0
    imports: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    imports_kept: dict[str, str] = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    deadcode: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)

    @property
    def outlined_fraction(self) -> float:
        """Outlined statements over all statements of the analysed modules."""
        return self.outlined_statements / self.statements if self.statements else 0.0

    def to_dict(self) -> dict:
        """JSON-able."""
        return {
            "statements": self.statements, "outlined_statements": self.outlined_statements,
            "outlined_fraction": round(self.outlined_fraction, 4),
            "candidate_statements": self.candidate_statements or self.outlined_statements,
            "functions": self.functions, "blocks": self.blocks, "imports": self.imports,
            "rejected": dict(sorted(self.rejected.items())),
            "imports_kept": dict(sorted(self.imports_kept.items())),
            "coverage": self.coverage, "deadcode_totals": self.deadcode, "groups": self.groups,
        }


class OutlinePass:
    """Proposes outline edits for cold functions, methods, blocks, and the imports only they read.

    ``keep``: keep-list entries (``pkg.mod:func``, ``pkg.mod:*``, ``*:name``);
    ``entry_script``: the app's script, relative to the root (it runs as
    ``__main__``); ``min_function_lines``/``min_block_lines``: the smallest body
    worth a stub.
    """

    name = PASS_NAME

    def __init__(
        self, *, keep: Sequence[str] = (), entry_script: str | None = None,
        min_function_lines: int = 3, min_block_lines: int = 5, functions: bool = True,
        blocks: bool = True, imports: bool = True,
    ) -> None:
        self.keep = tuple(keep)
        self.entry_script = entry_script
        self.min_function_lines = min_function_lines
        self.min_block_lines = min_block_lines
        self.functions = functions
        self.blocks = blocks
        self.imports = imports
        self.summary = OutlineSummary()

    # -- run ------------------------------------------------------------------

    def run(self, program: Program, report: DeadCodeReport,
            pg: ProgramGraph | None = None, effects: Any = None) -> list[Edit]:
        """Edits for the cold regions of ``report`` (from :func:`classify` on ``program``)."""
        summary = self.summary = OutlineSummary()
        totals = report.totals()
        summary.statements = totals["statements"]
        summary.deadcode = totals
        edits: list[Edit] = []
        by_path: dict[str, list] = {}
        for r in report.regions:
            by_path.setdefault(r.path, []).append(r)
        for path, regions in sorted(by_path.items()):
            src = program.module_by_path(path)
            if src is None or src.tree is None or src.text is None or src.alias_of:
                continue
            if _keep_matches(self.keep, src.name, "*"):
                continue
            if not src.path.stem.isidentifier():
                summary.rejected[path] = "the file name is not an identifier (cannot be imported)"
                continue
            plan = ModulePlan(program, src, self.entry_script)
            if program.module_by_path(plan.cold_path) is not None or src.path.stem.startswith(
                    COLD_PREFIX):
                summary.rejected[path] = "already outlined (a cold module exists)"
                continue
            units: list[Unit] = []
            for r in regions:
                unit = self._unit(plan, r)
                if unit is not None:
                    units.append(unit)
            if not units:
                continue
            edits += self._edits(plan, units, report, pg, effects)
        _GRAPH_INDEX.clear()
        edits.sort(key=lambda e: (e.path, e.line, e.id))
        return edits

    def _unit(self, plan: ModulePlan, r) -> Unit | None:
        where = f"{r.path}:{r.first_line}"
        try:
            if r.kind == "function" and self.functions:
                fn = r.stmts[0]
                qual = qualname_of((*r.chain, fn))
                if _keep_matches(self.keep, plan.src.name, qual):
                    raise Rejected("on the keep-list")
                return plan_function(plan, fn, r.chain, self.min_function_lines)
            if r.kind in BRANCH_KINDS and self.blocks:
                scope = qualname_of(r.chain)
                if scope and _keep_matches(self.keep, plan.src.name, scope):
                    raise Rejected("on the keep-list")
                owner = _owner_of(r)
                return plan_block(plan, list(r.stmts), owner, r.header, r.chain,
                                  self.min_block_lines)
        except Rejected as e:
            self.summary.rejected[where] = str(e)
        except (EditError, KeyError, ValueError) as e:
            self.summary.rejected[where] = f"not analysable: {e}"
        return None

    def _edits(self, plan: ModulePlan, units: list[Unit], report: DeadCodeReport,
               pg: ProgramGraph | None, effects: Any) -> list[Edit]:
        summary = self.summary
        out: list[Edit] = []
        ids: dict[str, str] = {}
        workloads = report.workloads
        regions = {(r.first_line if r.kind != "function" else r.stmts[0].lineno): r
                   for r in report.in_path(plan.path)}
        for u in units:
            if u.kind == "function":
                assert u.node is not None
                eid = f"outline:function:{plan.path}:{u.node.lineno}:{u.qualname}"
                r = regions.get(u.node.lineno)
                target = {"kind": "function", "line": u.node.lineno, "qualname": u.qualname}
                reason = (f"{u.qualname} was never entered by the profiled workloads "
                          f"({', '.join(workloads)}); its body moves to {plan.cold_path}, "
                          "a stub with the same signature, decorators and docstring loads "
                          "it on the first call")
                summary.functions += 1
            else:
                eid = f"outline:block:{plan.path}:{u.first}:{u.qualname or '<module>'}"
                r = regions.get(u.first)
                target = {"kind": "block", "line": u.first, "end_line": u.last,
                          "scope": u.qualname}
                reason = (f"{r.kind if r else 'block'} block at lines {u.first}-{u.last} never "
                          f"ran although its statement did ({', '.join(workloads)}); it moves "
                          f"to {plan.cold_path}, called with locals {list(u.inputs)}")
                summary.blocks += 1
            summary.outlined_statements += u.statements
            ids[u.key] = eid
            evidence: dict[str, Any] = {
                "target": target, "unit": u.key, "cold_module": plan.cold_path,
                "lines": [u.first, u.last], "statements": u.statements,
                "workloads_profiled": list(workloads),
                "reached_by": list(r.reached_by) if r else [],
                "entered_by": [], "free_vars": list(u.free),
            }
            if u.kind == "block":
                evidence.update(inputs=list(u.inputs), outputs=list(u.outputs),
                                exits=sorted(u.flags), branch=r.kind if r else None,
                                header_ran_in=list(r.reached_by) if r else [],
                                block_lines_ran_in=[])
            else:
                assert u.node is not None
                # a call is recorded as an arc from -co_firstlineno into the body: none was
                evidence["entry_arcs"] = {"from": -first_line(u.node),
                                          "into_lines": [u.first, u.last], "taken_in": []}
            out.append(Edit(id=eid, pass_name=PASS_NAME, kind=f"outline-{u.kind}",
                            path=plan.path, line=u.first if u.kind == "block" else
                            u.node.lineno,  # type: ignore[union-attr]
                            symbol=f"{plan.src.name}:{u.qualname}" if u.qualname
                            else plan.src.name,
                            reason=reason, evidence=evidence))
        if self.imports:
            choices, stays = movable_imports(plan, units, pg, effects)
            for name, why in stays.items():
                summary.imports_kept[f"{plan.path}:{name}"] = why
            for c in choices:
                deps = sorted(ids[k] for k in c.users)
                summary.imports += 1
                out.append(Edit(
                    id=f"outline:import:{plan.path}:{c.line}:{c.name}", pass_name=PASS_NAME,
                    kind="outline-import", path=plan.path, line=c.line,
                    symbol=f"{plan.src.name}:{c.name}",
                    reason=(f"'{c.name}' (import of {c.module}) is {c.why}; the import runs "
                            "when the first of them is loaded, so the profiled paths never "
                            "load it"),
                    evidence={"target": {"kind": "import", "line": c.line, "name": c.name,
                                         "alias": c.alias, "asname": c.asname},
                              "module": c.module, "depends_on": deps, "users": list(c.users),
                              "cold_module": plan.cold_path},
                ))
        return out

    # -- apply ----------------------------------------------------------------

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """New text of the changed modules and of their cold modules (any subset applies)."""
        by_path: dict[str, list[Edit]] = {}
        for e in edits:
            if e.kind not in ("outline-function", "outline-block", "outline-import"):
                raise EditError(f"{e.id}: no way to apply an edit of kind {e.kind!r}")
            by_path.setdefault(e.path, []).append(e)
        out: dict[str, str] = {}
        for path, file_edits in sorted(by_path.items()):
            src = program.module_by_path(path)
            if src is None or src.text is None or src.tree is None:
                raise EditError(f"{path}: not an analysed module of the program")
            plan = ModulePlan(program, src, self.entry_script)
            units = [self._locate(plan, e) for e in file_edits
                     if e.kind in ("outline-function", "outline-block")]
            unit_ids = {e.id for e in file_edits if e.kind != "outline-import"}
            line_edits = []
            for u in units:
                line_edits.append(_stub_function(plan, u) if u.kind == "function"
                                  else _stub_block(plan, u))
            moved: list[MovedImport] = []
            needs: dict[str, list[str]] = {}
            removals: dict[int, set[int]] = {}
            stmts = {s.lineno: s for s in plan.tree.body
                     if isinstance(s, (ast.Import, ast.ImportFrom))}
            for e in file_edits:
                if e.kind != "outline-import":
                    continue
                if not set(e.evidence.get("depends_on", ())) <= unit_ids:
                    continue  # a reader of it stays in the module: the import stays too
                t = e.evidence["target"]
                s = stmts.get(int(t["line"]))
                if s is None:
                    raise EditError(f"{e.id}: import statement not found")
                idx = next((i for i, a in enumerate(s.names) if a.name == t["alias"]
                            and a.asname == t.get("asname")), None)
                if idx is None:
                    raise EditError(f"{e.id}: import alias not found")
                removals.setdefault(s.lineno, set()).add(idx)
                moved.append(_moved_import(plan, s, s.names[idx], str(t["name"])))
                for key in e.evidence.get("users", ()):
                    needs.setdefault(key, []).append(str(t["name"]))
            for line, drop in removals.items():
                le = import_removal(plan, stmts[line], drop)
                if le is not None:
                    line_edits.append(le)
            if not units:
                continue
            try:
                new = apply_line_edits(plan.text, line_edits)
            except Rejected as e:
                raise EditError(f"{path}: {e}") from None
            check_compiles(new, path)
            try:
                cold = cold_module_text(plan, units, moved,
                                        {k: tuple(sorted(v)) for k, v in needs.items()})
            except Rejected as e:
                raise EditError(f"{path}: {e}") from None
            check_compiles(cold, plan.cold_path)
            out[path] = new
            out[plan.cold_path] = cold
        return out

    def _locate(self, plan: ModulePlan, e: Edit) -> Unit:
        t = e.evidence.get("target") or {}
        try:
            if t.get("kind") == "function":
                for fn, chain in _functions(plan.tree):
                    if fn.lineno == int(t["line"]) and qualname_of((*chain, fn)) == t["qualname"]:
                        return plan_function(plan, fn, chain, 1)
                raise EditError(f"{e.id}: function not found")
            if t.get("kind") == "block":
                found = _find_block(plan.tree, int(t["line"]), int(t["end_line"]))
                if found is None:
                    raise EditError(f"{e.id}: block not found")
                stmts, owner, header, chain = found
                return plan_block(plan, stmts, owner, header, chain, 1)
        except Rejected as err:
            raise EditError(f"{e.id}: {err}") from None
        raise EditError(f"{e.id}: evidence has no usable target")


def _owner_of(r) -> ast.AST:
    """The handler/case/statement that owns a region's block."""
    header = r.header
    part = r.part or ""
    if part.startswith("handlers["):
        return header.handlers[int(part[9:-1])]
    if part.startswith("cases["):
        return header.cases[int(part[6:-1])]
    return header


def _functions(tree: ast.Module):
    from memtrim.analysis.deadcode import iter_functions

    return iter_functions(tree.body)


def _find_block(tree: ast.Module, first: int, last: int):
    """The block (stmts, owner, header, chain) spanning exactly ``first..last``."""

    def search(body: Sequence[ast.stmt], chain: tuple[ast.AST, ...]):
        for s in body:
            if isinstance(s, (*_FUNCS, ast.ClassDef)):
                if first_line(s) <= first <= (s.end_lineno or 0):
                    found = search(s.body, (*chain, s))
                    if found:
                        return found
                continue
            for _f, stmts, owner in blocks_of(s):
                if not stmts:
                    continue
                a, b = block_span(stmts)
                if (a, b) == (first, last):
                    return list(stmts), owner, s, chain
                if a <= first and last <= b:
                    found = search(stmts, chain)
                    if found:
                        return found
        return None

    return search(tree.body, ())


# -- the step -------------------------------------------------------------------------------


def _copy_tree(src: Path, dest: Path) -> None:
    """A copy of ``src`` for a measurement run: Python files copied, other files linked."""

    def copy(s: str, d: str) -> None:
        if s.endswith(".py"):
            shutil.copy2(s, d)
        else:
            os.symlink(os.path.abspath(s), d)

    shutil.copytree(src, dest, symlinks=True, copy_function=copy, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".git", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache"))


def _write(program: Program, changes: dict[str, str], dest: Path) -> None:
    for rel, text in changes.items():
        module = program.module_by_path(rel)
        target = dest / rel
        if module is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        else:
            target.write_bytes(module.encode(text))


def _peak(measurements: dict) -> dict[str, int]:
    return {k: int(v["peak_rss"]) for k, v in measurements.items() if v.get("peak_rss")}


def cold_code_inputs(program: Program, ctx: StepContext, coverage: CoverageResult | None):
    """What the cold-code steps (outline, specialize) start from.

    The workloads' coverage (``coverage`` if given, else profiled now), the
    classification of what did not run, the reference graph and the side-effect
    oracle.  The caller releases the graph (``pg.release()``) when done.
    """
    from memtrim.analysis.coverage_run import collect_coverage
    from memtrim.analysis.effects import SideEffects
    from memtrim.analysis.references import build_graph

    req = ctx.request
    cov = coverage or collect_coverage(
        ctx.app, python=req.python, flags=req.python_args,
        source_packages=ctx.app.include_packages,
    )
    report = classify(program, cov)
    pg = build_graph(program)
    return cov, report, pg, SideEffects(pg.resolver)


class OutlineStep:
    """Safe mode: profile the workloads, outline what did not run, keep what measurably helps.

    Each module's outlines (and the imports they carry) form a group; with
    measurements on, groups are dropped one by one, smallest first, when
    putting their code back raises no workload's peak RSS by ``lambda`` % of the
    baseline: an outline stays only if its measured gain passes the threshold.
    """

    name = "outline"
    description = "cold functions, methods and branches moved to modules loaded on first use"
    needs_gain = True

    def __init__(self, *, measure_groups: bool = True, min_function_lines: int = 3,
                 min_block_lines: int = 5, coverage: CoverageResult | None = None) -> None:
        self.measure_groups = measure_groups
        self.min_function_lines = min_function_lines
        self.min_block_lines = min_block_lines
        self.coverage = coverage  # a profile to reuse (tests); else collected in run()
        self.summary: dict = {}
        self._pass: OutlinePass | None = None

    def _make_pass(self, ctx: StepContext) -> OutlinePass:
        app = ctx.app
        script = None
        if app.script is not None:
            try:
                script = app.script.resolve().relative_to(app.root.resolve()).as_posix()
            except ValueError:
                script = None
        return OutlinePass(
            keep=[*app.keep, *ctx.request.keep], entry_script=script,
            min_function_lines=self.min_function_lines, min_block_lines=self.min_block_lines,
        )

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """Profile, classify, propose; then (with measurements) keep the groups that help."""
        ctx.say(f"{self.name}: profiling the workloads under coverage")
        cov, report, pg, effects = cold_code_inputs(program, ctx, self.coverage)
        self._pass = self._make_pass(ctx)
        edits = self._pass.run(program, report, pg, effects)
        pg.release()
        summary = self._pass.summary
        summary.coverage = cov.to_dict()
        summary.candidate_statements = summary.outlined_statements
        if edits and self.measure_groups and ctx.request.measure:
            edits = self._keep_what_helps(program, ctx, edits, summary)
        kept_keys = {e.evidence.get("unit") for e in edits}
        summary.outlined_statements = sum(
            e.evidence.get("statements", 0) for e in edits if e.evidence.get("unit") in kept_keys
            and e.kind != "outline-import")
        self.summary = summary.to_dict()
        return edits

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """Stubs in the modules, code in their cold modules."""
        p = self._pass or OutlinePass()
        return p.apply(program, edits)

    def _keep_what_helps(self, program: Program, ctx: StepContext, edits: list[Edit],
                         summary: OutlineSummary) -> list[Edit]:
        from memtrim.measure.workloads import measure_workloads

        req = ctx.request
        groups: dict[str, list[Edit]] = {}
        for e in edits:
            groups.setdefault(e.path, []).append(e)
        assert self._pass is not None

        def measure(subset: list[Edit], tag: str) -> dict[str, int]:
            with tempfile.TemporaryDirectory(prefix="memtrim-outline-") as tmp:
                tree = Path(tmp) / "tree"
                _copy_tree(ctx.app.root, tree)
                _write(program, self._pass.apply(program, subset) if subset else {}, tree)
                ctx.say(f"{self.name}: measuring {tag}")
                return _peak(measure_workloads(ctx.app.relocated(tree), req.python,
                                               req.python_args, repeat=req.repeat))

        try:
            base = measure([], "without outlining")
            current = list(edits)
            now = measure(current, "with every outline")
        except Exception as e:  # a measurement failure must not lose the step
            summary.groups = {"error": f"{type(e).__name__}: {e}"}
            return edits
        threshold = req.lambda_pct / 100.0 * max(base.values(), default=0)
        order = sorted(groups, key=lambda p: sum(
            x.evidence.get("statements", 0) + 1000 * (x.kind == "outline-import")
            for x in groups[p]))
        report: dict[str, dict] = {}
        for path in order:
            without = [e for e in current if e.path != path]
            m = measure(without, f"without the outlines of {path}")
            loss = max((m.get(k, 0) - now.get(k, 0) for k in now), default=0)
            report[path] = {"gain_bytes": int(loss), "threshold_bytes": int(threshold),
                            "kept": loss >= threshold}
            if loss < threshold:
                current, now = without, m
        summary.groups = {
            "baseline_peak_rss": base, "final_peak_rss": now, "lambda_pct": req.lambda_pct,
            "modules": report,
        }
        gains = {p: r["gain_bytes"] for p, r in report.items()}
        return [
            Edit(id=e.id, pass_name=e.pass_name, kind=e.kind, path=e.path, line=e.line,
                 symbol=e.symbol, reason=e.reason,
                 evidence={**e.evidence, "measured_module_gain_bytes": gains.get(e.path)})
            for e in current
        ]

