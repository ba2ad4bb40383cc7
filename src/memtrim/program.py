"""The program model: an application's source tree, read once and never written.

``Program.load`` walks the source root, reads every ``.py`` file (plus the entry
script), decodes it the way the interpreter would (PEP 263 coding line, BOM) and
parses it with :mod:`ast`.  Files that cannot be analysed are never fatal: each
becomes a :class:`FileProblem` (one line, ``path:line: message``) and the rest of
the tree is still analysed.  A file that was read but not parsed (syntax error,
Python 2, over the size limit, undecodable) stays in ``modules`` as *opaque*:
its identifiers are kept so the passes treat everything it may name as used.
"""

from __future__ import annotations

import ast
import gc
import io
import os
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_FILE_BYTES = 2_000_000
_FREEZE_AT = 200  # modules; see _Loader.load

# Directories that are never part of an application's own source.
_SKIP_DIRS = {"__pycache__", "site-packages", "node_modules"}

# Identifiers in an opaque file, found without parsing it (works on any bytes).
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")

# Python 2 constructs, tried only after a SyntaxError to name the likely cause.
_PY2_HINTS = (
    (re.compile(r"^\s*print\s+(?![\s(=]|$)[^=]", re.M), "print statement"),
    (re.compile(r"^\s*print\s*>>", re.M), "print >> statement"),
    (re.compile(r"^\s*exec\s+[\"'\w]", re.M), "exec statement"),
    (re.compile(r"^\s*except\s+[\w.]+\s*,\s*\w+\s*:", re.M), "except X, e"),
    (re.compile(r"^\s*raise\s+[\w.]+\s*,", re.M), "raise E, msg"),
    (re.compile(r"(?<![\w.])0[0-7]+(?![\w.])"), "old octal literal"),
    (re.compile(r"(?<![\w.])\d+[lL](?!\w)"), "long integer literal"),
    (re.compile(r"\bur[\"']"), "ur'' string"),
    (re.compile(r"`[^`\n]+`"), "backtick repr"),
)


class ProgramError(ValueError):
    """The arguments to :meth:`Program.load` are unusable (missing root, entry outside it)."""


@dataclass(frozen=True)
class FileProblem:
    """A file that could not be (fully) analysed: where, and why, in one line."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass
class ModuleSource:
    """One module of the program.

    ``path`` is relative to the program root.  ``tree`` is ``None`` for an
    opaque module (it could not be parsed); ``opaque_names`` then holds every
    identifier found in its bytes.  ``text`` is ``None`` when the file was not
    decoded (too large, undecodable).
    """

    name: str
    path: Path
    text: str | None
    encoding: str
    tree: ast.Module | None
    is_package: bool = False
    opaque_names: frozenset[str] | None = None
    # Another module that is the same file through a symlink (never rewritten).
    alias_of: str | None = None

    @property
    def opaque(self) -> bool:
        """True when the module could not be parsed and is analysed by name only."""
        return self.tree is None

    def encode(self, text: str) -> bytes:
        """Encode rewritten ``text`` the way this file was encoded (its coding line, BOM)."""
        return text.encode(self.encoding)


@dataclass
class Program:
    """An application's modules, keyed by qualified module name.

    ``entry_module`` is the module the application starts in ("" when none was
    given: then every module counts as an entry).  ``search_prefixes`` are the
    dotted locations absolute imports are looked up in, first to last (a
    script's directory comes first, as on ``sys.path``).
    """

    root: Path
    modules: dict[str, ModuleSource]
    entry_module: str
    problems: list[FileProblem] = field(default_factory=list)
    search_prefixes: tuple[str, ...] = ("",)
    _by_path: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        root: Path,
        *,
        entry: Path | None = None,
        module: str | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        exclude: tuple[str, ...] = (),
    ) -> Program:
        """Read and parse the source tree under ``root``; never writes anything.

        ``entry`` is the script the application starts with (absolute, or
        relative to ``root``); ``module`` the ``-m`` module instead.  With
        neither, every module is treated as an entry.  ``exclude`` names
        directories (relative to ``root``) to leave out, e.g. an output folder.
        """
        return _Loader(Path(root), max_file_bytes, exclude).load(entry, module)

    def module_by_path(self, path: str | Path) -> ModuleSource | None:
        """The module stored at ``path`` (relative to the root), if any."""
        if not self._by_path:
            self._by_path = {m.path.as_posix(): name for name, m in self.modules.items()}
        name = self._by_path.get(Path(path).as_posix())
        return self.modules.get(name) if name is not None else None


def decode_source(data: bytes) -> tuple[str, str]:
    """Decode Python source bytes as the interpreter does; return (text, encoding).

    Newlines are kept as they are (unlike ``tokenize.open``) so a rewritten
    file differs from the original only where it was edited.  Raises
    SyntaxError for a bad coding line and UnicodeDecodeError for bad bytes.
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding), encoding


def python2_hint(error: SyntaxError, text: str) -> str | None:
    """Name the Python 2 construct that made ``text`` fail to parse, if it looks like one.

    Only the line the parser stopped at is examined, so a Python 3 file with an
    unrelated error is not mistaken for Python 2.
    """
    msg = error.msg or ""
    if "Missing parentheses in call to" in msg:
        quoted = msg.split("'")
        return f"{quoted[1]} statement" if len(quoted) > 2 else "print statement"
    lines = text.splitlines()
    if not error.lineno or error.lineno > len(lines):
        return None
    line = lines[error.lineno - 1]
    for pattern, what in _PY2_HINTS:
        if pattern.search(line):
            return what
    return None


class _Loader:
    """Walks one source root; collects modules and problems."""

    def __init__(self, root: Path, max_file_bytes: int, exclude: tuple[str, ...]) -> None:
        if not root.is_dir():
            raise ProgramError(f"{root}: source root is not a directory")
        self.root = root.resolve()
        self.max_bytes = max_file_bytes
        self.exclude = {Path(e).as_posix().strip("/") for e in exclude}
        self.modules: dict[str, ModuleSource] = {}
        self.problems: list[FileProblem] = []
        self.real_paths: dict[str, str] = {}  # resolved file path -> module name

    def load(self, entry: Path | None, module: str | None) -> Program:
        if entry is not None and module is not None:
            raise ProgramError("give either an entry script or a module, not both")
        entry_rel: Path | None = None
        if entry is not None:
            entry_abs = entry if entry.is_absolute() else self.root / entry
            entry_abs = Path(os.path.abspath(entry_abs))
            try:
                entry_rel = entry_abs.relative_to(self.root)
            except ValueError:
                raise ProgramError(f"{entry}: entry script is outside {self.root}") from None
            if not entry_abs.is_file():
                raise ProgramError(f"{entry}: entry script not found")
        # Creating a million AST nodes with the cyclic collector on makes it rescan
        # them over and over (7 s instead of 1.5 s for the standard library).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._walk()
            if entry_rel is not None and self._name_for(entry_rel) not in self.modules:
                self._read(entry_rel)  # an entry script without the .py suffix
        finally:
            if was_enabled:
                if len(self.modules) >= _FREEZE_AT:
                    # The trees live as long as the program; without this the collector
                    # would rescan them all at its next full collection (seconds).
                    gc.freeze()
                gc.enable()
        prefixes: tuple[str, ...] = ("",)
        entry_module = ""
        if entry_rel is not None:
            entry_module = self._name_for(entry_rel)
            script_dir = ".".join(entry_rel.parent.parts)
            if script_dir:
                prefixes = (script_dir, "")
        elif module is not None:
            entry_module = module
            main = f"{module}.__main__"
            if module in self.modules and self.modules[module].is_package:
                if main not in self.modules:
                    raise ProgramError(f"{module}: package has no __main__ module")
                entry_module = main
            elif module not in self.modules:
                raise ProgramError(f"{module}: no such module under {self.root}")
        self.problems.sort(key=lambda p: (p.path, p.line or 0))
        return Program(
            root=self.root,
            modules=dict(sorted(self.modules.items())),
            entry_module=entry_module,
            problems=self.problems,
            search_prefixes=prefixes,
        )

    def _problem(self, rel: Path | str, line: int | None, message: str) -> None:
        self.problems.append(FileProblem(Path(rel).as_posix(), line, message))

    def _walk(self) -> None:
        root = self.root
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
            here = Path(dirpath)
            rel_dir = here.relative_to(root)
            keep_dirs = []
            for d in sorted(dirnames):
                full = here / d
                rel = (rel_dir / d).as_posix()
                if d in _SKIP_DIRS or d.startswith(".") or rel in self.exclude:
                    continue
                if full.is_symlink():
                    self._symlinked_dir(full, rel_dir / d)
                    continue
                if (full / "pyvenv.cfg").exists():
                    continue  # a virtual environment inside the tree
                if not os.access(full, os.R_OK | os.X_OK):
                    self._problem(rel_dir / d, None, "directory is not readable; skipped")
                    continue
                keep_dirs.append(d)
            dirnames[:] = keep_dirs
            for f in sorted(filenames):
                if f.endswith(".py"):
                    self._read(rel_dir / f)

    def _symlinked_dir(self, full: Path, rel: Path) -> None:
        try:
            target = full.resolve(strict=True)
        except (OSError, RuntimeError):
            self._problem(rel, None, "symlinked directory is broken or loops; not followed")
            return
        parent = full.parent.resolve()
        if target == parent or target in parent.parents:
            why = "points to one of its own parents (a loop)"
        elif target == self.root or self.root in target.parents:
            why = "points inside the source root; its files are analysed where they are"
        else:
            why = f"points outside the source root ({target})"
        self._problem(rel, None, f"symlinked directory not followed: it {why}")

    def _name_for(self, rel: Path) -> str:
        parts = list(rel.parts)
        last = parts[-1]
        parts[-1] = last[:-3] if last.endswith(".py") else last
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        return ".".join(parts)

    def _read(self, rel: Path) -> None:
        full = self.root / rel
        name = self._name_for(rel)
        is_package = rel.name == "__init__.py" and len(rel.parts) > 1
        alias_of = None
        if full.is_symlink():
            try:
                real = full.resolve(strict=True)
            except (OSError, RuntimeError):
                self._problem(rel, None, "cannot read: broken or looping symlink; skipped")
                return
            real_rel = _relative_or_none(real, self.root)
            if real_rel is not None:
                alias_of = self._name_for(real_rel)
        if name in self.modules and not is_package:
            # pkg.py next to pkg/__init__.py: the package wins at import time.
            self._problem(rel, None, f"module {name} is shadowed by a package of that name; "
                          "skipped")
            return
        try:
            size = full.stat().st_size
        except OSError as e:
            self._problem(rel, None, f"cannot read: {e.strerror}; skipped")
            return
        if size > self.max_bytes:
            self._problem(
                rel, None,
                f"file is {size:,} bytes, over the {self.max_bytes:,}-byte limit; not analysed "
                "(every name it contains is kept)",
            )
            names = self._scan_names(full)
            self._add(name, rel, None, "utf-8", None, is_package, names, alias_of)
            return
        try:
            data = full.read_bytes()
        except OSError as e:
            self._problem(rel, None, f"cannot read: {e.strerror}; skipped")
            return
        try:
            text, encoding = decode_source(data)
        except SyntaxError as e:  # a coding line naming an unknown encoding
            self._problem(rel, e.lineno, f"bad coding line: {e.msg}; not analysed")
            self._add(name, rel, None, "utf-8", None, is_package, _names_in(data), alias_of)
            return
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            self._problem(
                rel, line,
                f"not valid {e.encoding} (byte {data[e.start]:#04x}); add a PEP 263 coding "
                "line; not analysed",
            )
            self._add(name, rel, None, "utf-8", None, is_package, _names_in(data), alias_of)
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences etc.
                tree = ast.parse(text, filename=str(rel), type_comments=False)
        except SyntaxError as e:
            hint = python2_hint(e, text)
            msg = (e.msg or "invalid syntax").split("\n")[0]
            what = f"Python 2 syntax ({hint})" if hint else f"syntax error: {msg}"
            self._problem(rel, e.lineno, f"{what}; not analysed, every name it uses is kept")
            self._add(name, rel, text, encoding, None, is_package, _names_in(data), alias_of)
            return
        except (ValueError, RecursionError, MemoryError) as e:
            msg = str(e).split("\n")[0] or type(e).__name__
            self._problem(rel, None, f"cannot parse: {msg}; not analysed, every name it uses "
                          "is kept")
            self._add(name, rel, text, encoding, None, is_package, _names_in(data), alias_of)
            return
        self._add(name, rel, text, encoding, tree, is_package, None, alias_of)

    def _add(
        self, name: str, rel: Path, text: str | None, encoding: str, tree: ast.Module | None,
        is_package: bool, names: frozenset[str] | None, alias_of: str | None,
    ) -> None:
        self.modules[name] = ModuleSource(
            name=name, path=rel, text=text, encoding=encoding, tree=tree,
            is_package=is_package, opaque_names=names, alias_of=alias_of,
        )

    def _scan_names(self, full: Path) -> frozenset[str]:
        names: set[str] = set()
        try:
            with open(full, "rb") as f:
                tail = b""
                while chunk := f.read(1 << 20):
                    buf = tail + chunk
                    # The last identifier may continue in the next chunk.
                    cut = len(buf)
                    while cut and (buf[cut - 1:cut].isalnum() or buf[cut - 1:cut] == b"_"):
                        cut -= 1
                    names.update(m.decode() for m in _IDENT.findall(buf, 0, cut))
                    tail = buf[cut:]
                names.update(m.decode() for m in _IDENT.findall(tail))
        except OSError:
            pass
        return frozenset(names)


def _names_in(data: bytes) -> frozenset[str]:
    return frozenset(m.decode() for m in _IDENT.findall(data))


def _relative_or_none(path: Path, root: Path) -> Path | None:
    try:
        return path.relative_to(root)
    except ValueError:
        return None
