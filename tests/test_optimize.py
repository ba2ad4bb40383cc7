"""memtrim optimize: refusals, --diff and --check, bisection, the examples end to end."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from memtrim import pipeline
from memtrim.app import load_app
from memtrim.edits import Edit
from memtrim.pipeline import OptimizeError, OptimizeRequest, StaticRemovalStep, optimize
from memtrim.program import Program

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def tree_hash(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def memtrim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "memtrim.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture
def small_app(tmp_path: Path) -> Path:
    """An app with one unused import, one unused function and a used helper module."""
    root = tmp_path / "app"
    write(
        root / "helpers.py",
        """\
        import json  # used
        import textwrap  # never used


        def render(values):
            return json.dumps(sorted(values))


        def legacy_render(values):
            return repr(values)
        """,
    )
    write(
        root / "main.py",
        """\
        import sys
        import helpers

        values = [int(a) for a in sys.argv[1:]]
        print(helpers.render(values))
        with open("out.txt", "w") as f:
            f.write(str(sum(values)))
        """,
    )
    write(
        root / "memtrim.toml",
        """\
        entry = "main.py"

        [[workloads]]
        name = "three"
        args = ["3", "1", "2"]
        outputs = ["out.txt"]
        """,
    )
    return root


def test_optimize_removes_and_verifies_and_never_touches_the_input(small_app, tmp_path):
    before = tree_hash(small_app)
    out = tmp_path / "out"
    proc = memtrim(
        "optimize",
        str(small_app / "main.py"),
        "-o",
        str(out),
        "--json",
        str(tmp_path / "r.json"),
        "--no-details",
    )
    assert proc.returncode == 0, proc.stderr
    assert tree_hash(small_app) == before
    text = (out / "helpers.py").read_text()
    assert "import textwrap" not in text and "def legacy_render" not in text
    assert "def render" in text and "import json  # used" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema"] == "memtrim.optimize/1"
    step = report["steps"][0]
    kinds = step["edits_by_kind"]
    assert kinds.get("unused-import", 0) >= 1 and kinds.get("unused-function", 0) >= 1
    assert step["dropped"] == []
    assert report["baseline"]["three"]["peak_rss"] > 0
    assert (out / "memtrim-report.json").exists() and (out / "memtrim-report.html").exists()
    # the optimized copy behaves the same
    run = subprocess.run(
        [PY, str(out / "main.py"), "3", "1", "2"], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.stdout == "[1, 2, 3]\n"


def test_refuses_output_inside_the_input_tree(small_app):
    proc = memtrim("optimize", str(small_app / "main.py"), "-o", str(small_app / "build"))
    assert proc.returncode == 2
    assert "overlaps the input tree" in proc.stderr
    assert not (small_app / "build").exists()


def test_refuses_non_empty_outdir_without_force(small_app, tmp_path):
    out = tmp_path / "out"
    write(out / "keep.txt", "precious\n")
    proc = memtrim("optimize", str(small_app / "main.py"), "-o", str(out), "--no-measure")
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious\n"
    proc = memtrim(
        "optimize", str(small_app / "main.py"), "-o", str(out), "--no-measure", "--force"
    )
    assert proc.returncode == 0, proc.stderr
    assert not (out / "keep.txt").exists() and (out / "main.py").exists()


def test_diff_prints_and_writes_nothing(small_app, tmp_path):
    before = tree_hash(small_app)
    proc = memtrim("optimize", str(small_app / "main.py"), "--diff", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--- a/helpers.py" in proc.stdout and "-import textwrap" in proc.stdout
    assert tree_hash(small_app) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app"]


def test_check_exits_one_when_something_would_change(small_app, tmp_path):
    proc = memtrim("optimize", str(small_app / "main.py"), "--check")
    assert proc.returncode == 1, proc.stderr
    clean = tmp_path / "clean"
    write(clean / "main.py", "print('hi')\n")
    proc = memtrim("optimize", str(clean / "main.py"), "--check")
    assert proc.returncode == 0, proc.stderr


def test_refuses_an_original_that_fails(tmp_path):
    app = write(tmp_path / "app/main.py", "raise SystemExit(3)\n")
    proc = memtrim("optimize", str(app), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "cannot be verified against" in proc.stderr
    assert "Traceback" not in proc.stderr.splitlines()[0]
    assert not (tmp_path / "out").exists()


def test_unknown_step_is_refused(small_app, tmp_path):
    proc = memtrim("optimize", str(small_app / "main.py"), "--check", "--steps", "nope")
    assert proc.returncode == 2 and "unknown step" in proc.stderr


class _ReplaceStep:
    """A step whose edits replace a string in main.py; the one named BAD changes the output."""

    name = "replace"
    description = "test step"
    needs_gain = False

    def run(self, program: Program, ctx) -> list[Edit]:
        edits = []
        for i, (old, new) in enumerate(
            [
                ("values = [", "values = ["),
                ("out.txt", "out.txt"),
                ("str(sum(values))", "str(sum(values) + 1)"),
                ("import sys", "import sys"),
            ]
        ):
            edits.append(
                Edit(
                    id=f"t{i}",
                    pass_name="test",
                    kind="replace",
                    path="main.py",
                    line=1,
                    symbol=f"{old}->{new}",
                    reason="test",
                    evidence={"old": old, "new": new},
                )
            )
        return edits

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        text = program.module_by_path("main.py").text
        for e in edits:
            text = text.replace(e.evidence["old"], e.evidence["new"])
        return {"main.py": text}


def test_a_bad_edit_is_found_by_bisection_and_dropped(small_app, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "all_steps", lambda req: [_ReplaceStep()])
    app = load_app(small_app / "memtrim.toml")
    report = optimize(
        OptimizeRequest(app=app, outdir=tmp_path / "out", measure=False, oracle_repeat=1)
    )
    step = report["steps"][0]
    assert [d["edit"]["id"] for d in step["dropped"]] == ["t2"]
    assert {e["id"] for e in step["kept"]} == {"t0", "t1", "t3"}
    dropped = step["dropped"][0]
    assert any(
        d["stream"].startswith("output") or "out.txt" in d["stream"] for d in dropped["differences"]
    ), dropped
    assert "sum(values) + 1" not in (tmp_path / "out/main.py").read_text()


@pytest.mark.slow
def test_gateway_end_to_end_outputs_identical(tmp_path):
    app = load_app(ROOT / "examples/gateway/memtrim.toml")
    report = optimize(
        OptimizeRequest(app=app, outdir=tmp_path / "out", oracle_repeat=1, details=False)
    )
    step = report["steps"][0]
    assert len(step["kept"]) >= 10
    # independently of the pipeline: run the optimized copy and compare with the original
    from memtrim.verify import record_oracle, verify

    oracle = record_oracle(app, python=PY, repeat=1)
    result = verify(app.relocated(tmp_path / "out"), oracle, python=PY)
    assert result.ok, result.to_dict()


@pytest.mark.slow
@pytest.mark.examples
def test_biomed_end_to_end_outputs_identical(tmp_path):
    subprocess.run([PY, str(ROOT / "examples/biomed/prepare.py")], check=True, capture_output=True)
    app = load_app(ROOT / "examples/biomed/memtrim.toml")
    report = optimize(
        OptimizeRequest(app=app, outdir=tmp_path / "out", oracle_repeat=1, details=False)
    )
    assert report["steps"][0]["kept"]
    from memtrim.verify import record_oracle, verify

    oracle = record_oracle(app, python=PY, repeat=1)
    result = verify(app.relocated(tmp_path / "out"), oracle, python=PY)
    assert result.ok, result.to_dict()


def test_static_step_has_a_name_the_cli_accepts():
    assert StaticRemovalStep.name == "static-removal"
    with pytest.raises(OptimizeError):
        pipeline.default_steps(
            OptimizeRequest(
                app=load_app(ROOT / "examples/gateway/memtrim.toml"), outdir=None, steps=["nope"]
            )
        )


def test_cli_options_replace_config_settings(tmp_path):
    """--normalize, --test-command and --source-root work without any config file."""
    root = tmp_path / "proj"
    write(root / "app/main.py", "import time\nprint('took', time.perf_counter(), 's')\n")
    write(root / "check.py", "import sys\nsys.exit(0)\n")
    out = tmp_path / "out"
    # without the normalizer the timing makes the original non-deterministic: refused
    proc = memtrim("optimize", str(root / "app/main.py"), "-o", str(out), "--no-measure",
                   "--source-root", str(root))
    assert proc.returncode == 2 and "normalizer" in proc.stderr
    proc = memtrim("optimize", str(root / "app/main.py"), "-o", str(out), "--no-measure",
                   "--source-root", str(root), "--normalize", r"took [0-9.e-]+ s=>took X s",
                   "--test-command", f"{PY} {{root}}/check.py", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["app"]["root"] == str(root.resolve())
    assert report["oracle"]["test_command"]
    assert (out / "app/main.py").exists() and (out / "check.py").exists()
    proc = memtrim("optimize", str(root / "app/main.py"), "--check", "--normalize", "bad")
    assert proc.returncode == 2 and "PATTERN=>REPLACEMENT" in proc.stderr


def test_relative_python_path_is_resolved_before_runs_in_scratch_folders(small_app, tmp_path):
    # runs happen in scratch folders: a relative --python must still name the interpreter
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = memtrim("optimize", str(small_app / "main.py"), "--diff", "--steps",
                   "static-removal", "--python", "venv/bin/python", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--- a/helpers.py" in proc.stdout
    # the dynamic steps need coverage.py in that interpreter: one line, no traceback
    proc = memtrim("optimize", str(small_app / "main.py"), "--diff",
                   "--python", "venv/bin/python", cwd=tmp_path)
    assert proc.returncode == 2
    assert "coverage.py is not importable" in proc.stderr and "Traceback" not in proc.stderr


def test_other_scripts_in_the_tree_are_named_in_a_warning(small_app, tmp_path):
    (small_app / "prepare.py").write_text(
        "import helpers\n\nif __name__ == '__main__':\n    print(helpers.render([1]))\n",
        encoding="utf-8")
    proc = memtrim("optimize", str(small_app / "main.py"), "--diff", "--steps",
                   "static-removal", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (w,) = json.loads((tmp_path / "r.json").read_text())["warnings"]
    assert w.startswith("prepare.py is a script of its own") and 'keep = ["prepare:*"]' in w
