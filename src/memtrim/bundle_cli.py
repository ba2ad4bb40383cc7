"""``memtrim bundle``: the command-line half (the lead wires it into ``memtrim.cli``).

    memtrim bundle SRC_OR_RUN_DIR -o OUTDIR [--zipapp] [--pyc-only] [--python PY]
                   [--settings auto|none|NAME,...] [--vendor NAME|pure|all] [--device NAME|SIZE]

SRC_OR_RUN_DIR is an application's source folder (with ``memtrim.toml`` or
``[tool.memtrim]``) or an ``optimize`` OUTDIR (with ``memtrim-report.json``;
the original's config gives the workloads).  Bad input is one line on stderr
and exit status 2; a bundle that was written but does not behave like its
input exits with 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli import interpreter_path

EXIT_OK, EXIT_DIFFERS, EXIT_USAGE = 0, 1, 2


def add_bundle_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bundle`` subcommand to ``sub`` (the CLI's subparsers) and return its parser."""
    from .launcher import CANDIDATES

    names = ", ".join(s.name for s in CANDIDATES)
    p = sub.add_parser(
        "bundle",
        help="write a self-contained, deployable folder: sources, bytecode, launcher, manifest",
        description=(
            "Copy an application (or the result of 'memtrim optimize') into OUTDIR with its "
            "bytecode precompiled for the target interpreter (levels 0 and the launcher's, "
            "hash-checked so copying does not make them stale), a launcher script 'run.sh' "
            "that starts it with the interpreter settings measured to lower its peak memory "
            "(each verified to leave its behaviour identical), and memtrim-manifest.json: the "
            "interpreter it was verified with and the dependencies the device must still "
            "provide. Every workload is then run through the launcher and compared with the "
            "input's behaviour. The input tree is never written."
        ),
        epilog="exit status: 0 written and verified; 1 written but it behaves differently; "
        "2 bad input\n"
        f"settings: {names}\n"
        "example: memtrim bundle build/gateway -o dist/gateway --pyc-only --device 64MB",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SRC_OR_RUN_DIR",
                   help="the application's folder, or an optimize OUTDIR")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR",
                   help="where to write the bundle")
    p.add_argument("--python", metavar="PATH", default=sys.executable, type=interpreter_path,
                   help="the interpreter the bundle is compiled for and verified with "
                   "(default: %(default)s)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="memtrim.toml or pyproject.toml (default: in SRC, or the original's)")
    p.add_argument("--entry", metavar="SCRIPT", help="entry script relative to SRC (no config)")
    p.add_argument("-m", dest="module", metavar="MODULE", help="entry module (no config)")
    p.add_argument("--settings", default="auto", metavar="auto|none|NAMES",
                   help="launcher settings: measured and verified one by one (auto, the "
                   "default when there are workloads), none, or a comma-separated list")
    p.add_argument("--optimize-asserts", action="store_true",
                   help="also try -O/-OO, which remove assert statements (opt-in: asserts may "
                   "be control flow)")
    p.add_argument("--repeat", type=int, default=3, metavar="N",
                   help="runs per configuration when measuring settings (default 3)")
    p.add_argument("--threshold", type=float, default=1.0, metavar="PCT",
                   help="keep a setting only if it lowers the peak by at least PCT %% or 1 MB "
                   "(default 1)")
    p.add_argument("--vendor", action="append", default=[], metavar="NAME",
                   help="copy a dependency into the bundle (repeatable; 'pure': every "
                   "dependency without C extensions; 'all')")
    p.add_argument("--zipapp", action="store_true",
                   help="also write APP.pyz (only when no C extension would be inside it)")
    p.add_argument("--pyc-only", action="store_true",
                   help="ship .pyc files only, no sources (runs only on the same Python version)")
    p.add_argument("--device", metavar="NAME|SIZE",
                   help="check the fit on a board of seed 000's Table 1 or a RAM size (64MB), "
                   "running every workload under that memory limit")
    p.add_argument("--reserve", metavar="SIZE", default="0",
                   help="RAM the device's OS keeps for itself (default 0, as in the paper)")
    p.add_argument("--no-verify", action="store_true", help="do not run the workloads")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUTDIR")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the manifest here")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return p


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write(f"memtrim: error: {message}\n")
    return code


def _resolve_app(args: argparse.Namespace, src: Path):
    """The App to bundle, rooted at its tree; or an error message."""
    from .app import App, ConfigError, Workload, find_config, load_app

    try:
        if args.config is not None:
            if not args.config.is_file():
                return f"config file not found: {args.config}"
            app = load_app(args.config)
        elif (src / "memtrim.toml").is_file() or (src / "pyproject.toml").is_file():
            config = find_config(src)
            app = load_app(config) if config is not None else None
        else:
            app = None
        report = src / "memtrim-report.json"
        if app is None and report.is_file():
            doc = json.loads(report.read_text(encoding="utf-8"))
            info = doc.get("app", {})
            orig_root = Path(info.get("root") or "")
            config = find_config(orig_root) if orig_root.is_dir() else None
            if config is not None:
                app = load_app(config).relocated(src)
            elif info.get("entry") or info.get("module"):
                script = src / Path(info["entry"]).relative_to(orig_root) if info.get(
                    "entry") else None
                app = App(root=src, script=script, module=info.get("module"))
    except (ConfigError, ValueError, OSError) as e:
        return str(e)
    if args.entry or args.module:
        from dataclasses import replace

        if args.entry and args.module:
            return "give either --entry or -m, not both"
        script = (src / args.entry).resolve() if args.entry else None
        if script is not None and not script.is_file():
            return f"entry script not found: {script}"
        if app is None:
            app = App(root=src, workloads=(Workload(name="default"),))
        app = replace(app, script=script, module=args.module)
    if app is None:
        return (f"{src}: no memtrim.toml, [tool.memtrim] or memtrim-report.json; "
                "give --entry SCRIPT or -m MODULE")
    return app


def cmd_bundle(args: argparse.Namespace) -> int:
    """``memtrim bundle``: 0 written and verified, 1 written but differs, 2 bad input."""
    from .bundle import BundleError, bundle
    from .devices import device, parse_size, verdict_line
    from .launcher import CANDIDATES, Decision, settings_chooser
    from .verify import VerificationError, record_oracle

    src = Path(args.source)
    if not src.is_dir():
        return _fail(f"{src}: not a directory")
    if args.repeat < 1:
        return _fail("--repeat must be at least 1")
    board = None
    if args.device:
        try:
            board = device(args.device)
        except ValueError as e:
            return _fail(str(e))
    reserve = parse_size(args.reserve) if args.reserve not in ("0", "") else 0
    if reserve is None:
        return _fail(f"--reserve {args.reserve!r} is not a size like 16MB")
    app = _resolve_app(args, src.resolve())
    if isinstance(app, str):
        return _fail(app)
    say = (lambda _m: None) if args.quiet else (lambda m: sys.stderr.write(f"memtrim: {m}\n"))

    oracle = None
    if app.workloads and (not args.no_verify or args.settings == "auto"):
        say("recording the input's behaviour on its workloads")
        try:
            oracle = record_oracle(app, python=args.python, repeat=1)
        except (VerificationError, OSError) as e:
            return _fail(f"the input cannot be verified against: {e}")

    settings: object = []
    if args.settings == "auto":
        if oracle is not None:
            # measured on the staged bundle, vendored packages and their bytecode included
            choose = settings_chooser(oracle, args.python, say=say,
                                      optimize_asserts=args.optimize_asserts,
                                      repeat=args.repeat, threshold_pct=args.threshold)

            def choose_or_none(staged, extra):
                try:
                    return choose(staged, extra)
                except Exception as e:  # measurement trouble: no settings, and say why
                    say(f"could not measure the launcher settings ({type(e).__name__}: {e}); "
                        "none are used")
                    return Decision([], [])

            settings = choose_or_none
        else:
            say("no workloads: the launcher uses no interpreter settings")
    elif args.settings != "none":
        by_name = {s.name: s for s in CANDIDATES}
        wanted = [n.strip() for n in args.settings.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            return _fail(f"unknown setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(by_name)}")
        settings = [by_name[n] for n in wanted]

    try:
        manifest = bundle(
            app.root, args.output, app=app, python=args.python, settings=settings,  # type: ignore[arg-type]
            zipapp=args.zipapp, pyc_only=args.pyc_only, vendor=args.vendor, oracle=oracle,
            verify=not args.no_verify and oracle is not None, force=args.force, say=say,
        )
    except BundleError as e:
        return _fail(str(e))

    if board is not None and oracle is not None:
        from dataclasses import replace

        from .measure.limits import enforced_fit

        decision = manifest.decision or {}
        base = (decision.get("baseline") or {}).get("peaks") or {}
        fin = (decision.get("final") or {}).get("peaks") or {}
        launcher = manifest.outdir / "run.sh"
        bundled = replace(app.relocated(manifest.outdir / "app"), script=launcher, module=None)
        say(f"running every workload with at most {board.ram_label} of memory ({board.name})")
        manifest.device = enforced_fit(
            board, app, bundled, python=args.python, optimized_python="/bin/sh",
            optimized_flags=[], optimized_env={"MEMTRIM_PYTHON": args.python},
            peak_original=max((v for v in base.values() if v), default=None),
            peak_optimized=max((v for v in fin.values() if v), default=None),
            reserve_bytes=reserve, oracle=oracle,
        )
        manifest.write()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(manifest.to_json(), indent=1) + "\n", encoding="utf-8")
    if not args.quiet:
        _summary(manifest, verdict_line)
    if manifest.verified is False:
        first = (manifest.verification.get("differences") or [{}])[0]
        return _fail(f"the bundle behaves differently from its input: workload "
                     f"{first.get('workload')!r}, {first.get('stream')} differs "
                     f"(see {manifest.outdir}/memtrim-manifest.json)", EXIT_DIFFERS)
    return EXIT_OK


def _summary(manifest, verdict_line) -> None:
    out = sys.stdout
    out.write(f"bundle: {manifest.outdir}\n")
    names = ", ".join(s.name for s in manifest.settings) or "none"
    out.write(f"  launcher: run.sh, settings: {names}\n")
    if manifest.decision:
        for v in manifest.decision["verdicts"]:
            out.write(f"    {'+' if v['kept'] else '-'} {v['setting']}: {v['reason']}\n")
    bc = manifest.bytecode
    out.write(f"  bytecode: {bc['pyc_files']} .pyc files for Python {bc['version']} "
              f"(levels {bc['levels']}{', sources removed' if manifest.pyc_only else ''})\n")
    deps = manifest.dependencies
    if deps:
        out.write("  the device must provide: " + ", ".join(
            f"{d.name} {d.version}" for d in deps) + "\n")
    if manifest.vendored:
        out.write("  vendored: " + ", ".join(f"{d.name} {d.version}" for d in manifest.vendored)
                  + "\n")
    z = manifest.zipapp
    if z.get("asked"):
        if not z.get("written"):
            out.write(f"  zipapp: {z.get('reason')}\n")
        else:
            state = {True: "identical on every workload", False: "written, but it DIFFERS "
                     "(see the manifest)", None: "not verified"}[z.get("verified")]
            out.write(f"  zipapp: {z['path']}: {state}\n")
    v = manifest.verification
    state = {True: "identical on every workload", False: "DIFFERS",
             None: v.get("why", "not verified")}[v.get("ok")]
    out.write(f"  verified with Python {manifest.interpreter['version']}: {state}\n")
    if manifest.device:
        out.write(f"  device: {verdict_line(manifest.device)}\n")
