"""The program model on bad input: clear one-line problems, the rest analysed, nothing written."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from memtrim.edits import apply_edits
from memtrim.passes.static_removal import StaticRemovalPass
from memtrim.program import Program, ProgramError


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, _dirs, files in os.walk(root):  # does not follow symlinked directories
        for name in sorted(files):
            path = Path(dirpath) / name
            h.update(str(path.relative_to(root)).encode())
            if path.is_file() and os.access(path, os.R_OK):
                h.update(path.read_bytes())
    return h.hexdigest()


def problems(program: Program) -> list[str]:
    return [str(p) for p in program.problems]


def test_syntax_error_is_reported_and_the_rest_analysed(tmp_path):
    write(tmp_path, {
        "main.py": "import os\nimport helpers\nprint(helpers.a())\n",
        "helpers.py": "def a():\n    return 1\n\ndef b():\n    return 2\n\n"
                      "def c():\n    return 3\n",
        "broken.py": "import helpers\n\ndef f(:\n    return helpers.c()\n",
    })
    program = Program.load(tmp_path, entry=Path("main.py"))
    (problem,) = problems(program)
    assert problem.startswith("broken.py:3: syntax error") and "\n" not in problem
    assert program.modules["broken"].tree is None
    edits = StaticRemovalPass().run(program)
    # The other files are analysed; broken.py is opaque: it names c, so c stays.
    assert {e.symbol for e in edits} == {"main:os", "helpers:b"}
    assert not any(e.path == "broken.py" for e in edits)


def test_python2_file(tmp_path):
    write(tmp_path, {
        "main.py": "print(1)\n",
        "legacy.py": "import sys\n\nprint 'hello', sys.argv\n",
        "legacy2.py": "try:\n    pass\nexcept ValueError, e:\n    pass\n",
    })
    program = Program.load(tmp_path, entry=Path("main.py"))
    assert problems(program) == [
        "legacy.py:3: Python 2 syntax (print statement); not analysed, every name it uses is kept",
        "legacy2.py:3: Python 2 syntax (except X, e); not analysed, every name it uses is kept",
    ]


def test_latin1_source_round_trips(tmp_path):
    source = "# -*- coding: latin-1 -*-\nimport os\nNAME = 'café'\nprint(NAME)\n"
    write(tmp_path, {"main.py": source.encode("latin-1")})
    program = Program.load(tmp_path, entry=Path("main.py"))
    module = program.modules["main"]
    assert program.problems == [] and module.encoding == "iso-8859-1"
    assert "café" in module.text
    (edit,) = StaticRemovalPass().run(program)
    new_text = apply_edits(program, [edit])["main.py"]
    data = module.encode(new_text)
    assert data == source.replace("import os\n", "").encode("latin-1")


def test_undecodable_file_is_reported(tmp_path):
    write(tmp_path, {"main.py": "print(1)\n", "bad.py": b"x = 1\ny = '\xff\xfe'\n"})
    program = Program.load(tmp_path, entry=Path("main.py"))
    (problem,) = problems(program)
    assert problem.startswith("bad.py:2: not valid utf-8 (byte 0xff)")


def test_oversized_file_is_skipped_and_its_names_kept(tmp_path):
    big = "from helpers import used_by_big\n" + "# padding\n" * 50 + "used_by_big()\n"
    write(tmp_path, {
        "main.py": "import big\nimport helpers\nhelpers.other()\n",
        "helpers.py": "def used_by_big():\n    return 1\n\ndef other():\n    return 2\n\n"
                      "def dead():\n    return 3\n",
        "big.py": big,
    })
    program = Program.load(tmp_path, entry=Path("main.py"), max_file_bytes=200)
    (problem,) = problems(program)
    assert problem.startswith(f"big.py: file is {len(big):,} bytes, over the 200-byte limit")
    assert program.modules["big"].text is None
    edits = StaticRemovalPass().run(program)
    assert {e.symbol for e in edits} == {"helpers:dead"}


def test_symlink_loop_is_not_followed(tmp_path):
    write(tmp_path, {"main.py": "print(1)\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"})
    (tmp_path / "pkg" / "again").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "outside").symlink_to("/usr", target_is_directory=True)
    program = Program.load(tmp_path, entry=Path("main.py"))
    assert sorted(program.modules) == ["main", "pkg", "pkg.mod"]
    assert problems(program) == [
        "outside: symlinked directory not followed: it points outside the source root (/usr)",
        "pkg/again: symlinked directory not followed: it points to one of its own parents "
        "(a loop)",
    ]


def test_unreadable_file_chmod(tmp_path):
    write(tmp_path, {"main.py": "print(1)\n", "secret.py": "X = 1\n"})
    secret = tmp_path / "secret.py"
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            # root reads anything: load the program as an unprivileged user instead
            _load_as_nobody(tmp_path)
            return
        program = Program.load(tmp_path, entry=Path("main.py"))
        assert problems(program) == ["secret.py: cannot read: Permission denied; skipped"]
        assert "secret" not in program.modules
    finally:
        secret.chmod(0o644)


def _load_as_nobody(tree: Path) -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root and setpriv is missing: cannot drop privileges")
    # pytest's tmp dirs are private: copy the tree where user nobody can reach it
    root = Path(tempfile.mkdtemp(prefix="memtrim-nobody-"))
    try:
        root.chmod(0o755)
        shutil.copy2(tree / "main.py", root / "main.py")
        (root / "secret.py").write_text("X = 1\n")
        (root / "secret.py").chmod(0)
        _check_as_nobody(setpriv, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check_as_nobody(setpriv: str, root: Path) -> None:
    src = str(Path(__file__).resolve().parent.parent / "src")
    code = (
        f"import sys; sys.path.insert(0, {src!r})\n"
        "from pathlib import Path\n"
        "from memtrim.program import Program\n"
        f"p = Program.load(Path({str(root)!r}), entry=Path('main.py'))\n"
        "print([str(x) for x in p.problems]); print('secret' in p.modules)\n"
    )
    proc = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "['secret.py: cannot read: Permission denied; skipped']", "False"
    ]


def test_unreadable_file_broken_symlink(tmp_path):
    write(tmp_path, {"main.py": "print(1)\n"})
    (tmp_path / "gone.py").symlink_to(tmp_path / "nowhere.py")
    program = Program.load(tmp_path, entry=Path("main.py"))
    assert problems(program) == ["gone.py: cannot read: broken or looping symlink; skipped"]
    assert list(program.modules) == ["main"]


def test_nothing_in_the_input_is_written(tmp_path):
    write(tmp_path, {
        "main.py": "import os\nimport broken\n\ndef dead():\n    return 1\n",
        "broken.py": "def f(:\n",
        "legacy.py": "print 'x'\n",
        "latin.py": "# coding: latin-1\nS = 'é'\n".encode("latin-1"),
    })
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    before = digest(tmp_path)
    program = Program.load(tmp_path, entry=Path("main.py"))
    edits = StaticRemovalPass().run(program)
    assert apply_edits(program, edits)
    assert digest(tmp_path) == before
    assert not list(tmp_path.rglob("__pycache__"))


def test_bad_arguments_are_clear_errors(tmp_path):
    write(tmp_path, {"main.py": "print(1)\n", "pkg/__init__.py": ""})
    with pytest.raises(ProgramError, match="outside"):
        Program.load(tmp_path / "pkg", entry=tmp_path / "main.py")
    with pytest.raises(ProgramError, match="no such module"):
        Program.load(tmp_path, module="nothere")
    with pytest.raises(ProgramError, match="no __main__"):
        Program.load(tmp_path, module="pkg")
    with pytest.raises(ProgramError, match="not a directory"):
        Program.load(tmp_path / "missing")


def test_module_entry_and_script_directory(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/__main__.py": "from pkg import core\ncore.run()\n",
        "pkg/core.py": "def run():\n    return 1\n\ndef idle():\n    return 0\n",
        "bin/tool.py": "import util\nutil.go()\n",
        "bin/util.py": "def go():\n    return 1\n\ndef stop():\n    return 0\n",
    })
    program = Program.load(tmp_path, module="pkg")
    assert program.entry_module == "pkg.__main__"
    assert {e.symbol for e in StaticRemovalPass().run(program)} == {"pkg.core:idle"}
    # A script's own directory comes first on sys.path: `import util` is bin/util.py.
    program = Program.load(tmp_path, entry=Path("bin/tool.py"))
    assert program.entry_module == "bin.tool" and program.search_prefixes == ("bin", "")
    assert {e.symbol for e in StaticRemovalPass().run(program)} == {"bin.util:stop"}
