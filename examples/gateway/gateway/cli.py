"""Command line: read, validate, aggregate, alert, run the configured commands, save state.

Exit status: 0 when every record was accepted, 2 when some were rejected (the
outputs are still complete; ``rejected.csv`` lists them), 1 on a configuration
or state error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import net
from .aggregate import aggregate
from .alerts import AlertEngine, AlertSink
from .commands import Commands, RunContext, UnknownCommand
from .config import ConfigError, load_config
from .logsetup import close_logging, setup_logging
from .readers import read_csv, read_jsonl
from .state import load_state, save_state
from .validate import Validator

log = logging.getLogger("gateway.cli")

# Shipped files are found next to the package, so that an optimized copy of the
# app uses its own copy of them.
DATA = Path(__file__).resolve().parent.parent / "data"

EXIT_OK, EXIT_FATAL, EXIT_REJECTED = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command-line options."""
    ap = argparse.ArgumentParser(prog="gateway", description="edge sensor gateway")
    ap.add_argument("--config", type=Path, default=DATA / "config.json")
    ap.add_argument("--csv", type=Path, action="append", default=[],
                    help="CSV readings (repeatable)")
    ap.add_argument("--jsonl", type=Path, action="append", default=[],
                    help="JSON Lines readings (repeatable)")
    ap.add_argument("--state", type=Path, default=DATA / "initial_state.pkl",
                    help="state to start from (default: the shipped initial state)")
    ap.add_argument("--out-dir", type=Path, default=Path("."))
    ap.add_argument("--save-state", default="state.pkl", help="file name in --out-dir")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the gateway once; return the exit status."""
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return EXIT_FATAL
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out / "gateway.log", cfg.log_level)
    log.info("site %s, config %s, window %d s", cfg.site, args.config.name, cfg.window_seconds)
    try:
        return _run(args, cfg, out)
    finally:
        close_logging()


def _run(args: argparse.Namespace, cfg, out: Path) -> int:
    try:
        state = load_state(args.state)
    except (TypeError, EOFError, ImportError, AttributeError) as e:
        # A state file that does not unpickle (truncated, or its classes moved).
        log.error("cannot load state: %s", e)
        print(f"gateway: cannot load state: {e}", file=sys.stderr)
        return EXIT_FATAL

    raws = []
    for path in args.csv:
        raws.extend(read_csv(path))
    for path in args.jsonl:
        raws.extend(read_jsonl(path))
    log.info("read %d records from %d file(s)", len(raws), len(args.csv) + len(args.jsonl))

    accepted, rejected = Validator(cfg).run(raws)
    # Files arrive in any order; every result below depends only on the readings.
    accepted.sort(key=lambda r: (r.ts, r.sensor))
    log.info("accepted %d, rejected %d", len(accepted), len(rejected))

    windows = aggregate(accepted, cfg.window_seconds, keep_values=cfg.percentiles)
    sink = AlertSink(out / "alerts.log")
    try:
        AlertEngine(cfg.alerts, sink).process(accepted, state)
    finally:
        sink.close()

    state.runs += 1
    state.rejected_total += len(rejected)
    ctx = RunContext(cfg, out, accepted, rejected, windows, state, dict(sink.counts))
    commands = Commands(ctx)
    for name in cfg.commands:
        try:
            commands.dispatch(name)
        except UnknownCommand:
            log.error("unknown command %r in config", name)
    save_state(state, out / args.save_state)

    if cfg.upload_url:
        net.upload_summary(cfg.upload_url, {"site": cfg.site, "accepted": len(accepted),
                                            "rejected": len(rejected)})
    if rejected:
        print(f"{len(rejected)} record(s) rejected, see rejected.csv")
        return EXIT_REJECTED
    return EXIT_OK
