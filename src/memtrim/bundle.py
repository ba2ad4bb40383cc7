"""The deployable output: a self-contained directory (and optionally a zipapp) with a manifest.

Layout of ``OUTDIR``::

    run.sh                  the launcher: the interpreter settings chosen by measurement
    _memtrim_boot.py        only when a setting needs code (gc, -S with site-packages)
    __main__.py             so that ``python -I OUTDIR ARGS`` runs it too (without the
                            launcher's flags and environment)
    app/                    the optimized sources, with __pycache__/*.pyc (levels 0 and the
                            launcher's), or only *.pyc with --pyc-only
    vendor/                 vendored distributions (when asked), importable from app/
    APP.pyz                 the zipapp, when asked and nothing in it is a C extension
    memtrim-manifest.json   what was verified with which interpreter, what the device
                            must still provide

:func:`bundle` builds it in a staging folder beside ``OUTDIR`` and moves it into
place at the end, then runs every workload of the oracle through the launcher
itself (``sh OUTDIR/run.sh ARGS``) and records the verdict in the manifest.
The input tree is never written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipapp as _zipapp
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .app import App
from .bytecode import (
    BytecodeError,
    compile_tree,
    interpreter_info,
    make_sourceless,
    optimization_level,
)
from .launcher import (
    BOOT_NAME,
    LAUNCHER_NAME,
    Decision,
    Setting,
    bootstrap_source,
    combined,
    compile_flags_of,
    levels_needed,
    write_launcher,
)

SCHEMA = "memtrim.bundle/1"
MANIFEST_NAME = "memtrim-manifest.json"
APP_DIR = "app"
VENDOR_DIR = "vendor"
# Never copied into a bundle: caches, version control, memtrim's own reports.
_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".git", ".hg", ".svn", ".venv", ".pytest_cache", ".ruff_cache",
    ".mypy_cache", "memtrim-report.*", MANIFEST_NAME,
)
# Calls whose first argument names a module or package the program needs.
_NAMES_A_MODULE = frozenset({
    "import_module", "__import__", "find_spec", "find_loader", "files", "get_data",
    "open_text", "open_binary", "read_text", "read_binary", "is_resource", "contents",
    "resource_filename", "resource_string", "resource_stream", "resource_exists",
    "resource_listdir",
})
_EXT_RE = re.compile(r"\.(so|pyd)$|\.cpython-[^/]*\.so$|\.abi3\.so$")


class BundleError(Exception):
    """The bundle cannot be built; the message is one line for the user."""


@dataclass
class Dependency:
    """A third-party distribution the application imports (directly or through another)."""

    name: str
    version: str
    imported_as: list[str] = field(default_factory=list)
    required_by: list[str] = field(default_factory=list)
    c_extensions: int = 0
    location: str = ""
    vendored: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        return {
            "name": self.name, "version": self.version, "imported_as": self.imported_as,
            "required_by": self.required_by, "c_extensions": self.c_extensions,
            "vendored": self.vendored,
        }


@dataclass
class Manifest:
    """``memtrim-manifest.json``: the bundle's contract with the device."""

    outdir: Path
    entry: str | None
    module: str | None
    interpreter: dict[str, Any]
    settings: list[Setting]
    flags: list[str]
    env: dict[str, str]
    boot: dict[str, Any]
    bytecode: dict[str, Any]
    pyc_only: bool
    dependencies: list[Dependency]
    vendored: list[Dependency]
    missing_imports: list[str]
    c_extensions: list[str]
    zipapp: dict[str, Any]
    verification: dict[str, Any]
    decision: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    created: str = ""

    @property
    def verified(self) -> bool | None:
        """True when every workload ran identically through the launcher (None: not verified)."""
        return self.verification.get("ok")

    def to_json(self) -> dict[str, Any]:
        """The manifest document."""
        from . import __version__

        return {
            "schema": SCHEMA,
            "created": self.created,
            "memtrim_version": __version__,
            "entry": self.entry,
            "module": self.module,
            "interpreter": self.interpreter,
            "verified_with": {
                "python_version": self.interpreter.get("version"),
                "implementation": self.interpreter.get("implementation"),
                "platform": self.interpreter.get("platform"),
                **self.verification,
            },
            "launcher": {
                "script": LAUNCHER_NAME,
                "settings": [s.to_json() for s in self.settings],
                "flags": self.flags,
                "env": self.env,
                "boot": self.boot,
                "decision": self.decision,
            },
            "run": [
                f"sh {LAUNCHER_NAME} ARGS   (MEMTRIM_PYTHON=/path/to/python to choose it)",
                "python -I OUTDIR ARGS   (no launcher flags or environment; gc settings apply)",
            ] + ([f"python {self.zipapp['path']} ARGS"] if self.zipapp.get("written") else []),
            "bytecode": self.bytecode,
            "pyc_only": self.pyc_only,
            "dependencies_expected_on_device": [d.to_json() for d in self.dependencies],
            "vendored": [d.to_json() for d in self.vendored],
            "missing_imports": self.missing_imports,
            "c_extensions": self.c_extensions,
            "zipapp": self.zipapp,
            "device": self.device,
        }

    def write(self) -> Path:
        """Write ``memtrim-manifest.json`` into the bundle (atomically)."""
        path = self.outdir / MANIFEST_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


# --------------------------------------------------------------------------- dependencies

# Runs in the target interpreter: which top-level names are stdlib, third-party (and
# from which distribution), or missing; the distributions' requirements.
_PROBE = r"""
import json, re, sys, importlib.util
from importlib import metadata
names, want_files = json.loads(sys.argv[1]), json.loads(sys.argv[2])
stdlib = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
try:
    by_pkg = metadata.packages_distributions()
except Exception:
    by_pkg = {}
mods, dists = {}, {}
def info(name):
    d = metadata.distribution(name)
    files = [str(f) for f in (d.files or [])]
    reqs = []
    for r in d.requires or []:
        if re.search(r"extra\s*==", r):
            continue
        reqs.append(re.split(r"[\s;<>=!~\[(]", r.strip(), 1)[0])
    tops = (d.read_text("top_level.txt") or "").split()
    if not tops:
        heads = {f.split("/")[0] for f in files if not f.startswith("..")}
        tops = sorted({h.split(".")[0] for h in heads
                       if not re.search(r"\.(dist-info|egg-info|data)$", h)})
    out = {"name": d.metadata["Name"], "version": d.version, "requires": reqs, "top_level": tops,
           "location": str(d.locate_file("")),
           "c_extensions": [f for f in files if re.search(r"\.(so|pyd)$", f)]}
    if want_files:
        out["files"] = files
    return out
for n in names:
    if n in stdlib:
        mods[n] = {"kind": "stdlib"}
        continue
    try:
        spec = importlib.util.find_spec(n)
    except Exception:
        spec = None
    if spec is None:
        mods[n] = {"kind": "missing"}
        continue
    ds = sorted(set(by_pkg.get(n, [])))
    mods[n] = {"kind": "third-party" if ds else "unpackaged", "origin": spec.origin, "dists": ds}
todo = [d for m in mods.values() for d in m.get("dists", [])]
while todo:
    name = todo.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in dists:
        continue
    try:
        dists[key] = info(name)
    except metadata.PackageNotFoundError:
        dists[key] = None
        continue
    todo.extend(dists[key]["requires"])
print(json.dumps({"modules": mods, "dists": dists}))
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level(root: Path, entry: Path | None, module: str | None) -> set[str]:
    """Top-level names of the modules outside the program that it imports (static).

    Only the program's modules reachable from the entry by imports count (a
    training script shipped beside the application does not make its imports
    a dependency); imports inside functions count, and so do constant module names
    given to ``importlib.import_module``, ``importlib.util.find_spec`` (a package
    found for its data files, not imported), ``importlib.resources`` and
    ``pkgutil.get_data``.  Without an entry, every module.
    """
    import ast

    from .analysis.symbols import relative_base
    from .program import Program

    program = Program.load(root, entry=entry, module=module)
    mods = program.modules
    start = program.entry_module
    todo = [start] if start in mods else list(mods)
    seen: set[str] = set()
    names: set[str] = set()

    def visit(dotted: str) -> None:
        # the program module it names (and the packages above it), or an outside name
        parts = dotted.split(".")
        found = False
        for i in range(1, len(parts) + 1):
            head = ".".join(parts[:i])
            if head in mods:
                found = True
                if head not in seen:
                    todo.append(head)
        if not found and parts[0] and parts[0].isidentifier():
            names.add(parts[0])

    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        mod = mods[name]
        if mod.tree is None:
            continue
        package = name if mod.is_package else name.rpartition(".")[0]
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    visit(a.name)
            elif isinstance(node, ast.ImportFrom):
                base = relative_base(package, node.module, node.level)
                if base is None:
                    continue
                visit(base)
                for a in node.names:
                    if f"{base}.{a.name}" in mods:
                        visit(f"{base}.{a.name}")
            elif isinstance(node, ast.Call) and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname in _NAMES_A_MODULE:
                    visit(node.args[0].value)
    own = {n.split(".")[0] for n in mods}
    return {n for n in names if n not in own}


def probe_dependencies(
    python: str, names: Sequence[str], *, want_files: bool = False
) -> dict[str, Any]:
    """Classify top-level import ``names`` in the target interpreter; distributions closed
    over their requirements (extras left out)."""
    try:
        proc = subprocess.run(
            [python, "-c", _PROBE, json.dumps(sorted(names)), json.dumps(want_files)],
            capture_output=True, text=True, timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BundleError(f"cannot run {python} to find the dependencies: {e}") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BundleError(f"cannot find the dependencies with {python}: {tail}")
    return json.loads(proc.stdout)


def _dependencies(probe: Mapping[str, Any]) -> tuple[dict[str, Dependency], list[str]]:
    deps: dict[str, Dependency] = {}
    dists = probe["dists"]
    for key, d in dists.items():
        if d is None:
            continue
        deps[key] = Dependency(d["name"], d["version"], c_extensions=len(d["c_extensions"]),
                               location=d["location"])
    for name, m in probe["modules"].items():
        for dname in m.get("dists", []):
            dep = deps.get(_norm(dname))
            if dep is not None and name not in dep.imported_as:
                dep.imported_as.append(name)
    for key, d in dists.items():
        if d is None:
            continue
        for r in d["requires"]:
            dep = deps.get(_norm(r))
            if dep is not None and deps[key].name not in dep.required_by:
                dep.required_by.append(deps[key].name)
    missing = sorted(n for n, m in probe["modules"].items() if m["kind"] == "missing")
    return deps, missing


def _vendor(probe: Mapping[str, Any], names: Sequence[str], deps: Mapping[str, Dependency],
            dest: Path) -> list[Dependency]:
    """Copy the files of the distributions ``names`` ("all", "pure" or names) into ``dest``."""
    wanted: set[str] = set()
    for n in names:
        if n == "all":
            wanted |= set(deps)
        elif n == "pure":
            wanted |= {k for k, d in deps.items() if d.c_extensions == 0}
        else:
            key = _norm(n)
            if key not in deps:
                known = ", ".join(sorted(d.name for d in deps.values())) or "none"
                raise BundleError(f"cannot vendor {n!r}: not a dependency the application "
                                  f"imports (its dependencies: {known})")
            wanted.add(key)
    out = []
    for key in sorted(wanted):
        d = probe["dists"][key]
        location = Path(d["location"])
        for rel in d.get("files", []):
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
                continue  # scripts in bin/, caches: not part of the importable package
            src = location / rel
            if not src.is_file():
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
        deps[key].vendored = True
        out.append(deps[key])
    return out


# --------------------------------------------------------------------------- verification


def verify_bundle(
    outdir: Path,
    app: App,
    oracle: Any,
    *,
    python: str,
    command: Sequence[str] | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Run every workload of ``oracle`` through the bundle's launcher; compare with the oracle.

    ``command`` replaces ``sh OUTDIR/run.sh`` (e.g. ``[python, APP.pyz]``);
    ``root`` is what ``{root}`` means in the workloads (default ``OUTDIR/app``).
    Returns ``{ok, workloads, differences}`` for the manifest.
    """
    from .verify import compare
    from .workload_run import RunRecord, list_files, run_command, workload_env

    root = root or outdir / APP_DIR
    argv0 = list(command or ["/bin/sh", str(outdir / LAUNCHER_NAME)])
    bundle_app = App(root=root, script=root / "__bundle__.py", workloads=app.workloads)
    diffs: list[dict[str, Any]] = []
    names = []
    with tempfile.TemporaryDirectory(prefix="memtrim-bundle-verify-") as tmp:
        for i, w in enumerate(oracle.workloads):
            wx = w.expand(root)
            scratch = Path(tmp) / f"w{i}"
            scratch.mkdir()
            env = workload_env(bundle_app, wx)
            env["MEMTRIM_PYTHON"] = python
            stdin = None
            if wx.stdin is not None:
                stdin = Path(wx.stdin) if Path(wx.stdin).is_absolute() else root / wx.stdin
            argv = [*argv0, *wx.args]
            res = run_command(argv, cwd=scratch, env=env, timeout=wx.timeout, stdin_path=stdin)
            rec = RunRecord(
                workload=w.name, argv=tuple(argv), root=str(root), cwd=str(scratch),
                exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr,
                outputs={n: (scratch / n).read_bytes() if (scratch / n).is_file() else None
                         for n in wx.outputs},
                files=list_files(scratch), duration=res.duration, timed_out=res.timed_out,
                compare_stderr=wx.compare_stderr,
            )
            names.append(w.name)
            diffs.extend(d.to_dict() for d in compare(oracle.records[w.name], rec,
                                                      oracle.normalizers))
    return {"ok": not diffs, "how": " ".join(Path(a).name for a in argv0) + " ARGS",
            "workloads": names, "differences": diffs}


# --------------------------------------------------------------------------- bundle


def check_outdir(src: Path, outdir: Path, force: bool) -> None:
    """Refuse an OUTDIR that overlaps the input tree, or is not empty without ``force``."""
    out, root = outdir.resolve(), src.resolve()
    if out == root or root in out.parents or out in root.parents:
        raise BundleError(f"output directory {outdir} overlaps the input tree {root}")
    if out.exists() and not out.is_dir():
        raise BundleError(f"output path {outdir} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise BundleError(f"output directory {outdir} is not empty (use --force to replace it)")


def _c_extensions(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and _EXT_RE.search(p.name))


def bundle(
    src_tree: Path,
    outdir: Path,
    *,
    app: App,
    python: str = sys.executable,
    settings: Sequence[Setting] | Decision | Callable[[App, Sequence[Path]], Decision] = (),
    zipapp: bool = False,
    pyc_only: bool = False,
    vendor: Sequence[str] = (),
    oracle: Any | None = None,
    verify: bool = True,
    force: bool = False,
    say: Callable[[str], None] | None = None,
) -> Manifest:
    """Build the deployable bundle of ``src_tree`` (the optimized tree) in ``outdir``.

    ``app`` gives the entry (a script under ``src_tree`` or a ``-m`` module) and the
    workloads; ``settings`` are the launcher's (or the :class:`Decision` that chose
    them), or a function ``(app, extra_paths) -> Decision`` called on the staged
    bundle, vendored packages included, before it is compiled (e.g. a wrapper of
    :func:`memtrim.launcher.select_settings`), so that ``-OO`` is measured with the
    vendored packages' ``.opt-2.pyc`` as the bundle will have them.  ``vendor``
    copies distributions into ``vendor/``: names, ``"pure"`` (every
    dependency without C extensions) or ``"all"``.  With ``verify`` every workload is
    run through the finished launcher and compared with ``oracle`` (recorded from
    ``src_tree`` when not given); the verdict is in the manifest.  Raises
    :class:`BundleError` (one line) when the bundle cannot be built; a bundle that
    builds but behaves differently is written, with ``manifest.verified`` False.
    """
    say = say or (lambda _m: None)
    src = Path(src_tree).resolve()
    if not src.is_dir():
        raise BundleError(f"{src_tree}: not a directory")
    outdir = Path(outdir)
    check_outdir(src, outdir, force)
    chooser = settings if callable(settings) else None
    decision = settings if isinstance(settings, Decision) else None
    chosen = list(decision.settings if decision else ([] if chooser else settings))  # type: ignore[arg-type]
    entry_rel: str | None = None
    if app.module is None:
        if app.script is None:
            raise BundleError("the application has no entry script or module")
        try:
            entry_rel = Path(app.script).resolve().relative_to(src).as_posix()
        except ValueError:
            raise BundleError(f"entry script {app.script} is outside {src}") from None
        if not (src / entry_rel).is_file():
            raise BundleError(f"entry script {entry_rel} not found in {src}")
    try:
        info = interpreter_info(python)
    except BytecodeError as e:
        raise BundleError(str(e)) from None
    version = tuple(int(x) for x in info["version"].split(".")[:2])

    say("finding the dependencies")
    names = imported_top_level(src, src / entry_rel if entry_rel else None, app.module)
    probe = probe_dependencies(python, sorted(names), want_files=bool(vendor))
    deps, missing = _dependencies(probe)

    final = outdir.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.new-", dir=final.parent))
    try:
        say(f"copying {src} into the bundle")
        shutil.copytree(src, staging / APP_DIR, symlinks=True, ignore=_IGNORE)
        vendored: list[Dependency] = []
        if vendor:
            say("vendoring " + ", ".join(vendor))
            vendored = _vendor(probe, vendor, deps, staging / VENDOR_DIR)
        trees = [APP_DIR] + ([VENDOR_DIR] if vendored else [])
        if chooser is not None:
            say("measuring the launcher settings on the staged bundle")
            staged = dataclasses.replace(
                app, root=staging / APP_DIR,
                script=staging / APP_DIR / entry_rel if entry_rel else None)
            decision = chooser(staged, [staging / VENDOR_DIR] if vendored else [])
            chosen = list(decision.settings)
        flags, env, boot = combined(chosen)
        level = optimization_level(flags)
        compile_args = compile_flags_of(chosen)
        results = []
        for t in trees:
            if pyc_only:
                say(f"compiling {t}/ to .pyc only (level {level})")
                results.append(make_sourceless(staging / t, python=python, level=level,
                                               interpreter_args=compile_args,
                                               ddir=str(final / t)))
            else:
                say(f"compiling {t}/ at levels {list(levels_needed(chosen))}")
                results.append(compile_tree(staging / t, python=python,
                                            levels=levels_needed(chosen),
                                            interpreter_args=compile_args))
        bytecode = results[0].to_json()
        bytecode["pyc_files"] = sum(r.pyc_files for r in results)
        bytecode["failures"] = [f for r in results for f in r.failures]
        if pyc_only and entry_rel:
            entry_rel = str(Path(entry_rel).with_suffix(".pyc"))
        entry_in_bundle = f"{APP_DIR}/{entry_rel}" if entry_rel else None
        paths = ([APP_DIR] if app.module else []) + ([VENDOR_DIR] if vendored else [])
        reasons = {v.setting: v.reason for v in decision.verdicts} if decision else {}
        write_launcher(staging, entry_in_bundle, chosen, module=app.module, python=python,
                       python_version=version, paths=paths,  # type: ignore[arg-type]
                       check_version=pyc_only, reasons=reasons)
        # `python -I OUTDIR` runs __main__.py: the bundle folder is then sys.path[0]
        (staging / "__main__.py").write_text(
            bootstrap_source(entry=entry_in_bundle, module=app.module, boot=boot, paths=paths,
                             python_version=version if pyc_only else None),  # type: ignore[arg-type]
            encoding="utf-8")
        c_ext = _c_extensions(staging)
        zip_info: dict[str, Any] = {"asked": zipapp, "written": False}
        if zipapp:
            zip_info.update(_make_zipapp(staging, final, entry_in_bundle, app, boot, paths,
                                         python, level, compile_args, c_ext, version))
        _install(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest = Manifest(
        outdir=final,
        entry=entry_in_bundle,
        module=app.module,
        interpreter=info,
        settings=chosen,
        flags=flags,
        env=env,
        boot=boot,
        bytecode=bytecode,
        pyc_only=pyc_only,
        dependencies=[d for d in deps.values() if not d.vendored],
        vendored=vendored,
        missing_imports=missing,
        c_extensions=c_ext,
        zipapp=zip_info,
        verification={"ok": None, "why": "not verified (no workloads)"},
        decision=decision.to_json() if decision else None,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if verify and (oracle is not None or app.workloads):
        if oracle is None:
            from .verify import record_oracle

            say("recording the input tree's behaviour")
            oracle = record_oracle(app, python=python, repeat=1)
        say("verifying the bundle through its launcher")
        manifest.verification = verify_bundle(final, app, oracle, python=python)
        if zip_info.get("written"):
            say("verifying the zipapp")
            zv = verify_bundle(final, app, oracle, python=python,
                               command=[python, *flags, str(final / zip_info["path"])])
            zip_info["verified"] = zv["ok"]
            zip_info["differences"] = zv["differences"][:5]
    elif not verify:
        manifest.verification = {"ok": None, "why": "verification was not asked for"}
    manifest.write()
    return manifest


def _make_zipapp(staging: Path, final: Path, entry: str | None, app: App, boot: Mapping,
                 paths: Sequence[str], python: str, level: int,
                 compile_args: Sequence[str], c_ext: Sequence[str],
                 version: tuple[int, ...]) -> dict[str, Any]:
    """Write APP.pyz beside the directory bundle, or say why not."""
    inside = [p for p in c_ext if p.startswith((APP_DIR + "/", VENDOR_DIR + "/"))]
    if inside:
        return {"reason": f"not written: {len(inside)} C extension(s) would be inside it "
                          f"(e.g. {inside[0]}) and zipimport cannot load extension modules; "
                          "use the directory bundle"}
    name = (Path(entry).stem if entry and Path(entry).stem not in ("run", "main", "__main__")
            else (app.module or app.root.name)).split(".")[0] + ".pyz"
    with tempfile.TemporaryDirectory(prefix="memtrim-zipapp-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for t in (APP_DIR, VENDOR_DIR):
            if (staging / t).is_dir():
                shutil.copytree(staging / t, src / t, symlinks=False,
                                ignore=shutil.ignore_patterns("__pycache__"))
        # zipimport reads NAME.pyc beside NAME.py, never __pycache__: compile that layout
        for t in (APP_DIR, VENDOR_DIR):
            if (src / t).is_dir() and any((src / t).rglob("*.py")):
                compile_tree(src / t, python=python, levels=(level,), legacy=True,
                             invalidation="unchecked-hash", interpreter_args=compile_args,
                             ddir=f"{final / name}/{t}")
        (src / "__main__.py").write_text(
            bootstrap_source(entry=entry, module=app.module, boot=boot, paths=paths),
            encoding="utf-8")
        target = staging / name
        _zipapp.create_archive(src, target, interpreter=f"/usr/bin/env python{version[0]}."
                               f"{version[1]}", compressed=True)
    with zipfile.ZipFile(target) as z:
        count = len(z.namelist())
    return {"written": True, "path": name, "files": count,
            "size_bytes": target.stat().st_size,
            "note": "files the application opens next to its own sources are inside the "
                    "archive: open() cannot read them there (importlib.resources can)"}


def _install(staging: Path, outdir: Path) -> None:
    """Move ``staging`` to ``outdir``, replacing an old OUTDIR only at the very end."""
    old = None
    if outdir.exists():
        old = outdir.parent / f".{outdir.name}.old-{os.getpid()}"
        os.replace(outdir, old)
    os.replace(staging, outdir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(outdir: Path) -> dict[str, Any]:
    """The manifest of a bundle (BundleError when there is none)."""
    path = Path(outdir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise BundleError(f"{outdir}: no {MANIFEST_NAME} (not a memtrim bundle)") from None
    except ValueError as e:
        raise BundleError(f"{path}: not valid JSON: {e}") from None


__all__ = [
    "BOOT_NAME", "BundleError", "Dependency", "MANIFEST_NAME", "Manifest", "bundle",
    "imported_top_level", "probe_dependencies", "read_manifest", "verify_bundle",
]
