"""The report's figures, drawn with matplotlib and returned as small inline SVG strings.

No pyplot: figures are built with ``matplotlib.figure.Figure`` on the SVG canvas,
so nothing here touches global backend state (the Agg/SVG canvases need no
display) and two reports can be drawn in one process.  The SVG is trimmed for
inlining in HTML: no XML prolog, no namespaces, no metadata, no unreferenced
ids, and the referenced ids prefixed per figure so that several figures can live
in one page.  Text stays text (``svg.fonttype: none``), which keeps files small
and lets the browser's font draw it.

Units: memory in MB (10^6 bytes, like the terminal report), time in seconds.
"""

from __future__ import annotations

import html
import io
import itertools
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
ORIGINAL = "#D55E00"
OPTIMIZED = "#0072B2"
FLOOR = "#555555"
PALETTE = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# Icicle colours: one hue per second-level import, light enough for black labels.
TREE_PALETTE = ("#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fdd0a2", "#c7e9c0", "#dadaeb",
                "#c6dbef", "#fee6ce", "#e5f5e0", "#fcbba1", "#f2f0b6")

MAX_POINTS = 200  # buckets per timeline: each keeps its min and max sample
MB = 1e6

_counter = itertools.count(1)
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "memtrim",  # deterministic ids, so the same data gives the same SVG
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "axes.axisbelow": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "path.simplify": True,
}


def reset_ids() -> None:
    """Number figures from 1 again: call once per page, so that a page renders byte-identically."""
    global _counter
    _counter = itertools.count(1)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(fig)
    return fig


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context(_RC)


def to_svg(fig: Any, titles: Mapping[str, str] | None = None) -> str:
    """Serialize ``fig`` as SVG trimmed for inlining in HTML.

    ``titles`` maps an artist gid (``artist.set_gid``) to tooltip text, added as an
    SVG ``<title>`` so that hovering a bar or a module shows its figures.
    """
    buf = io.StringIO()
    with _rc():
        fig.savefig(buf, format="svg",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # Inline SVG in HTML needs no namespace declarations; dropping them also keeps the
    # page free of any http(s) URI, which makes "no network reference" easy to check.
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r"\n\s*", "\n", text)
    text = text.replace(" \nL ", " L ").replace(" \nz\n", " z")
    referenced = set(re.findall(r'(?:href="#|url\(#)([^")]+)', text))
    gids = set(titles or ())
    prefix = f"f{next(_counter)}-"

    def fix_id(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in referenced or name in gids:
            return f' id="{prefix}{name}"'
        return ""

    text = re.sub(r'\s+id="([^"]*)"', fix_id, text)
    text = re.sub(r'(href="#|url\(#)([^")]+)', lambda m: m.group(1) + prefix + m.group(2), text)
    for gid, title in (titles or {}).items():
        text = text.replace(f'<g id="{prefix}{gid}">',
                            f'<g id="{prefix}{gid}"><title>{html.escape(title)}</title>', 1)
    # Scale with the page: the viewBox keeps the aspect ratio, CSS sets the width.
    text = re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg class="plot" role="img"', text,
                  count=1)
    return text


def downsample(samples: Sequence[Sequence[float]], buckets: int = MAX_POINTS) -> list[tuple]:
    """At most ``2 * buckets`` ``(t, value)`` points that keep every bucket's min and max.

    A plain stride would drop the peak; keeping each bucket's extremes (in time
    order) preserves the peak and the shape of the curve.
    """
    pts = [(float(s[0]), float(s[1])) for s in samples if s[1] is not None]
    if len(pts) <= 2 * buckets:
        return pts
    out: list[tuple] = []
    size = len(pts) / buckets
    for b in range(buckets):
        chunk = pts[int(b * size): int((b + 1) * size)]
        if not chunk:
            continue
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def timeline_svg(
    panels: Mapping[str, Sequence[tuple[str, Sequence[Sequence[float]]]]],
    floor: float | None = None,
) -> str:
    """RSS over time, one panel per workload, the original and optimized runs on the same axes.

    ``panels`` maps a workload name to ``[(label, samples)]`` where samples are
    ``(t seconds, rss bytes, ...)`` rows; the first series is drawn as the original.
    """
    names = list(panels)
    with _rc():
        fig = _figure(7.0, 0.6 + 2.1 * len(names))
        axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
        for ax, name in zip(axes, names, strict=True):
            top = 0.0
            for i, (label, samples) in enumerate(panels[name]):
                pts = downsample(samples)
                if not pts:
                    continue
                colour = ORIGINAL if i == 0 else (OPTIMIZED if i == len(panels[name]) - 1
                                                  else PALETTE[2 + i % 4])
                xs = [p[0] for p in pts]
                ys = [p[1] / MB for p in pts]
                peak = max(ys)
                top = max(top, peak)
                ax.plot(xs, ys, color=colour, linewidth=1.4, drawstyle="steps-post",
                        label=f"{label} (peak {peak:.1f} MB)")
                if i == 0:
                    ax.fill_between(xs, ys, step="post", color=colour, alpha=0.08, linewidth=0)
            if floor:
                ax.axhline(floor / MB, color=FLOOR, linestyle="--", linewidth=0.9,
                           label=f"bare interpreter ({floor / MB:.1f} MB)")
            ax.set_ylim(0, max(top, (floor or 0) / MB) * 1.12 or 1)
            ax.set_xlim(left=0)
            ax.set_title(name, loc="left", fontsize=9, fontweight="bold")
            ax.set_ylabel("RSS (MB)")
            ax.legend(loc="lower right", fontsize=8)
        axes[-1].set_xlabel("time since start (s)")
        return to_svg(fig)


def step_bars_svg(
    programs: Sequence[str],
    values: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    unit_scale: float = 1.0,
    value_format: str = "{:.1f}",
    floor: float | None = None,
    floor_label: str = "bare interpreter",
    not_kept: Sequence[bool] = (),
) -> str:
    """Grouped bars: one group per program (original, each step), one bar per workload.

    ``values`` maps a workload to one value per program (None: not measured,
    drawn as a small grey "n/m").  Values are divided by ``unit_scale``.
    Programs flagged in ``not_kept`` (a step measured, then rejected) are hatched
    and pale.
    """
    from matplotlib.patches import Patch

    workloads = list(values)
    n = max(len(workloads), 1)
    width = 0.8 / n
    titles: dict[str, str] = {}
    with _rc():
        fig = _figure(7.0, 2.9)
        ax = fig.add_subplot()
        top = 0.0
        for wi, w in enumerate(workloads):
            colour = PALETTE[(wi + 1) % len(PALETTE)] if n > 1 else OPTIMIZED
            for pi, raw in enumerate(values[w]):
                x = pi - 0.4 + width * (wi + 0.5)
                if raw is None:
                    ax.text(x, 0, "n/m", ha="center", va="bottom", fontsize=7, color="#888888")
                    continue
                v = raw / unit_scale
                top = max(top, v)
                rejected = pi < len(not_kept) and not_kept[pi]
                bar = ax.bar(x, v, width=width * 0.92, color=colour,
                             alpha=0.35 if rejected else 1.0, hatch="//" if rejected else None,
                             edgecolor="white" if rejected else None)[0]
                gid = f"bar{wi}-{pi}"
                bar.set_gid(gid)
                titles[gid] = (f"{w} / {programs[pi]}: {value_format.format(v)}"
                               + (" (step not kept)" if rejected else ""))
                ax.text(x, v, value_format.format(v), ha="center", va="bottom", fontsize=7)
        handles = [Patch(color=PALETTE[(wi + 1) % len(PALETTE)] if n > 1 else OPTIMIZED, label=w)
                   for wi, w in enumerate(workloads)]
        if floor:
            f = floor / unit_scale
            line = ax.axhline(f, color=FLOOR, linestyle="--", linewidth=1.0,
                              label=f"{floor_label} ({value_format.format(f)})")
            handles.append(line)
            top = max(top, f)
        ax.set_ylim(0, top * 1.18 or 1)
        # at least two slots wide, so that a lone bar is not a wall of colour
        ax.set_xlim(-0.6, max(len(programs), 2) - 0.4)
        labels = [_wrap(p) + ("\n(not kept)" if i < len(not_kept) and not_kept[i] else "")
                  for i, p in enumerate(programs)]
        ax.set_xticks(range(len(programs)), labels, fontsize=8)
        ax.set_ylabel(ylabel)
        if len(handles) > 1:
            ax.legend(handles=handles, loc="upper right", fontsize=8, ncols=min(len(handles), 3))
        return to_svg(fig, titles)


def _wrap(label: str, width: int = 14) -> str:
    # Step names like "static-removal" break at their hyphens in narrow bars.
    if len(label) <= width:
        return label
    return label.replace("-", "-\n", 1)


def icicle_svg(
    tree: Sequence[Mapping[str, Any]],
    *,
    title: str,
    scale_total: float | None = None,
    max_depth: int = 6,
    min_fraction: float = 0.004,
) -> str:
    """The import tree as an icicle: width is a module's cumulative RSS, depth its import depth.

    Nodes are ``{module, cum_rss, self_rss, children}`` as in the profile's
    ``imports.tree``.  Negative or inconsistent costs (RSS is page-granular and a
    child can be measured larger than its parent) are clamped for the layout
    only; tooltips show the measured figures.  ``scale_total`` fixes the x-axis
    (bytes) so that a before/after pair is drawn to the same scale.
    """
    from matplotlib.patches import Rectangle

    widths = layout_widths(tree)
    roots = [n for n in tree if widths[id(n)] > 0]
    total = float(sum(widths[id(n)] for n in roots))
    full = float(scale_total or total or 1)
    rects: list[tuple[float, float, int, Mapping[str, Any], int]] = []

    def place(nodes: Sequence[Mapping[str, Any]], x0: float, depth: int, hue: int) -> None:
        x = x0
        for node in nodes:
            w = widths[id(node)]
            if w / full >= min_fraction and depth < max_depth:
                # Top-level imports are grey; each module they import directly gets a hue
                # that its own imports share: one application package at the root is the
                # common case, and its subtrees are what the reader compares.  The hue
                # comes from the name, so a module keeps its colour from before to after.
                name = str(node.get("module"))
                h = -1 if depth == 0 else (zlib.crc32(name.encode()) if depth == 1 else hue)
                rects.append((x, w, depth, node, h))
                place(node.get("children") or [], x, depth + 1, h)
            x += w

    place(roots, 0.0, 0, -1)
    depth = max((r[2] for r in rects), default=0) + 1
    titles: dict[str, str] = {}
    fig_w = 7.0
    with _rc():
        fig = _figure(fig_w, 0.55 + 0.32 * depth)
        ax = fig.add_subplot()
        for k, (x, w, d, node, hue) in enumerate(rects):
            colour = "#d9d9d9" if hue < 0 else TREE_PALETTE[hue % len(TREE_PALETTE)]
            rect = Rectangle((x / MB, d), w / MB, 0.94, facecolor=colour, edgecolor="white",
                             linewidth=0.5)
            gid = f"node{k}"
            rect.set_gid(gid)
            ax.add_patch(rect)
            titles[gid] = (f"{node['module']}: cumulative {_mb(node.get('cum_rss'))}, "
                           f"self {_mb(node.get('self_rss'))}"
                           + ("" if node.get("ok", True) else " (import failed)"))
            # ~0.075 inch per character at 7 pt: label only where the name fits.
            chars = int((w / full) * fig_w / 0.075)
            if chars >= 4:
                label = f"{node['module']} {_mb(node.get('cum_rss'))}"
                if len(label) > chars:
                    label = node["module"][: max(chars - 1, 3)] + "…"
                ax.text((x + w / 2) / MB, d + 0.47, label, ha="center", va="center", fontsize=7,
                        clip_on=True)
        ax.set_xlim(0, full / MB)
        ax.set_ylim(depth, 0)
        ax.set_yticks([i + 0.47 for i in range(depth)], [str(i) for i in range(depth)])
        ax.set_ylabel("import depth")
        ax.set_xlabel("cumulative RSS (MB)")
        ax.grid(False)
        ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
        return to_svg(fig, titles)


def layout_widths(tree: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """Icicle widths in bytes, keyed by ``id(node)``: a node is at least as wide as its children.

    A measured cumulative cost can be smaller than the children's sum, even
    negative (RSS moves in pages, a module can free what its importer allocated,
    a failed import confuses the nesting); for the drawing each node gets
    ``max(cum_rss, 0, sum of its children's widths)``, so the picture stays a tree.
    """
    out: dict[int, float] = {}

    def width(node: Mapping[str, Any]) -> float:
        kids = sum(width(c) for c in node.get("children") or [])
        w = max(float(node.get("cum_rss") or 0), 0.0, kids)
        out[id(node)] = w
        return w

    for n in tree:
        width(n)
    return out


def arenas_svg(panels: Mapping[str, Sequence[tuple[str, Sequence[Sequence[float]]]]]) -> str:
    """pymalloc arenas in use over time, original and optimized, one panel per workload.

    Samples are ``(t seconds, arenas, pools, bytes)`` rows as in the profile's
    ``arenas.samples``.
    """
    names = list(panels)
    with _rc():
        fig = _figure(7.0, 0.5 + 1.7 * len(names))
        axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
        for ax, name in zip(axes, names, strict=True):
            for i, (label, samples) in enumerate(panels[name]):
                pts = downsample([(s[0], s[1]) for s in samples])
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], drawstyle="steps-post",
                            color=ORIGINAL if i == 0 else OPTIMIZED, linewidth=1.3, label=label)
            ax.set_ylim(bottom=0)
            ax.set_xlim(left=0)
            ax.set_title(name, loc="left", fontsize=9, fontweight="bold")
            ax.set_ylabel("arenas")
            ax.legend(loc="lower right", fontsize=8)
        axes[-1].set_xlabel("time since start (s)")
        return to_svg(fig)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:.2f} MB"
