"""The static removal pass: one fixture program per removal rule.

Each test asserts both what must be found and what must not (a same-named or
used neighbour), so a pass that removed everything or nothing would fail.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.edits import Edit, apply_edits
from memtrim.passes.static_removal import StaticRemovalPass
from memtrim.program import Program


def run_pass(tmp_path: Path, files: dict[str, str], entry: str | None = "main.py",
             **kwargs) -> tuple[Program, list[Edit]]:
    """Write ``files`` under tmp_path, load them, run the pass."""
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    program = Program.load(tmp_path, entry=Path(entry) if entry else None)
    return program, StaticRemovalPass(**kwargs).run(program)


def found(edits: list[Edit], kind: str | None = None) -> set[str]:
    """The symbols of the edits (of one kind)."""
    return {e.symbol for e in edits if kind is None or e.kind == kind}


def test_unused_stdlib_import(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        import os
        import json
        import collections.abc
        print(json.dumps([1]))
    """})
    assert found(edits, "unused-import") == {"main:os", "main:collections"}
    edit = next(e for e in edits if e.symbol == "main:os")
    assert edit.id == "static:unused-import:main.py:2:os"
    assert edit.line == 2 and edit.path == "main.py" and edit.pass_name == "static"
    assert edit.evidence["references_in_kept_code"] == 0
    assert "allow-list" in edit.evidence["side_effect_free"]


def test_unused_third_party_import_decided_from_its_source(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "quietlib").mkdir(parents=True)
    (site / "quietlib" / "__init__.py").write_text(
        "'''Only definitions.'''\nimport re\nPATTERN = re.compile('x')\n\ndef f():\n    return 1\n"
    )
    (site / "noisylib.py").write_text("print('imported!')\n")
    monkeypatch.syspath_prepend(str(site))
    _, edits = run_pass(tmp_path / "app", {"main.py": """
        import quietlib
        import noisylib
        import numpy as np
        from quietlib import f as g
        print("hello")
    """})
    # quietlib only defines (found and judged without importing it); numpy is on
    # the allow-list; noisylib prints when imported, so it must stay.
    assert found(edits, "unused-import") == {"main:quietlib", "main:np", "main:g"}
    assert "quietlib" not in sys.modules and "noisylib" not in sys.modules


def test_unused_type_checking_import_goes_whatever_the_module_does(tmp_path):
    # noisy prints when imported, but `if TYPE_CHECKING:` never runs.
    program, edits = run_pass(tmp_path, {
        "main.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                import noisy
                from noisy import Thing
            def f(x: "Thing") -> None:
                print(x)
            f(1)
        """,
        "noisy.py": "print('imported!')\nclass Thing:\n    pass\n",
    })
    assert found(edits) == {"main:noisy"}
    assert "    pass\n" not in apply_edits(program, edits)["main.py"]  # Thing stays


def test_duplicate_imports(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        import json
        import json

        def dump(x):
            import json
            return json.dumps(x)

        print(json.dumps(1), dump(2))
    """})
    dups = [e for e in edits if e.kind == "duplicate-import"]
    assert sorted(e.line for e in dups) == [3, 6]
    assert all(e.evidence["duplicate_of_line"] == 2 for e in dups)
    assert "main:json" not in found(edits, "unused-import")  # the first one is used


def test_function_import_repeating_a_module_import(tmp_path):
    # The module-level import is used only through the function's repeat of it:
    # the repeat may go, the module-level one must stay.
    program, edits = run_pass(tmp_path, {"main.py": """
        import math

        def root(x):
            import math
            return math.sqrt(x)

        print(root(4.0))
    """})
    assert [(e.kind, e.line) for e in edits] == [("duplicate-import", 5)]
    new = apply_edits(program, edits)["main.py"]
    assert new.lstrip().startswith("import math\n") and new.count("import math") == 1


def test_shadowed_import(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        from os import path
        path = "/tmp/data"
        print(path)
    """})
    (edit,) = [e for e in edits if e.kind == "unused-import"]
    assert edit.symbol == "main:path" and edit.evidence["shadowed_by_line"] == 3
    assert "main:path" not in found(edits, "unused-variable")  # the rebinding is used


def test_import_rebound_after_a_call_is_not_shadowed(tmp_path):
    # show() runs between the import and the rebinding and reads the import.
    _, edits = run_pass(tmp_path, {"main.py": """
        from os import sep
        def show():
            print(sep)
        show()
        sep = "-"
        print(sep)
    """})
    assert not found(edits, "unused-import")


def test_unused_variable_with_pure_value(tmp_path):
    program, edits = run_pass(tmp_path, {"main.py": """
        LIMIT = 10
        SIZES = {"a": 1, "b": (2, 3)}
        USED = 5

        def f():
            scratch = [1, 2]
            return USED
        print(f())
    """})
    assert found(edits, "unused-variable") == {"main:LIMIT", "main:SIZES", "main:f.scratch"}
    assert not any(e.evidence["value_has_side_effects"] for e in edits)
    new = apply_edits(program, edits)["main.py"]
    assert "LIMIT" not in new and "scratch" not in new and "USED = 5" in new


def test_unused_variable_with_side_effect_keeps_the_call(tmp_path):
    program, edits = run_pass(tmp_path, {"main.py": """
        def noisy():
            print("side effect")
            return 1

        result = noisy()
        other = len([1, 2])
    """})
    by_symbol = {e.symbol: e for e in edits if e.kind == "unused-variable"}
    assert by_symbol["main:result"].evidence["target"]["keeps_call"] is True
    assert by_symbol["main:other"].evidence["target"]["keeps_call"] is False
    new = apply_edits(program, edits)["main.py"]
    assert "\nnoisy()\n" in new and "result" not in new and "other" not in new


def test_unused_function_across_modules(tmp_path):
    _, edits = run_pass(tmp_path, {
        "main.py": """
            import pkg.shapes
            from pkg.colors import red as r
            print(pkg.shapes.area(2), r())
        """,
        "pkg/__init__.py": "",
        "pkg/shapes.py": """
            from .colors import blue

            def area(x):
                return x * x

            def perimeter(x):
                return 4 * x + len(blue())
        """,
        "pkg/colors.py": """
            def red():
                return "red"

            def blue():
                return "blue"

            def green():
                return "green"
        """,
    })
    assert found(edits, "unused-function") == {
        "pkg.shapes:perimeter", "pkg.colors:blue", "pkg.colors:green"}
    # blue is used only by perimeter, through an import: Algorithm 1 would find
    # perimeter in round 1, the import in round 2, blue in round 3.
    perimeter = "static:unused-function:pkg/shapes.py:7:perimeter"
    imp = next(e for e in edits if e.symbol == "pkg.shapes:blue")
    assert imp.kind == "unused-import"
    assert imp.evidence["depends_on"] == [perimeter] and imp.evidence["round"] == 2
    blue = next(e for e in edits if e.symbol == "pkg.colors:blue")
    assert blue.evidence["depends_on"] == [imp.id]
    assert blue.evidence["round"] == 3


def test_unused_recursive_function(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        def fact(n):
            return 1 if n < 2 else n * fact(n - 1)

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        print(fib(10))
    """})
    assert found(edits, "unused-function") == {"main:fact"}
    assert next(e for e in edits if e.symbol == "main:fact").evidence["depends_on"] == []


def test_mutually_recursive_pair(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)

        def is_odd(n):
            return False if n == 0 else is_even(n - 1)

        print("no parity today")
    """})
    pair = {e.symbol: e for e in edits if e.kind == "unused-function"}
    assert set(pair) == {"main:is_even", "main:is_odd"}
    assert pair["main:is_even"].evidence["depends_on"] == [pair["main:is_odd"].id]
    assert pair["main:is_even"].evidence["round"] == pair["main:is_odd"].evidence["round"]


def test_unused_class(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        class Base:
            def __init__(self):
                self.x = 1

        class Used(Base):
            pass

        class Orphan(Base):
            def work(self):
                return 2

        print(Used().x)
    """})
    assert found(edits, "unused-class") == {"main:Orphan"}
    assert not found(edits, "unused-method")  # Orphan's method goes with it


def test_unused_method(tmp_path):
    _, edits = run_pass(tmp_path, {"main.py": """
        class Sensor:
            def __init__(self, v):
                self.v = v

            def read(self):
                return self.v

            def calibrate(self):
                return self._offset()

            def _offset(self):
                return 0

            def __repr__(self):
                return "Sensor"

        s = Sensor(3)
        print(s.read(), repr(s))
    """})
    assert found(edits, "unused-method") == {"main:Sensor.calibrate", "main:Sensor._offset"}
    offset = next(e for e in edits if e.symbol == "main:Sensor._offset")
    assert offset.evidence["depends_on"] == [
        next(e.id for e in edits if e.symbol == "main:Sensor.calibrate")]


def test_same_named_functions_in_two_modules(tmp_path):
    # vulture's name matching would call both used; only b.helper is.
    _, edits = run_pass(tmp_path, {
        "main.py": """
            from pkg import a, b
            print(a.VERSION, b.helper())
        """,
        "pkg/__init__.py": "",
        "pkg/a.py": """
            VERSION = 1

            def helper():
                return "a"
        """,
        "pkg/b.py": """
            def helper():
                return "b"
        """,
    })
    assert found(edits, "unused-function") == {"pkg.a:helper"}


def test_reexport_through_init_and_aliases(tmp_path):
    _, edits = run_pass(tmp_path, {
        "main.py": """
            from pkg import api as entry
            entry()
        """,
        "pkg/__init__.py": "from .impl import api, spare\n",
        "pkg/impl.py": """
            def api():
                return _inner()

            def _inner():
                return 1

            def spare():
                return 2

            def dead():
                return 3
        """,
    })
    # A re-export in __init__.py stays (it is the package's interface), so what
    # it names stays too; dead is named nowhere.
    assert found(edits) == {"pkg.impl:dead"}


def test_library_mode_without_entry(tmp_path):
    _, edits = run_pass(tmp_path, {
        "lib/__init__.py": "",
        "lib/one.py": "import os\n\ndef f():\n    return 1\n",
    }, entry=None)
    assert found(edits) == {"lib.one:os", "lib.one:f"}


@pytest.mark.parametrize("extra_entry", [True, False])
def test_unimported_module_is_left_alone_unless_named_as_entry(tmp_path, extra_entry):
    files = {
        "main.py": "print('hi')\n",
        "tool.py": "import os\n\ndef unused():\n    return 1\n",
    }
    _, edits = run_pass(tmp_path, files, keep=["tool"] if extra_entry else [])
    if extra_entry:  # a keep entry without ':' is one more entry module
        assert found(edits) == {"tool:os", "tool:unused"}
    else:  # never imported by the entry: not this pass's business
        assert found(edits) == set()


def test_submodule_reached_as_attribute_keeps_an_import_of_it(tmp_path):
    # main uses pkg.sub through `import pkg`; only loader.py imports pkg.sub, for
    # nothing else: that import is what makes pkg.sub exist, so it stays.
    _, edits = run_pass(tmp_path, {
        "main.py": "import loader\nimport pkg\nprint(pkg.sub.value())\n",
        "loader.py": "import pkg.sub\nimport json\n",
        "pkg/__init__.py": "",
        "pkg/sub.py": "def value():\n    return 1\n",
    })
    assert found(edits) == {"loader:json"}  # not main's `import loader`, nor pkg.sub


@pytest.mark.parametrize("named", [True, False])
def test_dotted_name_in_a_string_is_a_use(tmp_path, named):
    # logging.config imports "plugins.audit.record" by name: that module runs.
    target = "plugins.audit.record" if named else "logging.StreamHandler"
    _, edits = run_pass(tmp_path, {
        "main.py": f"""
            import logging.config
            logging.config.dictConfig({{"version": 1, "handlers": {{"h": {{"()": "{target}"}}}}}})
        """,
        "plugins/__init__.py": "",
        "plugins/audit.py": "def record():\n    return 1\n\ndef unused():\n    return 2\n",
    })
    assert found(edits) == ({"plugins.audit:unused"} if named else set())
