"""``memtrim report``: the command-line half (the lead wires it into ``memtrim.cli``).

    memtrim report RUN_DIR_OR_JSON [-o report.html] [--markdown FILE|-] [--no-html]

Reads an optimize OUTDIR (its ``memtrim-report.json``) or any profile/optimize
JSON document; writes the self-contained HTML report and, on request, the
Markdown summary.  Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .html import HTML_NAME, ReportInputError, load_document

EXIT_OK, EXIT_USAGE = 0, 2


def add_report_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``sub`` (the CLI's subparsers) and return its parser."""
    p = sub.add_parser(
        "report",
        help="render a profile or optimize result as HTML (plots inline) and Markdown",
        description=(
            "Render the result of 'memtrim optimize' (its OUTDIR, or the JSON written with "
            "--json) or of 'memtrim profile --json' as one self-contained HTML page: memory "
            "over time, peak RSS and time per step, arenas and pools, the module cost tree, "
            "device fit, every edit with its evidence and diff hunk, the edits verification "
            "dropped and why, and energy where it was measured. The page has no script and "
            "fetches nothing. --markdown writes a short summary for CI logs and pull requests."
        ),
        epilog="exit status: 0 written; 2 bad input (missing file, not JSON, unknown schema)\n"
        "example: memtrim report build/app -o report.html --markdown -",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="RUN_DIR_OR_JSON",
                   help="an optimize OUTDIR (with memtrim-report.json) or a profile/optimize JSON")
    p.add_argument("-o", "--output", type=Path, metavar="HTML",
                   help=f"the HTML file (default: RUN_DIR/{HTML_NAME}, or the JSON's name with "
                   ".html)")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the Markdown summary to FILE ('-': standard output)")
    p.add_argument("--no-html", action="store_true", help="write only the Markdown summary")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return p


def _default_output(source: Path) -> Path:
    if source.is_dir():
        return source / HTML_NAME
    return source.with_suffix(".html")


def cmd_report(args: argparse.Namespace) -> int:
    """``memtrim report``: load, render, write; 0 on success, 2 on bad input."""
    source = Path(args.source)
    try:
        doc = load_document(source)
    except ReportInputError as e:
        sys.stderr.write(f"memtrim: error: {e}\n")
        return EXIT_USAGE
    if args.no_html and not args.markdown:
        sys.stderr.write("memtrim: error: --no-html needs --markdown\n")
        return EXIT_USAGE
    try:
        from .html import write_html
        from .markdown import render_markdown
    except ImportError as e:  # matplotlib/jinja2 are the `report` extra
        sys.stderr.write(f"memtrim: error: the report needs {e.name} "
                         "(pip install 'memtrim[report]')\n")
        return EXIT_USAGE
    written = []
    try:
        if not args.no_html:
            written.append(write_html(doc, args.output or _default_output(source)))
        if args.markdown == "-":
            sys.stdout.write(render_markdown(doc))
        elif args.markdown:
            md = Path(args.markdown)
            md.parent.mkdir(parents=True, exist_ok=True)
            md.write_text(render_markdown(doc), encoding="utf-8")
            written.append(md)
    except OSError as e:
        sys.stderr.write(f"memtrim: error: cannot write {e.filename}: {e.strerror}\n")
        return EXIT_USAGE
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        # A document of a known schema but a broken shape (hand-edited, truncated).
        sys.stderr.write(f"memtrim: error: {source} is not a well-formed {doc.get('schema')} "
                         f"document ({type(e).__name__}: {e})\n")
        return EXIT_USAGE
    if not args.quiet:
        # Messages to stderr so that `--markdown -` output stays clean on stdout.
        for path in written:
            sys.stderr.write(f"wrote {path}\n")
    return EXIT_OK
