"""Applying the static pass's edits: every subset is valid Python, behaviour and comments stay."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.edits import Edit, EditError, apply_edits
from memtrim.passes.static_removal import StaticRemovalPass
from memtrim.program import Program

APP = {
    "main.py": '''
        """Sensor report: reads a few values and prints a summary."""
        # Standard library first.
        import os
        import sys
        import json
        from collections import OrderedDict, defaultdict  # only one is used

        from sensors import probe  # the probe module
        from sensors.probe import Probe


        # A constant nobody reads.
        UNUSED_LIMIT = 100
        NAME = "report"


        def banner():
            """Unused: the report has no banner any more."""
            return "=" * 10


        def summary(values):
            # Sum with a running count.
            counts = defaultdict(int)
            scratch = sorted(values)  # never read
            for v in values:
                counts[v % 2] += 1
            return {"n": len(values), "even": counts[0]}


        def main():
            p = Probe([3, 4, 5])
            unused_reading = p.read()  # read() prints: the call must stay
            print(NAME, json.dumps(summary(p.values)))
            return 0


        if __name__ == "__main__":
            sys.exit(main())
    ''',
    "sensors/__init__.py": "",
    "sensors/probe.py": '''
        import math  # used by spread only


        class Probe:
            """A fake probe."""

            def __init__(self, values):
                self.values = values

            def read(self):
                print("probe read")
                return self.values[0]

            def spread(self):
                # Never called.
                return math.sqrt(max(self.values) - min(self.values))


        def calibrate(probe):
            return probe.spread()
    ''',
}


def write_app(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py"], cwd=root, capture_output=True,
                          text=True, timeout=60)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def test_rewritten_program_runs_the_same_and_keeps_comments(tmp_path):
    original = tmp_path / "app"
    write_app(original, APP)
    before = run(original)
    assert before.returncode == 0 and "probe read" in before.stdout
    digest = tree_digest(original)

    program = Program.load(original, entry=Path("main.py"))
    edits = StaticRemovalPass().run(program)
    kinds = {e.kind for e in edits}
    assert kinds == {"unused-import", "unused-variable", "unused-function", "unused-method"}
    changed = apply_edits(program, edits)
    assert tree_digest(original) == digest  # nothing in the input was written

    slim = tmp_path / "slim"
    shutil.copytree(original, slim)
    for rel, text in changed.items():
        (slim / rel).write_text(text, encoding="utf-8")
    after = run(slim)
    assert (after.returncode, after.stdout, after.stderr) == (
        before.returncode, before.stdout, before.stderr)

    main = changed["main.py"]
    for gone in ("import os", "OrderedDict", "UNUSED_LIMIT", "def banner", "scratch",
                 "unused_reading", "from sensors import probe"):
        assert gone not in main
    assert "    p.read()  # read() prints: the call must stay" in main
    for comment in ("# Standard library first.", "# Sum with a running count.",
                    "# A constant nobody reads."):
        assert comment in main  # comments not attached to a removed definition stay
    probe = changed["sensors/probe.py"]
    assert "spread" not in probe and "calibrate" not in probe and "import math" not in probe
    assert '"""A fake probe."""' in probe and 'print("probe read")' in probe


SUBSET_APP = '''
    """Every kind of edit, several on one statement."""
    import os, sys  # two on one line
    from json import dumps, loads, JSONDecoder  # three in one statement


    def used():
        # a comment in a kept function
        a = b = len("xy")
        return 1


    if True:
        import re


    def dead():
        return sys.argv


    class K:
        def gone(self):
            return 1

        def __len__(self):
            return 0


    print(used(), len(K()))
'''


def test_every_subset_of_edits_applies_and_compiles(tmp_path):
    write_app(tmp_path, {"main.py": SUBSET_APP})
    program = Program.load(tmp_path, entry=Path("main.py"))
    edits = StaticRemovalPass().run(program)
    assert len(edits) == 10, [e.id for e in edits]
    seen = set()
    for n in range(len(edits) + 1):
        for subset in itertools.combinations(edits, n):
            text = apply_edits(program, subset).get("main.py", program.modules["main"].text)
            compile(text, "main.py", "exec")
            assert "# a comment in a kept function" in text
            seen.add(text)
    assert len(seen) == 2 ** len(edits)  # each subset changes something different
    full = apply_edits(program, edits)["main.py"]
    assert "import" not in full.split('"""', 2)[2]
    assert "if True:\n    pass\n" in full
    result = subprocess.run([sys.executable, "-c", full], capture_output=True, text=True)
    assert result.stdout == "1 0\n"


def test_edit_whose_target_is_gone_is_refused(tmp_path):
    write_app(tmp_path, {"main.py": "import os\n"})
    program = Program.load(tmp_path, entry=Path("main.py"))
    (edit,) = StaticRemovalPass().run(program)
    moved = Edit(edit.id, edit.pass_name, edit.kind, edit.path, 5, edit.symbol, edit.reason,
                 {**edit.evidence, "target": {**edit.evidence["target"], "line": 5}})
    with pytest.raises(EditError, match="target not found"):
        apply_edits(program, [moved])
    with pytest.raises(EditError, match="kind"):
        apply_edits(program, [Edit("x", "p", "outline", "main.py", 1, "main:os", "", {})])


def test_edits_are_json_and_stable(tmp_path):
    import json

    write_app(tmp_path, {"main.py": SUBSET_APP})
    first = StaticRemovalPass().run(Program.load(tmp_path, entry=Path("main.py")))
    second = StaticRemovalPass().run(Program.load(tmp_path, entry=Path("main.py")))
    assert [e.to_json() for e in first] == [e.to_json() for e in second]
    assert json.loads(json.dumps([e.to_json() for e in first]))
    assert len({e.id for e in first}) == len(first)
