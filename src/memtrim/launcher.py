"""The launcher: interpreter settings chosen by measurement, and the script that applies them.

Each candidate :class:`Setting` is an interpreter flag (``-S``, ``-OO``,
``-X no_debug_ranges``, ``-X frozen_modules=on``), an environment variable
(``PYTHONMALLOC``, ``MALLOC_ARENA_MAX``, glibc's trim and mmap thresholds,
BLAS thread counts) or a line of a generated bootstrap module (``gc``
thresholds, ``gc.freeze()``, site-packages without ``.pth`` files under
``-S``).  :func:`select_settings` tries them one at a time, greedily: each
candidate runs *on top of the settings already kept*, is verified against the
oracle (the program's behaviour must stay identical), and is measured
interleaved with the kept combination in the same run (peak RSS medians and
a wall-time ratio).  :func:`choose_settings` is the decision alone, a pure
function of those measurements, so it can be tested without timings.

:func:`write_launcher` writes a POSIX ``sh`` script that ``exec``\\ s the
interpreter with the chosen flags and environment; settings that need code
(``gc``) get a tiny bootstrap module beside it, standard library only, that
applies them and then runs the application the way ``python SCRIPT`` would
(``sys.argv``, ``sys.path[0]``, ``__main__``, tracebacks without its own frames).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import pprint
import shlex
import shutil
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .app import App
from .bytecode import compile_tree, interpreter_info, optimization_level

BOOT_NAME = "_memtrim_boot.py"
LAUNCHER_NAME = "run.sh"


@dataclass(frozen=True)
class Setting:
    """One interpreter setting the launcher can apply.

    ``flags`` go on the interpreter's command line, ``env`` into its environment,
    ``boot`` into the generated bootstrap module (``gc_threshold``, ``gc_freeze``,
    ``site_packages``).  ``compile_flags`` change the bytecode the compiler
    produces, so ``.pyc`` files must be compiled with them.  Settings of one
    ``group`` exclude each other.  ``min_version`` is the first Python that has it.
    """

    name: str
    description: str
    flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    boot: tuple[tuple[str, Any], ...] = ()
    compile_flags: tuple[str, ...] = ()
    group: str | None = None
    min_version: tuple[int, int] = (3, 0)

    def to_json(self) -> dict[str, Any]:
        """The setting as a plain dict."""
        return {
            "name": self.name, "description": self.description, "flags": list(self.flags),
            "env": dict(self.env), "boot": {k: v for k, v in self.boot},
            "compile_flags": list(self.compile_flags), "group": self.group,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Setting:
        """Rebuild a setting written by :meth:`to_json` (e.g. from a manifest)."""
        return cls(
            name=d["name"], description=d.get("description", ""),
            flags=tuple(d.get("flags", ())), env=tuple(sorted(d.get("env", {}).items())),
            boot=tuple(sorted((k, _tuple(v)) for k, v in d.get("boot", {}).items())),
            compile_flags=tuple(d.get("compile_flags", ())), group=d.get("group"),
        )


def _tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


_NO_SITE = Setting(
    "no-site", "-S: skip the site module and the .pth files it executes at every start "
    "(site-packages stay importable: the bootstrap adds them without running .pth code)",
    flags=("-S",), boot=(("site_packages", True),))
_OPT2 = Setting(
    "optimize-2", "-OO: no docstrings and no asserts in the code of every module, the "
    "dependencies' included (reads the precompiled .opt-2.pyc files)",
    flags=("-OO",), group="optimize")
_OPT1 = Setting(
    "optimize-1", "-O: no asserts and __debug__ is False (reads .opt-1.pyc files)",
    flags=("-O",), group="optimize")
CANDIDATES: tuple[Setting, ...] = (
    _NO_SITE,
    _OPT2,
    _OPT1,
    Setting("no-debug-ranges", "-X no_debug_ranges: no column positions in code objects "
            "(smaller code; tracebacks lose their ^^^ markers)",
            flags=("-X", "no_debug_ranges"), compile_flags=("-X", "no_debug_ranges"),
            min_version=(3, 11)),
    Setting("frozen-modules", "-X frozen_modules=on: start-up modules from the frozen copies "
            "built into the interpreter instead of .pyc files", flags=("-X", "frozen_modules=on"),
            min_version=(3, 11)),
    Setting("malloc", "PYTHONMALLOC=malloc: the C library's malloc for every object instead of "
            "pymalloc's 1 MiB arenas", env=(("PYTHONMALLOC", "malloc"),), group="allocator"),
    Setting("malloc-arena-max-1", "MALLOC_ARENA_MAX=1: one glibc malloc arena for all threads "
            "(BLAS and I/O threads otherwise get arenas of their own)",
            env=(("MALLOC_ARENA_MAX", "1"),)),
    Setting("malloc-trim", "MALLOC_TRIM_THRESHOLD_=128 KiB and MALLOC_MMAP_THRESHOLD_=128 KiB: "
            "glibc returns freed memory to the OS and keeps large blocks in mmap (fixed "
            "thresholds; glibc otherwise raises them after large frees)",
            env=(("MALLOC_MMAP_THRESHOLD_", "131072"), ("MALLOC_TRIM_THRESHOLD_", "131072"))),
    Setting("blas-threads-1", "OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, MKL_NUM_THREADS=1: "
            "no BLAS worker threads and their buffers",
            env=(("MKL_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"),
                 ("OPENBLAS_NUM_THREADS", "1"))),
    Setting("gc-eager", "gc.set_threshold(200, 5, 5): collect cyclic garbage about 3x as often "
            "(default 700, 10, 10)", boot=(("gc_threshold", (200, 5, 5)),), group="gc"),
    Setting("gc-freeze", "gc.freeze() before the application starts: start-up objects leave "
            "the collector's generations", boot=(("gc_freeze", True),)),
)


def candidates(
    python_version: tuple[int, int] = (3, 11), *, optimize_asserts: bool = False
) -> tuple[list[Setting], dict[str, str]]:
    """The candidates for ``python_version``, and the ones not tried with the reason.

    ``-O``/``-OO`` also remove ``assert`` statements (of the dependencies too), so
    they are tried only with ``optimize_asserts`` -- the same opt-in as the strip
    step's ``optimize_level=1``: asserts may be control flow.
    """
    out, skipped = [], {}
    for s in CANDIDATES:
        if tuple(python_version) < s.min_version:
            skipped[s.name] = f"needs Python {s.min_version[0]}.{s.min_version[1]}"
        elif s.group == "optimize" and not optimize_asserts:
            skipped[s.name] = ("it also removes assert statements; opt in with the -O "
                               "equivalent mode (asserts may be control flow)")
        else:
            out.append(s)
    return out, skipped


def combined(settings: Sequence[Setting]) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """The interpreter flags, environment and bootstrap options of ``settings`` together."""
    flags: list[str] = []
    env: dict[str, str] = {}
    boot: dict[str, Any] = {}
    for s in settings:
        flags.extend(s.flags)
        env.update(dict(s.env))
        boot.update(dict(s.boot))
    return flags, env, boot


def compile_flags_of(settings: Sequence[Setting]) -> tuple[str, ...]:
    """The flags the ``.pyc`` files must be compiled with for ``settings``."""
    out: list[str] = []
    for s in settings:
        out.extend(s.compile_flags)
    return tuple(out)


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Measured:
    """Medians per workload of one configuration: peak RSS (bytes) and wall time (s)."""

    peaks: Mapping[str, int | None]
    walls: Mapping[str, float | None]

    @classmethod
    def from_runs(cls, runs: Sequence[Mapping[str, Mapping[str, Any]]]) -> Measured:
        """Medians over several ``measure_workloads`` results of the same configuration."""
        names = list(runs[0]) if runs else []
        peaks, walls = {}, {}
        for n in names:
            p = [r[n]["peak_rss"] for r in runs if r.get(n, {}).get("peak_rss")]
            w = [r[n]["wall"] for r in runs if r.get(n, {}).get("wall")]
            peaks[n] = int(statistics.median(p)) if p else None
            walls[n] = statistics.median(w) if w else None
        return cls(peaks, walls)

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return {"peaks": dict(self.peaks), "walls": dict(self.walls)}


@dataclass(frozen=True)
class Trial:
    """One candidate tried on top of the settings kept so far (``base``, by name)."""

    setting: Setting
    base: tuple[str, ...]
    verified: bool
    before: Measured | None = None  # the kept settings, measured interleaved with ``after``
    after: Measured | None = None  # the kept settings plus this one
    differences: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Verdict:
    """What was decided about one setting, and why (one line)."""

    setting: str
    kept: bool
    reason: str
    peak_change_pct: float | None = None  # on the workload with the largest peak
    worst_change_pct: float | None = None  # the workload that gained the most
    time_ratio: float | None = None  # geometric mean over workloads, after / before
    peak_before: int | None = None
    peak_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain dict."""
        return dataclasses.asdict(self)


@dataclass
class Decision:
    """The settings kept, in order, and a verdict for every candidate."""

    settings: list[Setting]
    verdicts: list[Verdict]
    baseline: Measured | None = None
    final: Measured | None = None
    threshold_pct: float = 1.0
    max_time_ratio: float = 1.25

    @property
    def flags(self) -> list[str]:
        """Interpreter flags of the kept settings."""
        return combined(self.settings)[0]

    @property
    def env(self) -> dict[str, str]:
        """Environment of the kept settings."""
        return combined(self.settings)[1]

    @property
    def boot(self) -> dict[str, Any]:
        """Bootstrap options of the kept settings."""
        return combined(self.settings)[2]

    def to_json(self) -> dict[str, Any]:
        """Plain dict, for the report and the manifest."""
        return {
            "settings": [s.to_json() for s in self.settings],
            "flags": self.flags,
            "env": self.env,
            "boot": self.boot,
            "verdicts": [v.to_json() for v in self.verdicts],
            "baseline": self.baseline.to_json() if self.baseline else None,
            "final": self.final.to_json() if self.final else None,
            "threshold_pct": self.threshold_pct,
            "max_time_ratio": self.max_time_ratio,
        }


def _pct(before: int, after: int) -> float:
    return round(100.0 * (after - before) / before, 2)


def judge(
    trial: Trial,
    threshold_pct: float = 1.0,
    *,
    max_time_ratio: float = 1.25,
    threshold_bytes: int = 1 << 20,
) -> Verdict:
    """Keep ``trial``'s setting? Pure: only the trial's own numbers count.

    Kept when the program still verifies, the largest peak (the one that decides
    whether the program fits a device) drops by at least ``threshold_pct`` % or
    ``threshold_bytes``, no workload's peak grows by more than ``threshold_pct`` %,
    and the wall time (geometric mean of the per-workload ratios, measured in the
    same run) grows by at most ``max_time_ratio``.
    """
    name = trial.setting.name
    if trial.error:
        return Verdict(name, False, f"could not be tried: {trial.error}")
    if not trial.verified:
        what = "; ".join(trial.differences[:2]) or "the output differs"
        return Verdict(name, False, f"behaviour differs from the original: {what}")
    if trial.before is None or trial.after is None:
        return Verdict(name, False, "not measured")
    b, a = trial.before, trial.after
    common = [n for n in b.peaks if b.peaks.get(n) and a.peaks.get(n)]
    if not common:
        return Verdict(name, False, "no workload could be measured")
    main = max(common, key=lambda n: b.peaks[n] or 0)
    pb, pa = int(b.peaks[main] or 0), int(a.peaks[main] or 0)
    change = _pct(pb, pa)
    changes = {n: _pct(int(b.peaks[n] or 0), int(a.peaks[n] or 0)) for n in common}
    worst_name = max(changes, key=lambda n: changes[n])
    worst = changes[worst_name]
    ratios = [a.walls[n] / b.walls[n] for n in common  # type: ignore[operator]
              if b.walls.get(n) and a.walls.get(n)]
    time_ratio = round(math.exp(sum(map(math.log, ratios)) / len(ratios)), 3) if ratios else None
    v = Verdict(name, False, "", change, worst, time_ratio, pb, pa)
    mb = (pb - pa) / 1e6
    where = f"workload {main!r}" if len(common) > 1 else "the peak"
    t = f", time x{time_ratio:.2f}" if time_ratio is not None else ""
    if worst > threshold_pct:
        v.reason = f"raises the peak of workload {worst_name!r} by {worst:+.1f}%{t}"
    elif -change < threshold_pct and (pb - pa) < threshold_bytes:
        v.reason = (f"{where} changes {change:+.2f}% ({-mb:+.2f} MB): less than the "
                    f"{threshold_pct:g}% / {threshold_bytes / 1e6:.1f} MB needed{t}")
    elif time_ratio is not None and time_ratio > max_time_ratio:
        v.reason = (f"{where} {change:+.1f}% but time x{time_ratio:.2f} exceeds the "
                    f"x{max_time_ratio:.2f} allowed")
    else:
        v.kept = True
        v.reason = f"{where} {change:+.1f}% ({-mb:+.2f} MB){t}"
    return v


def choose_settings(
    measurements: Sequence[Trial],
    baseline: Measured | None = None,
    threshold_pct: float = 1.0,
    *,
    max_time_ratio: float = 1.25,
    threshold_bytes: int = 1 << 20,
    skipped: Mapping[str, str] | None = None,
) -> Decision:
    """The greedy decision over ``measurements``, in the order they were tried.

    Each trial must have been measured on top of the settings kept before it
    (``trial.base``); a trial measured on another base is not judged.  A setting
    whose group already has a kept member is skipped.  ``skipped`` adds verdicts
    for candidates that were never tried.  Pure: no runs, no clock.
    """
    kept: list[Setting] = []
    verdicts: list[Verdict] = []
    final = baseline
    for trial in measurements:
        names = tuple(s.name for s in kept)
        groups = {s.group for s in kept if s.group}
        if trial.setting.group and trial.setting.group in groups:
            other = next(s.name for s in kept if s.group == trial.setting.group)
            verdicts.append(Verdict(trial.setting.name, False,
                                    f"{other} of the same group was kept"))
            continue
        if trial.base != names:
            verdicts.append(Verdict(trial.setting.name, False,
                                    f"measured on top of {list(trial.base)}, but the kept "
                                    f"settings were {list(names)}: not judged"))
            continue
        v = judge(trial, threshold_pct, max_time_ratio=max_time_ratio,
                  threshold_bytes=threshold_bytes)
        verdicts.append(v)
        if v.kept:
            kept.append(trial.setting)
            final = trial.after
    for name, why in (skipped or {}).items():
        verdicts.append(Verdict(name, False, f"not tried: {why}"))
    return Decision(kept, verdicts, baseline, final, threshold_pct, max_time_ratio)


def next_group_free(trial_setting: Setting, kept: Sequence[Setting]) -> bool:
    """True when no kept setting shares ``trial_setting``'s group."""
    return not trial_setting.group or all(s.group != trial_setting.group for s in kept)


# --------------------------------------------------------------------------- bootstrap


_BOOT_TEMPLATE = '''\
# Generated by memtrim {version} on {date}. Standard library only: memtrim is not
# needed at run time. It applies the interpreter settings memtrim measured to help
# this application, then runs the application as `python SCRIPT` (or
# `python -m MODULE`) would: same sys.argv, sys.path[0], __main__ and tracebacks.
import sys

CONFIG = {config}


def _data(path):
    loader = globals().get("__loader__")
    if loader is not None and hasattr(loader, "get_data"):
        return loader.get_data(path)  # also inside a zipapp
    with open(path, "rb") as f:
        return f.read()


def _settings(here):
    import os

    cfg = CONFIG
    want = cfg.get("python")
    if want and tuple(sys.version_info[:2]) != tuple(want):
        sys.stderr.write("this application was compiled for Python %d.%d; this is %d.%d\\n"
                         % (want[0], want[1], sys.version_info[0], sys.version_info[1]))
        raise SystemExit(2)
    extra = [os.path.join(here, p) for p in cfg.get("paths", ())]
    sys.path[1:1] = [p for p in extra if p not in sys.path]
    if cfg.get("site_packages") and sys.flags.no_site:
        # -S skipped site and its .pth files; the packages themselves stay importable,
        # found as site.py would (a venv's pyvenv.cfg, the user site) minus the .pth code
        import site

        prefixes, user = None, not sys.flags.no_user_site
        exe_dir = os.path.dirname(os.path.abspath(sys.executable))
        for conf in (os.path.join(exe_dir, "pyvenv.cfg"),
                     os.path.join(os.path.dirname(exe_dir), "pyvenv.cfg")):
            if os.path.isfile(conf):
                system = "true"
                with open(conf, encoding="utf-8") as f:
                    for line in f:
                        key, _, value = line.partition("=")
                        if key.strip().lower() == "include-system-site-packages":
                            system = value.strip().lower()
                venv = os.path.dirname(exe_dir)
                sys.prefix = sys.exec_prefix = venv
                prefixes = [venv] + ([sys.base_prefix] if system == "true" else [])
                user = user and system == "true"
                break
        found = []
        if user:
            found.append(site.getusersitepackages())
        found += site.getsitepackages(prefixes)
        for p in found:
            if os.path.isdir(p) and p not in sys.path:
                sys.path.append(p)
    if "gc_threshold" in cfg or cfg.get("gc_freeze"):
        import gc

        if "gc_threshold" in cfg:
            gc.set_threshold(*cfg["gc_threshold"])
        if cfg.get("gc_freeze"):
            gc.freeze()


def _run(here):
    import os

    cfg = CONFIG
    keep_path0 = bool(sys.path) and os.path.realpath(sys.path[0]) == os.path.realpath(here)
    if cfg.get("module"):
        # python -m puts the working directory first (nothing under -P/-I)
        if keep_path0:
            sys.path[0] = os.getcwd()
        elif not getattr(sys.flags, "safe_path", False):
            sys.path.insert(0, os.getcwd())
        import runpy

        sys.argv[0] = "-m"
        runpy._run_module_as_main(cfg["module"])
        return
    path = os.path.join(here, cfg["entry"])
    sys.argv[0] = path
    folder = os.path.dirname(os.path.realpath(path)) if os.path.exists(path) else \\
        os.path.dirname(path)
    if keep_path0:
        sys.path[0] = folder
    else:
        sys.path.insert(0, folder)
    data = _data(path)
    import types

    main = types.ModuleType("__main__")
    d = main.__dict__
    if "__annotations__" in globals():
        d["__annotations__"] = {{}}
    d.update(__file__=path, __cached__=None, __builtins__=sys.modules["builtins"],
             __spec__=None, __package__=None)
    if path.endswith(".pyc"):
        import importlib.util
        import marshal

        if data[:4] != importlib.util.MAGIC_NUMBER:
            sys.stderr.write("%s was compiled by another Python version\\n" % path)
            raise SystemExit(2)
        code = marshal.loads(data[16:])
        d["__loader__"] = sys.modules["_frozen_importlib_external"].SourcelessFileLoader(
            "__main__", path)
    else:
        code = compile(data, path, "exec", dont_inherit=True)
        d["__loader__"] = sys.modules["_frozen_importlib_external"].SourceFileLoader(
            "__main__", path)
    sys.modules["__main__"] = main
    exec(code, d)


def _main():
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    _settings(here)
    try:
        _run(here)
    except SystemExit:
        raise
    except BaseException as e:
        # print it as the interpreter would, without this file's frames
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        e.__traceback__ = tb
        sys.excepthook(type(e), e, tb)
        if isinstance(e, KeyboardInterrupt):
            import signal

            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(1) from None


_main()
'''


def bootstrap_source(
    *,
    entry: str | None = None,
    module: str | None = None,
    boot: Mapping[str, Any] | None = None,
    paths: Sequence[str] = (),
    python_version: tuple[int, int] | None = None,
) -> str:
    """The text of a bootstrap module that applies ``boot`` and runs ``entry`` or ``module``.

    ``entry`` and ``paths`` are relative to the bootstrap's own folder (so the
    bundle can move); ``python_version`` makes it refuse another Python (for a
    ``.pyc``-only bundle).
    """
    from . import __version__

    if bool(entry) == bool(module):
        raise ValueError("give exactly one of entry and module")
    config: dict[str, Any] = {}
    if entry:
        config["entry"] = Path(entry).as_posix()
    else:
        config["module"] = module
    if paths:
        config["paths"] = [Path(p).as_posix() for p in paths]
    for k, v in sorted((boot or {}).items()):
        config[k] = list(v) if isinstance(v, tuple) else v
    if python_version:
        config["python"] = list(python_version)
    date = _dt.date.today().isoformat()
    return _BOOT_TEMPLATE.format(version=__version__, date=date,
                                 config=pprint.pformat(config, width=88, sort_dicts=True))


# --------------------------------------------------------------------------- the launcher


def write_launcher(
    outdir: Path,
    entry: str | None,
    settings: Sequence[Setting],
    *,
    module: str | None = None,
    python: str | None = None,
    python_version: tuple[int, int] | None = None,
    paths: Sequence[str] = (),
    check_version: bool = False,
    reasons: Mapping[str, str] | None = None,
    name: str = LAUNCHER_NAME,
) -> Path:
    """Write ``outdir/name`` (a POSIX sh script) that runs the application with ``settings``.

    ``entry`` is the script relative to ``outdir`` (or ``module`` a ``-m``
    module, with ``paths`` on the path); ``paths`` are extra folders (relative
    to ``outdir``) put on ``sys.path``, e.g. vendored packages.  The interpreter is
    ``$MEMTRIM_PYTHON`` if set, else ``python`` (the one it was verified with)
    if it exists there, else ``python3.X`` of the same version, else ``python3``.
    Settings that need code get ``outdir/_memtrim_boot.py``.  Environment values
    already set by the caller win over the chosen ones.  Returns the script's path.
    """
    outdir = Path(outdir)
    flags, env, boot = combined(settings)
    needs_boot = bool(boot) or check_version
    if needs_boot:
        (outdir / BOOT_NAME).write_text(
            bootstrap_source(entry=entry, module=module, boot=boot, paths=paths,
                             python_version=python_version if check_version else None),
            encoding="utf-8",
        )
        target = ['"$HERE"/' + shlex.quote(BOOT_NAME)]
    elif module:
        target = ["-m", shlex.quote(module)]
    else:
        assert entry is not None
        target = ['"$HERE"/' + shlex.quote(Path(entry).as_posix())]
    from . import __version__

    lines = [
        "#!/bin/sh",
        f"# Generated by memtrim {__version__} on {_dt.date.today().isoformat()}.",
        "# Runs the application with the interpreter settings memtrim measured to help it",
        "# (each verified to leave its behaviour identical):",
    ]
    for s in settings:
        why = (reasons or {}).get(s.name, "")
        lines.append(f"#   {s.name}: {s.description}" + (f" [{why}]" if why else ""))
    if not settings:
        lines.append("#   none: no setting lowered the peak memory enough")
    lines += [
        "# Set MEMTRIM_PYTHON to choose the interpreter.",
        'HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)',
        'PY=${MEMTRIM_PYTHON:-}',
        'if [ -z "$PY" ]; then',
    ]
    choices = []
    if python:
        choices.append(shlex.quote(python))
    if python_version:
        choices.append(f"python{python_version[0]}.{python_version[1]}")
    choices.append("python3")
    lines += [
        f"    for c in {' '.join(choices)}; do",
        '        if command -v "$c" >/dev/null 2>&1; then PY=$c; break; fi',
        "    done",
        "fi",
        'if [ -z "$PY" ]; then echo "$0: no Python interpreter found (set MEMTRIM_PYTHON)" >&2;'
        " exit 127; fi",
    ]
    for k, v in sorted(env.items()):
        lines.append(f": \"${{{k}:={v}}}\"; export {k}")
    if paths and not needs_boot:
        joined = ":".join(f'"$HERE"/{shlex.quote(Path(p).as_posix())}' for p in paths)
        lines.append(f'PYTHONPATH={joined}${{PYTHONPATH:+:"$PYTHONPATH"}}; export PYTHONPATH')
    lines.append(f'exec "$PY" {" ".join(shlex.quote(f) for f in flags)}'.rstrip()
                 + f' {" ".join(target)} "$@"')
    script = outdir / name
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script


# --------------------------------------------------------------------------- measuring


def _env_workloads(workloads: Sequence[Any], env: Mapping[str, str]) -> tuple:
    """``workloads`` with ``env`` added to each (the workload's own values win)."""
    return tuple(
        dataclasses.replace(w, env=tuple(sorted({**env, **dict(w.env)}.items())))
        for w in workloads
    )


def _with_env(app: App, env: Mapping[str, str]) -> App:
    """``app`` with ``env`` added to every workload (the workload's own values win)."""
    if not env:
        return app
    return dataclasses.replace(app, workloads=_env_workloads(app.workloads, env))


def configure_run(
    app: App,
    settings: Sequence[Setting],
    *,
    root: Path,
    boot_dir: Path,
    extra_paths: Sequence[Path] = (),
    base_flags: Sequence[str] = (),
) -> tuple[App, list[str]]:
    """The app and interpreter flags that run ``app`` (its copy at ``root``) with ``settings``.

    What the launcher would do, for the measuring and verifying harnesses: the
    settings' environment goes into every workload, ``extra_paths`` (vendored
    packages) onto ``PYTHONPATH`` or into the bootstrap, and settings that need
    code get a bootstrap module written in ``boot_dir`` which becomes the entry.
    """
    flags, env, boot = combined(settings)
    run_app = app.relocated(root)
    if extra_paths and not boot:
        # as the launcher does: PYTHONPATH (a -m module's own folder first)
        first = [str(root)] if app.module else []
        old = os.environ.get("PYTHONPATH")
        env = {**env, "PYTHONPATH": os.pathsep.join(
            [*first, *map(str, extra_paths), *([old] if old else [])])}
    if boot:
        boot_dir.mkdir(parents=True, exist_ok=True)
        entry = None if app.module else os.path.relpath(run_app.script, boot_dir)  # type: ignore[arg-type]
        paths = [os.path.relpath(p, boot_dir) for p in extra_paths]
        if app.module:
            paths.insert(0, os.path.relpath(root, boot_dir))
        (boot_dir / BOOT_NAME).write_text(
            bootstrap_source(entry=entry, module=app.module, boot=boot, paths=paths),
            encoding="utf-8")
        run_app = dataclasses.replace(run_app, script=boot_dir / BOOT_NAME, module=None)
    return _with_env(run_app, env), [*base_flags, *flags]


@dataclass
class _Tree:
    """A compiled copy of the program for one set of compile flags."""

    root: Path
    extra_paths: tuple[Path, ...]


@dataclass
class SelectRequest:
    """What :func:`select_settings` needs; the defaults are the pipeline's."""

    app: App
    oracle: Any  # memtrim.verify.Oracle
    python: str
    base_flags: Sequence[str] = ()
    extra_paths: Sequence[Path] = ()  # vendored packages, put on sys.path
    candidates: Sequence[Setting] | None = None
    optimize_asserts: bool = False
    repeat: int = 3
    threshold_pct: float = 1.0
    threshold_bytes: int = 1 << 20
    max_time_ratio: float = 1.25
    scratch: Path | None = None
    trials: list[Trial] = field(default_factory=list)


def select_settings(
    req: SelectRequest, say: Callable[[str], None] | None = None
) -> Decision:
    """Try every candidate on top of the kept ones; verify, measure, decide (greedy).

    The program is copied to a scratch folder and compiled there at levels 0, 1
    and 2 (and again for settings that change the compiled code), so ``-OO``
    reads ``.opt-2.pyc`` files as it will in the bundle.  Each trial first runs
    the oracle's workloads (a difference rejects it without measuring), then
    alternates runs of the kept combination and of the candidate, ``repeat``
    times each, so both medians and the time ratio come from the same run.
    """
    from .measure.workloads import measure_workloads
    from .verify import verify

    say = say or (lambda _m: None)
    info = interpreter_info(req.python)
    version = tuple(int(x) for x in info["version"].split(".")[:2])
    if req.candidates is None:
        cands, skipped = candidates(version, optimize_asserts=req.optimize_asserts)  # type: ignore[arg-type]
    else:
        cands, skipped = list(req.candidates), {}
        for s in list(cands):
            if version < s.min_version:
                cands.remove(s)
                skipped[s.name] = f"needs Python {s.min_version[0]}.{s.min_version[1]}"
    app = req.app
    tmp = Path(tempfile.mkdtemp(prefix="memtrim-launcher-", dir=req.scratch))
    trees: dict[tuple[str, ...], _Tree] = {}
    counter = iter(range(1_000_000))

    def tree_for(settings: Sequence[Setting]) -> _Tree:
        key = compile_flags_of(settings)
        if key not in trees:
            n = len(trees)
            root = tmp / f"tree{n}" / app.root.name
            shutil.copytree(app.root, root, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
            extra = []
            for i, p in enumerate(req.extra_paths):
                dest = tmp / f"tree{n}" / f"extra{i}"
                shutil.copytree(p, dest, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                extra.append(dest)
            for where in (root, *extra):
                compile_tree(where, python=req.python, levels=(0, 1, 2), interpreter_args=key)
            trees[key] = _Tree(root, tuple(extra))
        return trees[key]

    def configured(settings: Sequence[Setting]) -> tuple[App, list[str]]:
        tree = tree_for(settings)
        boot_dir = tmp / f"boot{next(counter)}"
        return configure_run(app, settings, root=tree.root, extra_paths=tree.extra_paths,
                             boot_dir=boot_dir, base_flags=req.base_flags)

    def measure_pair(before: Sequence[Setting], after: Sequence[Setting]) -> tuple[Measured,
                                                                                  Measured]:
        app_b, flags_b = configured(before)
        app_a, flags_a = configured(after)
        runs_b, runs_a = [], []
        for _ in range(req.repeat):  # interleaved: drift hits both alike
            runs_b.append(measure_workloads(app_b, req.python, flags_b, repeat=1))
            runs_a.append(measure_workloads(app_a, req.python, flags_a, repeat=1))
        return Measured.from_runs(runs_b), Measured.from_runs(runs_a)

    try:
        kept: list[Setting] = []
        baseline: Measured | None = None
        for cand in cands:
            if not next_group_free(cand, kept):
                # choose_settings gives the verdict ("... of the same group was kept")
                req.trials.append(Trial(cand, tuple(s.name for s in kept), False))
                continue
            combo = [*kept, cand]
            say(f"launcher: trying {cand.name} on top of {[s.name for s in kept] or 'nothing'}")
            base = tuple(s.name for s in kept)
            try:
                cand_app, cand_flags = configured(combo)
                oracle = dataclasses.replace(req.oracle, workloads=_env_workloads(
                    req.oracle.workloads, combined(combo)[1]))
                result = verify(cand_app, oracle, python=req.python, flags=cand_flags,
                                fail_fast=True)
            except Exception as e:  # a candidate that cannot even be set up is dropped
                req.trials.append(Trial(cand, base, False, error=f"{type(e).__name__}: {e}"))
                continue
            if not result.ok:
                diffs = tuple(d.summary() for d in result.all_differences()[:3])
                req.trials.append(Trial(cand, base, False, differences=diffs))
                say(f"launcher: {cand.name}: dropped: behaviour differs "
                    f"({diffs[0] if diffs else 'no detail'})")
                continue
            before, after = measure_pair(kept, combo)
            if baseline is None:
                baseline = before
            trial = Trial(cand, base, True, before, after)
            req.trials.append(trial)
            v = judge(trial, req.threshold_pct, max_time_ratio=req.max_time_ratio,
                      threshold_bytes=req.threshold_bytes)
            say(f"launcher: {cand.name}: {'kept' if v.kept else 'dropped'}: {v.reason}")
            if v.kept:
                kept.append(cand)
        return choose_settings(req.trials, baseline, req.threshold_pct,
                               max_time_ratio=req.max_time_ratio,
                               threshold_bytes=req.threshold_bytes, skipped=skipped)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def settings_chooser(
    oracle: Any,
    python: str,
    *,
    say: Callable[[str], None] | None = None,
    **options: Any,
) -> Callable[[App, Sequence[Path]], Decision]:
    """A ``settings`` function for :func:`memtrim.bundle.bundle`: selects on the staged tree.

    ``options`` are :class:`SelectRequest` fields (``repeat``, ``threshold_pct``,
    ``optimize_asserts``, ``base_flags``, ...).
    """

    def choose(app: App, extra_paths: Sequence[Path]) -> Decision:
        req = SelectRequest(app=app, oracle=oracle, python=python,
                            extra_paths=list(extra_paths), **options)
        return select_settings(req, say)

    return choose


def levels_needed(settings: Sequence[Setting]) -> tuple[int, ...]:
    """The ``.pyc`` optimization levels a bundle run with ``settings`` reads (0 always)."""
    return tuple(sorted({0, optimization_level(combined(settings)[0])}))
