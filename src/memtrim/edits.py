"""Edits: independent, revertible source changes that carry their reason and evidence.

:func:`apply_edits` applies any subset of edits with libcst, so only the
edited statements change; formatting and comments elsewhere stay byte for
byte.  Whatever subset is applied, the result is valid Python: a block left
empty gets ``pass``, ``from m import a, b`` minus ``a`` keeps ``b``, and
several edits to one statement combine.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, PositionProvider

if TYPE_CHECKING:
    from memtrim.program import Program

# Kinds this module knows how to apply.
REMOVAL_KINDS = frozenset({
    "unused-import", "duplicate-import", "unused-variable", "unused-function", "unused-class",
    "unused-method",
})


class EditError(ValueError):
    """An edit cannot be applied (its target is gone, or the result would not compile)."""


@dataclass(frozen=True)
class Edit:
    """One proposed change to one file.

    ``id`` is stable across runs (``static:unused-import:pkg/mod.py:12:numpy``);
    ``path`` is relative to the program root; ``symbol`` is qualified
    (``pkg.mod:Class.method``).  ``evidence`` is JSON-able: what was looked
    at, reference counts, and ``target`` (how to find the code again).
    """

    id: str
    pass_name: str
    kind: str
    path: str
    line: int
    symbol: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The edit as a plain dict (for reports)."""
        return asdict(self)


def apply_edits(program: Program, edits: Iterable[Edit]) -> dict[str, str]:
    """Apply ``edits``; return the new text of each file that changes (path -> text).

    Nothing is written.  Raises :class:`EditError` when an edit's target
    cannot be found or the rewritten file would not compile.
    """
    return apply_per_file(program, edits, REMOVAL_KINDS, _apply_to_text,
                          what="no way to apply")


def apply_per_file(
    program: Program,
    edits: Iterable[Edit],
    kinds: Iterable[str],
    apply_text: Callable[[str, list[Edit], str], str],
    *,
    what: str = "cannot apply",
) -> dict[str, str]:
    """Group ``edits`` by file and rewrite each file's text with ``apply_text``.

    Shared by the passes that rewrite source with libcst: checks each edit's
    kind is one of ``kinds``, finds the analysed module of each path, and
    returns only the files whose text changes (path -> new text).
    """
    allowed = set(kinds)
    by_path: dict[str, list[Edit]] = {}
    for e in edits:
        if e.kind not in allowed:
            raise EditError(f"{e.id}: {what} an edit of kind {e.kind!r}")
        by_path.setdefault(e.path, []).append(e)
    out: dict[str, str] = {}
    for path, file_edits in sorted(by_path.items()):
        module = program.module_by_path(path)
        if module is None or module.text is None or module.tree is None:
            raise EditError(f"{path}: not an analysed module of the program")
        new = apply_text(module.text, file_edits, path)
        if new != module.text:
            out[path] = new
    return out


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> MetadataWrapper:
    """The libcst tree of ``text`` with positions, kept for the next subset of edits.

    Bisection applies many subsets to the same files; parsing and computing
    positions is most of the cost, and libcst trees are immutable, so one
    parse serves every subset.
    """
    wrapper = MetadataWrapper(cst.parse_module(text), unsafe_skip_copy=True)
    wrapper.resolve(PositionProvider)
    return wrapper


def _apply_to_text(text: str, edits: list[Edit], path: str) -> str:
    return rewrite_text(text, edits, path, _Applier(edits))


def rewrite_text(text: str, edits: list[Edit], path: str, applier: Any) -> str:
    """Run a libcst ``applier`` over ``text``; check every edit matched and the result compiles.

    ``applier`` is a transformer with a ``matched`` set of edit ids.  The parse is
    cached (bisection applies many subsets to the same file).
    """
    try:
        new = _parsed(text).visit(applier).code
    except cst.ParserSyntaxError as e:
        raise EditError(f"{path}: libcst cannot parse it: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise EditError(f"{path}: nested too deeply for libcst") from None
    missing = [e.id for e in edits if e.id not in applier.matched]
    if missing:
        raise EditError(f"{path}: target not found for {', '.join(missing)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(new, path, "exec", dont_inherit=True)
    except SyntaxError as e:  # a bug in an applier; never hand out broken code
        raise EditError(f"{path}:{e.lineno}: rewritten code does not compile: {e.msg}") from None
    return new


def _target(edit: Edit) -> dict[str, Any]:
    target = edit.evidence.get("target")
    if not isinstance(target, dict):
        raise EditError(f"{edit.id}: evidence has no 'target'")
    return target


_CONTAINERS = tuple(
    getattr(cst, name) for name in (
        "Module", "IndentedBlock", "FunctionDef", "ClassDef", "If", "Else", "For", "While",
        "Try", "TryStar", "ExceptHandler", "ExceptStarHandler", "Finally", "With", "Match",
        "MatchCase",
    ) if hasattr(cst, name)
)


class _Applier(cst.CSTTransformer):
    """Removes the statements, aliases and assignment targets named by edits."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, edits: list[Edit]) -> None:
        super().__init__()
        self.defs: dict[tuple[int, str], Edit] = {}
        self.imports: dict[tuple[int, str, str | None, int], Edit] = {}
        self.assigns: dict[tuple[int, str], Edit] = {}
        self.matched: set[str] = set()
        for e in edits:
            t = _target(e)
            if e.kind in ("unused-function", "unused-class", "unused-method"):
                self.defs[(int(t["line"]), str(t["name"]))] = e
            elif e.kind in ("unused-import", "duplicate-import"):
                occurrence = int(t.get("occurrence", 0))
                self.imports[(int(t["line"]), str(t["alias"]), t.get("asname"), occurrence)] = e
            else:
                self.assigns[(int(t["line"]), str(t["name"]))] = e

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def on_visit(self, node: cst.CSTNode) -> bool:
        # Only blocks hold statements; expressions and simple lines are handled by
        # the block that contains them, so their insides need no walk.
        return isinstance(node, _CONTAINERS)

    # -- blocks ---------------------------------------------------------------

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        body, carry = self._body(original_node.body, updated_node.body)
        if body is None:
            return updated_node
        if body and updated_node.body and body[0] is not updated_node.body[0]:
            # The file's first statement went: do not start the file with blank lines.
            lines = list(body[0].leading_lines)
            while lines and lines[0].comment is None:
                lines.pop(0)
            body[0] = body[0].with_changes(leading_lines=lines)
        return updated_node.with_changes(body=body, footer=[*carry, *updated_node.footer])

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body, carry = self._body(original_node.body, updated_node.body)
        if body is None:
            return updated_node
        if not body:  # every statement went: the block still needs one
            body = [cst.SimpleStatementLine([cst.Pass()], leading_lines=carry)]
            carry = []
        return updated_node.with_changes(body=body, footer=[*carry, *updated_node.footer])

    def leave_SimpleStatementSuite(
        self, original_node: cst.SimpleStatementSuite, updated_node: cst.SimpleStatementSuite
    ) -> cst.SimpleStatementSuite:
        small = self._small(original_node.body, updated_node.body)
        if small is None:
            return updated_node
        return updated_node.with_changes(body=small or [cst.Pass()])

    def _body(
        self, original: Iterable[cst.BaseStatement], updated: Iterable[cst.BaseStatement]
    ) -> tuple[list[cst.BaseStatement] | None, list[cst.EmptyLine]]:
        new: list[cst.BaseStatement] = []
        carry: list[cst.EmptyLine] = []
        changed = False
        for o, u in zip(original, updated, strict=True):
            result = self._statement(o, u)
            if result is not u:
                changed = True
            if result is None:
                carry.extend(_kept_comments(u, isinstance(o, (cst.FunctionDef, cst.ClassDef))))
                continue
            if carry:
                result = result.with_changes(leading_lines=_merge(carry, result.leading_lines))
                carry = []
            new.append(result)
        return (new if changed else None), _comments_only(carry)

    def _statement(self, o: cst.BaseStatement, u: cst.BaseStatement) -> cst.BaseStatement | None:
        if isinstance(o, (cst.FunctionDef, cst.ClassDef)):
            edit = self.defs.get((self._line(o.name), o.name.value))
            if edit is not None:
                self.matched.add(edit.id)
                return None
            return u
        if isinstance(o, cst.SimpleStatementLine) and isinstance(u, cst.SimpleStatementLine):
            small = self._small(o.body, u.body)
            if small is None:
                return u
            return u.with_changes(body=small) if small else None
        return u

    # -- simple statements ------------------------------------------------------

    def _small(
        self, original: Iterable[cst.BaseSmallStatement], updated: Iterable[cst.BaseSmallStatement]
    ) -> list[cst.BaseSmallStatement] | None:
        out: list[cst.BaseSmallStatement] = []
        changed = False
        for o, u in zip(original, updated, strict=True):
            if isinstance(o, (cst.Import, cst.ImportFrom)):
                r = self._import(o, u)  # type: ignore[arg-type]
            elif isinstance(o, (cst.Assign, cst.AnnAssign)):
                r = self._assign(o, u)  # type: ignore[arg-type]
            else:
                r = u
            if r is not u:
                changed = True
            if r is not None:
                out.append(r)
        if not changed:
            return None
        if out and not isinstance(out[-1].semicolon, cst.MaybeSentinel):
            out[-1] = out[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        return out

    def _import(
        self, o: cst.Import | cst.ImportFrom, u: cst.Import | cst.ImportFrom
    ) -> cst.BaseSmallStatement | None:
        if isinstance(o.names, cst.ImportStar) or isinstance(u.names, cst.ImportStar):
            return u
        line = self._line(o)
        keep: list[cst.ImportAlias] = []
        seen: dict[tuple[str, str | None], int] = {}
        for oa, ua in zip(o.names, u.names, strict=True):
            name = get_full_name_for_node(oa.name) or ""
            asname = None
            if oa.asname is not None and isinstance(oa.asname.name, cst.Name):
                asname = oa.asname.name.value
            occurrence = seen[(name, asname)] = seen.get((name, asname), -1) + 1
            edit = self.imports.get((line, name, asname, occurrence))
            if edit is not None:
                self.matched.add(edit.id)
            else:
                keep.append(ua)
        if len(keep) == len(u.names):
            return u
        if not keep:
            return None
        keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return u.with_changes(names=keep)

    def _assign(
        self, o: cst.Assign | cst.AnnAssign, u: cst.Assign | cst.AnnAssign
    ) -> cst.BaseSmallStatement | None:
        line = self._line(o)
        removed: list[Edit] = []
        if isinstance(o, cst.AnnAssign):
            assert isinstance(u, cst.AnnAssign)
            edit = self.assigns.get((line, o.target.value)) if isinstance(
                o.target, cst.Name) else None
            if edit is None or u.value is None:
                return u
            self.matched.add(edit.id)
            removed.append(edit)
            value = u.value
        else:
            assert isinstance(u, cst.Assign)
            keep = []
            for ot, ut in zip(o.targets, u.targets, strict=True):
                edit = self.assigns.get((line, ot.target.value)) if isinstance(
                    ot.target, cst.Name) else None
                if edit is not None:
                    self.matched.add(edit.id)
                    removed.append(edit)
                else:
                    keep.append(ut)
            if not removed:
                return u
            if keep:
                return u.with_changes(targets=keep)
            value = u.value
        if any(_target(e).get("keeps_call") for e in removed):
            return cst.Expr(value=value, semicolon=u.semicolon)
        return None


def _kept_comments(stmt: cst.BaseStatement, is_definition: bool) -> list[cst.EmptyLine]:
    """The lines above a removed statement that should stay (moved to the next statement).

    For a removed ``def``/``class`` the comment block directly above it (no
    blank line between) describes it and goes with it; other comments, and
    the blank lines that separate groups of statements, stay.
    """
    lines = list(getattr(stmt, "leading_lines", ()))
    if is_definition:
        end = len(lines)
        while end and lines[end - 1].comment is not None:
            end -= 1
        lines = lines[:end]
    return lines


def _merge(carry: list[cst.EmptyLine], lines: Iterable[cst.EmptyLine]) -> list[cst.EmptyLine]:
    """``carry`` then ``lines``, with runs of blank lines cut to two (PEP 8's most)."""
    out: list[cst.EmptyLine] = []
    blank_run = 0
    for line in [*carry, *lines]:
        blank_run = blank_run + 1 if line.comment is None else 0
        if blank_run <= 2:
            out.append(line)
    return out


def _comments_only(lines: list[cst.EmptyLine]) -> list[cst.EmptyLine]:
    """From the first comment to the last: what is worth keeping at the end of a block."""
    marks = [i for i, line in enumerate(lines) if line.comment is not None]
    return lines[marks[0]: marks[-1] + 1] if marks else []
