"""The application under optimization: its entry, source root and workloads.

Settings come from a ``memtrim.toml`` file or the ``[tool.memtrim]`` table of a
``pyproject.toml`` (same keys), the way ruff and vulture are configured.
See ``docs/config.md`` for the format.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """The configuration is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Normalizer:
    """A regex applied to outputs before comparison (timestamps, addresses, timings)."""

    pattern: str
    replace: str = ""


@dataclass(frozen=True)
class Workload:
    """One recorded way of running the application.

    ``args``, ``stdin`` and ``env`` values may use ``{root}``: the source root
    of the program being run (the original, or an optimized copy).  A workload
    runs with a fresh scratch directory as its working directory; ``outputs``
    are files, relative to that directory, that must stay byte-identical.
    """

    name: str
    args: tuple[str, ...] = ()
    stdin: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    outputs: tuple[str, ...] = ()
    compare_stderr: bool = True
    expect_exit: int | None = 0
    timeout: float = 600.0

    def expand(self, root: Path) -> Workload:
        """Return this workload with ``{root}`` replaced by ``root``."""

        def sub(s: str) -> str:
            return s.replace("{root}", str(root))

        return Workload(
            name=self.name,
            args=tuple(sub(a) for a in self.args),
            stdin=sub(self.stdin) if self.stdin is not None else None,
            env=tuple((k, sub(v)) for k, v in self.env),
            outputs=self.outputs,
            compare_stderr=self.compare_stderr,
            expect_exit=self.expect_exit,
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class App:
    """An application: a script or a module, a source root, and its workloads."""

    root: Path
    script: Path | None = None
    module: str | None = None
    workloads: tuple[Workload, ...] = ()
    normalizers: tuple[Normalizer, ...] = ()
    test_command: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    include_packages: tuple[str, ...] = ()
    device: str | None = None
    mode: str = "safe"
    config_path: Path | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def entry_argv(self) -> list[str]:
        """The interpreter arguments that start the application (``script`` or ``-m mod``)."""
        if self.module:
            return ["-m", self.module]
        assert self.script is not None
        return [str(self.script)]

    def relocated(self, new_root: Path) -> App:
        """The same application with its source tree at ``new_root`` (an optimized copy)."""
        script = None
        if self.script is not None:
            script = new_root / self.script.relative_to(self.root)
        return replace(self, root=new_root, script=script)


_KNOWN_KEYS = {
    "entry",
    "module",
    "source_root",
    "workloads",
    "normalizers",
    "test_command",
    "keep",
    "include_packages",
    "device",
    "mode",
    "timeout",
}
_WORKLOAD_KEYS = {
    "name",
    "args",
    "stdin",
    "env",
    "outputs",
    "compare_stderr",
    "expect_exit",
    "timeout",
}


def find_config(start: Path) -> Path | None:
    """Find ``memtrim.toml`` (or pyproject.toml with ``[tool.memtrim]``) at or above ``start``."""
    start = start.resolve()
    for d in [start, *start.parents] if start.is_dir() else [start.parent, *start.parent.parents]:
        candidate = d / "memtrim.toml"
        if candidate.is_file():
            return candidate
        pyproject = d / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if "memtrim" in data.get("tool", {}):
                return pyproject
    return None


def _read_table(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("memtrim")
        if data is None:
            raise ConfigError(f"{path}: no [tool.memtrim] table")
    return data


def _str_tuple(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(value)


def _workload(raw: dict, index: int, default_timeout: float, where: str) -> Workload:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: workloads[{index}] is not a table")
    unknown = set(raw) - _WORKLOAD_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: workloads[{index}]: unknown key(s) {', '.join(sorted(unknown))}"
        )
    env = raw.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ConfigError(f"{where}: workloads[{index}].env must map names to strings")
    expect_exit = raw.get("expect_exit", 0)
    if expect_exit is not None and not isinstance(expect_exit, int):
        raise ConfigError(f"{where}: workloads[{index}].expect_exit must be an integer")
    return Workload(
        name=str(raw.get("name", f"workload{index}")),
        args=_str_tuple(raw.get("args", []), f"{where}: workloads[{index}].args"),
        stdin=raw.get("stdin"),
        env=tuple(sorted(env.items())),
        outputs=_str_tuple(raw.get("outputs", []), f"{where}: workloads[{index}].outputs"),
        compare_stderr=bool(raw.get("compare_stderr", True)),
        expect_exit=expect_exit,
        timeout=float(raw.get("timeout", default_timeout)),
    )


def load_app(config: Path) -> App:
    """Load an :class:`App` from ``memtrim.toml`` or ``pyproject.toml`` (ConfigError if bad)."""
    config = config.resolve()
    data = _read_table(config)
    where = str(config)
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    root = (config.parent / data.get("source_root", ".")).resolve()
    if not root.is_dir():
        raise ConfigError(f"{where}: source_root {root} is not a directory")
    entry, module = data.get("entry"), data.get("module")
    if bool(entry) == bool(module):
        raise ConfigError(f"{where}: set exactly one of 'entry' (a script) or 'module'")
    script = None
    if entry:
        script = (config.parent / entry).resolve()
        if not script.is_file():
            raise ConfigError(f"{where}: entry script {script} not found")
    timeout = float(data.get("timeout", 600))
    raw_workloads = data.get("workloads", [])
    if not isinstance(raw_workloads, list):
        raise ConfigError(f"{where}: 'workloads' must be an array of tables")
    workloads = tuple(_workload(w, i, timeout, where) for i, w in enumerate(raw_workloads))
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: workload names must be unique")
    normalizers = []
    for i, n in enumerate(data.get("normalizers", [])):
        if not isinstance(n, dict) or "pattern" not in n:
            raise ConfigError(f"{where}: normalizers[{i}] needs a 'pattern'")
        normalizers.append(Normalizer(str(n["pattern"]), str(n.get("replace", ""))))
    mode = data.get("mode", "safe")
    if mode not in ("safe", "specialize"):
        raise ConfigError(f"{where}: mode must be 'safe' or 'specialize'")
    return App(
        root=root,
        script=script,
        module=module,
        workloads=workloads,
        normalizers=tuple(normalizers),
        test_command=_str_tuple(data.get("test_command", []), f"{where}: test_command"),
        keep=_str_tuple(data.get("keep", []), f"{where}: keep"),
        include_packages=_str_tuple(data.get("include_packages", []), f"{where}: include_packages"),
        device=data.get("device"),
        mode=mode,
        config_path=config,
    )


def resolve_app(
    *,
    script: str | None,
    module: str | None,
    config: Path | None,
    args: Sequence[str] | None,
    timeout: float | None = None,
    source_root: Path | None = None,
    normalizers: Sequence[str] = (),
    test_command: Sequence[str] | None = None,
) -> App:
    """Build the App from the command line and, when found, ``memtrim.toml``/``pyproject.toml``.

    An explicit ``--config`` wins; otherwise a config is searched from the
    script's folder (or the working directory for ``-m``) upwards.  A script or
    module given on the command line replaces the config's entry, and
    application arguments given after ``--`` replace its workloads by a single
    workload named ``cli``.  Without a config and without arguments, the app is
    run once with no arguments.
    """
    if script and module:
        raise ConfigError("give either a SCRIPT or -m MODULE, not both")
    if source_root is not None and not source_root.is_dir():
        raise ConfigError(f"--source-root {source_root} is not a directory")
    if config is None:
        start = Path(script).resolve().parent if script else Path.cwd()
        config = find_config(start)
    elif not config.is_file():
        raise ConfigError(f"config file not found: {config}")
    if config is not None:
        app = load_app(config)
    else:
        if not script and not module:
            raise ConfigError("give a SCRIPT, -m MODULE, or a config with an entry")
        root = Path(script).resolve().parent if script else Path.cwd().resolve()
        app = App(root=root, workloads=(Workload(name="default"),))
    if source_root is not None:
        app = replace(app, root=source_root.resolve())
    if script:
        path = Path(script).resolve()
        if not path.is_file():
            raise ConfigError(f"script not found: {script}")
        if app.root not in path.parents:
            raise ConfigError(f"script {script} is outside the source root {app.root}")
        app = replace(app, script=path, module=None)
    elif module:
        app = replace(app, script=None, module=module)
    if args:
        app = replace(app, workloads=(Workload(name="cli", args=tuple(args)),))
    if timeout is not None:
        app = replace(app, workloads=tuple(replace(w, timeout=timeout) for w in app.workloads))
    if normalizers:
        extra = []
        for spec in normalizers:
            pattern, sep, repl = spec.partition("=>")
            if not sep or not pattern:
                raise ConfigError(f"--normalize {spec!r}: expected PATTERN=>REPLACEMENT")
            extra.append(Normalizer(pattern, repl))
        app = replace(app, normalizers=(*app.normalizers, *extra))
    if test_command:
        app = replace(app, test_command=tuple(test_command))
    return app

