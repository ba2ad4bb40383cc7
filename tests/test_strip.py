"""The strip step: docstrings, annotations, asserts and ``if __debug__:`` blocks, and each guard."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.edits import EditError
from memtrim.passes.strip import StripStep
from memtrim.program import Program


def make(tmp_path: Path, files: dict[str, str], entry: str = "main.py") -> Program:
    for rel, text in files.items():
        p = tmp_path / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    root = tmp_path / "src"
    return Program.load(root, entry=root / entry)


def strip(program: Program, level: int = 0, **kw) -> tuple[StripStep, list, dict[str, str]]:
    step = StripStep(optimize_level=level, **kw)
    edits = step.run(program)
    return step, edits, step.apply(program, edits)


def run_tree(program: Program, changes: dict[str, str], dest: Path, entry: str = "main.py",
             *flags: str) -> subprocess.CompletedProcess:
    """Write the program with ``changes`` to ``dest`` and run it."""
    for mod in program.modules.values():
        target = dest / mod.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(changes.get(mod.path.as_posix(), mod.text), encoding="utf-8")
    return subprocess.run([sys.executable, *flags, str(dest / entry)], capture_output=True,
                          text=True, timeout=60, cwd=dest)


def kinds(edits) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in edits:
        out.setdefault(e.kind, set()).add(e.symbol)
    return out


# --------------------------------------------------------------------------- docstrings


def test_docstrings_stripped_and_behaviour_identical(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        """Module doc."""
        import lib


        class A:
            """Class doc only."""


        def f(x):
            """Function doc.

            Long.
            """
            return x + 1


        print(f(1), A.__name__, lib.g())
        ''', "lib.py": '''\
        def g():
            """Only a docstring."""
        '''})
    _, edits, changes = strip(prog)
    assert kinds(edits)["docstring"] == {"main", "main:A", "main:f", "lib:g"}
    new = changes["main.py"]
    assert "Module doc" not in new and "Function doc" not in new
    tree = ast.parse(new)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert isinstance(cls.body[0], ast.Pass)  # docstring-only body becomes pass
    assert "pass" in changes["lib.py"]
    out = run_tree(prog, changes, tmp_path / "out")
    assert out.returncode == 0 and out.stdout == "2 A None\n"


def test_line_numbers_kept(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        """Doc
        on three
        lines."""


        def boom():
            """Doc."""
            raise ValueError("x")


        boom()
        '''})
    _, _, changes = strip(prog)
    original = run_tree(prog, {}, tmp_path / "a")
    stripped = run_tree(prog, changes, tmp_path / "b")
    assert "line 8" in original.stderr
    # same traceback: same line numbers, same source lines shown
    assert stripped.stderr.replace(str(tmp_path / "b"), "X") == \
        original.stderr.replace(str(tmp_path / "a"), "X")
    _, _, compact = strip(prog, keep_lines=False)
    assert compact["main.py"].count("\n") < changes["main.py"].count("\n")


def test_doc_read_through_dunder_doc_keeps_that_docstring(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        """Usage: main.py [--help]"""
        import argparse


        def cmd():
            """Run the command."""


        def other():
            """Not read."""


        parser = argparse.ArgumentParser(description=__doc__)
        print(parser.description, cmd.__doc__)
        '''})
    step, edits, changes = strip(prog)
    assert kinds(edits)["docstring"] == {"main:other"}
    kept = {n.symbol: n.reason for n in step.notes if n.kind == "docstring"}
    assert "__doc__" in kept["main"] and "cmd.__doc__" in kept["main:cmd"]
    out = run_tree(prog, changes, tmp_path / "out")
    assert out.stdout == "Usage: main.py [--help] Run the command.\n"


def test_unresolved_doc_read_keeps_every_docstring(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        import lib


        def show(obj):
            print(obj.__doc__)


        show(lib.f)
        ''', "lib.py": '''\
        def f():
            """Shown."""
        '''})
    step, edits, _ = strip(prog)
    assert "docstring" not in kinds(edits)
    assert any("not resolved" in n.reason for n in step.notes)


def test_doc_read_of_imported_function_keeps_only_it(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        from lib import f
        import lib as L
        print(f.__doc__, L.__doc__)
        ''', "lib.py": '''\
        """Lib doc."""


        def f():
            """Shown."""


        def g():
            """Not shown."""
        '''})
    _, edits, changes = strip(prog)
    assert kinds(edits)["docstring"] == {"lib:g"}
    out = run_tree(prog, changes, tmp_path / "out")
    assert out.stdout == "Shown. Lib doc.\n"


@pytest.mark.parametrize("importer", ["import doctest", "import pydoc"])
def test_doctest_and_pydoc_keep_every_docstring(tmp_path, importer):
    prog = make(tmp_path, {"main.py": f'''\
        {importer}


        def double(x):
            """
            >>> double(2)
            4
            """
            return 2 * x
        '''})
    _, edits, _ = strip(prog)
    assert "docstring" not in kinds(edits)


def test_doctest_in_test_command_keeps_docstrings(tmp_path):
    prog = make(tmp_path, {"main.py": 'def f():\n    """>>> f()"""\n'})
    step = StripStep()

    class Ctx:
        class app:
            keep = ()
            test_command = ("python", "-m", "pytest", "--doctest-modules")

        class request:
            keep = ()

    assert step.run(prog, Ctx) == []  # type: ignore[arg-type]


def test_click_module_keeps_its_docstrings_only(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        import cli
        import other
        ''', "cli.py": '''\
        import click


        def hello():
            """Say hello (click shows this as help)."""
        ''', "other.py": 'def g():\n    """Gone."""\n'})
    _, edits, _ = strip(prog)
    assert kinds(edits)["docstring"] == {"other:g"}


def test_keep_comment_and_keep_list(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        def a():  # memtrim: keep
            """Kept by comment."""


        def b():
            """Kept by the keep-list."""


        def c():
            """Gone."""
        '''})
    _, edits, _ = strip(prog, keep=["main:b"])
    assert kinds(edits)["docstring"] == {"main:c"}


# --------------------------------------------------------------------------- annotations


def test_annotations_stripped_where_unread(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        from typing import Optional
        LIMIT: int = 3
        NAME: str


        class Plain:
            size: int = 2
            label: str

            def grow(self, by: int = 1, *args: int, key: Optional[str] = None,
                     **kw: float) -> int:
                local: int = by
                return self.size + local


        def f(x: "list[int]") -> None:
            print(x)


        f([Plain().grow(by=2), LIMIT])
        '''})
    _, edits, changes = strip(prog)
    assert kinds(edits)["annotation"] == {
        "main:LIMIT", "main:NAME", "main:Plain.size", "main:Plain.label", "main:Plain.grow",
        "main:f"}
    new = changes["main.py"]
    assert "LIMIT = 3" in new and "NAME" not in new
    assert "def grow(self, by=1, *args, key=None,\n             **kw):" in new
    assert "def f(x):" in new
    assert "local: int = by" in new  # locals are never evaluated: left alone
    tree = ast.parse(new)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            assert node.annotation is None
    out = run_tree(prog, changes, tmp_path / "out")
    assert out.returncode == 0 and out.stdout == "[4, 3]\n"


def test_dataclass_namedtuple_typeddict_protocol_bodies_kept(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        import dataclasses
        from dataclasses import dataclass
        from typing import NamedTuple, Protocol, TypedDict


        @dataclass
        class P:
            x: int
            y: int = 0

            def total(self, k: int) -> int:
                return self.x + self.y + k


        @dataclasses.dataclass(frozen=True)
        class Q:
            z: int


        class Child(P):
            extra: int = 5


        class Row(NamedTuple):
            a: int
            b: str = "b"


        class Movie(TypedDict):
            title: str


        class Greeter(Protocol):
            name: str


        print(P(1).total(1), Q(2), Row(1), Movie(title="t"), Child(1, 2).extra)
        '''})
    step, edits, changes = strip(prog)
    stripped = kinds(edits).get("annotation", set())
    assert stripped == {"main:P.total"}  # a method's own annotations are not fields
    reasons = {n.symbol: n.reason for n in step.notes if n.kind == "annotation"}
    assert "dataclass" in reasons["main:P.x"] and "dataclass" in reasons["main:Q.z"]
    assert "base P" in reasons["main:Child.extra"]
    for name in ("Row.a", "Movie.title", "Greeter.name"):
        assert "outside the program" in reasons[f"main:{name}"]
    out = run_tree(prog, changes, tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2 Q(z=2) Row(a=1, b='b') {'title': 't'} 5\n"


def test_annotation_readers_keep_what_they_read(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        import inspect
        import typing
        from functools import singledispatch


        def hinted(a: int) -> str:
            return str(a)


        def sig(b: float) -> None:
            pass


        def free(c: int) -> int:
            return c


        class Settings:
            port: int = 80


        @singledispatch
        def show(x):
            return "object"


        @show.register
        def _(x: int):
            return "int"


        print(typing.get_type_hints(hinted), inspect.signature(sig),
              Settings.__annotations__, show(1), free(1))
        '''})
    step, edits, changes = strip(prog)
    assert kinds(edits)["annotation"] == {"main:free"}
    reasons = {n.symbol: n.reason for n in step.notes if n.kind == "annotation"}
    assert "get_type_hints" in reasons["main:hinted"]
    assert "signature" in reasons["main:sig"]
    assert "__annotations__" in reasons["main:Settings.port"]
    assert "singledispatch" in reasons["main:_"]
    original = run_tree(prog, {}, tmp_path / "a")
    out = run_tree(prog, changes, tmp_path / "b")
    assert out.stdout == original.stdout and "int" in out.stdout


def test_unresolved_annotation_read_keeps_all(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        import typing


        def check(fn):
            return typing.get_type_hints(fn)


        def f(a: int) -> int:
            return a


        print(check(f))
        '''})
    step, edits, _ = strip(prog)
    assert "annotation" not in kinds(edits)
    assert any("not resolved" in n.reason for n in step.notes)


def test_third_party_decorator_and_library_keep_annotations(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        import models
        import web
        ''', "web.py": '''\
        import somelib

        app = somelib.App()


        @app.route("/")
        def index(req: dict) -> str:
            return "ok"


        def helper(n: int) -> int:
            return n
        ''', "models.py": '''\
        import pydantic


        def convert(v: int) -> int:
            return v
        '''})
    step, edits, _ = strip(prog)
    assert kinds(edits)["annotation"] == {"web:helper"}
    reasons = {n.symbol: n.reason for n in step.notes if n.kind == "annotation"}
    assert "decorator @app.route" in reasons["web:index"]
    assert "pydantic" in reasons["models:convert"]


def test_annotation_with_call_kept(tmp_path):
    prog = make(tmp_path, {"main.py": '''\
        from typing import Annotated
        import meta

        X: Annotated[int, meta.Field(gt=0)] = 1
        Y: int = 2
        '''})
    step, edits, _ = strip(prog)
    assert kinds(edits)["annotation"] == {"main:Y"}


# --------------------------------------------------------------------------- asserts / debug


ASSERTS = '''\
    def check(x):
        assert x > 0, "must be positive"
        return x


    def validate(v):
        assert isinstance(v, int)
        return v


    def parse(v):
        try:
            return validate(v)
        except AssertionError:
            return -1


    def effect(items):
        assert items.pop() == 3
        return items


    def guarded(v):
        try:
            assert v, "empty"
        except Exception:
            return "empty"
        return "ok"


    if __debug__:
        print("debug build")
    else:
        print("optimized build")

    if __debug__:
        MODE = "checks"

    print(check(1), parse("x"), effect([1, 2, 3]), guarded(0), MODE)
    '''


def test_asserts_only_on_opt_in(tmp_path):
    prog = make(tmp_path, {"main.py": ASSERTS})
    _, edits, _ = strip(prog, level=0)
    assert "assert" not in kinds(edits) and "debug-block" not in kinds(edits)


def test_asserts_and_debug_blocks_with_guards(tmp_path):
    prog = make(tmp_path, {"main.py": ASSERTS})
    step, edits, changes = strip(prog, level=1)
    got = kinds(edits)
    assert got["assert"] == {"main:check"}
    assert len([e for e in edits if e.kind == "debug-block"]) == 1
    reasons = {(n.kind, n.symbol): n.reason for n in step.notes}
    assert "control flow" in reasons[("assert", "main:validate")]  # called under the try
    assert "control flow" in reasons[("assert", "main:guarded")]
    assert "pop" in reasons[("assert", "main:effect")]
    assert "MODE" in reasons[("debug-block", "main")]
    out = run_tree(prog, changes, tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "optimized build\n1 -1 [1, 2] empty checks\n"
    # and the module keeps its line count
    assert changes["main.py"].count("\n") == prog.modules["main"].text.count("\n")


def test_assert_in_test_file_kept(tmp_path):
    prog = make(tmp_path, {"main.py": "import test_x\n",
                           "test_x.py": "def test_a():\n    assert 1 + 1 == 2\n"})
    _, edits, _ = strip(prog, level=1)
    assert "assert" not in kinds(edits)


def test_bad_optimize_level():
    with pytest.raises(ValueError, match="optimize_level"):
        StripStep(optimize_level=2)


# --------------------------------------------------------------------------- subsets


SUBSETS = '''\
    """Module."""
    import sys
    X: int = 1


    class K:
        """Doc."""
        y: int
        assert True


    def f(a: int) -> int:
        """Doc."""
        assert a; assert a > 0
        if __debug__:
            pass
        elif sys.argv:
            print("argv")
        else:
            print("no")
        return a


    def g(): "doc"; return 2
    print(f(1), g())
    '''


def test_every_subset_applies_and_compiles(tmp_path):
    prog = make(tmp_path, {"main.py": SUBSETS})
    step = StripStep(optimize_level=1)
    edits = step.run(prog)
    assert len(edits) >= 8
    lines = prog.modules["main"].text.count("\n")
    for r in range(len(edits) + 1):
        for subset in itertools.islice(itertools.combinations(edits, r), 40):
            for keep_lines in (True, False):
                text = StripStep(optimize_level=1, keep_lines=keep_lines).apply(
                    prog, list(subset)).get("main.py", prog.modules["main"].text)
                compile(text, "main.py", "exec")
                if keep_lines:
                    assert text.count("\n") == lines
    out = run_tree(prog, step.apply(prog, edits), tmp_path / "out")
    assert out.stdout == "argv\n1 2\n"


def test_unknown_target_is_an_edit_error(tmp_path):
    prog = make(tmp_path, {"main.py": 'def f():\n    """d"""\n'})
    step = StripStep()
    (edit,) = step.run(prog)
    import dataclasses

    moved = dataclasses.replace(edit, evidence={"target": {"line": 99}})
    with pytest.raises(EditError, match="target not found"):
        step.apply(prog, [moved])
