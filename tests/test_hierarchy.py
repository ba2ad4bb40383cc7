"""Code hierarchy reduction: moves, module identity, pickles both ways, state, rounds.

The fixture is the paper's Listing 3 (only ``estimate`` of the AR module is
used: it moves into its user, and the rest of the module, with the heavy
module it imports, is never loaded) plus a picklable class used through a
module in between.  The rewritten tree runs as a real subprocess.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.analysis.modgraph import record_imports
from memtrim.app import App, Workload
from memtrim.passes.hierarchy import (
    HierarchyReductionPass,
    HierarchyReductionStep,
    apply_hierarchy_edits,
)
from memtrim.program import Program

FILES = {
    "main.py": """
        import pickle
        import sys

        from features import extract
        from geometry import describe, is_point, make_point

        def main(argv):
            mode = argv[0] if argv else ""
            if mode == "write":
                with open(argv[1], "wb") as f:
                    pickle.dump(make_point(), f)
            elif mode == "read":
                with open(argv[1], "rb") as f:
                    p = pickle.load(f)
                print("read", describe(p), p.x, p.y, is_point(p))
            print("features", extract([1.0, 2.0, 3.0]), extract([1.0, 2.0, 3.0]))
            p = make_point()
            print("point", describe(p), p.x, is_point(p))
            print("loaded", sorted(m for m in ("ar", "heavy") if m in sys.modules))
            return 0

        if __name__ == "__main__":
            sys.exit(main(sys.argv[1:]))
    """,
    "features.py": """
        from ar import estimate

        def extract(xs):
            return round(estimate(xs), 6)
    """,
    "ar.py": """
        \"\"\"Autoregressive models; only ``estimate`` is used (the paper's Listing 3).\"\"\"
        import math

        import heavy

        _ORDER = 2
        _CACHE = {}


        def _mean(xs):
            return sum(xs) / len(xs)


        def estimate(xs):
            \"\"\"Cached estimate.\"\"\"
            key = tuple(xs)
            if key not in _CACHE:
                _CACHE[key] = _mean(xs) * _ORDER + math.sqrt(len(xs))
            return _CACHE[key]


        def burg(xs):
            return heavy.solve(xs)


        def order(xs):
            return estimate(xs) + 1
    """,
    "heavy.py": """
        TABLE = [i for i in range(200_000)]

        def solve(xs):
            return len(TABLE)
    """,
    "geometry.py": """
        from shapes import Point, scale

        def make_point():
            return scale(Point(1, 2), 3)

        def describe(p):
            return f"{type(p).__module__}.{type(p).__qualname__}"

        def is_point(p):
            return isinstance(p, Point)
    """,
    "shapes.py": """
        import logging

        log = logging.getLogger(__name__)


        class Point:
            \"\"\"A point.\"\"\"

            def __init__(self, x, y):
                self.x, self.y = x, y


        def scale(p, k):
            log.debug("scaling by %s", k)
            return Point(p.x * k, p.y * k)


        def unrelated():
            return "never used"
    """,
}


def make(root: Path, files: dict[str, str] = FILES) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "main.py"), *args], capture_output=True,
                          text=True, cwd=root, timeout=60,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def reduce(tmp_path: Path, files=FILES):
    src = make(tmp_path / "orig", files)
    app = App(root=src, script=src / "main.py", workloads=(Workload(name="run"),))
    records = record_imports(app, main_name="main")
    program = Program.load(src, entry=src / "main.py")
    p = HierarchyReductionPass(records)
    edits = p.run(program)
    out = tmp_path / "reduced"
    shutil.copytree(src, out)
    for rel, text in apply_hierarchy_edits(program, edits).items():
        (out / rel).write_text(text, encoding="utf-8")
    return src, out, edits, p, program


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    return reduce(tmp_path_factory.mktemp("hier"))


def test_only_used_definitions_move_and_the_rest_is_never_loaded(reduced) -> None:
    src, out, edits, p, _ = reduced
    moves = {(m.source, m.target): m for m in p.moves}
    assert ("ar", "features") in moves
    m = moves[("ar", "features")]
    assert m.names == ["estimate"]
    assert set(m.moved) == {"estimate", "_mean", "_CACHE"}
    assert set(m.copied) == {"math", "_ORDER"}  # an import and an immutable constant
    before, after = run(src), run(out)
    assert before.returncode == after.returncode == 0, after.stderr
    assert "loaded ['ar', 'heavy']" in before.stdout
    assert "loaded []" in after.stdout
    strip = [line for line in after.stdout.splitlines() if not line.startswith("loaded")]
    assert strip == [line for line in before.stdout.splitlines()
                     if not line.startswith("loaded")]
    text = (out / "features.py").read_text()
    assert "def estimate(xs):" in text and "from ar import estimate" not in text
    assert "estimate.__module__ = 'ar'" in text


def test_module_left_behind_still_serves_moved_names(reduced) -> None:
    _, out, _, _, _ = reduced
    code = textwrap.dedent("""
        import sys; sys.path.insert(0, '.')
        import features, ar
        assert ar.estimate is features.estimate
        from ar import estimate
        assert estimate is features.estimate
        assert ar._CACHE is features._CACHE  # module state stays single
        print(ar.order([1.0, 3.0]), estimate.__module__, estimate.__qualname__)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[1:] == ["ar", "estimate"]


def test_pickles_load_both_ways_and_isinstance_holds(reduced, tmp_path: Path) -> None:
    src, out, _, p, _ = reduced
    assert any(m.source == "shapes" and "Point" in m.moved for m in p.moves)
    made_by_original = tmp_path / "orig.pkl"
    made_by_optimized = tmp_path / "opt.pkl"
    assert run(src, "write", str(made_by_original)).returncode == 0
    assert run(out, "write", str(made_by_optimized)).returncode == 0
    expected = "read shapes.Point 3 6 True"
    for root, pkl in [(out, made_by_original), (src, made_by_optimized),
                      (src, made_by_original), (out, made_by_optimized)]:
        res = run(root, "read", str(pkl))
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[0] == expected
    assert made_by_original.read_bytes() == made_by_optimized.read_bytes()
    assert "point shapes.Point 3 True" in run(out).stdout
    # one class object: the module it came from hands out the moved class itself
    code = ("import sys; sys.path.insert(0, '.')\nimport shapes, geometry\n"
            "print(shapes.Point is geometry.Point, isinstance(geometry.make_point(),"
            " shapes.Point), shapes.Point.__module__, shapes.Point.__qualname__)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert res.stdout.split() == ["True", "True", "shapes", "Point"], res.stderr


def test_identity_fixes_in_moved_code(reduced) -> None:
    _, out, _, _, _ = reduced
    geometry = (out / "geometry.py").read_text()
    assert "__module__ = 'shapes'" in geometry  # the class keeps its home module
    assert "logging.getLogger('shapes')" in geometry  # same logger object, by name
    shapes = (out / "shapes.py").read_text()
    assert "def unrelated" in shapes and "class Point" not in shapes
    assert shapes.count("\n") == textwrap.dedent(FILES["shapes.py"]).lstrip("\n").count("\n")


def test_state_used_elsewhere_in_the_module_is_not_split(tmp_path: Path) -> None:
    files = dict(FILES)
    files["ar.py"] = FILES["ar.py"].rstrip(" ") + "        _CACHE['warm'] = 1\n"
    _, out, _, p, _ = reduce(tmp_path, files)
    assert not any(m.source == "ar" for m in p.moves)
    assert any(n.startswith("ar -> features:") and "_CACHE" in n for n in p.notes)


def test_every_subset_applies(reduced) -> None:
    _, _, edits, _, program = reduced
    for n in range(len(edits) + 1):
        for subset in itertools.combinations(edits, n):
            for rel, text in apply_hierarchy_edits(program, subset).items():
                compile(text, rel, "exec")


def test_entry_module_is_never_a_target(reduced) -> None:
    _, _, _, p, _ = reduced
    assert all("main" not in (m.source, m.target) for m in p.moves)


def test_rounds_stop_below_lambda() -> None:
    step = HierarchyReductionStep()
    good = {"kept": [1], "kept_step": True, "gain": {"w": {"reduction_pct": 3.0}}}
    small = {"kept": [1], "kept_step": True, "gain": {"w": {"reduction_pct": 0.4}}}
    nothing = {"kept": [], "kept_step": True}
    (nxt,) = step.next_steps(good, 1.0)
    assert nxt.round_index == 2 and nxt.name.endswith("-2")
    assert step.next_steps(small, 1.0) == []
    assert step.next_steps(nothing, 1.0) == []
    last = HierarchyReductionStep(round_index=8, max_rounds=8)
    assert last.next_steps(good, 1.0) == []


CYCLE = {
    "main.py": """
        import sys

        from pipeline import run

        if __name__ == "__main__":
            print(run([1, 2, 3]), "stages" in sys.modules)
    """,
    "pipeline.py": """
        SCALE = 3
        LIMIT = 100

        from stages import scaled


        def run(xs):
            return [scaled(x) for x in xs]
    """,
    "stages.py": """
        import json

        from pipeline import LIMIT, SCALE


        def scaled(x):
            return min(x * SCALE, LIMIT)


        def dump(xs):
            return json.dumps(xs)
    """,
}


def test_circular_import_is_merged(tmp_path: Path) -> None:
    src, out, edits, p, _ = reduce(tmp_path, CYCLE)
    (move,) = [m for m in p.moves if m.source == "stages"]
    assert move.target == "pipeline" and sorted(move.merged) == ["LIMIT", "SCALE"]
    text = (out / "pipeline.py").read_text()
    assert "from pipeline import" not in text and "def scaled" in text
    before, after = run(src), run(out)
    assert before.returncode == after.returncode == 0, after.stderr
    assert before.stdout == "[3, 6, 9] True\n"
    assert after.stdout == "[3, 6, 9] False\n"  # stages is never loaded


def test_circular_import_of_a_later_binding_is_not_merged(tmp_path: Path) -> None:
    files = dict(CYCLE)
    # LIMIT is rebound after the import of stages: stages saw the first value
    files["pipeline.py"] = CYCLE["pipeline.py"].rstrip(" ") + "        LIMIT = 5\n"
    src, out, _, p, _ = reduce(tmp_path, files)
    assert not any(m.source == "stages" for m in p.moves)
    assert any("circular import not merged" in n for n in p.notes)
    assert run(src).stdout == run(out).stdout
