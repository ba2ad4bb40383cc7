"""Classification of the code that did not run (seed 000, section 4.3.1).

Given a coverage profile (:mod:`memtrim.analysis.coverage_run`), every statement
that ran in no workload falls in one of two classes, as in the paper:

- **dead code**: never executed, and not under an untaken branch.  That is a
  module that was never imported (``module``); a function or method that was
  never entered although its ``def`` ran (``function``; the entry arcs decide,
  since the line data shows a one-line ``def f(): return 1`` as executed even
  when it never ran); code after an unconditional ``return``, ``raise``,
  ``continue`` or ``break`` (``unreachable``, a static fact); and the tail of a
  block that the statements before it always left, by returning, raising or
  exiting (``interrupted``).
- **branch code**: the untaken side of an ``if``/``elif``/``else``, a loop body
  that never iterated or a loop ``else`` that never ran, an ``except`` handler or
  ``try``-``else`` that never ran, a ``match`` case never chosen (``if``,
  ``else``, ``loop-body``, ``loop-else``, ``except``, ``try-else``, ``case``).

Regions are reported at block granularity, outermost first: code inside a
region is part of it and is not reported again.  Each region carries the AST
nodes it covers (for the passes that outline or delete it), the scopes that
enclose it, and which workloads reached its enclosing statement.

Statements that compile to no bytecode (docstrings and other constant
expressions, ``pass``, ``global``/``nonlocal``) never produce a line event, so
they are neither counted nor reported; a block made only of such statements is
never called cold.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from memtrim.analysis.coverage_run import CoverageResult, FileCoverage
from memtrim.program import ModuleSource, Program

DEAD = "dead"
BRANCH = "branch"

_TERMINATORS = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class ColdRegion:
    """One stretch of code that ran in no profiled workload.

    ``scope`` is the qualified name of the enclosing function or class ("" at
    module level); ``name`` is the function's own qualified name for a
    ``function`` region.  ``stmts`` are the statements of the region (for a
    ``function`` region, the ``def`` itself); ``chain`` the enclosing class and
    function nodes from the module down; ``header`` the compound statement whose
    block the region is (None for ``function``/``module``/``unreachable``/
    ``interrupted``); ``part`` names that block (``body``, ``orelse``,
    ``handlers[1]``, ``cases[0]``, ``finalbody``).  ``reached_by``: workloads that
    ran the enclosing statement (the ``def`` for a function, the header for a
    branch).
    """

    category: str
    kind: str
    path: str
    module: str
    scope: str
    name: str
    first_line: int
    last_line: int
    statements: int
    reached_by: tuple[str, ...] = ()
    header_line: int | None = None
    part: str | None = None
    stmts: tuple[ast.stmt, ...] = field(default=(), repr=False, compare=False)
    chain: tuple[ast.AST, ...] = field(default=(), repr=False, compare=False)
    header: ast.stmt | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        """A stable identifier: ``kind:path:first_line``."""
        return f"{self.kind}:{self.path}:{self.first_line}"

    def reason(self, workloads: Sequence[str]) -> str:
        """One sentence: why this code is dead or branch code."""
        ran = ", ".join(workloads) or "no workload"
        reached = ", ".join(self.reached_by) or "none"
        what = {
            "module": "module was never imported",
            "function": f"{self.name} was never entered (its def ran in: {reached})",
            "unreachable": "code after an unconditional return/raise/continue/break",
            "interrupted": "never reached: the statements before it always left the block "
                           "(return, raise, exit)",
        }.get(self.kind)
        if what is None:
            what = f"{self.kind} block never ran although its statement ran (in: {reached})"
        return f"{what}; profiled workloads: {ran}"

    def to_dict(self) -> dict:
        """A JSON-able dict (without the AST nodes)."""
        return {
            "category": self.category, "kind": self.kind, "path": self.path,
            "module": self.module, "scope": self.scope, "name": self.name,
            "first_line": self.first_line, "last_line": self.last_line,
            "statements": self.statements, "reached_by": list(self.reached_by),
            "header_line": self.header_line, "part": self.part,
        }


@dataclass
class ModuleStats:
    """Statement counts of one module: all, dead and branch."""

    path: str
    statements: int = 0
    dead: int = 0
    branch: int = 0
    imported: bool = True

    @property
    def executed(self) -> int:
        """Statements that are neither dead nor branch code (they ran)."""
        return self.statements - self.dead - self.branch


@dataclass
class DeadCodeReport:
    """Every cold region of a program, with per-module statement counts."""

    regions: list[ColdRegion]
    modules: dict[str, ModuleStats]
    workloads: list[str]

    def of_kind(self, *kinds: str) -> list[ColdRegion]:
        """The regions of the given kinds."""
        return [r for r in self.regions if r.kind in kinds]

    def in_path(self, path: str) -> list[ColdRegion]:
        """The regions of one file."""
        return [r for r in self.regions if r.path == path]

    def totals(self) -> dict[str, int]:
        """Statement totals: all, dead, branch, executed (over modules that were analysed)."""
        s = sum(m.statements for m in self.modules.values())
        d = sum(m.dead for m in self.modules.values())
        b = sum(m.branch for m in self.modules.values())
        return {"statements": s, "dead": d, "branch": b, "executed": s - d - b}

    def to_dict(self) -> dict:
        """A JSON-able summary for the report."""
        return {
            "workloads": list(self.workloads),
            "totals": self.totals(),
            "modules": {
                p: {"statements": m.statements, "dead": m.dead, "branch": m.branch,
                    "imported": m.imported}
                for p, m in sorted(self.modules.items())
            },
            "regions": [r.to_dict() for r in self.regions],
        }


# -- statement helpers ----------------------------------------------------------------


def is_docstring(stmt: ast.stmt) -> bool:
    """A constant string expression statement (a docstring where it comes first)."""
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(
        stmt.value.value, str)


def no_code(stmt: ast.stmt) -> bool:
    """True for statements that may compile to no bytecode, hence never show as executed.

    Constant expressions (docstrings, ``...``), ``pass``, ``global``/``nonlocal``,
    and ``assert`` (gone under ``-O``).
    """
    if isinstance(stmt, (ast.Pass, ast.Global, ast.Nonlocal, ast.Assert)):
        return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def has_code(stmts: Sequence[ast.stmt]) -> bool:
    """Whether any statement of ``stmts`` (or nested in it) compiles to bytecode for sure."""
    for s in stmts:
        if not no_code(s):
            return True
    return False


def first_line(stmt: ast.stmt) -> int:
    """The first line of a statement, decorators included."""
    decorators = getattr(stmt, "decorator_list", None)
    if decorators:
        return min(stmt.lineno, *(d.lineno for d in decorators))
    return stmt.lineno


def block_span(stmts: Sequence[ast.stmt]) -> tuple[int, int]:
    """First and last line of a statement list."""
    return first_line(stmts[0]), max(s.end_lineno or s.lineno for s in stmts)


def count_statements(stmts: Sequence[ast.stmt]) -> int:
    """Statements with code in ``stmts``, nested ones included."""
    n = 0
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.stmt) and not no_code(node):
                n += 1
    return n


def header_end(stmt: ast.stmt) -> int:
    """The last line of a compound statement's header (before its first block)."""
    blocks = [b for b in _blocks_of(stmt) if b[1]]
    if not blocks:
        return stmt.end_lineno or stmt.lineno
    return max(stmt.lineno, min(first_line(b[1][0]) for b in blocks) - 1)


def _blocks_of(stmt: ast.stmt) -> list[tuple[str, list[ast.stmt], ast.AST]]:
    """The statement lists of a compound statement: (field, statements, owner node)."""
    out: list[tuple[str, list[ast.stmt], ast.AST]] = []
    if isinstance(stmt, (ast.If, ast.For, ast.AsyncFor, ast.While)):
        out.append(("body", stmt.body, stmt))
        if stmt.orelse:
            out.append(("orelse", stmt.orelse, stmt))
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        out.append(("body", stmt.body, stmt))
    elif isinstance(stmt, _TRY):
        out.append(("body", stmt.body, stmt))
        for i, h in enumerate(stmt.handlers):
            out.append((f"handlers[{i}]", h.body, h))
        if stmt.orelse:
            out.append(("orelse", stmt.orelse, stmt))
        if stmt.finalbody:
            out.append(("finalbody", stmt.finalbody, stmt))
    elif isinstance(stmt, ast.Match):
        for i, c in enumerate(stmt.cases):
            out.append((f"cases[{i}]", c.body, c))
    elif isinstance(stmt, (*_FUNCS, ast.ClassDef)):
        out.append(("body", stmt.body, stmt))
    return out


_TRY = tuple(getattr(ast, n) for n in ("Try", "TryStar") if hasattr(ast, n))


def is_elif(stmt: ast.If, text_lines: Sequence[str] | None) -> bool:
    """Whether ``stmt.orelse`` is an ``elif`` (rather than ``else:`` holding an ``if``)."""
    if len(stmt.orelse) != 1 or not isinstance(stmt.orelse[0], ast.If):
        return False
    inner = stmt.orelse[0]
    if text_lines is not None and 0 < inner.lineno <= len(text_lines):
        return text_lines[inner.lineno - 1].lstrip().startswith("elif")
    return inner.col_offset == stmt.col_offset


# -- what ran -----------------------------------------------------------------------------


class Executed:
    """Executed lines and function entries of one file, with the contexts that ran them."""

    def __init__(self, fc: FileCoverage) -> None:
        self.fc = fc
        self.lines = fc.executed_lines()
        entries: dict[int, set[int]] = {}
        for a, b in fc.executed_arcs():
            if a < 0 < b:
                entries.setdefault(-a, set()).add(b)
        self.entries = entries

    def any_line(self, first: int, last: int) -> bool:
        """Whether any line in ``first..last`` ran."""
        lines = self.lines
        if last - first < 64:
            return any(n in lines for n in range(first, last + 1))
        return any(first <= n <= last for n in lines)

    def stmt(self, stmt: ast.stmt) -> bool:
        """Whether ``stmt`` ran (any line of it; a block inside can only run if it did)."""
        return self.any_line(first_line(stmt), stmt.end_lineno or stmt.lineno)

    def block(self, stmts: Sequence[ast.stmt]) -> bool:
        """Whether any statement of the block ran."""
        first, last = block_span(stmts)
        return self.any_line(first, last)

    def entered(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """Whether the function was ever called.

        The tracer records a call as an arc from ``-co_firstlineno`` (the first
        decorator's line, or the ``def`` line) into the body.  A multi-line body
        also counts as entered when a line of it ran (the ``def`` line itself
        runs at definition time, so it never counts).
        """
        body = [s for s in fn.body if not is_docstring(s)] or fn.body
        body_first = first_line(body[0])
        end = fn.end_lineno or fn.lineno
        for start in {first_line(fn), fn.lineno}:
            for b in self.entries.get(start, ()):
                if body_first <= b <= end:
                    return True
        if body_first > header_end(fn):
            return self.any_line(body_first, end)
        return False

    def contexts(self, first: int, last: int) -> tuple[str, ...]:
        """The workloads that ran a line in ``first..last``."""
        return tuple(self.fc.contexts_for(range(first, last + 1)))


# -- the walk --------------------------------------------------------------------------------


@dataclass
class _Walk:
    src: ModuleSource
    ex: Executed
    text_lines: list[str]
    regions: list[ColdRegion] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.src.path.as_posix()

    def add(
        self, category: str, kind: str, stmts: Sequence[ast.stmt], chain: tuple[ast.AST, ...],
        *, name: str = "", header: ast.stmt | None = None, field_name: str | None = None,
        reached_by: tuple[str, ...] = (),
    ) -> None:
        first, last = block_span(stmts)
        # a function region counts its body: the def statement itself ran
        counted = stmts[0].body if kind == "function" else stmts  # type: ignore[attr-defined]
        self.regions.append(ColdRegion(
            category=category, kind=kind, path=self.path, module=self.src.name,
            scope=_qualname(chain), name=name, first_line=first, last_line=last,
            statements=count_statements(counted), reached_by=reached_by,
            header_line=header.lineno if header is not None else None, part=field_name,
            stmts=tuple(stmts), chain=chain, header=header,
        ))

    def block(self, stmts: Sequence[ast.stmt], chain: tuple[ast.AST, ...]) -> None:
        """Walk a block that was entered."""
        ex = self.ex
        i = 0
        n = len(stmts)
        last_run = -1
        for j, s in enumerate(stmts):
            if not no_code(s) and ex.stmt(s):
                last_run = j
        while i < n:
            s = stmts[i]
            if no_code(s):
                i += 1
                continue
            if i > last_run:
                rest = [t for t in stmts[i:]]
                if has_code(rest):
                    self.add(DEAD, "interrupted", rest, chain)
                return
            if ex.stmt(s):
                self.statement(s, chain)
                if isinstance(s, _TERMINATORS) and i + 1 < n:
                    rest = list(stmts[i + 1:])
                    if has_code(rest):
                        self.add(DEAD, "unreachable", rest, chain)
                    return
            # else: a statement that produced no line event although control went past
            # it (a later one ran): it has no code of its own (e.g. `if False:`).
            i += 1

    def statement(self, s: ast.stmt, chain: tuple[ast.AST, ...]) -> None:
        """An executed statement: look inside its blocks."""
        ex = self.ex
        if isinstance(s, _FUNCS):
            inner = (*chain, s)
            if not ex.entered(s):
                if has_code(s.body):
                    self.add(DEAD, "function", [s], chain, name=_qualname(inner),
                             reached_by=ex.contexts(first_line(s), header_end(s)))
                return
            self.block(s.body, inner)
            return
        if isinstance(s, ast.ClassDef):
            self.block(s.body, (*chain, s))
            return
        head = ex.contexts(s.lineno, header_end(s))
        if isinstance(s, ast.If):
            self.branch(s, "body", s.body, chain, "if", head)
            if s.orelse:
                if is_elif(s, self.text_lines):
                    inner = s.orelse[0]
                    if ex.stmt(inner):
                        self.statement(inner, chain)
                    else:  # the whole elif chain is the untaken side: report each body
                        self.untaken_chain(inner, chain, head)
                else:
                    self.branch(s, "orelse", s.orelse, chain, "else", head)
            return
        if isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
            self.branch(s, "body", s.body, chain, "loop-body", head)
            if s.orelse:
                self.branch(s, "orelse", s.orelse, chain, "loop-else", head)
            return
        if isinstance(s, (ast.With, ast.AsyncWith)):
            self.block(s.body, chain)
            return
        if isinstance(s, _TRY):
            if ex.block(s.body):
                self.block(s.body, chain)
            for i, h in enumerate(s.handlers):
                self.branch(h, f"handlers[{i}]", h.body, chain, "except", head, header=s)
            if s.orelse:
                self.branch(s, "orelse", s.orelse, chain, "try-else", head)
            if s.finalbody:
                if ex.block(s.finalbody):
                    self.block(s.finalbody, chain)
                elif has_code(s.finalbody):
                    self.add(DEAD, "interrupted", s.finalbody, chain)
            return
        if isinstance(s, ast.Match):
            for i, c in enumerate(s.cases):
                self.branch(c, f"cases[{i}]", c.body, chain, "case", head, header=s)
            return

    def branch(
        self, owner: ast.AST, field_name: str, stmts: list[ast.stmt], chain: tuple[ast.AST, ...],
        kind: str, head: tuple[str, ...], header: ast.stmt | None = None,
    ) -> None:
        """One side of a branching statement whose header ran."""
        if not stmts or not has_code(stmts):
            return
        hdr = header if header is not None else owner
        if self.ex.block(stmts):
            self.block(stmts, chain)
            return
        if first_line(stmts[0]) <= _owner_line(owner):
            return  # `if x: y` on one line: the data cannot tell the sides apart
        self.add(BRANCH, kind, stmts, chain, header=hdr, field_name=field_name, reached_by=head)

    def untaken_chain(self, s: ast.If, chain: tuple[ast.AST, ...], head: tuple[str, ...]) -> None:
        """An ``elif`` chain whose first test never ran: every body in it is branch code."""
        self.branch(s, "body", s.body, chain, "if", head)
        if s.orelse:
            if is_elif(s, self.text_lines):
                self.untaken_chain(s.orelse[0], chain, head)
            else:
                self.branch(s, "orelse", s.orelse, chain, "else", head)


def _owner_line(owner: ast.AST) -> int:
    """The line of the header that owns a block (a handler's or case's own line)."""
    if isinstance(owner, ast.match_case):
        return owner.pattern.end_lineno or owner.pattern.lineno
    if isinstance(owner, ast.ExceptHandler):
        return owner.lineno
    return header_end(owner)  # type: ignore[arg-type]


def _qualname(chain: Sequence[ast.AST]) -> str:
    parts: list[str] = []
    for node in chain:
        name = getattr(node, "name", None)
        if name is None:
            continue
        if parts and isinstance(chain[chain.index(node) - 1], _FUNCS):
            parts.append("<locals>")
        parts.append(name)
    return ".".join(parts)


def qualname_of(chain: Sequence[ast.AST]) -> str:
    """The ``__qualname__``-style name of the innermost scope of ``chain``."""
    return _qualname(chain)


def classify_module(src: ModuleSource, fc: FileCoverage | None) -> tuple[list[ColdRegion],
                                                                          ModuleStats]:
    """The cold regions of one parsed module and its statement counts."""
    assert src.tree is not None
    path = src.path.as_posix()
    stats = ModuleStats(path=path, statements=count_statements(src.tree.body))
    if fc is None or not fc.executed_lines():
        stats.imported = False
        stats.dead = stats.statements
        if not src.tree.body or not has_code(src.tree.body):
            return [], stats
        region = ColdRegion(
            category=DEAD, kind="module", path=path, module=src.name, scope="",
            name=src.name, first_line=1, last_line=len((src.text or "").splitlines()) or 1,
            statements=stats.statements, stmts=tuple(src.tree.body),
        )
        return [region], stats
    walk = _Walk(src, Executed(fc), (src.text or "").splitlines())
    walk.block(src.tree.body, ())
    for r in walk.regions:
        if r.category == DEAD:
            stats.dead += r.statements
        else:
            stats.branch += r.statements
    return walk.regions, stats


def classify(program: Program, coverage: CoverageResult) -> DeadCodeReport:
    """Classify the code of every parsed module of ``program`` against ``coverage``.

    The coverage must have been collected on the tree ``program`` was loaded from
    (file paths are matched under ``program.root``).
    """
    regions: list[ColdRegion] = []
    modules: dict[str, ModuleStats] = {}
    for src in program.modules.values():
        if src.tree is None or src.alias_of is not None:
            continue
        found, stats = classify_module(src, coverage.file(program.root / src.path))
        regions.extend(found)
        modules[stats.path] = stats
    regions.sort(key=lambda r: (r.path, r.first_line))
    return DeadCodeReport(regions=regions, modules=modules, workloads=coverage.contexts)


def iter_functions(
    body: Sequence[ast.stmt], chain: tuple[ast.AST, ...] = ()
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, tuple[ast.AST, ...]]]:
    """Every function in ``body`` (nested ones too) with its chain of enclosing scopes."""
    for s in body:
        if isinstance(s, _FUNCS):
            yield s, chain
            yield from iter_functions(s.body, (*chain, s))
        elif isinstance(s, ast.ClassDef):
            yield from iter_functions(s.body, (*chain, s))
        else:
            for _f, stmts, _o in _blocks_of(s):
                yield from iter_functions(stmts, chain)


def blocks_of(stmt: ast.stmt) -> list[tuple[str, list[ast.stmt], ast.AST]]:
    """The statement lists of a compound statement: (field, statements, owner node)."""
    return _blocks_of(stmt)


def find_unreachable(src: ModuleSource) -> list[ColdRegion]:
    """Code after an unconditional ``return``/``raise``/``continue``/``break``, found statically.

    No input can run it, so removing it is safe in every mode.  Only direct
    successors in the same block are found (a block after an ``if`` whose every
    branch returns is left to the dynamic classification).
    """
    if src.tree is None:
        return []
    path = src.path.as_posix()
    out: list[ColdRegion] = []

    def block(stmts: Sequence[ast.stmt], chain: tuple[ast.AST, ...]) -> None:
        for i, s in enumerate(stmts):
            if isinstance(s, _TERMINATORS):
                rest = list(stmts[i + 1:])
                if rest and has_code(rest):
                    first, last = block_span(rest)
                    out.append(ColdRegion(
                        category=DEAD, kind="unreachable", path=path, module=src.name,
                        scope=_qualname(chain), name="", first_line=first, last_line=last,
                        statements=count_statements(rest), stmts=tuple(rest), chain=chain,
                    ))
                break
            if isinstance(s, (*_FUNCS, ast.ClassDef)):
                block(s.body, (*chain, s))
            else:
                for _f, inner, _o in _blocks_of(s):
                    block(inner, chain)

    block(src.tree.body, ())
    return out
