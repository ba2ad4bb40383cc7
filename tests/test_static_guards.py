"""The static removal pass must never remove what the program could reach dynamically.

Each test plants one dynamic use and checks that its target is kept, next to
a control that the same code without the dynamic use would lose.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from memtrim.edits import Edit
from memtrim.passes.static_removal import StaticRemovalPass, read_vulture_whitelist
from memtrim.program import Program


def run_pass(
    tmp_path: Path, files: dict[str, str], **kwargs
) -> tuple[list[Edit], StaticRemovalPass]:
    """Write ``files`` under tmp_path, load them with main.py as entry, run the pass."""
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    program = Program.load(tmp_path, entry=Path("main.py"))
    sp = StaticRemovalPass(**kwargs)
    return sp.run(program), sp


def found(edits: list[Edit]) -> set[str]:
    return {e.symbol for e in edits}


def test_eval_and_exec_keep_what_they_could_name(tmp_path):
    edits, sp = run_pass(tmp_path, {"main.py": """
        import sys

        def target():
            return 1

        def other():
            return 2

        class Thing:
            def method(self):
                return 3

        def run(expr):
            return eval(expr)

        print(run(sys.argv[-1]))
    """})
    # Anything the string may name stays: module names, and any attribute.
    assert found(edits) == set()
    assert any("eval() with a non-constant argument" in n for n in sp.notes)


def test_constant_exec_string_counts_as_a_use(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        def target():
            return 1

        def other():
            return 2

        exec("print(target())")
    """})
    assert found(edits) == {"main:other"}


def test_dynamic_getattr_on_a_module_keeps_its_names(tmp_path):
    edits, _ = run_pass(tmp_path, {
        "main.py": """
            import sys
            import handlers
            import spare
            fn = getattr(handlers, "on_" + sys.argv[-1])
            print(fn(), spare.used())
        """,
        "handlers.py": """
            def on_start():
                return "start"

            def on_stop():
                return "stop"

            def helper():
                return "h"
        """,
        "spare.py": """
            def used():
                return 1

            def unused():
                return 2
        """,
    })
    # The computed name starts with "on_": on_* stay, helper goes; the control
    # module without a dynamic lookup loses its unused function.
    assert found(edits) == {"handlers:helper", "spare:unused"}


def test_dynamic_getattr_on_an_unknown_object_keeps_all_methods(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        import sys

        class Robot:
            def walk(self):
                return "walk"

            def talk(self):
                return "talk"

        def act(obj, what):
            return getattr(obj, what)()

        print(act(Robot(), sys.argv[-1]))
    """})
    assert found(edits) == set()


def test_constant_getattr_is_a_reference(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        class Robot:
            def walk(self):
                return "walk"

            def talk(self):
                return "talk"

        print(getattr(Robot(), "walk")())
    """})
    assert found(edits) == {"main:Robot.talk"}


def test_getattr_on_self_keeps_the_class_family(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        import sys

        class Shell:
            def dispatch(self, cmd):
                return getattr(self, cmd)()

        class MyShell(Shell):
            def do_list(self):
                return "list"

        class Unrelated:
            def run(self):
                return 1

            def idle(self):
                return 0

        print(MyShell().dispatch(sys.argv[-1]), Unrelated().run())
    """})
    assert found(edits) == {"main:Unrelated.idle"}


def test_globals_keeps_every_top_level_name(tmp_path):
    edits, _ = run_pass(tmp_path, {
        "main.py": """
            import sys
            import other

            def cmd_a():
                return "a"

            def cmd_b():
                return "b"

            print(globals()["cmd_" + sys.argv[-1]](), other.x())
        """,
        "other.py": """
            def x():
                return 1

            def y():
                return 2
        """,
    })
    assert found(edits) == {"other:y"}


def test_module_getattr_keeps_the_module(tmp_path):
    edits, sp = run_pass(tmp_path, {
        "main.py": """
            import lazy
            import plain
            print(lazy.thing, plain.a())
        """,
        "lazy.py": """
            def _load_thing():
                return "thing"

            def __getattr__(name):
                return globals()["_load_" + name]()
        """,
        "plain.py": """
            def a():
                return 1

            def _load_thing():
                return 2
        """,
    })
    assert found(edits) == {"plain:_load_thing"}
    assert any("defines __getattr__" in n for n in sp.notes)


def test_registering_decorator_keeps_its_function(tmp_path):
    edits, sp = run_pass(tmp_path, {"main.py": """
        import functools

        HANDLERS = {}

        def register(fn):
            HANDLERS[fn.__name__] = fn
            return fn

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return fn(*args)
            return wrapper

        @register
        def on_ping():
            return "pong"

        @logged
        def unused_logged():
            return 1

        @functools.lru_cache(maxsize=None)
        def unused_cached():
            return 2

        print(HANDLERS["on_ping"]())
    """})
    # logged and functools were used only by the functions that go (a later round).
    assert found(edits) == {
        "main:unused_logged", "main:unused_cached", "main:logged", "main:functools"}
    logged = next(e for e in edits if e.symbol == "main:logged")
    assert logged.evidence["depends_on"] == [
        next(e.id for e in edits if e.symbol == "main:unused_logged")]
    assert any(k.symbol == "main:on_ping" and "@register" in k.reason for k in sp.kept)


def test_metaclass_keeps_classes(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        REGISTRY = []

        class Meta(type):
            def __init__(cls, name, bases, ns):
                super().__init__(name, bases, ns)
                REGISTRY.append(name)

        class Plugin(metaclass=Meta):
            pass

        class CsvPlugin(Plugin):
            pass

        class NotAPlugin:
            pass

        print(REGISTRY)
    """})
    assert found(edits) == {"main:NotAPlugin"}


def test_init_subclass_keeps_subclasses(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        FORMATS = {}

        class Format:
            def __init_subclass__(cls, **kw):
                super().__init_subclass__(**kw)
                FORMATS[cls.__name__.lower()] = cls

        class Json(Format):
            pass

        class Yaml(Format):
            pass

        class Helper:
            pass

        print(sorted(FORMATS))
    """})
    assert found(edits) == {"main:Helper"}


def test_pickled_classes_keep_their_names(tmp_path):
    edits, sp = run_pass(tmp_path, {
        "main.py": """
            import model
            import plain
            print(model.load("m.pkl"), plain.f())
        """,
        "model.py": """
            import pickle

            class Tree:
                pass

            def load(path):
                with open(path, "rb") as fh:
                    return pickle.load(fh)
        """,
        "plain.py": """
            class Tree:
                pass

            def f():
                return 1
        """,
    })
    # A pickle names classes by module path: model.Tree may be in m.pkl.
    assert found(edits) == {"plain:Tree"}
    assert any(k.symbol == "model:Tree" and "pickle" in k.reason for k in sp.kept)


def test_all_reexport_keeps_listed_names(tmp_path):
    edits, _ = run_pass(tmp_path, {
        "main.py": "import pkg\nprint(pkg.VERSION)\n",
        "pkg/__init__.py": """
            from pkg.api import connect
            VERSION = 1
            __all__ = ["connect", "helper"]

            def helper():
                return 2

            def internal():
                return 3
        """,
        "pkg/api.py": """
            def connect():
                return "ok"

            def disconnect():
                return "bye"
        """,
    })
    assert found(edits) == {"pkg:internal", "pkg.api:disconnect"}


def test_keep_comment(tmp_path):
    edits, sp = run_pass(tmp_path, {"main.py": """
        import json  # memtrim: keep
        import os

        def hook():  # memtrim: keep
            return 1

        def spare():
            return 2
    """})
    assert found(edits) == {"main:os", "main:spare"}
    assert {k.symbol for k in sp.kept} >= {"main:json", "main:hook"}


def test_keep_list(tmp_path):
    edits, sp = run_pass(tmp_path, {
        "main.py": """
            import pkg.mod

            class Api:
                def public(self):
                    return 1

                def other(self):
                    return 2

            def cli():
                return 3
        """,
        "pkg/__init__.py": "",
        "pkg/mod.py": "def func():\n    return 1\n\ndef gone():\n    return 2\n",
    }, keep=["main:Api.public", "main:cli", "pkg.mod:func", "nowhere:thing"])
    # Keeping a method keeps its class; the rest of the class may still go.  A
    # kept name's module is imported by whoever uses it, so main needs no import.
    assert found(edits) == {"main:Api.other", "pkg.mod:gone", "main:pkg"}
    assert sp.unmatched_keep == ["nowhere:thing"]


def test_vulture_whitelist_as_keep_list(tmp_path):
    whitelist = tmp_path / "whitelist.py"
    whitelist.write_text(
        "_.talk  # unused method (main.py:6)\n"
        "spare  # unused function (main.py:9)\n"
        "# a comment line\n"
    )
    assert read_vulture_whitelist(whitelist) == ["*:talk", "*:spare"]
    edits, _ = run_pass(tmp_path, {"main.py": """
        class Robot:
            def walk(self):
                return 1

            def talk(self):
                return 2

        def spare():
            return 3

        def gone():
            return 4

        print(Robot().walk())
    """}, keep=["whitelist.py"])
    assert found(edits) == {"main:gone"}


def test_entry_points_from_pyproject(tmp_path):
    edits, _ = run_pass(tmp_path, {
        "pyproject.toml": """
            [project]
            name = "x"
            [project.scripts]
            x-cli = "tools:main"
        """,
        "main.py": "import tools\n",
        "tools.py": "def main():\n    return 1\n\ndef unused():\n    return 2\n",
    })
    # The console script imports tools and calls main; main.py does not need tools.
    assert found(edits) == {"tools:unused", "main:tools"}


def test_external_base_class_keeps_methods(tmp_path):
    edits, _ = run_pass(tmp_path, {"main.py": """
        import ast
        import json

        class Finder(ast.NodeVisitor):
            def visit_Name(self, node):
                print(node.id)

        class Encoder(json.JSONEncoder):
            def default(self, o):
                return str(o)

        class Plain:
            def used(self):
                return 1

            def visit_Name(self, node):
                return 2

        Finder().visit(ast.parse("x"))
        print(json.dumps(object(), cls=Encoder), Plain().used())
    """})
    # NodeVisitor and JSONEncoder call visit_*/default by name; Plain's copy goes.
    assert found(edits) == {"main:Plain.visit_Name"}


def test_class_passed_as_an_argument_keeps_its_methods(tmp_path):
    # sqlite3 calls step() and finalize() on the aggregate class it is given.
    edits, _ = run_pass(tmp_path, {"main.py": """
        import sqlite3

        class Longest:
            def __init__(self):
                self.n = 0

            def step(self, value):
                self.n = max(self.n, len(value))

            def finalize(self):
                return self.n

        class Plain:
            def step(self):
                return 1

        conn = sqlite3.connect(":memory:")
        conn.create_aggregate("longest", 1, Longest)
        print(conn.execute("select longest(x) from (select 'ab' as x)").fetchone(), Plain())
    """})
    assert found(edits) == {"main:Plain.step"}


def test_definitions_whose_creation_does_more_than_define_stay(tmp_path):
    edits, sp = run_pass(tmp_path, {"main.py": """
        LOG = []

        def noisy_default(x=LOG.append("default evaluated")):
            return x

        class NoisyBody:
            LOG.append("class body ran")

        class Flag(bool):  # raises TypeError: bool cannot be subclassed
            pass

        try:
            class MaybeBroken:
                pass
        except TypeError:
            pass

        def quiet(x=(1, 2)):
            return x

        class Quiet:
            size = 3

            def method(self, y=None):
                return y

        print(LOG)
    """})
    assert found(edits) == {"main:quiet", "main:Quiet"}
    reasons = {k.symbol: k.reason for k in sp.kept}
    assert "default value" in reasons["main:noisy_default"]
    assert "LOG.append" in reasons["main:NoisyBody"]
    assert "raises TypeError" in reasons["main:Flag"]
    assert "try statement" in reasons["main:MaybeBroken"]
