"""Specialization (``--mode specialize``): the paper's dead-code and branch-code removal.

Seed 000 (section 4.3.1, Algorithm 2 lines 1-16) deletes the code that the
profiled executions never ran.  That is valid **only for the profiled inputs**:
another input may need exactly the code that went.  memtrim therefore does it
only when asked (``mode = "specialize"``), says so in the report and on the
command line, and still verifies the profiled workloads.

What goes, and what takes its place:

- the body of a function or method that was never entered: a ``raise
  RuntimeError("memtrim specialize: ... was removed")`` stub keeps the name,
  signature, decorators and docstring, so lookups by name, registries and
  ``__all__`` see the same objects, and an unprofiled input fails loudly
  instead of misbehaving (a generator stays a generator);
- an untaken branch (``if``/``else``, loop body or ``else``, ``except``
  handler, ``try``-``else``, ``match`` case) and the tail of a block the
  statements before it always left: the same one-line ``raise``;
- code after an unconditional ``return``/``raise``/``continue``/``break``:
  deleted (no input runs it; :class:`UnreachableCodeStep` does only this, and is
  valid in safe mode too);
- imports read only by removed code: deleted, when importing the module has no
  side effect.

Both modes honour the static analysis' guards: a function that a guard keeps
(a name looked up by ``getattr`` with a computed name, ``eval``, a registering
decorator, a method a base class outside the program may call, the keep-list
and ``# memtrim: keep``) keeps its body.  Dunder methods count as used when
their class is instantiated (when any function of the class ran).  Every
removal keeps the scopes as they were: a block whose removal would turn a
local variable into a global, or a generator into a function, is left alone.
Every line that stays keeps its line number.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memtrim.analysis.deadcode import (
    ColdRegion,
    DeadCodeReport,
    find_unreachable,
    first_line,
    has_code,
    header_end,
    is_docstring,
    qualname_of,
)
from memtrim.edits import Edit, EditError
from memtrim.passes.outline import (
    _GRAPH_INDEX,
    BRANCH_KINDS,
    LineEdit,
    ModulePlan,
    Unit,
    _BlockNames,
    _contains_yield,
    _find_block,
    _functions,
    _keep_matches,
    _walk_own,
    apply_line_edits,
    check_compiles,
    import_removal,
    leading,
    movable_imports,
)
from memtrim.program import Program

if TYPE_CHECKING:
    from memtrim.analysis.coverage_run import CoverageResult
    from memtrim.analysis.references import ProgramGraph
    from memtrim.pipeline import StepContext

PASS_NAME = "specialize"
WARNING = (
    "specialize mode: code that the profiled workloads did not run was removed; the result "
    "is valid ONLY for inputs like the profiled ones (other inputs raise RuntimeError)"
)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_KINDS = ("specialize-function", "specialize-block", "specialize-import", "unreachable-code")


def _message(what: str) -> str:
    text = (f"memtrim specialize: {what} was removed (the program was specialized for its "
            "profiled inputs)")
    return repr(text)


class Skip(Exception):
    """This code cannot be removed safely; the message says why."""


class _Bindings(_BlockNames):
    """Names bound by some code, leaving out the nodes in ``skip``."""

    def __init__(self, skip: set[int] | None = None) -> None:
        super().__init__()
        self.skip = skip or set()

    def visit(self, node: ast.AST) -> Any:
        if id(node) in self.skip:
            return None
        return super().visit(node)


def _bindings(nodes: Sequence[ast.AST], skip: set[int] | None = None,
              strict: bool = True) -> set[str]:
    names = _Bindings(skip)
    for n in nodes:
        names.visit(n)
    if names.declared and strict:
        raise Skip("declares global/nonlocal or imports *")
    return names.writes | names.deletes


def _scope_check(plan: ModulePlan, stmts: Sequence[ast.stmt],
                 chain: tuple[ast.AST, ...]) -> bool:
    """Skip unless removing ``stmts`` keeps every scope as it was; True if a yield must stay."""
    bound = _bindings(stmts)
    enc = chain[-1] if chain else None
    if not isinstance(enc, _FUNCS):
        return False  # module or class level: removing a binding changes no scope
    ids = {id(n) for s in stmts for n in ast.walk(s)}
    rest = [n for n in _walk_own(enc.body) if id(n) not in ids]
    elsewhere = _bindings(enc.body, skip={id(s) for s in stmts}, strict=False)
    params = {a.arg for a in (*enc.args.posonlyargs, *enc.args.args, *enc.args.kwonlyargs)}
    params |= {a.arg for a in (enc.args.vararg, enc.args.kwarg) if a is not None}
    table = plan.scopes.table(enc)
    # a name bound only in the removed code matters only if code that stays mentions it
    mentioned = {n.id for n in ast.walk(enc) if isinstance(n, ast.Name) and id(n) not in ids}
    for name in sorted((bound - elsewhere - params) & mentioned):
        try:
            sym = table.lookup(name)
        except KeyError:
            continue
        if sym.is_local() and not sym.is_global():
            raise Skip(f"the only binding of local {name!r}: removing it would make it global")
    if _contains_yield(stmts):
        outside = [n for n in rest if isinstance(n, (ast.Yield, ast.YieldFrom))]
        return not outside
    return False


def _raise_lines(plan: ModulePlan, first: int, what: str, keep_yield: bool) -> tuple[str, ...]:
    ind = leading(plan.lines[first - 1])
    text = f"{ind}raise RuntimeError({_message(what)})"
    if keep_yield:
        text += "; yield  # unreachable: keeps the function a generator"
    return (text,)


def _function_edit(plan: ModulePlan, fn: ast.AST) -> LineEdit:
    assert isinstance(fn, _FUNCS)
    doc = fn.body[0] if is_docstring(fn.body[0]) else None
    body = fn.body[1:] if doc is not None else fn.body
    if not body or not has_code(body):
        raise Skip("no code")
    if first_line(fn.body[0]) <= header_end(fn):
        raise Skip("body on the def line")
    if doc is not None and first_line(body[0]) <= (doc.end_lineno or doc.lineno):
        raise Skip("body shares a line with the docstring")
    first, last = first_line(body[0]), fn.end_lineno or fn.lineno
    chain = ()
    for f, c in _functions(plan.tree):
        if f is fn:
            chain = c
    what = f"{plan.src.name}:{qualname_of((*chain, fn))}"
    keep_yield = _contains_yield(fn.body)
    return LineEdit(first, last, _raise_lines(plan, first, what, keep_yield))


class SpecializePass:
    """Proposes removal of the dead and branch code of a :class:`DeadCodeReport`."""

    name = PASS_NAME

    def __init__(self, *, keep: Sequence[str] = (), entry_script: str | None = None) -> None:
        self.keep = tuple(keep)
        self.entry_script = entry_script
        self.skipped: dict[str, str] = {}
        self.summary: dict = {}

    def run(self, program: Program, report: DeadCodeReport, pg: ProgramGraph | None = None,
            effects: Any = None) -> list[Edit]:
        """Edits for every removable region of ``report`` (and unreachable code)."""
        self.skipped = {}
        edits: list[Edit] = []
        removed_statements = 0
        by_path: dict[str, list] = {}
        for r in report.regions:
            by_path.setdefault(r.path, []).append(r)
        for src in program.modules.values():
            if src.tree is not None and src.alias_of is None:
                by_path.setdefault(src.path.as_posix(), [])
        guards = _guarded_functions(pg) if pg is not None else {}
        for path, regions in sorted(by_path.items()):
            src = program.module_by_path(path)
            if src is None or src.tree is None or src.text is None or src.alias_of:
                continue
            if _keep_matches(self.keep, src.name, "*"):
                continue
            plan = ModulePlan(program, src, self.entry_script)
            units: list[Unit] = []
            file_edits: list[Edit] = []
            unit_edits: dict[str, str] = {}
            instantiated = _instantiated_classes(regions, src.tree)
            statics = {r.first_line: r for r in find_unreachable(src)}
            for r in regions:
                if r.kind == "unreachable":
                    statics.setdefault(r.first_line, r)
                    continue
                try:
                    edit, unit = self._region(plan, r, guards, instantiated, pg,
                                              report.workloads)
                except Skip as e:
                    self.skipped[f"{path}:{r.first_line}"] = str(e)
                    continue
                except (EditError, KeyError, ValueError) as e:
                    self.skipped[f"{path}:{r.first_line}"] = f"not analysable: {e}"
                    continue
                if edit is None:
                    continue
                file_edits.append(edit)
                units.append(unit)
                unit_edits[unit.key] = edit.id
                removed_statements += edit.evidence.get("statements", 0)
            for r in statics.values():
                try:
                    file_edits.append(unreachable_edit(plan, r))
                    removed_statements += r.statements
                except Skip as e:
                    self.skipped[f"{path}:{r.first_line}"] = str(e)
            if units:
                choices, _stays = movable_imports(plan, units, pg, effects)
                for c in choices:
                    file_edits.append(Edit(
                        id=f"specialize:import:{path}:{c.line}:{c.name}", pass_name=PASS_NAME,
                        kind="specialize-import", path=path, line=c.line,
                        symbol=f"{src.name}:{c.name}",
                        reason=(f"'{c.name}' (import of {c.module}) is read only by removed "
                                "code; importing it has no side effect"),
                        evidence={"target": {"kind": "import", "line": c.line, "name": c.name,
                                             "alias": c.alias, "asname": c.asname},
                                  "module": c.module,
                                  "depends_on": sorted(unit_edits[k] for k in c.users)},
                    ))
            edits += file_edits
        _GRAPH_INDEX.clear()
        totals = report.totals()
        self.summary = {
            "warning": WARNING,
            "statements": totals["statements"],
            "removed_statements": removed_statements,
            "removed_fraction": round(removed_statements / totals["statements"], 4)
            if totals["statements"] else 0.0,
            "deadcode_totals": totals,
            "skipped": dict(sorted(self.skipped.items())),
        }
        edits.sort(key=lambda e: (e.path, e.line, e.id))
        return edits

    def _region(self, plan: ModulePlan, r: ColdRegion, guards: dict, instantiated: set[int],
                pg: ProgramGraph | None, workloads: list[str]
                ) -> tuple[Edit | None, Unit | None]:
        path = plan.path
        where = ", ".join(workloads)
        if any(line in plan.keep_lines for line in range(r.first_line, r.last_line + 1)):
            raise Skip("marked '# memtrim: keep'")
        if r.kind == "function":
            fn = r.stmts[0]
            qual = qualname_of((*r.chain, fn))
            if _keep_matches(self.keep, plan.src.name, qual):
                raise Skip("on the keep-list")
            guard = guards.get((plan.src.name, fn.lineno, fn.name))
            is_dunder = fn.name.startswith("__") and fn.name.endswith("__")
            cls = r.chain[-1] if r.chain and isinstance(r.chain[-1], ast.ClassDef) else None
            if is_dunder and cls is not None and id(cls) in instantiated:
                raise Skip("dunder method of a class that is instantiated (called implicitly)")
            if guard and not (is_dunder and guard.startswith("dunder")):
                raise Skip(f"kept by a guard: {guard}")
            if pg is not None:
                why = _decorator_pin(pg, plan.src.name, fn)
                if why:
                    raise Skip(why)
            le = _function_edit(plan, fn)
            unit = Unit(kind="function", key=f"{qual}@{fn.lineno}", qualname=qual,
                        chain=r.chain, first=le.first, last=le.last, node=fn,
                        names=frozenset(n.id for s in fn.body for n in ast.walk(s)
                                        if isinstance(n, ast.Name)))
            edit = Edit(
                id=f"specialize:function:{path}:{fn.lineno}:{qual}", pass_name=PASS_NAME,
                kind="specialize-function", path=path, line=fn.lineno,
                symbol=f"{plan.src.name}:{qual}",
                reason=(f"{qual} was never entered by the profiled workloads ({where}); its "
                        "body is replaced by a raise (valid only for the profiled inputs)"),
                evidence={"target": {"kind": "function", "line": fn.lineno, "qualname": qual},
                          "lines": [le.first, le.last], "statements": r.statements,
                          "reached_by": list(r.reached_by), "entered_by": [],
                          "entry_arcs": {"from": -first_line(fn), "into_lines": [le.first, le.last],
                                         "taken_in": []},
                          "workloads_profiled": list(workloads), "category": r.category},
            )
            return edit, unit
        if r.kind in BRANCH_KINDS or r.kind == "interrupted":
            scope = qualname_of(r.chain)
            if scope and _keep_matches(self.keep, plan.src.name, scope):
                raise Skip("on the keep-list")
            stmts = list(r.stmts)
            first, last = r.first_line, r.last_line
            if r.header is not None and first <= header_end(r.header):
                raise Skip("block on its header's line")
            keep_yield = _scope_check(plan, stmts, r.chain)
            unit = Unit(kind="block", key=f"{scope or '<module>'}#{first}", qualname=scope,
                        chain=r.chain, first=first, last=last, stmts=stmts,
                        names=frozenset(n.id for s in stmts for n in ast.walk(s)
                                        if isinstance(n, ast.Name)))
            edit = Edit(
                id=f"specialize:block:{path}:{first}:{scope or '<module>'}", pass_name=PASS_NAME,
                kind="specialize-block", path=path, line=first,
                symbol=f"{plan.src.name}:{scope}" if scope else plan.src.name,
                reason=(f"{r.kind} code at lines {first}-{last} ({r.category} code) never ran "
                        f"in the profiled workloads ({where}); replaced by a raise (valid only "
                        "for the profiled inputs)"),
                evidence={"target": {"kind": "block", "line": first, "end_line": last,
                                     "scope": scope, "keep_yield": keep_yield},
                          "lines": [first, last], "statements": r.statements,
                          "branch": r.kind, "category": r.category,
                          "reached_by": list(r.reached_by),
                          "workloads_profiled": list(workloads)},
            )
            return edit, unit
        return None, None

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """New text of every changed module (any subset of the edits applies)."""
        by_path: dict[str, list[Edit]] = {}
        for e in edits:
            if e.kind not in _KINDS:
                raise EditError(f"{e.id}: no way to apply an edit of kind {e.kind!r}")
            by_path.setdefault(e.path, []).append(e)
        out: dict[str, str] = {}
        for path, file_edits in sorted(by_path.items()):
            src = program.module_by_path(path)
            if src is None or src.text is None or src.tree is None:
                raise EditError(f"{path}: not an analysed module of the program")
            plan = ModulePlan(program, src, self.entry_script)
            ids = {e.id for e in file_edits}
            line_edits: list[LineEdit] = []
            removals: dict[int, set[int]] = {}
            stmts = {s.lineno: s for s in plan.tree.body
                     if isinstance(s, (ast.Import, ast.ImportFrom))}
            for e in file_edits:
                t = e.evidence.get("target") or {}
                try:
                    if e.kind == "specialize-function":
                        fn = next((f for f, c in _functions(plan.tree)
                                   if f.lineno == int(t["line"])
                                   and qualname_of((*c, f)) == t["qualname"]), None)
                        if fn is None:
                            raise EditError(f"{e.id}: function not found")
                        line_edits.append(_function_edit(plan, fn))
                    elif e.kind == "specialize-block":
                        found = _find_block(plan.tree, int(t["line"]), int(t["end_line"]))
                        first, last = int(t["line"]), int(t["end_line"])
                        if found is None and not _is_tail(plan, first, last):
                            raise EditError(f"{e.id}: block not found")
                        what = f"{plan.src.name}:{t.get('scope') or '<module>'} " \
                               f"lines {first}-{last}"
                        line_edits.append(LineEdit(first, last, _raise_lines(
                            plan, first, what, bool(t.get("keep_yield")))))
                    elif e.kind == "unreachable-code":
                        line_edits.append(LineEdit(int(t["line"]), int(t["end_line"]), ()))
                    else:
                        if not set(e.evidence.get("depends_on", ())) <= ids:
                            continue  # a reader of it stays: so does the import
                        s = stmts.get(int(t["line"]))
                        if s is None:
                            raise EditError(f"{e.id}: import statement not found")
                        idx = next((i for i, a in enumerate(s.names) if a.name == t["alias"]
                                    and a.asname == t.get("asname")), None)
                        if idx is None:
                            raise EditError(f"{e.id}: import alias not found")
                        removals.setdefault(s.lineno, set()).add(idx)
                except Skip as err:
                    raise EditError(f"{e.id}: {err}") from None
            for line, drop in removals.items():
                le = import_removal(plan, stmts[line], drop)
                if le is not None:
                    line_edits.append(le)
            new = apply_line_edits(plan.text, line_edits)
            check_compiles(new, path)
            if new != plan.text:
                out[path] = new
        return out


def _is_tail(plan: ModulePlan, first: int, last: int) -> bool:
    """Whether ``first..last`` are whole statements (the tail of some block)."""
    starts = {first_line(n) for n in ast.walk(plan.tree) if isinstance(n, ast.stmt)}
    ends = {n.end_lineno for n in ast.walk(plan.tree) if isinstance(n, ast.stmt)}
    return first in starts and last in ends


def unreachable_edit(plan: ModulePlan, r: ColdRegion) -> Edit:
    """The edit deleting one stretch of statically unreachable code (Skip if unsafe)."""
    stmts = list(r.stmts)
    parent = _parent_block(plan.tree, stmts[0])
    if parent is None:
        raise Skip("block not found")
    i = next(k for k, s in enumerate(parent) if s is stmts[0])
    if i == 0 or first_line(stmts[0]) <= (parent[i - 1].end_lineno or 0):
        raise Skip("shares a line with the statement before it")
    if _scope_check(plan, stmts, r.chain):
        raise Skip("holds the function's only yield (it must stay a generator)")
    if any(line in plan.keep_lines for line in range(r.first_line, r.last_line + 1)):
        raise Skip("marked '# memtrim: keep'")
    scope = r.scope or "<module>"
    return Edit(
        id=f"unreachable:{plan.path}:{r.first_line}:{scope}", pass_name="unreachable",
        kind="unreachable-code", path=plan.path, line=r.first_line,
        symbol=f"{plan.src.name}:{r.scope}" if r.scope else plan.src.name,
        reason=(f"lines {r.first_line}-{r.last_line} follow an unconditional "
                "return/raise/continue/break in the same block: no input can run them"),
        evidence={"target": {"kind": "unreachable", "line": r.first_line,
                             "end_line": r.last_line, "scope": r.scope},
                  "statements": r.statements, "static": True},
    )


def _parent_block(tree: ast.Module, stmt: ast.stmt) -> list[ast.stmt] | None:
    for n in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(n, name, None)
            if isinstance(block, list) and any(s is stmt for s in block):
                return block
    return None


def _guarded_functions(pg: ProgramGraph) -> dict[tuple[str, int, str], str]:
    """(module, def line, name) -> why a guard of the static analysis keeps the function."""
    g = pg.graph
    out = {}
    # attribute names computed at run time: getattr(obj, "cmd_" + name) keeps every cmd_*
    prefixes = {p: g.guard_reasons[nid] for p, nid in g.prefix_nodes.items()
                if nid in g.guard_reasons}
    wild = g.guard_reasons.get(g.wild)
    for node in g.nodes:
        if node.kind != "function":
            continue
        why = g.guard_reasons.get(node.id)
        is_method = node.parent >= 0 and g.nodes[node.parent].kind == "class"
        if why is None:
            why = next((w for p, w in prefixes.items() if node.name.startswith(p)), None)
        if why is None and is_method and wild:
            why = wild
        if why:
            out[(node.module, node.line, node.name)] = why
    return out


def _decorator_pin(pg: ProgramGraph, module: str, fn: ast.AST) -> str | None:
    """A decorator that may register the function (so it may be called through a registry)."""
    from memtrim.analysis.guards import decorator_is_pure

    decorators = getattr(fn, "decorator_list", [])
    if not decorators:
        return None
    for node in pg.graph.nodes:
        if node.kind == "function" and node.module == module and node.line == fn.lineno \
                and node.stmt is fn:
            data = node.data or {}
            for d in data.get("decorators", ()):
                if not decorator_is_pure(d, data["scope"], pg.resolver, pg.graph):
                    return f"decorator @{ast.unparse(d)} may register it"
            return None
    for d in decorators:
        if not isinstance(d, (ast.Name, ast.Attribute)):
            return f"decorator @{ast.unparse(d)} may register it"
    return None


def _instantiated_classes(regions: Sequence, tree: ast.Module) -> set[int]:
    """Classes (by id) any of whose functions ran: their dunders count as used."""
    cold_fns = {id(r.stmts[0]) for r in regions if r.kind == "function"}
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            fns = [s for s in node.body if isinstance(s, _FUNCS)]
            if not fns or any(id(f) not in cold_fns for f in fns):
                out.add(id(node))
    return out


# -- the steps ------------------------------------------------------------------------------


def _entry_script(ctx: StepContext) -> str | None:
    app = ctx.app
    if app.script is None:
        return None
    try:
        return app.script.resolve().relative_to(app.root.resolve()).as_posix()
    except ValueError:
        return None


class SpecializeStep:
    """Specialize mode: delete what the profiled workloads did not run (seed 000, 4.3.1).

    The result is valid only for the profiled inputs; :data:`WARNING` says so and
    :attr:`summary` carries it into the report.
    """

    name = "specialize"
    description = ("dead and branch code removed (valid ONLY for the profiled inputs)")
    needs_gain = False

    def __init__(self, *, coverage: CoverageResult | None = None) -> None:
        self.coverage = coverage
        self.summary: dict = {}
        self._pass: SpecializePass | None = None

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """Profile the workloads, classify what did not run, propose its removal."""
        from memtrim.passes.outline import cold_code_inputs

        ctx.say(f"{self.name}: {WARNING}")
        cov, report, pg, effects = cold_code_inputs(program, ctx, self.coverage)
        self._pass = SpecializePass(keep=[*ctx.app.keep, *ctx.request.keep],
                                    entry_script=_entry_script(ctx))
        edits = self._pass.run(program, report, pg, effects)
        pg.release()
        self.summary = {**self._pass.summary, "coverage": cov.to_dict()}
        return edits

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """Stubs and deletions, line numbers kept."""
        return (self._pass or SpecializePass()).apply(program, edits)


class UnreachableCodeStep:
    """Both modes: delete code after an unconditional return/raise/continue/break (static)."""

    name = "unreachable-code"
    description = "code after return/raise/continue/break deleted (no input can run it)"
    needs_gain = False

    def __init__(self) -> None:
        self.skipped: dict[str, str] = {}

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """One edit per stretch of unreachable code, keeping scopes and generators intact."""
        keep = [*ctx.app.keep, *ctx.request.keep]
        edits: list[Edit] = []
        self.skipped = {}
        for src in program.modules.values():
            if src.tree is None or src.text is None or src.alias_of:
                continue
            regions = find_unreachable(src)
            if not regions or _keep_matches(keep, src.name, "*"):
                continue
            plan = ModulePlan(program, src, _entry_script(ctx))
            for r in regions:
                if r.scope and _keep_matches(keep, src.name, r.scope):
                    continue
                try:
                    edits.append(unreachable_edit(plan, r))
                except Skip as e:
                    self.skipped[f"{plan.path}:{r.first_line}"] = str(e)
        edits.sort(key=lambda e: (e.path, e.line))
        return edits

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """Deletions (line numbers kept)."""
        return SpecializePass().apply(program, edits)
