"""Code hierarchy reduction (paper step 5, section 4.3.2, Fig. 6, Algorithm 2 lines 17-30).

The module graph (:mod:`memtrim.analysis.modgraph`) is walked top-down from its
deepest layer: for each layer, intra-layer dependencies first, then the
inter-layer ones into the layer above, until the main module.  For each
dependency "A imports names from B" (``from B import f, g`` at A's top level),
only the definitions A uses (``f``, ``g``) and what they need in turn within B
(helpers, constants, the imports they use) move into A, where the import
statement was.  If nothing else imports B, the rest of B is never loaded.

What keeps the program's observable module identity:

- a moved class gets ``__module__ = "B"`` and a moved function
  ``f.__module__ = "B"``; the qualified name is unchanged (it stays top level);
- B keeps a module ``__getattr__`` (the lazy-import helper) that serves every
  moved name from A: ``B.f``, ``from B import f`` and unpickling ``B.f`` return
  the one object A now defines.  A pickle made by the original (naming ``B.f``)
  loads in the optimized program, and one made by the optimized program (it
  also says ``B.f``) loads in the original; ``isinstance`` sees one class;
- a definition moves only when nothing left in B still reads it, so module
  state stays single; an immutable constant (a number, a string) may be copied,
  an import statement is repeated (both bind the same object).

When a transfer is made: A is B's only importer (statically and in the
recorded runs).  Then B is no longer loaded at all, which is where the memory
goes, and no other module can ask B for a moved name before A has defined it;
if B had other importers it would be loaded anyway and nothing would be saved.
Neither A nor B may be a package ``__init__`` (the hub its submodules import
from while it runs) or the entry module (it runs as ``__main__``: a re-export
naming it would load a second copy).

What else blocks a transfer: B or A reads its namespace dynamically, a needed
name is bound conditionally or by ``import *``, the moved code reads
``__file__``, ``globals()`` or frames (``__name__`` becomes the literal name of
B), a name would clash in A, or a moved mutable value is assigned from outside.
Circular imports are merged: when the moved code imports names back from A
(``from A import x`` at B's top level: the cycle A -> B -> A), those names are
A's own globals once the code is in A, so the import is dropped and the cycle
is gone.  This holds only when A binds each such name once, unconditionally,
before its import of B (what B saw in the original); otherwise the move is not
made and the note says why.  The module graph reports the remaining cycles.

Rounds: one round is one pass over the order; the pipeline measures each
round, and further rounds stop once a round lowers the peak RSS by less than
lambda % (``--lambda``).  :class:`HierarchyReductionStep` is one round;
``next_steps`` returns the next round when the pipeline supports it.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memtrim.analysis.modgraph import ImportRecords, build_module_graph, record_imports
from memtrim.analysis.symbols import keep_comment_lines, relative_base
from memtrim.edits import Edit, EditError
from memtrim.passes._lazy_template import HELPER_MODULE, HELPER_SOURCE
from memtrim.passes.lazy_imports import (
    _DEFS,
    _check_syntax,
    _defs_index,
    _insert_in,
    _Text,
    _Walker,
    helper_paths,
)
from memtrim.program import ModuleSource, Program

if TYPE_CHECKING:
    from memtrim.pipeline import StepContext

PASS_NAME = "hierarchy-reduction"
KIND = "move-definitions"

_BUILTINS = frozenset(dir(builtins))
# reading any of these ties code to the module it is written in
_IDENTITY = frozenset({
    "__file__", "__package__", "__spec__", "__loader__", "__path__",
    "__builtins__", "__dict__", "__cached__", "globals", "vars", "locals", "__import__",
    "_getframe", "currentframe", "f_globals", "f_locals", "__all__",
})
_FRAME_ATTRS = frozenset({"_getframe", "currentframe", "f_globals", "f_locals"})
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None))


@dataclass
class _Def:
    """One top-level statement of B and the names it binds and reads."""

    stmt: ast.stmt
    binds: set[str]
    reads: set[str]
    kind: str  # def, class, assign, import


@dataclass
class Move:
    """One transfer: definitions of ``source`` into ``target`` (one edit)."""

    source: str
    target: str
    names: list[str]  # what the target imported and now defines
    moved: list[str] = field(default_factory=list)  # every definition moved
    copied: list[str] = field(default_factory=list)  # imports / constants repeated
    phase: str = "inter"
    layer: int = 0
    merged: list[str] = field(default_factory=list)  # names B imported back from A (a cycle)


class _Module:
    """What the transfer needs to know about one module's top level."""

    def __init__(self, name: str, src: ModuleSource) -> None:
        self.name = name
        self.src = src
        tree = src.tree
        assert tree is not None
        self.tree = tree
        self.package = name if src.is_package else name.rpartition(".")[0]
        self.defs: list[_Def] = []
        self.by_name: dict[str, list[_Def]] = {}
        self.conditional: set[str] = set()
        self.star = False
        self.dynamic: str | None = None
        self.uses: dict = {}
        self.keep_lines = keep_comment_lines(src.text)
        walker = _Walker(tree, False)
        try:
            walker.run()
        except RecursionError:
            self.dynamic = "nested too deeply"
            return
        if walker.dynamic:
            self.dynamic = walker.dynamic[0][1]
        self.uses = walker.uses
        for s in tree.body:
            d = self._classify(s)
            if d is None:
                if not isinstance(s, ast.Expr) or not isinstance(s.value, ast.Constant):
                    # any other statement may bind or read: its names are "conditional"
                    self.conditional |= _bound_names(s)
                continue
            self.defs.append(d)
            for n in d.binds:
                self.by_name.setdefault(n, []).append(d)

    def _classify(self, s: ast.stmt) -> _Def | None:
        if isinstance(s, (*_DEFS, ast.ClassDef)):
            return _Def(s, {s.name}, _reads(s), "class" if isinstance(s, ast.ClassDef) else "def")
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in s.names):
                self.star = True
                return None
            if isinstance(s, ast.ImportFrom) and s.module == "__future__":
                return None
            binds = {a.asname or a.name.partition(".")[0] for a in s.names}
            return _Def(s, binds, set(), "import")
        if isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) for t in s.targets):
            return _Def(s, {t.id for t in s.targets}, _reads(s.value), "assign")  # type: ignore[attr-defined]
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value:
            return _Def(s, {s.target.id}, _reads(s.value) | _reads(s.annotation), "assign")
        return None


def _bound_names(s: ast.stmt) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(s):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, (*_DEFS, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update(a.asname or a.name.partition(".")[0] for a in n.names)
    return out


def _reads(node: ast.AST) -> set[str]:
    """Global names a statement (or expression) reads, now or when its functions run."""
    stmt = node if isinstance(node, ast.stmt) else ast.Expr(value=node)  # type: ignore[arg-type]
    w = _Walker(ast.Module(body=[stmt], type_ignores=[]), False)
    w.run()
    names = set(w.uses)
    for n in ast.walk(stmt):
        if isinstance(n, ast.Name) and n.id in _IDENTITY:
            names.add(n.id)
        elif isinstance(n, ast.Attribute) and n.attr in _FRAME_ATTRS:
            names.add(n.attr)
    return names


def _literal(expr: ast.expr) -> bool:
    """An immutable constant: copying it cannot split any state."""
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, _IMMUTABLE)
    if isinstance(expr, ast.Tuple):
        return all(_literal(e) for e in expr.elts)
    if isinstance(expr, ast.UnaryOp):
        return _literal(expr.operand)
    if isinstance(expr, ast.BinOp):
        return _literal(expr.left) and _literal(expr.right)
    return False


class HierarchyReductionPass:
    """Plans one round of transfers over a program (see the module docstring)."""

    def __init__(
        self,
        records: ImportRecords | None = None,
        *,
        keep: Sequence[str] = (),
        scope: Iterable[str] | None = None,
    ) -> None:
        self.records = records
        self.keep = set(keep)
        self.scope = set(scope) if scope is not None else None
        self.notes: list[str] = []
        self.moves: list[Move] = []

    def run(self, program: Program) -> list[Edit]:
        """The edits of one round: at most one transfer out of (or into) each module."""
        graph = build_module_graph(program, self.records)
        self.graph = graph
        eligible = [m for m, src in program.modules.items()
                    if src.tree is not None and not src.alias_of and self._in_scope(m)
                    and m.rpartition(".")[2] != HELPER_MODULE]
        if self.records is not None:
            loaded = set(self.records.loaded) | {program.entry_module}
            eligible = [m for m in eligible if m in loaded]
        cache: dict[str, _Module] = {}

        def info(name: str) -> _Module:
            """The module ``name``, analysed once per round."""
            if name not in cache:
                cache[name] = _Module(name, program.modules[name])
            return cache[name]

        attr_writes = _attribute_writes(program)
        busy: set[str] = set()  # modules a move of this round already rewrites
        edits: list[Edit] = []
        for step in graph.reduction_order(eligible):
            if step.source in busy or step.target in busy:
                continue
            if program.entry_module in (step.source, step.target):
                # the entry runs as __main__: a re-export naming it would import a second
                # copy of it, so nothing moves into (or out of) the entry module
                continue
            move = self._plan(program, info(step.target), info(step.source), attr_writes)
            if move is None:
                continue
            move.phase, move.layer = step.phase, step.layer
            try:
                edit = self._edit(program, info(step.target), info(step.source), move)
            except EditError as e:
                self.notes.append(f"{step.source} -> {step.target}: {e}")
                continue
            busy.update((step.source, step.target))
            self.moves.append(move)
            edits.append(edit)
        return edits

    def _importers(self, module: str) -> set[str]:
        """Every module that imports ``module`` (statically, or seen at run time)."""
        out = {e.importer for e in self.graph.edges
               if e.imported == module and e.how not in ("type-checking", "package")}
        if self.records is not None:
            m = self.records.loaded.get(module)
            if m is not None:
                out.update(x for x in (m.importer, m.parent) if x)
        return out

    def _in_scope(self, module: str) -> bool:
        return self.scope is None or module.partition(".")[0] in self.scope or (
            module in self.scope)

    # -- planning ------------------------------------------------------------------

    def _plan(self, program: Program, a: _Module, b: _Module, attr_writes: set[str]
              ) -> Move | None:
        def refuse(why: str) -> None:
            """Note why this transfer is not made (for the step's report)."""
            self.notes.append(f"{b.name} -> {a.name}: {why}")

        if b.dynamic or a.dynamic:
            refuse(f"reads its namespace dynamically ({b.dynamic or a.dynamic})")
            return None
        if b.src.is_package or a.src.is_package:
            # a package __init__ is the hub its submodules import from while it is
            # still running: definitions moved in or out of it would be missing then
            return None
        others = self._importers(b.name) - {a.name}
        if others:
            # if anything else loads B, B is loaded anyway (nothing saved), and the
            # moved names it asks B for would exist only once A has run that far
            refuse(f"also imported by {sorted(others)[0]}")
            return None
        stmts = [s for s in a.tree.body if isinstance(s, ast.ImportFrom)
                 and relative_base(a.package, s.module, s.level) == b.name
                 and not any(al.name == "*" for al in s.names)]
        if not stmts:
            return None
        if len(stmts) > 1:
            refuse("imported by more than one statement")
            return None
        stmt = stmts[0]
        wanted = [al.name for al in stmt.names]
        if any(al.asname and al.asname != al.name for al in stmt.names):
            refuse("imported under another name")
            return None
        if any(line in b.keep_lines for line in range(stmt.lineno, (stmt.end_lineno or 0) + 1)):
            return None
        # which of the imported names are definitions of B (re-exports stay imported)
        names = [n for n in wanted if b.by_name.get(n) and all(
            d.kind != "import" for d in b.by_name[n])]
        if not names:
            return None
        for n in names:
            if f"{b.name}:{n}" in self.keep or b.name in self.keep:
                refuse(f"{n} is on the keep-list")
                return None
        closure: list[_Def] = []
        seen: set[int] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            ds = b.by_name.get(n)
            if n in b.conditional:
                refuse(f"{n} is bound conditionally in {b.name}")
                return None
            if not ds:
                if n in _BUILTINS:
                    continue
                refuse(f"{n} is not a top-level definition of {b.name}")
                return None
            if len(ds) > 1:
                refuse(f"{n} is bound more than once in {b.name}")
                return None
            d = ds[0]
            if id(d) in seen:
                continue
            seen.add(id(d))
            if d.kind != "import" and (d.reads & _IDENTITY):
                refuse(f"{n} reads module identity ({sorted(d.reads & _IDENTITY)[0]})")
                return None
            if any(line in b.keep_lines for line in range(
                    d.stmt.lineno, (d.stmt.end_lineno or d.stmt.lineno) + 1)):
                refuse(f"{n} is marked '# memtrim: keep'")
                return None
            closure.append(d)
            todo.extend(r for r in d.reads if r not in d.binds)
        moved_defs = [d for d in closure if d.kind != "import" and not (
            d.kind == "assign" and _literal(d.stmt.value))]  # type: ignore[attr-defined]
        moved = {n for d in moved_defs for n in d.binds}
        copied = {n for d in closure if d not in moved_defs for n in d.binds}
        # what stays in B may read a moved definition only from inside its functions
        # (they then import it from A: one object); at import time it would be missing
        spans = [(_first_line(d.stmt), d.stmt.end_lineno or d.stmt.lineno)
                 for d in closure]
        for n in moved:
            u = b.uses.get(n)
            if u is None:
                continue
            outside = [line for line in u.import_time
                       if not any(lo <= line <= hi for lo, hi in spans)]
            if outside or u.in_lambda:
                refuse(f"{n} is still used by {b.name} at import time")
                return None
        # a circular import: code moving into A that imports names from A itself reads
        # A's own globals once merged (the import statement is dropped)
        merged: set[str] = set()
        for d in closure:
            if d.kind != "import":
                continue
            base = _import_base(d.stmt, b)  # type: ignore[arg-type]
            if base is not None and (base == a.name or base.startswith(a.name + ".")):
                why = _cycle_blocker(d.stmt, base, a, stmt, attr_writes)
                if why:
                    refuse(f"circular import not merged: {why}")
                    return None
                merged |= d.binds
        copied -= merged
        # names must not clash in A (the import being replaced binds the wanted ones);
        # an import A already makes of the very same thing may be shared
        b_keys = {n: _binding_key(d.stmt, n, b) for d in closure if d.kind == "import"
                  for n in d.binds}
        for n in moved | copied:
            others = [d for d in a.by_name.get(n, []) if d.stmt is not stmt]
            same = n in b_keys and all(
                d.kind == "import" and _binding_key(d.stmt, n, a) == b_keys[n] for d in others)
            if n in a.conditional or (others and not same):
                refuse(f"{n} would clash with a name of {a.name}")
                return None
        # a mutable value other modules may rebind through B must stay in B
        for d in moved_defs:
            if d.kind == "assign" and d.binds & attr_writes:
                refuse(f"{sorted(d.binds & attr_writes)[0]} is assigned from outside")
                return None
        return Move(b.name, a.name, names, sorted(moved), sorted(copied), merged=sorted(merged))

    # -- the edit ------------------------------------------------------------------

    def _edit(self, program: Program, a: _Module, b: _Module, move: Move) -> Edit:
        stmt = next(s for s in a.tree.body if isinstance(s, ast.ImportFrom)
                    and relative_base(a.package, s.module, s.level) == b.name)
        bt = _Text(b.src.text or "")
        blocks: list[str] = []
        removals: list[list[int]] = []
        routes: dict[str, list] = {}
        moved = set(move.moved)
        copied = set(move.copied)
        existing = {(n, _binding_key(d.stmt, n, a)) for d in a.defs if d.kind == "import"
                    and d.stmt.lineno < stmt.lineno for n in d.binds}
        for d in b.defs:
            if not (d.binds & (moved | copied)):
                continue
            s = d.stmt
            if d.kind == "import":
                if d.binds & set(move.merged):
                    continue  # B's import from A: in A these are its own globals
                wanted = {n for n in d.binds & copied
                          if (n, _binding_key(s, n, b)) not in existing}
                text = _absolute_import(s, b, wanted)  # type: ignore[arg-type]
                if text:
                    blocks.append(text)
                continue
            decorators = getattr(s, "decorator_list", None)
            first_line = decorators[0].lineno if decorators else s.lineno
            start = bt.starts[first_line - 1]  # a top-level statement starts its line
            end = bt.span(s)[1]
            fixes = _import_fixes(s, bt, b) + _name_fixes(s, bt, b.name)
            if d.kind == "class":
                fixes.append(_module_fix(s, bt, b.name))  # type: ignore[arg-type]
            text = bt.text[start:end]
            for i, j, new in sorted(fixes, key=lambda f: (f[0], f[1]), reverse=True):
                text = text[:i - start] + new + text[j - start:]
            if d.kind == "def":
                text += f"\n{s.name}.__module__ = {b.name!r}"  # type: ignore[attr-defined]
            blocks.append(text)
            if d.binds & moved:
                first = decorators[0].lineno if decorators else s.lineno
                removals.append([first, s.end_lineno or s.lineno])
                for n in d.binds:
                    routes[n] = ["from", a.name, n]
        spans = [(first, last) for first, last in removals]
        inserts: list[list] = []
        for n in sorted(moved):
            u = b.uses.get(n)
            for fn in (u.deferred.values() if u else ()):
                if not any(lo <= fn.lineno <= hi for lo, hi in spans):
                    inserts.append([fn.lineno, fn.col_offset, f"from {a.name} import {n}"])
        keep = [al for al in stmt.names if al.name not in move.names]
        return Edit(
            id=f"hierarchy:{b.name}->{a.name}",
            pass_name=PASS_NAME,
            kind=KIND,
            path=a.src.path.as_posix(),
            line=stmt.lineno,
            symbol=f"{b.name}:{','.join(move.names)}",
            reason=(f"{a.name} uses only {', '.join(move.names)} of {b.name}: "
                    f"{len(move.moved)} definition(s) move into it ({move.phase}-layer, "
                    f"layer {move.layer})"
                    + (f"; circular import merged ({', '.join(move.merged)} of {a.name})"
                       if move.merged else "")),
            evidence={
                "source": b.name,
                "source_path": b.src.path.as_posix(),
                "target": a.name,
                "statement": {"line": stmt.lineno, "col": stmt.col_offset,
                              "keep": [[al.name, al.asname] for al in keep]},
                "block": _join(blocks),
                "removals": removals,
                "routes": routes,
                "source_inserts": inserts,
                "moved": move.moved,
                "copied": move.copied,
                "phase": move.phase,
                "layer": move.layer,
                "merged_cycle": move.merged,
            },
        )


def _join(blocks: list[str]) -> str:
    """Moved statements, separated the PEP 8 way (two blank lines around definitions)."""
    out = ""
    prev_def = False
    for b in blocks:
        is_def = b.lstrip().startswith(("def ", "class ", "@", "async def "))
        if out:
            out += "\n\n\n" if is_def or prev_def else "\n"
        out += b
        prev_def = is_def
    return out


def _binding_key(s: ast.stmt, name: str, m: _Module) -> tuple | None:
    """What an import statement binds ``name`` to, in absolute terms."""
    if isinstance(s, ast.Import):
        for a in s.names:
            if (a.asname or a.name.partition(".")[0]) == name:
                return ("import", a.name if a.asname else a.name.partition(".")[0])
    elif isinstance(s, ast.ImportFrom):
        base = relative_base(m.package, s.module, s.level)
        for a in s.names:
            if (a.asname or a.name) == name:
                return ("from", base, a.name)
    return None


def _first_line(s: ast.stmt) -> int:
    decorators = getattr(s, "decorator_list", None)
    return decorators[0].lineno if decorators else s.lineno


def _cycle_blocker(s: ast.stmt, base: str, a: _Module, a_import: ast.ImportFrom,
                   attr_writes: set[str]) -> str | None:
    """Why B's ``from A import x`` (a circular import) cannot be merged into A, or None.

    Merged, the moved code reads A's global ``x`` instead of the value B imported.
    That is the same object only if A binds ``x`` once, unconditionally, before its
    own import of B ran (in the original, B's import saw exactly that binding), and
    nothing rebinds it from outside.
    """
    if base != a.name or not isinstance(s, ast.ImportFrom):
        return f"imports the module {base} itself"
    for al in s.names:
        if al.asname and al.asname != al.name:
            return f"imports {al.name} of {a.name} under another name"
        defs = a.by_name.get(al.name, [])
        if len(defs) != 1 or al.name in a.conditional:
            return f"{al.name} is not bound exactly once, unconditionally, in {a.name}"
        if defs[0].stmt.lineno >= a_import.lineno:
            return f"{al.name} is bound in {a.name} after its import of {s.module or base}"
        if al.name in attr_writes:
            return f"{al.name} is assigned from outside"
    return None


def _import_base(s: ast.Import | ast.ImportFrom, b: _Module) -> str | None:
    if isinstance(s, ast.ImportFrom):
        return relative_base(b.package, s.module, s.level)
    return None


def _absolute_import(s: ast.Import | ast.ImportFrom, b: _Module, wanted: set[str]) -> str:
    """The import statement ``s`` of B, limited to the names ``wanted``, in absolute form."""
    if isinstance(s, ast.Import):
        aliases = [a for a in s.names if (a.asname or a.name.partition(".")[0]) in wanted]
        return "import " + ", ".join(
            a.name + (f" as {a.asname}" if a.asname else "") for a in aliases) if aliases else ""
    base = relative_base(b.package, s.module, s.level)
    aliases = [a for a in s.names if (a.asname or a.name) in wanted]
    if not aliases or base is None:
        return ""
    return f"from {base} import " + ", ".join(
        a.name + (f" as {a.asname}" if a.asname else "") for a in aliases)


def _import_fixes(s: ast.stmt, bt: _Text, b: _Module) -> list[tuple[int, int, str]]:
    """Relative imports inside moved code, rewritten to still name B's neighbours."""
    fixes = []
    for n in ast.walk(s):
        if isinstance(n, ast.ImportFrom) and n.level:
            base = relative_base(b.package, n.module, n.level)
            if base is None:
                raise EditError(f"{b.name}:{n.lineno}: relative import climbs out of the tree")
            i, j = bt.span(n)
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in n.names)
            fixes.append((i, j, f"from {base} import {names}"))
    return fixes


def _name_fixes(s: ast.stmt, bt: _Text, module: str) -> list[tuple[int, int, str]]:
    """``__name__`` in moved code becomes the name of the module it came from.

    ``logging.getLogger(__name__)`` then still returns the same logger (the
    logging registry is keyed by name), and messages still name that module.
    """
    return [(*bt.span(n), repr(module)) for n in ast.walk(s)
            if isinstance(n, ast.Name) and n.id == "__name__"]


def _module_fix(s: ast.ClassDef, bt: _Text, module: str) -> tuple[int, int, str]:
    """Give a moved class the ``__module__`` of the module it came from."""
    first = s.body[0]
    doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
           and isinstance(first.value.value, str))
    line = f"__module__ = {module!r}"
    if doc:
        pos = bt.offset(first.end_lineno, first.end_col_offset)  # type: ignore[arg-type]
        return (pos, pos, f"; {line}")
    if first.lineno == s.lineno:  # class C: pass
        pos = bt.offset(first.lineno, first.col_offset)
        return (pos, pos, f"{line}; ")
    pos = bt.starts[first.lineno - 1]
    return (pos, pos, f"{bt.indent(first)}{line}\n")


def _attribute_writes(program: Program) -> set[str]:
    """Attribute names some module assigns (``mod.FLAG = True``): such globals stay put."""
    out: set[str] = set()
    for src in program.modules.values():
        if src.tree is None:
            continue
        for n in ast.walk(src.tree):
            if isinstance(n, ast.Attribute) and isinstance(n.ctx, (ast.Store, ast.Del)):
                out.add(n.attr)
    return out


# -- applying ----------------------------------------------------------------------------


def apply_hierarchy_edits(program: Program, edits: Iterable[Edit]) -> dict[str, str]:
    """Apply any subset of transfers; return the new text of each changed file."""
    per_file: dict[str, list[tuple[int, int, str]]] = {}
    routes_of: dict[str, dict[str, list]] = {}
    removals_of: dict[str, list[list[int]]] = {}
    chains: set[str] = set()
    touched: list[str] = []
    for e in edits:
        if e.kind != KIND:
            raise EditError(f"{e.id}: not a hierarchy edit")
        ev = e.evidence
        a = program.module_by_path(e.path)
        b = program.module_by_path(ev["source_path"])
        if a is None or b is None or a.tree is None or b.tree is None:
            raise EditError(f"{e.id}: module not found")
        at = _Text(a.text or "")
        st = ev["statement"]
        stmt = next((s for s in a.tree.body if isinstance(s, ast.ImportFrom)
                     and s.lineno == st["line"] and s.col_offset == st["col"]), None)
        if stmt is None:
            raise EditError(f"{e.id}: the import statement is gone")
        start, end = at.span(stmt)
        indent = at.indent(stmt)
        parts = []
        keep = st.get("keep") or []
        if keep:
            names = ", ".join(n + (f" as {alias}" if alias else "") for n, alias in keep)
            parts.append(f"from {'.' * stmt.level}{stmt.module or ''} import {names}")
        block = ev["block"]
        if indent:
            block = "\n".join(indent + line if line else line for line in block.split("\n"))
            block = block[len(indent):]
        parts.append(f"# memtrim: moved here from {ev['source']}\n{indent}{block}")
        per_file.setdefault(e.path, []).append((start, end, f"\n{indent}".join(parts)))
        bt = _Text(b.text or "")
        removals_of.setdefault(ev["source_path"], []).extend(ev["removals"])
        routes_of.setdefault(ev["source_path"], {}).update(ev["routes"])
        index = _defs_index(b.tree)
        for line, col, text in ev.get("source_inserts", []):
            fn = index.get((line, col))
            if fn is None:
                raise EditError(f"{e.id}: function at {line}:{col} of {ev['source']} is gone")
            per_file.setdefault(ev["source_path"], []).append(_insert_in(bt, fn, text))
        touched.extend([e.path, ev["source_path"]])
    for path, removals in removals_of.items():
        src = program.module_by_path(path)
        assert src is not None and src.tree is not None
        bt = _Text(src.text or "")
        routes = routes_of.get(path, {})
        install = (f"import {HELPER_MODULE}; __getattr__ = {HELPER_MODULE}.install(globals(), "
                   + "{" + ", ".join(f"{k!r}: {tuple(v)!r}" for k, v in sorted(routes.items()))
                   + "})  # memtrim: moved definitions")
        first_of_all = min(first for first, _ in removals)
        for first, last in removals:
            i = bt.starts[first - 1]
            j = bt.starts[last] if last < len(bt.starts) - 1 else len(bt.text)
            # blank lines in place of the moved code: B's other lines keep their numbers;
            # where the first moved definition was, B starts serving the moved names
            # (from then on, as the original did while it was being imported)
            new = (install if first == first_of_all else "") + "\n" * (last - first + 1)
            per_file.setdefault(path, []).append((i, j, new))
        if any(isinstance(s, _DEFS) and s.name == "__getattr__" and s.lineno > first_of_all
               for s in src.tree.body):
            chains.add(path)
    out: dict[str, str] = {}
    for path, reps in per_file.items():
        src = program.module_by_path(path)
        assert src is not None and src.text is not None
        text = src.text
        for i, j, new in sorted(reps, key=lambda r: r[0], reverse=True):
            text = text[:i] + new + text[j:]
        if path in chains:
            text = text.rstrip("\n") + f"\n__getattr__ = {HELPER_MODULE}.chain(globals())\n"
        _check_syntax(text, path)
        out[path] = text
    names = [m.name for m in program.modules.values() if m.path.as_posix() in out]
    for helper in helper_paths(program, names):
        out[helper] = HELPER_SOURCE
    return out


# -- the step -----------------------------------------------------------------------------


class HierarchyReductionStep:
    """Step: one round of code hierarchy reduction (more rounds through ``next_steps``).

    ``scope``: top-level names whose modules may be rewritten (None: every
    module of the program, vendored packages included).  ``max_rounds`` bounds
    the rounds; the lambda stop comes from the measured gain of each round.
    """

    name = PASS_NAME
    description = "used definitions moved into the modules that import them (top-down)"
    needs_gain = True
    # this step rewrites vendored third-party packages too: give it the whole tree
    vendored_code = True

    def __init__(self, *, round_index: int = 1, max_rounds: int = 8,
                 scope: Iterable[str] | None = None) -> None:
        self.round_index = round_index
        self.max_rounds = max_rounds
        self.scope = list(scope) if scope is not None else None
        self.notes: list[str] = []
        self.moves: list[Move] = []
        self.summary: dict | None = None
        if round_index > 1:
            self.name = f"{PASS_NAME}-{round_index}"

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """Record the workloads' imports, build the graph, plan this round's transfers."""
        req = ctx.request
        records = record_imports(ctx.app, req.python, req.python_args,
                                 main_name=program.entry_module or None)
        p = HierarchyReductionPass(records, keep=[*ctx.app.keep, *req.keep], scope=self.scope)
        edits = p.run(program)
        self.notes = p.notes
        self.moves = p.moves
        graph = p.graph.to_dict()
        self.summary = {
            "round": self.round_index,
            "module_graph": graph,
            "layer_sizes": [len(layer) for layer in graph["layers"]],
            "moves": [{"from": m.source, "into": m.target, "names": m.names,
                       "moved": m.moved, "copied": m.copied, "phase": m.phase,
                       "layer": m.layer} for m in p.moves],
            "refused": len(p.notes),
        }
        return edits

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """Insert the moved code, blank it out in its old module, add the re-exports."""
        return apply_hierarchy_edits(program, edits)

    def next_steps(self, entry: dict, lambda_pct: float) -> list[HierarchyReductionStep]:
        """The next round, unless this one moved nothing or gained less than lambda %."""
        if self.round_index >= self.max_rounds or not entry.get("kept"):
            return []
        if not entry.get("kept_step", True):
            return []
        gains = [g["reduction_pct"] for g in entry.get("gain", {}).values()]
        if gains and max(gains) < lambda_pct:
            return []
        return [HierarchyReductionStep(round_index=self.round_index + 1,
                                       max_rounds=self.max_rounds, scope=self.scope)]
