"""Step 6 of the method at source level: strip what ``-OO`` strips, without needing ``-OO``.

``python -OO`` drops docstrings, and ``-O`` drops ``assert`` statements and
``if __debug__:`` blocks, but only while the flag is given on every start and
the matching ``.opt-N.pyc`` files exist.  This step makes the same removals in
the source, so they hold under a plain ``python``, and also strips annotations
(which ``-OO`` keeps) where nothing reads them.

What is removed, and what keeps it (each guard is reported as a note):

``docstring``
    every module, class and function docstring, except the ones the program
    reads: ``__doc__`` (resolved to the module, class or function it names;
    unresolved reads keep every docstring), ``inspect.getdoc``/``help``,
    ``argparse`` descriptions taken from ``__doc__`` (a ``__doc__`` read),
    doctest and pydoc (every docstring), and modules that import a library
    that builds its interface from docstrings (click, typer, fire, docopt, ply...).
``assert`` and ``debug-block`` (only with ``optimize_level=1``, which is opt-in)
    ``assert`` statements, except asserts inside a ``try`` whose handlers
    catch ``AssertionError`` (or ``Exception``/``BaseException``/a bare
    ``except``), in the functions called from such a ``try`` (transitively
    for an explicit ``except AssertionError``), and asserts whose condition
    calls something that may have side effects; ``if __debug__:`` blocks
    (their ``else`` stays), except when the block binds a name used elsewhere.
``annotation``
    function parameter and return annotations, and module/class-level
    variable annotations (``x: int = 1`` becomes ``x = 1``), except where
    something reads them: ``__annotations__``, ``typing.get_type_hints``,
    ``inspect.signature``/``get_annotations`` (resolved like ``__doc__``);
    class bodies of dataclasses, attrs and pydantic classes, NamedTuple,
    TypedDict and Protocol bodies, classes with another decorator, a
    metaclass, ``__init_subclass__`` in their bases or a base from outside
    the program; functions with a decorator from outside the program
    (``singledispatch`` ``.register``, web routes, CLI commands); modules that
    import a library that reads annotations (pydantic, attrs, typer, ...).
    Local variable annotations inside functions are never evaluated or
    stored, so they are left alone.

Everything named by the keep-list or marked ``# memtrim: keep`` stays.  By
default every removed line is replaced by a blank line, so line numbers (in
tracebacks, logging records, warnings) stay the same as the original's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import libcst as cst
from libcst.metadata import PositionProvider

from memtrim.analysis.symbols import keep_comment_lines, relative_base
from memtrim.edits import Edit, EditError, apply_per_file, rewrite_text
from memtrim.program import ModuleSource, Program

if TYPE_CHECKING:
    from memtrim.pipeline import StepContext

PASS_NAME = "strip"
STRIP_KINDS = frozenset({"docstring", "assert", "debug-block", "annotation"})

# Libraries that read docstrings of any module (every docstring stays).
_DOC_READERS_GLOBAL = frozenset({"doctest", "pydoc", "fire", "defopt", "docstring_parser"})
# Libraries that turn the docstrings of the module using them into an interface
# (command help, grammar rules): that module's docstrings stay.
_DOC_READERS_MODULE = frozenset({
    "click", "typer", "docopt", "ply", "argh", "plac", "clize", "cliff", "invoke", "begins",
    "cleo", "sly",
})
# Libraries that read annotations of objects handed to them from anywhere (import
# hooks, signature-driven CLIs): every annotation stays.
_ANN_READERS_GLOBAL = frozenset({
    "beartype", "typeguard", "typer", "fire", "tyro", "defopt", "jsonargparse", "pytypes",
})
# Libraries that read the annotations of what the importing module defines.
_ANN_READERS_MODULE = frozenset({
    "pydantic", "pydantic_settings", "attr", "attrs", "fastapi", "cattrs", "cattr", "msgspec",
    "strawberry", "sqlalchemy", "marshmallow_dataclass", "dataclasses_json", "simple_parsing",
    "injector", "apischema", "typedload", "litestar", "mashumaro", "dacite", "serde",
    "desert", "ninja", "sqlmodel", "hydra", "omegaconf", "click",
})
# Calls that read docstrings or annotations of their first argument.
_DOC_CALLS = frozenset({"inspect.getdoc", "inspect.getcomments", "pydoc.getdoc", "builtins.help"})
_ANN_CALLS = frozenset({
    "typing.get_type_hints", "typing_extensions.get_type_hints", "inspect.signature",
    "inspect.get_annotations", "inspect.getfullargspec", "inspect.getargspec",
    "inspect.Signature.from_callable", "annotationlib.get_annotations",
})
# Decorators that neither read annotations nor hand the function to something that does.
_HARMLESS_FUNC_DECORATORS = frozenset({
    "builtins.staticmethod", "builtins.classmethod", "builtins.property",
    "functools.wraps", "functools.lru_cache", "functools.cache", "functools.cached_property",
    "abc.abstractmethod", "abc.abstractclassmethod", "abc.abstractstaticmethod",
    "contextlib.contextmanager", "contextlib.asynccontextmanager", "types.coroutine",
    "typing.overload", "typing.final", "typing.override", "typing.no_type_check",
    "typing_extensions.overload", "typing_extensions.final", "typing_extensions.override",
})
_HARMLESS_CLASS_DECORATORS = frozenset({
    "functools.total_ordering", "enum.unique", "typing.final", "typing_extensions.final",
})
# Bases whose class machinery never reads the subclass's annotations.
_PLAIN_BASES = frozenset({
    "builtins.object", "abc.ABC", "typing.Generic", "enum.Enum", "enum.IntEnum", "enum.Flag",
    "enum.IntFlag", "enum.StrEnum",
} | {f"builtins.{n}" for n in (
    "int", "float", "complex", "str", "bytes", "bytearray", "dict", "list", "tuple", "set",
    "frozenset", "BaseException", "Exception", "ArithmeticError", "AssertionError",
    "AttributeError", "EOFError", "ImportError", "LookupError", "IndexError", "KeyError",
    "NameError", "OSError", "IOError", "RuntimeError", "NotImplementedError", "TypeError",
    "ValueError", "UnicodeError", "Warning", "UserWarning", "DeprecationWarning",
    "RuntimeWarning", "StopIteration", "ConnectionError", "TimeoutError", "FileNotFoundError",
    "PermissionError", "ZeroDivisionError", "OverflowError", "KeyboardInterrupt", "SystemExit",
)})
# Calls whose evaluation in an assert condition cannot change the program's state.
_PURE_CALLS = frozenset({
    "isinstance", "issubclass", "len", "type", "callable", "hasattr", "id", "repr", "str",
    "int", "float", "bool", "tuple", "list", "set", "frozenset", "dict", "abs", "min", "max",
    "sum", "all", "any", "sorted", "round", "range", "zip", "enumerate", "reversed", "divmod",
    "ord", "chr", "hash", "format", "getattr",
})
_CATCH_ALL = frozenset({"AssertionError", "Exception", "BaseException"})

# Keys of what a read of ``__doc__``/annotations names.
_ALL = ("all",)
_ALL_CLASSES = ("all-classes",)


@dataclass(frozen=True)
class StripNote:
    """Something the step could have stripped but kept, and why."""

    kind: str
    path: str
    line: int
    symbol: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The note as a plain dict (for reports)."""
        return {"kind": self.kind, "path": self.path, "line": self.line,
                "symbol": self.symbol, "reason": self.reason}


class StripStep:
    """The pipeline step: docstrings and annotations; asserts and ``__debug__`` blocks on -O."""

    name = "strip"
    needs_gain = False  # removing constants and dead statements cannot raise the peak

    def __init__(
        self,
        optimize_level: int = 0,
        *,
        docstrings: bool = True,
        annotations: bool = True,
        keep_lines: bool = True,
        keep: Sequence[str] = (),
    ) -> None:
        if optimize_level not in (0, 1):
            raise ValueError(f"optimize_level must be 0 or 1, not {optimize_level!r}")
        self.optimize_level = optimize_level
        self.docstrings = docstrings
        self.annotations = annotations
        self.keep_lines = keep_lines
        self.keep = tuple(keep)
        self.notes: list[StripNote] = []
        what = [w for w, on in (("docstrings", docstrings), ("annotations", annotations)) if on]
        if optimize_level:
            what.append("asserts and `if __debug__:` blocks (-O equivalent)")
        self.description = (", ".join(what) or "nothing") + " stripped at source where unread"

    def run(self, program: Program, ctx: StepContext | None = None) -> list[Edit]:
        """Propose the strip edits for ``program``; ``self.notes`` says what was kept and why."""
        keep = list(self.keep)
        test_command: Sequence[str] = ()
        if ctx is not None:
            keep += [*ctx.app.keep, *ctx.request.keep]
            test_command = ctx.app.test_command
        analysis = StripPass(
            optimize_level=self.optimize_level,
            docstrings=self.docstrings,
            annotations=self.annotations,
            keep=keep,
            test_command=test_command,
        )
        edits = analysis.run(program)
        self.notes = analysis.notes
        return edits

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """New text of each file the ``edits`` change (any subset applies; libcst keeps layout)."""
        return apply_strip_edits(program, edits, keep_lines=self.keep_lines)


# --------------------------------------------------------------------------- analysis


@dataclass
class _ModuleFacts:
    """What one module tells about readers of docstrings and annotations."""

    name: str
    source: ModuleSource
    imports: dict[str, str] = field(default_factory=dict)  # local alias -> dotted name
    defs: dict[str, ast.AST] = field(default_factory=dict)  # qualname -> def/class node
    doc_module_wide: str | None = None
    ann_module_wide: str | None = None


class StripPass:
    """The analysis behind :class:`StripStep`: proposes edits and records what it kept."""

    def __init__(
        self,
        optimize_level: int = 0,
        *,
        docstrings: bool = True,
        annotations: bool = True,
        keep: Sequence[str] = (),
        test_command: Sequence[str] = (),
    ) -> None:
        self.optimize_level = optimize_level
        self.docstrings = docstrings
        self.annotations = annotations
        self.keep = set(keep)
        self.test_command = tuple(test_command)
        self.notes: list[StripNote] = []
        # what reads docstrings / annotations: key -> first reason seen
        self.doc_reads: dict[tuple, str] = {}
        self.ann_reads: dict[tuple, str] = {}
        self.facts: dict[str, _ModuleFacts] = {}
        # function names called under a try that catches AssertionError
        self.assert_callees: set[str] = set()

    # -- entry point ------------------------------------------------------------

    def run(self, program: Program) -> list[Edit]:
        """Scan the whole program for readers, then propose one edit per strippable site."""
        for name, mod in sorted(program.modules.items()):
            if mod.tree is None or mod.text is None or mod.alias_of is not None:
                continue
            self.facts[name] = self._facts(name, mod)
        if any("doctest" in part for part in self.test_command):
            self.doc_reads.setdefault(_ALL, "the test command runs doctests")
        for facts in self.facts.values():
            _ReaderScan(self, facts).visit(facts.source.tree)
        if self.optimize_level:
            self._close_assert_callees()
        edits: list[Edit] = []
        for facts in self.facts.values():
            edits.extend(_Proposer(self, facts).propose())
        return edits

    # -- module facts -----------------------------------------------------------

    def _facts(self, name: str, mod: ModuleSource) -> _ModuleFacts:
        facts = _ModuleFacts(name, mod)
        package = name if mod.is_package else name.rpartition(".")[0]
        assert mod.tree is not None
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        facts.imports[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        facts.imports[top] = top
                    self._library_guards(facts, a.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = relative_base(package, node.module, node.level)
                if base is None:
                    continue
                self._library_guards(facts, base, node.lineno)
                for a in node.names:
                    if a.name != "*":
                        facts.imports[a.asname or a.name] = f"{base}.{a.name}"
        _collect_defs(mod.tree, "", facts.defs)
        return facts

    def _library_guards(self, facts: _ModuleFacts, dotted: str, line: int) -> None:
        top = dotted.split(".")[0]
        where = f"{facts.source.path.as_posix()}:{line}"
        if top in _DOC_READERS_GLOBAL:
            self.doc_reads.setdefault(_ALL, f"{where} imports {top}, which reads docstrings")
        elif top in _DOC_READERS_MODULE and facts.doc_module_wide is None:
            facts.doc_module_wide = f"{where} imports {top}, which builds on docstrings"
        if top in _ANN_READERS_GLOBAL:
            self.ann_reads.setdefault(_ALL, f"{where} imports {top}, which reads annotations")
        elif top in _ANN_READERS_MODULE and facts.ann_module_wide is None:
            facts.ann_module_wide = f"{where} imports {top}, which reads annotations"

    # -- resolution -------------------------------------------------------------

    def dotted(self, facts: _ModuleFacts, node: ast.AST) -> str | None:
        """The dotted name an expression spells, with the module's imports resolved."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        head = facts.imports.get(node.id)
        if head is None:
            head = f"{facts.name}.{node.id}" if node.id in facts.defs else f"builtins.{node.id}"
        return ".".join([head, *reversed(parts)])

    def target_keys(self, facts: _ModuleFacts, node: ast.AST, enclosing: str) -> tuple | None:
        """What reading ``node.__doc__`` (or its annotations) names; None when unknown."""
        if isinstance(node, ast.Name) and node.id in ("self", "cls"):
            return _ALL_CLASSES
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "type":
            return _ALL_CLASSES
        if isinstance(node, ast.Attribute) and node.attr == "__class__":
            return _ALL_CLASSES
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("self", "cls"):
            return ("any-def", node.attr)
        dotted = self.dotted(facts, node)
        if dotted is None:
            return None
        # the longest program module that prefixes the dotted name, then a qualname in it
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[:i])
            if mod in self.facts:
                qual = ".".join(parts[i:])
                if not qual:
                    return ("module", mod)
                if qual in self.facts[mod].defs:
                    return ("def", mod, qual)
                return None
        return None

    # -- asserts ----------------------------------------------------------------

    def _close_assert_callees(self) -> None:
        """Names of functions reachable (by name) from a try catching AssertionError."""
        calls: dict[str, set[str]] = {}
        for facts in self.facts.values():
            for qual, node in facts.defs.items():
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    short = qual.rpartition(".")[2]
                    calls.setdefault(short, set()).update(_called_names(node))
        todo = list(self.assert_callees)
        while todo:
            for callee in calls.get(todo.pop(), ()):
                if callee not in self.assert_callees:
                    self.assert_callees.add(callee)
                    todo.append(callee)

    def kept(self, keys: Iterable[tuple], reads: dict[tuple, str]) -> str | None:
        """The reason a site named by ``keys`` must stay, if a reader names it."""
        for key in (_ALL, *keys):
            if key in reads:
                return reads[key]
        return None

    def in_keep_list(self, symbol: str) -> bool:
        """True when the keep-list names ``symbol`` (``mod:qual``, ``mod:*`` or ``*:name``)."""
        if not self.keep:
            return False
        module, _, qual = symbol.partition(":")
        short = qual.rpartition(".")[2]
        return (
            symbol in self.keep
            or f"{module}:*" in self.keep
            or (bool(short) and f"*:{short}" in self.keep)
            or any(qual.startswith(k.partition(":")[2] + ".") and k.partition(":")[0] == module
                   for k in self.keep if ":" in k)
        )


def _collect_defs(body_owner: ast.AST, prefix: str, out: dict[str, ast.AST]) -> None:
    for node in getattr(body_owner, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qual = f"{prefix}{node.name}"
            out.setdefault(qual, node)
            if isinstance(node, ast.ClassDef):
                _collect_defs(node, qual + ".", out)
        elif isinstance(node, (ast.If, ast.Try)):
            # definitions under `if TYPE_CHECKING`/`try: ... except ImportError`
            for block in ("body", "orelse", "finalbody"):
                _collect_defs(_Block(getattr(node, block, [])), prefix, out)
            for h in getattr(node, "handlers", []):
                _collect_defs(h, prefix, out)


@dataclass
class _Block:
    body: list


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            if isinstance(sub.func, ast.Name):
                names.add(sub.func.id)
            elif isinstance(sub.func, ast.Attribute):
                names.add(sub.func.attr)
    return names


def _handler_catches(handlers: Sequence[ast.ExceptHandler]) -> str | None:
    """'explicit' for an AssertionError handler, 'broad' for Exception/bare, else None."""
    kind = None
    for h in handlers:
        types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        for t in types:
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(
                t, ast.Attribute) else None
            if t is None or name in ("Exception", "BaseException"):
                kind = kind or "broad"
            elif name == "AssertionError":
                return "explicit"
    return kind


class _ReaderScan(ast.NodeVisitor):
    """Finds reads of ``__doc__``, annotations, and asserts caught as control flow."""

    def __init__(self, owner: StripPass, facts: _ModuleFacts) -> None:
        self.o = owner
        self.f = facts
        self.path = facts.source.path.as_posix()
        self.scope: list[tuple[str, str]] = []  # (kind, name)

    def _where(self, node: ast.AST) -> str:
        return f"{self.path}:{getattr(node, 'lineno', 0)}"

    def _qual(self) -> str:
        return ".".join(n for _, n in self.scope)

    def _read(self, reads: dict[tuple, str], what: str, target: ast.AST | None,
              node: ast.AST) -> None:
        enclosing = self._qual()
        keys = None if target is None else self.o.target_keys(self.f, target, enclosing)
        code = ast.unparse(node)
        if len(code) > 60:
            code = code[:57] + "..."
        if keys is None:
            reads.setdefault(_ALL, f"{self._where(node)} reads {what} of something not "
                                   f"resolved statically ({code})")
        else:
            reads.setdefault(keys, f"{self._where(node)} reads {what} ({code})")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self.visit(node.args)
        if node.returns:
            self.visit(node.returns)
        self.scope.append(("def", node.name))
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(d)
        self.scope.append(("class", node.name))
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        if node.id == "__doc__":
            # a bare __doc__ is the class's in a class body, the module's elsewhere
            if self.scope and self.scope[-1][0] == "class":
                key = ("def", self.f.name, self._qual())
            else:
                key = ("module", self.f.name)
            self.o.doc_reads.setdefault(key, f"{self._where(node)} reads __doc__")
        elif node.id == "__annotations__":
            if self.scope and self.scope[-1][0] == "class":
                key = ("def", self.f.name, self._qual())
            else:
                key = ("module", self.f.name)
            self.o.ann_reads.setdefault(key, f"{self._where(node)} reads __annotations__")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.attr == "__doc__":
                self._read(self.o.doc_reads, "__doc__", node.value, node)
            elif node.attr in ("__annotations__", "__annotate__", "__signature__"):
                self._read(self.o.ann_reads, "annotations", node.value, node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # getattr(obj, "__doc__") and friends: the object is not known
        if node.value == "__doc__":
            self._read(self.o.doc_reads, "__doc__ by name", None, node)
        elif node.value in ("__annotations__", "__annotate__"):
            self._read(self.o.ann_reads, "annotations by name", None, node)

    def visit_Call(self, node: ast.Call) -> None:
        dotted = self.o.dotted(self.f, node.func) or ""
        target = node.args[0] if node.args else None
        if dotted in _DOC_CALLS:
            self._read(self.o.doc_reads, f"docstrings through {dotted}()", target, node)
        if dotted in _ANN_CALLS or dotted.endswith(".get_type_hints"):
            self._read(self.o.ann_reads, f"annotations through {dotted}()", target, node)
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        catches = _handler_catches(node.handlers)
        if catches is not None and self.o.optimize_level:
            names = set()
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    if isinstance(sub, ast.Call):
                        if isinstance(sub.func, ast.Name):
                            names.add(sub.func.id)
                        elif isinstance(sub.func, ast.Attribute):
                            names.add(sub.func.attr)
            if catches == "explicit":
                self.o.assert_callees.update(names)
            else:
                # a broad handler: only the functions it calls directly (one level),
                # or every assert under a top-level `except Exception` would stay
                self.o.assert_callees.update(f"\0{n}" for n in names)
        self.generic_visit(node)

    visit_TryStar = visit_Try  # type: ignore[assignment]


# --------------------------------------------------------------------------- proposing


class _Proposer:
    """Walks one module and proposes its edits, noting the guarded sites."""

    def __init__(self, owner: StripPass, facts: _ModuleFacts) -> None:
        self.o = owner
        self.f = facts
        self.mod = facts.source
        self.path = facts.source.path.as_posix()
        self.keep_lines = keep_comment_lines(facts.source.text)
        self.edits: list[Edit] = []
        self.is_test_file = _is_test_file(self.path)

    def propose(self) -> list[Edit]:
        tree = self.mod.tree
        assert tree is not None
        if self.o.docstrings:
            self._docstring(tree, "", None, 0)
        self._body(tree.body, prefix="", scope="module", in_try=None, func=None)
        return self.edits

    # -- helpers -----------------------------------------------------------------

    def _symbol(self, qual: str) -> str:
        return f"{self.f.name}:{qual}" if qual else self.f.name

    def _note(self, kind: str, line: int, qual: str, reason: str) -> None:
        self.o.notes.append(StripNote(kind, self.path, line, self._symbol(qual), reason))

    def _marked(self, *lines: int) -> bool:
        return any(line in self.keep_lines for line in lines)

    def _add(self, kind: str, line: int, qual: str, reason: str, target: dict,
             extra: dict | None = None, suffix: str = "") -> None:
        symbol = self._symbol(qual)
        eid = f"{PASS_NAME}:{kind}:{self.path}:{line}:{qual or '<module>'}{suffix}"
        evidence = {"target": target, **(extra or {})}
        self.edits.append(Edit(eid, PASS_NAME, kind, self.path, line, symbol, reason, evidence))

    # -- docstrings ----------------------------------------------------------------

    def _docstring(self, node: ast.AST, qual: str, def_node: ast.AST | None,
                   header_line: int) -> None:
        body = getattr(node, "body", [])
        if not body or not isinstance(body[0], ast.Expr):
            return
        value = body[0].value
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            return
        line = body[0].lineno
        end = getattr(body[0], "end_lineno", line) or line
        if def_node is None:
            keys: list[tuple] = [("module", self.f.name)]
            what = "module docstring"
        else:
            keys = [("def", self.f.name, qual), ("any-def", qual.rpartition(".")[2])]
            if isinstance(def_node, ast.ClassDef):
                keys.append(_ALL_CLASSES)
            what = f"docstring of {qual}"
        reason = self.o.kept(keys, self.o.doc_reads) or self.f.doc_module_wide
        if reason is None and self.o.in_keep_list(self._symbol(qual)):
            reason = "named in the keep-list"
        if reason is None and self._marked(header_line, line, *range(line, end + 1)):
            reason = "marked '# memtrim: keep'"
        if reason is not None:
            self._note("docstring", line, qual, reason)
            return
        self._add(
            "docstring", line, qual,
            f"{what} ({len(value.value)} characters) is never read by the program",
            {"line": line, "end_line": end},
            {"characters": len(value.value)},
        )

    # -- walking -------------------------------------------------------------------

    def _body(self, body: Sequence[ast.stmt], *, prefix: str, scope: str,
              in_try: str | None, func: str | None) -> None:
        for stmt in body:
            self._stmt(stmt, prefix=prefix, scope=scope, in_try=in_try, func=func)

    def _stmt(self, stmt: ast.stmt, *, prefix: str, scope: str, in_try: str | None,
              func: str | None) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qual = f"{prefix}{stmt.name}"
            if self.o.docstrings:
                self._docstring(stmt, qual, stmt, stmt.lineno)
            if self.o.annotations:
                self._function_annotations(stmt, qual, scope, prefix)
            # asserts in a function called from a try that catches them stay
            callee = None
            if stmt.name in self.o.assert_callees:
                callee = "explicit"
            elif f"\0{stmt.name}" in self.o.assert_callees:
                callee = "broad"
            self._body(stmt.body, prefix=qual + ".", scope="function",
                       in_try=callee, func=stmt.name)
            return
        if isinstance(stmt, ast.ClassDef):
            qual = f"{prefix}{stmt.name}"
            if self.o.docstrings:
                self._docstring(stmt, qual, stmt, stmt.lineno)
            self._body(stmt.body, prefix=qual + ".", scope=f"class:{qual}",
                       in_try=in_try, func=func)
            return
        if isinstance(stmt, ast.AnnAssign):
            if self.o.annotations and scope != "function":
                self._ann_assign(stmt, scope, prefix)
            return
        if isinstance(stmt, ast.Assert):
            if self.o.optimize_level:
                self._assert(stmt, prefix, in_try, func)
            return
        if isinstance(stmt, ast.If) and _is_debug_test(stmt.test) and self.o.optimize_level:
            self._debug_block(stmt, prefix)
            # then walked like any block: edits inside a removed block go with it
        if isinstance(stmt, (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))):
            catches = _handler_catches(stmt.handlers)  # type: ignore[attr-defined]
            self._body(stmt.body, prefix=prefix, scope=scope,
                       in_try=catches or in_try, func=func)
            for h in stmt.handlers:  # type: ignore[attr-defined]
                self._body(h.body, prefix=prefix, scope=scope, in_try=in_try, func=func)
            for block in (stmt.orelse, stmt.finalbody):
                self._body(block, prefix=prefix, scope=scope, in_try=in_try, func=func)
            return
        for block in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, block, None)
            if isinstance(inner, list):
                self._body(inner, prefix=prefix, scope=scope, in_try=in_try, func=func)
        if isinstance(stmt, ast.Match):
            for case in stmt.cases:
                self._body(case.body, prefix=prefix, scope=scope, in_try=in_try, func=func)

    # -- asserts and debug blocks --------------------------------------------------

    def _assert(self, stmt: ast.Assert, prefix: str, in_try: str | None,
                func: str | None) -> None:
        qual = prefix.rstrip(".")
        line = stmt.lineno
        end = stmt.end_lineno or line
        reason = None
        if self.is_test_file:
            reason = "a test file: its asserts are the tests"
        elif in_try is not None:
            reason = (
                f"AssertionError is caught around {'a call of ' + func if func else 'it'} "
                f"({'except AssertionError' if in_try == 'explicit' else 'a broad except'}): "
                "the assert is control flow"
            )
        else:
            impure = _impure_call(stmt)
            if impure is not None:
                reason = f"its condition calls {impure}(), which may have side effects"
        if reason is None and self._marked(*range(line, end + 1)):
            reason = "marked '# memtrim: keep'"
        if reason is None and qual and self.o.in_keep_list(self._symbol(qual)):
            reason = "named in the keep-list"
        if reason is not None:
            self._note("assert", line, qual, reason)
            return
        ordinal = self._ordinal(stmt, ast.Assert)
        self._add(
            "assert", line, qual,
            "assert statement (removed as by python -O; optimize_level=1 was asked for)",
            {"line": line, "ordinal": ordinal, "end_line": end},
            suffix=f":{ordinal}" if ordinal else "",
        )

    def _ordinal(self, stmt: ast.stmt, kind: type) -> int:
        """How many statements of ``kind`` start before ``stmt`` on its line."""
        siblings = self._line_statements.get(stmt.lineno)
        if siblings is None:
            return 0
        same = [s for s in siblings if isinstance(s, kind)]
        return same.index(stmt) if stmt in same else 0

    @property
    def _line_statements(self) -> dict[int, list[ast.stmt]]:
        cache = getattr(self, "_line_cache", None)
        if cache is None:
            cache = {}
            assert self.mod.tree is not None
            for node in ast.walk(self.mod.tree):
                if isinstance(node, ast.stmt):
                    cache.setdefault(node.lineno, []).append(node)
            for stmts in cache.values():
                stmts.sort(key=lambda s: s.col_offset)
            self._line_cache = cache
        return cache

    def _debug_block(self, stmt: ast.If, prefix: str) -> None:
        qual = prefix.rstrip(".")
        line = stmt.lineno
        bound = _bound_names(stmt.body) - _bound_names(stmt.orelse)
        used = _loaded_names(self.mod.tree, exclude=stmt) & bound
        reason = None
        if used:
            reason = (f"the block binds {', '.join(sorted(used))}, used outside it: "
                      "removing it would leave the name undefined")
        elif self._marked(line):
            reason = "marked '# memtrim: keep'"
        if reason is not None:
            self._note("debug-block", line, qual, reason)
            return
        self._add(
            "debug-block", line, qual,
            "`if __debug__:` block (removed as by python -O; optimize_level=1 was asked for)",
            {"line": line},
        )

    # -- annotations ---------------------------------------------------------------

    def _class_guard(self, cls_qual: str) -> str | None:
        """Why the annotations in the body of class ``cls_qual`` must stay, if they must."""
        node = self.f.defs.get(cls_qual)
        if not isinstance(node, ast.ClassDef):
            return None
        return _class_reads_annotations(self.o, self.f, node, set())

    def _function_annotations(self, stmt: ast.FunctionDef | ast.AsyncFunctionDef, qual: str,
                              scope: str, prefix: str) -> None:
        annotated = [a for a in _all_args(stmt.args) if a.annotation is not None]
        if not annotated and stmt.returns is None:
            return
        line = stmt.lineno
        keys = [("def", self.f.name, qual), ("any-def", stmt.name)]
        if scope.startswith("class:"):
            keys.append(("def", self.f.name, scope[6:]))
        reason = self.o.kept(keys, self.o.ann_reads) or self.f.ann_module_wide
        if reason is None:
            for d in stmt.decorator_list:
                why = _decorator_reads(self.o, self.f, d, _HARMLESS_FUNC_DECORATORS)
                if why:
                    reason = why
                    break
        if reason is None and scope.startswith("class:"):
            cls_reason = self._class_guard(scope[6:])
            if cls_reason is not None and "outside the program" in cls_reason:
                reason = f"a method of a class whose {cls_reason}"
        if reason is None:
            effect = _annotation_effect([a.annotation for a in annotated] + [stmt.returns])
            if effect:
                reason = effect
        if reason is None and self.o.in_keep_list(self._symbol(qual)):
            reason = "named in the keep-list"
        header_end = stmt.body[0].lineno if stmt.body else line
        if reason is None and self._marked(*range(line, header_end + 1)):
            reason = "marked '# memtrim: keep'"
        if reason is not None:
            self._note("annotation", line, qual, reason)
            return
        n = len(annotated) + (stmt.returns is not None)
        self._add(
            "annotation", line, qual,
            f"{n} annotation(s) of {qual}() are never read by the program",
            {"line": line, "name": stmt.name, "def": True},
            {"annotations": n},
        )

    def _ann_assign(self, stmt: ast.AnnAssign, scope: str, prefix: str) -> None:
        qual = prefix.rstrip(".")
        line = stmt.lineno
        target = ast.unparse(stmt.target)
        symbol_qual = f"{qual}.{target}" if qual else target
        if scope.startswith("class:"):
            keys = [("def", self.f.name, scope[6:]), _ALL_CLASSES]
            reason = self.o.kept(keys, self.o.ann_reads) or self._class_guard(scope[6:])
        else:
            keys = [("module", self.f.name)]
            reason = self.o.kept(keys, self.o.ann_reads)
        reason = reason or self.f.ann_module_wide
        if reason is None:
            reason = _annotation_effect([stmt.annotation])
        if reason is None and self.o.in_keep_list(self._symbol(symbol_qual)):
            reason = "named in the keep-list"
        if reason is None and self._marked(line):
            reason = "marked '# memtrim: keep'"
        if reason is not None:
            self._note("annotation", line, symbol_qual, reason)
            return
        ordinal = self._ordinal(stmt, ast.AnnAssign)
        what = "declaration" if stmt.value is None else "assignment"
        self._add(
            "annotation", line, symbol_qual,
            f"the annotation of the {what} of {target} is never read by the program",
            {"line": line, "ordinal": ordinal, "def": False},
            suffix=f":{ordinal}" if ordinal else "",
        )


def _is_test_file(path: str) -> bool:
    name = path.rpartition("/")[2]
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _is_debug_test(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "__debug__"


def _all_args(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        out.append(args.vararg)
    if args.kwarg:
        out.append(args.kwarg)
    return out


def _impure_call(stmt: ast.Assert) -> str | None:
    for node in ast.walk(stmt):
        if isinstance(node, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return type(node).__name__.lower()
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in _PURE_CALLS:
                return ast.unparse(node.func)
    return None


def _annotation_effect(annotations: Iterable[ast.expr | None]) -> str | None:
    """Why evaluating these annotations may matter (a call in one), if it may."""
    for ann in annotations:
        if ann is None:
            continue
        for node in ast.walk(ann):
            if isinstance(node, (ast.Call, ast.NamedExpr)):
                return (f"the annotation {ast.unparse(ann)[:60]} makes a call when it is "
                        "evaluated (e.g. Annotated metadata read by a validator)")
    return None


def _bound_names(body: Sequence[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    names.add(a.asname or a.name.split(".")[0])
    return names


def _loaded_names(tree: ast.AST | None, exclude: ast.AST) -> set[str]:
    skip = {id(n) for n in ast.walk(exclude)}
    return {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name)  # type: ignore[arg-type]
        and isinstance(n.ctx, ast.Load) and id(n) not in skip
    }


def _decorator_reads(owner: StripPass, facts: _ModuleFacts, dec: ast.expr,
                     harmless: frozenset[str]) -> str | None:
    """Why a decorator may read annotations (None: it cannot, as far as we know)."""
    func = dec.func if isinstance(dec, ast.Call) else dec
    dotted = owner.dotted(facts, func)
    text = ast.unparse(dec)[:60]
    if isinstance(func, ast.Attribute) and func.attr == "register":
        return f"decorator @{text} may register it by its annotations (singledispatch)"
    if dotted is None:
        return f"decorator @{text} is not resolved statically"
    if dotted in harmless:
        return None
    if isinstance(func, ast.Attribute) and func.attr in ("setter", "getter", "deleter"):
        return None
    # a decorator defined in the program: whatever it reads was found by the reader scan
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in owner.facts:
            return None
    if dotted.startswith("builtins."):
        return None if dotted[9:] in ("staticmethod", "classmethod", "property") else (
            f"decorator @{text} is not resolved statically")
    return f"decorator @{text} comes from outside the program and may read annotations"


def _class_reads_annotations(owner: StripPass, facts: _ModuleFacts, node: ast.ClassDef,
                             seen: set[int]) -> str | None:
    """Why the class machinery of ``node`` may read its body's annotations."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    for d in node.decorator_list:
        func = d.func if isinstance(d, ast.Call) else d
        dotted = owner.dotted(facts, func) or ast.unparse(func)
        if dotted not in _HARMLESS_CLASS_DECORATORS:
            return f"decorator @{ast.unparse(d)[:50]} reads the class's annotations (fields)"
    for kw in node.keywords:
        return f"class keyword {kw.arg}= (a metaclass or __init_subclass__) may read them"
    if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
           and s.name == "__init_subclass__" for s in node.body):
        return "the class defines __init_subclass__, which may read subclass annotations"
    for base in node.bases:
        b = base.value if isinstance(base, ast.Subscript) else base
        dotted = owner.dotted(facts, b)
        if dotted is None:
            return f"base {ast.unparse(base)[:50]} is not resolved statically"
        if dotted in _PLAIN_BASES:
            continue
        # a program class: the same question for it
        parts = dotted.split(".")
        resolved = None
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[:i])
            if mod in owner.facts:
                qual = ".".join(parts[i:])
                cand = owner.facts[mod].defs.get(qual)
                if isinstance(cand, ast.ClassDef):
                    resolved = (owner.facts[mod], cand)
                break
        if resolved is None:
            return (f"base {ast.unparse(base)[:50]} comes from outside the program "
                    "(NamedTuple, TypedDict, pydantic, ORM bases read annotations)")
        why = _class_reads_annotations(owner, resolved[0], resolved[1], seen)
        if why is not None:
            return f"base {ast.unparse(base)[:50]}: {why}"
    return None


# --------------------------------------------------------------------------- applying


def apply_strip_edits(
    program: Program, edits: Iterable[Edit], *, keep_lines: bool = True
) -> dict[str, str]:
    """Apply strip edits; return the new text of each file that changes (path -> text).

    Any subset applies.  With ``keep_lines`` every removed line becomes a blank
    line, so the rest of the file keeps its line numbers.  Raises
    :class:`~memtrim.edits.EditError` when a target is missing or the result
    would not compile.
    """
    return apply_per_file(
        program, edits, STRIP_KINDS,
        lambda text, file_edits, path: _apply_text(text, file_edits, path, keep_lines),
        what="the strip step cannot apply",
    )


def _apply_text(text: str, edits: list[Edit], path: str, keep_lines: bool) -> str:
    return rewrite_text(text, edits, path, _StripApplier(edits, keep_lines))


_EMPTY = cst.Module(body=[])


def _lines_of(node: cst.CSTNode) -> int:
    """How many lines ``node`` occupies (its own leading lines excluded)."""
    if hasattr(node, "leading_lines"):
        node = node.with_changes(leading_lines=())
    code = _EMPTY.code_for_node(node)
    return max(1, code.count("\n"))


def _is_doc_expr(small: cst.BaseSmallStatement) -> bool:
    return isinstance(small, cst.Expr) and isinstance(
        small.value, (cst.SimpleString, cst.ConcatenatedString)
    ) and "b" not in _string_prefix(small.value)


def _string_prefix(node: cst.BaseExpression) -> str:
    while isinstance(node, cst.ConcatenatedString):
        node = node.left
    return node.prefix.lower() if isinstance(node, cst.SimpleString) else "f"


class _StripApplier(cst.CSTTransformer):
    """Removes docstrings, asserts, ``if __debug__:`` blocks and annotations named by edits."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, edits: list[Edit], keep_lines: bool) -> None:
        super().__init__()
        self.keep_lines = keep_lines
        self.docs: dict[int, Edit] = {}
        self.small: dict[tuple[str, int, int], Edit] = {}  # (kind, line, ordinal)
        self.debug: dict[int, Edit] = {}
        self.defs: dict[tuple[int, str], Edit] = {}
        self.matched: set[str] = set()
        for e in edits:
            t = e.evidence.get("target")
            if not isinstance(t, dict):
                raise EditError(f"{e.id}: evidence has no 'target'")
            line = int(t["line"])
            if e.kind == "docstring":
                self.docs[line] = e
            elif e.kind == "assert":
                self.small[("assert", line, int(t.get("ordinal", 0)))] = e
            elif e.kind == "debug-block":
                self.debug[line] = e
            elif t.get("def"):
                self.defs[(line, str(t["name"]))] = e
            else:
                self.small[("ann", line, int(t.get("ordinal", 0)))] = e

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    # -- function annotations ----------------------------------------------------------

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        edit = self.defs.get((self._line(original_node.name), original_node.name.value))
        if edit is None:
            return updated_node
        self.matched.add(edit.id)
        params = updated_node.params

        def bare(p: cst.Param) -> cst.Param:
            if p.annotation is None:
                return p
            changes: dict[str, Any] = {"annotation": None}
            if p.default is not None:
                # PEP 8: no spaces around = without an annotation
                changes["equal"] = cst.AssignEqual(
                    whitespace_before=cst.SimpleWhitespace(""),
                    whitespace_after=cst.SimpleWhitespace(""),
                )
            return p.with_changes(**changes)

        star = params.star_arg
        new_params = params.with_changes(
            posonly_params=[bare(p) for p in params.posonly_params],
            params=[bare(p) for p in params.params],
            kwonly_params=[bare(p) for p in params.kwonly_params],
            star_arg=bare(star) if isinstance(star, cst.Param) else star,
            star_kwarg=bare(params.star_kwarg) if params.star_kwarg else None,
        )
        return updated_node.with_changes(params=new_params, returns=None)

    # -- blocks --------------------------------------------------------------------

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body, carry = self._body(original_node.body, updated_node.body, top=True)
        if body is None:
            return updated_node
        return updated_node.with_changes(body=body, footer=[*carry, *updated_node.footer])

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body, carry = self._body(original_node.body, updated_node.body, top=False)
        if body is None:
            return updated_node
        if not body:  # every statement went: the block still needs one
            if self.keep_lines and carry and carry[-1].comment is None:
                carry = carry[:-1]  # `pass` takes the last removed line
            body = [cst.SimpleStatementLine([cst.Pass()], leading_lines=carry)]
            carry = []
        return updated_node.with_changes(body=body, footer=[*carry, *updated_node.footer])

    def leave_SimpleStatementSuite(
        self, original_node: cst.SimpleStatementSuite, updated_node: cst.SimpleStatementSuite
    ) -> cst.SimpleStatementSuite:
        # `def f(): "doc"; return 1` -- the first small statement may be the docstring
        small = self._small(original_node.body, updated_node.body, first_in_block=True)
        if small is None:
            return updated_node
        return updated_node.with_changes(body=small or [cst.Pass()])

    def _blank(self, n: int) -> list[cst.EmptyLine]:
        return [cst.EmptyLine() for _ in range(n)] if self.keep_lines else []

    def _body(
        self, original: Sequence[cst.BaseStatement], updated: Sequence[cst.BaseStatement],
        *, top: bool,
    ) -> tuple[list[cst.BaseStatement] | None, list[cst.EmptyLine]]:
        new: list[cst.BaseStatement] = []
        carry: list[cst.EmptyLine] = []
        changed = False
        for index, (o, u) in enumerate(zip(original, updated, strict=True)):
            result = self._statement(o, u, first=index == 0)
            if result is not u:
                changed = True
            if result is None:  # removed: its comments stay, its lines become blank
                carry.extend(getattr(u, "leading_lines", ()))
                carry.extend(self._blank(_lines_of(u)))
                continue
            stmts = result if isinstance(result, list) else [result]
            for i, s in enumerate(stmts):
                if carry and i == 0:
                    s = s.with_changes(leading_lines=[*carry, *s.leading_lines])
                    carry = []
                new.append(s)
        if not changed:
            return None, []
        if not self.keep_lines and new and new[0] is not updated[0] and not top:
            # no blank line at the start of a block whose first statement went
            lines = list(new[0].leading_lines)
            while lines and lines[0].comment is None:
                lines.pop(0)
            new[0] = new[0].with_changes(leading_lines=lines)
        return new, carry

    def _statement(
        self, o: cst.BaseStatement, u: cst.BaseStatement, *, first: bool
    ) -> cst.BaseStatement | list[cst.BaseStatement] | None:
        if isinstance(o, cst.If) and isinstance(u, cst.If):
            edit = self.debug.get(self._line(o))
            if edit is not None and isinstance(o.test, cst.Name) and o.test.value == "__debug__":
                self.matched.add(edit.id)
                return self._without_debug(u)
            return u
        if isinstance(o, cst.SimpleStatementLine) and isinstance(u, cst.SimpleStatementLine):
            small = self._small(o.body, u.body, first_in_block=first)
            if small is None:
                return u
            return u.with_changes(body=small) if small else None
        return u

    def _without_debug(self, u: cst.If) -> list[cst.BaseStatement] | None:
        """What replaces ``if __debug__: A [elif/else ...]``: the rest, in the same lines."""
        total = _lines_of(u)
        orelse = u.orelse
        if orelse is None:
            return None
        if isinstance(orelse, cst.If):  # elif c: ... -> if c: ...
            rest: list[cst.BaseStatement] = [orelse]
        elif isinstance(orelse.body, cst.IndentedBlock):
            rest = list(orelse.body.body)
        else:  # else: x = 1 on one line
            rest = [cst.SimpleStatementLine(body=orelse.body.body)]
        kept = sum(_lines_of(s) + len(s.leading_lines) for s in rest)
        if not isinstance(orelse, cst.If) and isinstance(orelse.body, cst.IndentedBlock):
            kept += len(orelse.body.footer)
        blanks = self._blank(max(0, total - kept))
        first = rest[0]
        rest[0] = first.with_changes(leading_lines=[*u.leading_lines, *blanks,
                                                    *first.leading_lines])
        return rest

    def _small(
        self, original: Sequence[cst.BaseSmallStatement],
        updated: Sequence[cst.BaseSmallStatement], *, first_in_block: bool,
    ) -> list[cst.BaseSmallStatement] | None:
        out: list[cst.BaseSmallStatement] = []
        changed = False
        counts = {"assert": 0, "ann": 0}
        for index, (o, u) in enumerate(zip(original, updated, strict=True)):
            line = self._line(o)
            r: cst.BaseSmallStatement | None = u
            if index == 0 and first_in_block and _is_doc_expr(o):
                edit = self.docs.get(line)
                if edit is not None:
                    self.matched.add(edit.id)
                    r = None
            elif isinstance(o, cst.Assert):
                edit = self.small.get(("assert", line, counts["assert"]))
                counts["assert"] += 1
                if edit is not None:
                    self.matched.add(edit.id)
                    r = None
            elif isinstance(o, cst.AnnAssign) and isinstance(u, cst.AnnAssign):
                edit = self.small.get(("ann", line, counts["ann"]))
                counts["ann"] += 1
                if edit is not None:
                    self.matched.add(edit.id)
                    if u.value is None:
                        r = None
                    else:
                        r = cst.Assign(
                            targets=[cst.AssignTarget(target=u.target)],
                            value=u.value,
                            semicolon=u.semicolon,
                        )
            if r is not u:
                changed = True
            if r is not None:
                out.append(r)
        if not changed:
            return None
        if out and not isinstance(out[-1].semicolon, cst.MaybeSentinel):
            out[-1] = out[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        return out
