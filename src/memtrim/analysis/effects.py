"""Side-effect freedom: of expressions (may ``x = value`` lose its value?) and of modules
(may an unused ``import m`` go?).

A module is free of side effects when importing it only *defines* things: its
top level holds imports of side-effect-free modules, ``def``/``class``
statements with known-pure decorators, assignments of pure values, and
``if``/``try`` blocks made of the same.  Program modules are judged from their
parsed source; other modules are located with :mod:`importlib` machinery
*without importing them* and judged from their source too.  C extensions,
built-in and frozen modules have no source to judge: they count as having
side effects unless they are on a short allow-list of well-known modules whose
import changes nothing the program can observe.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from memtrim.analysis.guards import INERT_METACLASSES, is_pure_decorator_name
from memtrim.analysis.resolve import BUILTIN_NAMES, Resolver
from memtrim.analysis.symbols import Scope, relative_base
from memtrim.program import decode_source

# Modules whose import does something observable (prints, opens a browser,
# hooks input(), warns) even though nothing of theirs is used.
DENY_MODULES = frozenset({
    "__main__", "this", "antigravity", "readline", "rlcompleter", "site", "sitecustomize",
    "usercustomize", "__hello__", "__phello__", "idlelib", "turtledemo", "lib2to3", "imp",
    "asynchat", "asyncore", "smtpd", "distutils", "cgi", "cgitb", "crypt", "nntplib",
    "telnetlib", "uu", "xdrlib", "sndhdr", "sunau", "pipes", "msilib", "nis", "ossaudiodev",
    "spwd", "chunk", "mailcap", "imghdr", "audioop", "aifc", "matplotlib", "pylab",
})

# Well-known packages whose import (of any submodule) has no observable effect.
# The standard library ones run code at import time (so the source check says
# no) but only to build their own tables.
ALLOW_MODULES = frozenset({
    # standard library
    "abc", "argparse", "array", "ast", "asyncio", "base64", "binascii", "bisect", "builtins",
    "bz2", "calendar", "cmath", "codecs", "collections", "colorsys", "concurrent",
    "configparser", "contextlib", "contextvars", "copy", "copyreg", "csv", "ctypes",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "email", "enum", "errno",
    "fnmatch", "fractions", "functools", "gc", "getopt", "gettext", "glob", "gzip", "hashlib",
    "heapq", "hmac", "html", "http", "importlib", "inspect", "io", "ipaddress", "itertools",
    "json", "keyword", "linecache", "locale", "logging", "lzma", "marshal", "math",
    "mimetypes", "multiprocessing", "numbers", "operator", "os", "pathlib", "pickle",
    "pkgutil", "platform", "posixpath", "ntpath", "pprint", "queue", "random", "re",
    "reprlib", "resource", "secrets", "select", "selectors", "shlex", "shutil", "signal",
    "socket", "sqlite3", "ssl", "stat", "statistics", "string", "struct", "subprocess", "sys",
    "sysconfig", "tarfile", "tempfile", "textwrap", "threading", "time", "timeit", "token",
    "tokenize", "tomllib", "traceback", "types", "typing", "unicodedata", "urllib", "uuid",
    "warnings", "weakref", "xml", "zipfile", "zlib", "zoneinfo", "_thread", "atexit", "opcode",
    "genericpath", "sre_compile", "sre_parse", "sre_constants", "posix", "fcntl",
    "pwd", "grp", "termios", "mmap", "cProfile", "profile", "pstats", "tracemalloc",
    "faulthandler", "wave", "unittest", "doctest", "graphlib", "optparse", "filecmp",
    "fileinput", "zipimport", "plistlib", "quopri", "smtplib", "socketserver", "xmlrpc",
    # third party
    "numpy", "scipy", "sklearn", "pandas", "joblib", "threadpoolctl", "typing_extensions",
    "attr", "attrs", "yaml", "dateutil", "pytz", "six", "packaging", "tomli", "ujson",
    "orjson", "simplejson", "msgpack", "PIL", "networkx", "sympy", "mpmath", "cachetools",
    "toolz", "more_itertools", "libcst", "rich", "click", "tzdata",
})

# Callables that build a value and do nothing else observable.
PURE_CALLS = frozenset({
    "builtins." + n for n in (
        "object dict list set frozenset tuple str bytes bytearray int float complex bool "
        "range len isinstance issubclass getattr hasattr property staticmethod classmethod "
        "type sorted reversed min max sum abs enumerate zip map filter iter repr hash id ord "
        "chr format divmod round slice memoryview any all"
    ).split()
} | {
    "re.compile", "re.escape", "logging.getLogger", "os.environ.get", "os.getenv",
    "os.fspath", "os.getcwd", "sys.intern", "sys.getdefaultencoding",
    "sys.getfilesystemencoding", "threading.Lock", "threading.RLock", "threading.local",
    "threading.Event", "threading.Condition", "threading.Semaphore", "contextvars.ContextVar",
    "platform.system", "platform.python_implementation", "codecs.lookup", "pathlib.Path",
    "pathlib.PurePath", "pathlib.PurePosixPath", "uuid.UUID", "functools.partial",
    "functools.reduce", "abc.abstractmethod", "object.__new__",
})
# Any callable of these modules is pure (constructors and arithmetic).
PURE_CALL_MODULES = frozenset({
    "math", "cmath", "operator", "itertools", "typing", "typing_extensions", "os.path",
    "posixpath", "ntpath", "collections", "enum", "dataclasses", "datetime", "fractions",
    "decimal", "keyword", "string", "textwrap", "struct", "weakref", "types", "functools",
})

_MAX_MODULES = 600  # modules examined for one import before giving up


def is_pure_call_name(name: str | None) -> bool:
    """True when calling the dotted ``name`` only builds and returns a value."""
    if not name:
        return False
    if name in PURE_CALLS:
        return True
    module = name.rpartition(".")[0]
    return module in PURE_CALL_MODULES or (
        module.startswith("builtins.") and name.rpartition(".")[2] in ("fromkeys", "maketrans")
    )


# -- values -------------------------------------------------------------------


def _constant_only(expr: ast.expr) -> bool:
    """Built from literals and operators only (``1 << 20``, ``-1``, ``"a" + "b"``)."""
    for node in ast.walk(expr):
        if isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Await,
                             ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.Starred,
                             ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
                             ast.Lambda)):
            return False
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
            right = node.right
            if not (isinstance(right, ast.Constant) and right.value):
                return False  # might divide by zero (or format a string)
    return True


def is_pure_value(expr: ast.expr, scope: Scope, resolver: Resolver) -> bool:
    """True when evaluating ``expr`` has no effect besides producing a value.

    Conservative: literals, containers of pure values, names that are bound,
    lambdas, attributes of imported modules, operators on literals, and calls
    of known-pure constructors with pure arguments.
    """
    try:
        return _pure_value(expr, scope, resolver)
    except RecursionError:
        return False


def _pure_value(expr: ast.expr, scope: Scope, resolver: Resolver) -> bool:
    cls = expr.__class__
    if cls is ast.Constant or cls is ast.Lambda:
        return True
    if cls is ast.Name:
        name = expr.id  # type: ignore[attr-defined]
        return resolver.lookup(scope, name) is not None or name in BUILTIN_NAMES
    if cls in (ast.Tuple, ast.List, ast.Set):
        return all(
            e.__class__ is not ast.Starred and _pure_value(e, scope, resolver)
            for e in expr.elts  # type: ignore[attr-defined]
        )
    if cls is ast.Dict:
        return all(k is not None and _pure_value(k, scope, resolver)
                   for k in expr.keys) and all(  # type: ignore[attr-defined]
            _pure_value(v, scope, resolver) for v in expr.values  # type: ignore[attr-defined]
        )
    if cls is ast.Attribute:
        return _module_attribute(expr, scope, resolver)  # type: ignore[arg-type]
    if cls in (ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.JoinedStr):
        return _constant_only(expr)
    if cls is ast.Call:
        call: ast.Call = expr  # type: ignore[assignment]
        if not is_pure_call_name(resolver.external_name(scope, call.func)):
            return False
        return all(
            a.__class__ is not ast.Starred and _pure_value(a, scope, resolver)
            for a in call.args
        ) and all(
            k.arg is not None and _pure_value(k.value, scope, resolver) for k in call.keywords
        )
    return False


# Built-in classes that refuse to be subclassed: a class deriving from them raises.
_FINAL_BUILTINS = frozenset({"builtins.bool", "builtins.range", "builtins.slice",
                             "builtins.memoryview"})


def definition_effects(
    stmt: ast.stmt, scope: Scope, body_scope: Scope | None, resolver: Resolver,
    decorator_pure: Callable[[ast.expr, Scope], bool],
) -> str | None:
    """Why running a ``def``/``class`` statement might do more than bind its name.

    None when it cannot: default values are pure; for a class, its bases and
    keywords are pure, and its body only defines methods (with pure
    decorators and defaults) and assigns pure values.  Decorators of the
    statement itself are judged by the caller.
    """
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = stmt.args
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            if not is_pure_value(default, scope, resolver):
                return f"its default value {_short(default)} may have side effects"
        return None
    if not isinstance(stmt, ast.ClassDef):
        return "not a definition"
    for base in stmt.bases:
        name = resolver.external_name(scope, base)
        if name in _FINAL_BUILTINS:
            return f"subclassing {name.partition('.')[2]} raises TypeError"
        expr = base.value if isinstance(base, ast.Subscript) else base  # Generic[T]
        if not is_pure_value(expr, scope, resolver):
            return f"its base {_short(base)} is computed by code that may have side effects"
    for kw in stmt.keywords:
        if kw.arg != "metaclass" and not is_pure_value(kw.value, scope, resolver):
            return f"its keyword {kw.arg} may have side effects"
    inner = body_scope or scope
    for s in stmt.body:
        if isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value,
                                                                              ast.Constant)):
            continue
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for d in s.decorator_list:
                if not decorator_pure(d, inner):
                    return f"its body applies the decorator @{_short(d)}"
            why = definition_effects(s, inner, None, resolver, decorator_pure)
            if why:
                return f"in its body, {s.name}: {why}"
            continue
        if isinstance(s, (ast.Assign, ast.AnnAssign)):
            if s.value is None or is_pure_value(s.value, inner, resolver):
                continue
            return f"its body computes {_short(s.value)}, which may have side effects"
        if isinstance(s, ast.Expr):
            return f"its body calls {_short(s.value)}"
        return f"its body runs a statement ({type(s).__name__.lower()}) at line {s.lineno}"
    return None


def _short(expr: ast.AST) -> str:
    text = ast.unparse(expr)
    return text if len(text) <= 40 else text[:37] + "..."


def _module_attribute(expr: ast.Attribute, scope: Scope, resolver: Resolver) -> bool:
    """``mod.attr`` (or ``pkg.mod.attr``) where ``mod`` is an imported module."""
    cur: ast.expr = expr
    while isinstance(cur, ast.Attribute):
        cur = cur.value
    if not isinstance(cur, ast.Name):
        return False
    s = resolver.lookup(scope, cur.id)
    if s is None:
        return False
    bindings = resolver.live(s, cur.id)
    return bool(bindings) and all(
        b.kind == "import" and b.attr is None for b in bindings
    )


# -- modules ----------------------------------------------------------------------


class SideEffects:
    """Decides, once per module, whether importing it has observable effects."""

    def __init__(self, resolver: Resolver, extra_pure: frozenset[str] = frozenset()) -> None:
        self.resolver = resolver
        self.extra_pure = extra_pure
        self._own: dict[tuple[str, bool], tuple[bool, str, list[tuple[str, bool]]]] = {}
        self._pure: dict[tuple[str, bool], tuple[bool, str]] = {}

    def module(
        self, name: str, optional: bool = False, loaded: frozenset[str] = frozenset()
    ) -> tuple[bool, str]:
        """(free of side effects?, why) for importing module ``name``.

        ``optional``: ``name`` may not be a module at all (``from pkg import
        attr`` names ``pkg.attr``); if no such module exists, that is fine.
        ``loaded``: modules certainly running or imported already when the
        import executes (the importing module and its packages): importing
        them again runs nothing, so a cycle back to them is harmless.
        """
        key = (name, optional)
        result = self._pure.get(key)
        if result is None:
            result = self._pure[key] = self._closure(key, frozenset())
        if not result[0] and loaded:
            again = self._closure(key, loaded)
            if again[0]:
                return again
        return result

    def _closure(self, key: tuple[str, bool], loaded: frozenset[str]) -> tuple[bool, str]:
        # Everything the module imports at its top level, transitively; it is free of
        # side effects when none of them does anything but define.
        name = key[0]
        seen = {key}
        queue: list[tuple[str, bool]] = [key]
        while queue:
            item = queue.pop()
            mod = item[0]
            if mod in loaded:
                continue
            known = self._pure.get(item)
            if known is not None and item != key and not loaded:
                if not known[0]:
                    return (False, f"it imports {mod}, which {known[1]}")
                continue
            ok, why, deps = self._own_effects(mod, item[1])
            if not ok:
                return (False, why if item == key else f"it imports {mod}, which {why}")
            for dep in deps:
                if dep not in seen:
                    seen.add(dep)
                    queue.append(dep)
            if len(seen) > _MAX_MODULES:
                return (False, f"it imports more than {_MAX_MODULES} modules; not checked")
        return (True, self._why_pure(name))

    def _why_pure(self, name: str) -> str:
        top = name.partition(".")[0]
        if top in ALLOW_MODULES or top in self.extra_pure or name in self.extra_pure:
            return f"{top} is on the allow-list of modules whose import has no observable effect"
        return "its top level (and that of everything it imports) only defines names"

    def _own_effects(self, name: str, optional: bool) -> tuple[bool, str, list[tuple[str, bool]]]:
        cached = self._own.get((name, optional))
        if cached is None:
            cached = self._own[(name, optional)] = self._judge(name, optional)
        return cached

    def _judge(self, name: str, optional: bool) -> tuple[bool, str, list[tuple[str, bool]]]:
        top = name.partition(".")[0]
        if top in DENY_MODULES or name in DENY_MODULES:
            return False, "is known to act when imported", []
        parents = []
        parts = name.split(".")
        for i in range(1, len(parts)):
            parents.append((".".join(parts[:i]), False))
        r = self.resolver
        full = r.module_name(name)
        if full is None and optional and not r.is_external(name):
            return True, "", []  # `from pkg import attr` of a program package: an attribute
        if full is not None:
            info = r.infos.get(full)
            if info is None:  # a namespace package: a directory, no code
                return True, "", parents
            if info.source.tree is None:
                return False, "could not be parsed", parents
            ok, why, deps = _judge_tree(info.source.tree, full, info.source.is_package)
            return ok, why, parents + deps
        if top in ALLOW_MODULES or top in self.extra_pure or name in self.extra_pure:
            return True, "", []
        kind, path = find_module_source(name)
        if kind == "missing":
            if optional:
                return True, "", []  # `from pkg import attr`: not a submodule
            return False, "cannot be found (importing it may raise ImportError)", []
        if kind == "namespace":
            return True, "", parents
        if kind != "source" or path is None:
            return False, f"is a {kind} module (no source to check)", []
        try:
            data = path.read_bytes()
            text, _ = decode_source(data)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning of someone else's code
                tree = ast.parse(text)
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            return False, f"has source that cannot be read ({path})", []
        ok, why, deps = _judge_tree(tree, name, path.name == "__init__.py")
        return ok, why, parents + deps


def find_module_source(name: str) -> tuple[str, Path | None]:
    """Locate module ``name`` without importing it (nor its parents).

    Returns (kind, path): kind is ``source``, ``extension``, ``built-in``,
    ``namespace`` or ``missing``.
    """
    parts = name.split(".")
    if parts[0] in sys.builtin_module_names:
        return ("built-in", None)
    try:
        # For a top-level name this imports nothing; deeper names would import
        # their parents, so they are looked up below with the path finder.
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError, AttributeError):
        return ("missing", None)
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return ("missing", None)
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: i + 1]), list(spec.submodule_search_locations)
        )
    if spec is None:
        return ("missing", None)
    origin = spec.origin
    if origin in (None, "namespace"):
        return ("namespace", None) if spec.submodule_search_locations else ("missing", None)
    if origin in ("built-in", "frozen"):
        filename = getattr(spec.loader_state, "filename", None)
        if filename and filename.endswith(".py"):
            return ("source", Path(filename))
        return ("built-in", None)
    if origin.endswith(".py"):
        return ("source", Path(origin))
    return ("extension", None)


# -- module source ------------------------------------------------------------------


class _Judge:
    """Checks that a module's top level only defines things."""

    def __init__(self, name: str, is_package: bool) -> None:
        self.name = name
        self.package = name if is_package else name.rpartition(".")[0]
        self.names: dict[str, str] = {}  # local name -> dotted name it was imported as
        self.deps: list[tuple[str, bool]] = []
        self.lazy_annotations = False
        self.why = ""

    def fail(self, node: ast.AST, why: str) -> bool:
        if not self.why:
            self.why = f"runs code at its top level (line {getattr(node, 'lineno', '?')}: {why})"
        return False

    def dotted(self, expr: ast.expr) -> str | None:
        parts = []
        cur = expr
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            return None
        parts.reverse()
        head = self.names.get(cur.id)
        if head is None:
            head = f"builtins.{cur.id}" if cur.id in BUILTIN_NAMES else f"{self.name}.{cur.id}"
        return ".".join([head, *parts])

    def body(self, stmts: list[ast.stmt]) -> bool:
        return all(self.stmt(s) for s in stmts)

    def stmt(self, s: ast.stmt) -> bool:
        if isinstance(s, ast.Import):
            for alias in s.names:
                self.deps.append((alias.name, False))
                bound = alias.asname or alias.name.partition(".")[0]
                self.names[bound] = alias.name if alias.asname else bound
            return True
        if isinstance(s, ast.ImportFrom):
            base = relative_base(self.package, s.module, s.level)
            if base == "__future__":
                if any(a.name == "annotations" for a in s.names):
                    self.lazy_annotations = True
                return True
            if base is None:
                return self.fail(s, "relative import out of the tree")
            self.deps.append((base, False))
            for alias in s.names:
                if alias.name != "*":
                    self.deps.append((f"{base}.{alias.name}", True))
                    self.names[alias.asname or alias.name] = f"{base}.{alias.name}"
            return True
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return (
                all(self.decorator(d) for d in s.decorator_list)
                and all(self.expr(d) for d in [*s.args.defaults, *s.args.kw_defaults] if d)
                and self.annotations(s)
            )
        if isinstance(s, ast.ClassDef):
            return self.classdef(s)
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant):
                return True
            return self.expr(s.value) or self.fail(s, "expression statement")
        if isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            if not all(self.target(t) for t in targets):
                return self.fail(s, "assigns into another object")
            value = s.value
            return value is None or self.expr(value) or self.fail(s, "value computed by a call")
        if isinstance(s, ast.If):
            if _is_main_guard(s.test):
                return self.body(s.orelse)
            return (self.expr(s.test) or self.fail(s, "condition")) and self.body(
                s.body) and self.body(s.orelse)
        if isinstance(s, ast.Try) or s.__class__.__name__ == "TryStar":
            return (
                self.body(s.body)  # type: ignore[attr-defined]
                and all(self.body(h.body) for h in s.handlers)  # type: ignore[attr-defined]
                and self.body(s.orelse)  # type: ignore[attr-defined]
                and self.body(s.finalbody)  # type: ignore[attr-defined]
            )
        if isinstance(s, (ast.Pass, ast.Global, ast.Nonlocal)):
            return True
        if isinstance(s, ast.Delete):
            return all(isinstance(t, ast.Name) for t in s.targets) or self.fail(s, "del")
        if isinstance(s, ast.Assert):
            return self.expr(s.test) or self.fail(s, "assert")
        return self.fail(s, type(s).__name__.lower() + " statement")

    def target(self, t: ast.expr) -> bool:
        if isinstance(t, ast.Name):
            return True
        if isinstance(t, (ast.Tuple, ast.List)):
            return all(self.target(e) for e in t.elts)
        if isinstance(t, ast.Starred):
            return self.target(t.value)
        if isinstance(t, ast.Subscript):  # _table["x"] = ...: a module-local container
            return isinstance(t.value, ast.Name) and self.expr(t.slice)
        return False

    def decorator(self, d: ast.expr) -> bool:
        func = d.func if isinstance(d, ast.Call) else d
        if isinstance(func, ast.Attribute) and func.attr in ("setter", "getter", "deleter"):
            return True
        if is_pure_decorator_name(self.dotted(func)):
            return isinstance(d, ast.Call) is False or all(
                self.expr(a) for a in [*d.args, *(k.value for k in d.keywords)]  # type: ignore[union-attr]
            )
        return self.fail(d, "decorator that may register")

    def annotations(self, f: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        if self.lazy_annotations:
            return True
        args = f.args
        exprs = [a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                         args.vararg, args.kwarg] if a is not None]
        if f.returns is not None:
            exprs.append(f.returns)
        return all(self.expr(e) for e in exprs if e is not None)

    def classdef(self, c: ast.ClassDef) -> bool:
        if not all(self.decorator(d) for d in c.decorator_list):
            return False
        for base in c.bases:
            if not self.expr(base):
                return self.fail(c, "class base computed by a call")
            dotted = self.dotted(base) or ""
            top = dotted.partition(".")[0]
            if top not in ("builtins", self.name.partition(".")[0]) and top not in (
                sys.stdlib_module_names
            ) and top not in ALLOW_MODULES:
                return self.fail(c, f"base class {dotted} may register its subclasses")
        for kw in c.keywords:
            if kw.arg == "metaclass":
                if self.dotted(kw.value) not in INERT_METACLASSES:
                    return self.fail(c, "metaclass")
            elif not self.expr(kw.value):
                return self.fail(c, "class keyword")
        return self.body(c.body)

    def expr(self, e: ast.expr) -> bool:
        for node in ast.walk(e):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Constant):
                    continue  # "sep".join(...), "{}".format(...)
                if isinstance(func, ast.Attribute) and func.attr in ("extend", "append") and (
                    isinstance(func.value, ast.Name) and func.value.id == "__all__"
                ):
                    continue
                if not is_pure_call_name(self.dotted(func)):
                    return False
            elif isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom)):
                return False
        return True


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
        and test.left.id == "__name__" and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _judge_tree(tree: ast.Module, name: str, is_package: bool) -> tuple[bool, str, list]:
    judge = _Judge(name, is_package)
    ok = judge.body(tree.body)
    return ok, judge.why, judge.deps
