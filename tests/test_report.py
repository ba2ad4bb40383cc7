"""``memtrim report``: HTML and Markdown rendered from stored runs, the board table, the CLI.

The stored runs in ``tests/fixtures/reports`` are small real documents (see
docs/report.md for how each was made).  Expected figures are computed here from
the fixture's raw numbers, not with the renderer's own helpers, so that a
formatting or selection bug shows up as a failure.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from memtrim import devices  # noqa: E402
from memtrim.report import plots  # noqa: E402
from memtrim.report.cli_report import add_report_parser, cmd_report  # noqa: E402
from memtrim.report.html import (  # noqa: E402
    HTML_NAME,
    MARKDOWN_NAME,
    RUN_REPORT,
    ReportInputError,
    build_view,
    load_document,
    parse_diff,
    render_html,
    write_run_reports,
)
from memtrim.report.markdown import render_markdown  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
OPTIMIZE = FIXTURES / "optimize-gateway.json"
BIOMED = FIXTURES / "optimize-biomed.json"  # written by the pipeline itself
PROFILE = FIXTURES / "profile-nbody.json"
MIB = 1024 * 1024


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _pct(before: float, after: float) -> str:
    return f"{100 * (after - before) / before:+.1f}%".replace("-", "\u2212")


_INLINE = re.compile(r"</?(?:strong|em|code|span|a|small|sup|sub)\b[^>]*>")


def _text(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces collapsed."""
    page = re.sub(r"<style.*?</style>|<svg.*?</svg>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", _INLINE.sub("", page))  # block tags separate words
    return re.sub(r"\s+", " ", html.unescape(page))


def _section(page: str, ident: str) -> str:
    m = re.search(rf'<section id="{ident}">(.*?)</section>', page, flags=re.S)
    assert m, f"no section {ident}"
    return m.group(1)


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="memtrim")
    add_report_parser(parser.add_subparsers(dest="command"))
    return cmd_report(parser.parse_args(["report", *argv]))


@pytest.fixture(scope="module")
def opt_doc() -> dict:
    return _load(OPTIMIZE)


@pytest.fixture(scope="module")
def opt_html(opt_doc) -> str:
    return render_html(opt_doc)


@pytest.fixture(scope="module")
def prof_doc() -> dict:
    return _load(PROFILE)


@pytest.fixture(scope="module")
def prof_html(prof_doc) -> str:
    return render_html(prof_doc)


# --------------------------------------------------------------------------- input


def test_load_accepts_a_run_dir_and_a_json_file(tmp_path):
    shutil.copy(OPTIMIZE, tmp_path / RUN_REPORT)
    assert load_document(tmp_path)["schema"] == "memtrim.optimize/1"
    assert load_document(PROFILE)["schema"] == "memtrim.profile/1"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.json", "no such file"),
        (lambda d: d, f"without {RUN_REPORT}"),
        (lambda d: (d / "x.json").write_text("{not json") and d / "x.json", "is not JSON"),
        (lambda d: (d / "x.json").write_text("[1, 2]") and d / "x.json", "not a memtrim document"),
        (lambda d: (d / "x.json").write_text('{"schema": "memtrim.bench/9"}') and d / "x.json",
         "memtrim.bench/9"),
        (lambda d: (d / "x.json").write_text('{"a": 1}') and d / "x.json", "no 'schema' field"),
        (lambda d: (d / "x.json").write_bytes(b"\xff\xfe\x00") and d / "x.json", "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    path = make(tmp_path)
    with pytest.raises(ReportInputError, match=re.escape(message)):
        load_document(path)
    assert _run_cli(str(path), "-o", str(tmp_path / "out.html")) == 2
    err = capsys.readouterr().err
    assert err.startswith("memtrim: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.html").exists()


def test_broken_shape_of_a_known_schema_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "memtrim.optimize/1", "steps": [{"kept": 5}]}))
    assert _run_cli(str(bad)) == 2
    err = capsys.readouterr().err
    assert err.startswith("memtrim: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_as_a_subprocess_prints_no_traceback(tmp_path):
    code = ("import argparse, sys\n"
            "from memtrim.report.cli_report import add_report_parser, cmd_report\n"
            "p = argparse.ArgumentParser(); add_report_parser(p.add_subparsers())\n"
            "sys.exit(cmd_report(p.parse_args(sys.argv[1:])))\n")
    r = subprocess.run([sys.executable, "-c", code, "report", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_cli_writes_html_into_the_run_dir_and_markdown_to_stdout(tmp_path, capsys):
    shutil.copy(OPTIMIZE, tmp_path / RUN_REPORT)
    assert _run_cli(str(tmp_path), "--markdown", "-") == 0
    out, err = capsys.readouterr()
    assert (tmp_path / HTML_NAME).read_text().startswith("<!DOCTYPE html>")
    assert out.startswith("## memtrim optimize report") and f"wrote {tmp_path / HTML_NAME}" in err


def test_cli_default_output_next_to_json_and_explicit_paths(tmp_path, capsys):
    src = tmp_path / "p.json"
    shutil.copy(PROFILE, src)
    assert _run_cli(str(src)) == 0
    assert (tmp_path / "p.html").exists()
    assert capsys.readouterr().err == f"wrote {tmp_path / 'p.html'}\n"
    assert _run_cli(str(src), "-o", str(tmp_path / "sub" / "r.html"), "--markdown",
                    str(tmp_path / "sub" / "r.md"), "-q") == 0
    assert (tmp_path / "sub" / "r.html").exists()
    assert (tmp_path / "sub" / "r.md").read_text().startswith("## memtrim profile report")
    assert capsys.readouterr().err == ""
    assert _run_cli(str(src), "--no-html") == 2


def test_write_run_reports_for_optimize(tmp_path, opt_doc):
    paths = write_run_reports(opt_doc, tmp_path)
    assert [p.name for p in paths] == [HTML_NAME, MARKDOWN_NAME]
    assert all(p.stat().st_size > 0 for p in paths)


# --------------------------------------------------------------------------- HTML: optimize


def test_html_is_self_contained(opt_html, prof_html):
    for page in (opt_html, prof_html):
        assert "http://" not in page and "https://" not in page
        assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
        assert not re.search(r"\b(src|srcset)\s*=", page, re.I)
        assert "@import" not in page
        assert not re.search(r"url\((?!#)", page)  # only same-document SVG references
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert hrefs and all(h.startswith("#") for h in hrefs), [
            h for h in hrefs if not h.startswith("#")]


def test_rendering_is_deterministic(opt_doc, opt_html):
    assert render_html(opt_doc) == opt_html


def test_every_link_and_svg_reference_has_its_target_and_ids_are_unique(opt_html):
    ids = re.findall(r'\sid="([^"]+)"', opt_html)
    assert len(ids) == len(set(ids)), "duplicate ids"
    targets = re.findall(r'(?:href="#|url\(#)([^")]+)', opt_html)
    missing = sorted({t for t in targets if t not in set(ids)})
    assert not missing, missing


def test_optimize_report_headline_figures(opt_doc, opt_html):
    text = _text(_section(opt_html, "summary"))
    for name in ("normal", "malformed"):
        before = opt_doc["baseline"][name]["peak_rss"]
        after = opt_doc["steps"][-1]["measurements"][name]["peak_rss"]
        m = re.search(rf"{name} (\S+ MB) (\S+ MB) (\S+%)", text)
        assert m, text
        assert m.groups() == (_mb(before), _mb(after), _pct(before, after))
    assert f"Bare interpreter: {_mb(opt_doc['floor_peak_rss'])}" in text


def test_optimize_report_sections_and_plots(opt_html):
    for title in ("Summary", "Memory over time", "Per step", "Workloads", "Arenas and pools",
                  "Module cost tree", "Device fit", "Edits", "Diff", "Energy"):
        assert f"<h2>{title}</h2>" in opt_html
    # the timeline, two per-step bar charts, the arena timeline, two icicles
    for ident in ("timeline", "steps", "arenas"):
        assert '<svg class="plot"' in _section(opt_html, ident), ident
    assert _section(opt_html, "modules").count('<svg class="plot"') == 2
    timeline = _section(opt_html, "timeline")
    assert "optimized (after lazy-imports)" in timeline and "bare interpreter" in timeline
    for svg in re.findall(r"<svg.*?</svg>", opt_html, flags=re.S):
        assert len(svg) < 200_000  # downsampled, text as text
    assert len(opt_html) < 1_000_000


def test_per_step_table_has_every_step(opt_doc, opt_html):
    rows = re.findall(r"<tr><td>([\w-]+)</td>", _section(opt_html, "steps"))
    assert rows == ["original", *[s["name"] for s in opt_doc["steps"]]]
    text = _text(_section(opt_html, "steps"))
    first = opt_doc["steps"][0]
    assert f"{len(first['kept'])} / {first['proposed']}" in text


def test_arenas_table_and_unavailable_reason(opt_doc, opt_html):
    text = _text(_section(opt_html, "arenas"))
    before = opt_doc["arenas"]["normal"]["arenas_avg"]
    after = opt_doc["steps"][-1]["arenas"]["normal"]["arenas_avg"]
    assert f"normal {before:.1f} {after:.1f} {_pct(before, after)}" in text
    # the malformed workload exits 2, so the profile made no arena run: said, not hidden
    assert "malformed original: unavailable: profile stops at a non-zero exit" in text
    assert "1024 KiB" in text and "256 KiB" in text


def test_module_tree_shows_costs_and_modules_no_longer_imported(opt_html):
    sec = _section(opt_html, "modules")
    text = _text(sec)
    assert "workload normal" in text
    gone = _text(sec.split("No longer imported")[1])
    for module in ("smtplib", "ssl", "_hashlib"):  # lazy smtplib and http.client took these
        assert re.search(rf"\b{module} \d+\.\d\d MB", gone), module
    assert "http.client" in text
    # tooltips carry self and cumulative bytes of each block
    assert re.search(r"<title>[\w.]+: cumulative -?\d+\.\d\d MB, self -?\d+\.\d\d MB", sec)


def test_device_fit_computed_from_the_peaks(opt_doc, opt_html):
    text = _text(_section(opt_html, "devices"))
    assert "Computed by the report" in text
    peak = max(m["peak_rss"] for m in opt_doc["steps"][-1]["measurements"].values())
    head = (32 * MIB - peak) / 1e6
    assert f"RT5350F-OLinuXino 32 MB ✓ fits ✓ fits +{head:.1f} MB" in text
    assert re.search(r"BeagleBone Black\*? 256 MB", text)


@pytest.mark.parametrize("fixture", [OPTIMIZE, BIOMED], ids=["gateway", "biomed"])
def test_every_kept_edit_links_to_its_hunk(fixture):
    doc = _load(fixture)
    page = render_html(doc)
    files = parse_diff(doc["diff"])
    headers = {h["anchor"]: (f["path"], h["header"]) for f in files for h in f["hunks"]}
    sec = _section(page, "edits")
    links = dict(re.findall(r'<tr id="(edit-[^"]+)">.*?href="#(diff-[^"]+)"', sec, flags=re.S))
    kept = [e for s in doc["steps"] for e in s["kept"]]
    assert len(links) == len(kept)
    for e in kept:
        path, header = headers[links["edit-" + re.sub(r"[^A-Za-z0-9_-]+", "-", e["id"])]]
        assert path == e["path"]
        start, length = map(int, re.match(r"@@ -(\d+),(\d+)", header).groups())
        assert start <= e["line"] < start + length, (e, header)


def test_pipeline_report_renders_with_final_and_dependencies():
    doc = _load(BIOMED)
    page = render_html(doc)
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    assert all(t in ids for t in re.findall(r'href="#([^"]+)"', page))
    text = _text(_section(page, "summary"))
    for name, m in doc["final"].items():
        assert f"{name} {_mb(doc['baseline'][name]['peak_rss'])} {_mb(m['peak_rss'])}" in text
    # an edit that only other removed code referred to links the edits it depends on
    dep = next(e for e in doc["steps"][0]["kept"] if e["evidence"].get("depends_on"))
    target = "edit-" + re.sub(r"[^A-Za-z0-9_-]+", "-", dep["evidence"]["depends_on"][0])
    assert f'href="#{target}"' in _section(page, "edits")
    assert doc["steps"][0]["description"] in _text(_section(page, "steps"))
    assert "No longer imported" not in page and "Not measured" in _section(page, "modules")


def test_edits_grouped_by_pass_with_evidence(opt_html):
    sec = _section(opt_html, "edits")
    assert re.findall(r"<h3 [^>]*>([\w-]+) ", sec) == ["static-removal", "lazy-imports"]
    text = _text(sec)
    assert "static-removal (3 kept, 1 dropped)" in text
    assert "used_in: [\"post_json\"]" in text and "duplicate_of: gateway/util.py:7" in text


def test_dropped_edit_shows_the_verification_failure(opt_doc, opt_html):
    dropped = opt_doc["steps"][0]["dropped"][0]
    text = _text(_section(opt_html, "edits"))
    assert f"dropped {dropped['edit']['kind']} {dropped['edit']['path']}:101" in text
    assert dropped["reason"] in text
    for d in dropped["differences"]:
        assert f"workload {d['workload']}, {d['stream']}" in text
    assert "+<asctime> ERROR gateway.cli: unknown command 'top_sensors' in config" in text


def test_diff_hunks_are_rendered_with_their_lines(opt_doc, opt_html):
    sec = _section(opt_html, "diff")
    assert '<span class="del">-import smtplib</span>' in sec
    assert '<span class="add">+    import http.client</span>' in sec
    assert len(re.findall(r'<pre class="diff"', sec)) == sum(
        1 for line in opt_doc["diff"].splitlines() if line.startswith("@@"))


def test_energy_unavailable_with_reason(opt_doc, opt_html):
    text = _text(_section(opt_html, "energy"))
    reason = opt_doc["energy"]["normal"]["reason"]
    assert f"normal unavailable: {reason}" in text


# --------------------------------------------------------------------------- optional sections


def test_absent_sections_say_not_measured(opt_doc):
    doc = copy.deepcopy(opt_doc)
    for key in ("timeline", "arenas", "imports", "energy", "baseline", "floor_peak_rss"):
        doc.pop(key)
    for step in doc["steps"]:
        for key in ("timeline", "arenas", "imports", "energy", "measurements", "gain"):
            step.pop(key, None)
    page = render_html(doc)
    for ident in ("timeline", "steps", "modules", "devices", "arenas"):
        assert "Not measured" in _section(page, ident), ident
    assert "unavailable: energy was not measured in this run" in _section(page, "energy")
    assert "<svg" not in page
    md = render_markdown(doc)
    assert "not measured" in md and "unavailable: energy was not measured" in md


@pytest.mark.parametrize("schema", ["memtrim.optimize/1", "memtrim.profile/1"])
def test_a_nearly_empty_document_still_renders(schema):
    page = render_html({"schema": schema})
    assert "Not measured" in page and "</html>" in page
    assert render_markdown({"schema": schema}).startswith("## memtrim")


def test_future_sections_device_and_energy_are_read(opt_doc):
    doc = copy.deepcopy(opt_doc)
    doc["device"] = devices.device_fit(300 * MIB, 100 * MIB, [devices.device("giant"),
                                                              devices.device("48MB")])
    doc["energy"] = {"normal": {"available": True, "joules": {"median": 12.5},
                                "scope": "whole machine"}}
    doc["steps"][-1]["energy"] = {"normal": {"available": True, "joules": {"median": 10.0},
                                             "scope": "whole machine"}}
    page = render_html(doc)
    text = _text(_section(page, "devices"))
    assert "Computed by the report" not in text
    assert "Giant Board 128 MB ✗ too big ✓ fits +29.4 MB" in text
    short = (100 * MIB - 48 * MIB) / 1e6
    assert f"48 MB budget 48 MB ✗ too big ✗ too big \u2212{short:.1f} MB" in text
    energy = _text(_section(page, "energy"))
    assert "normal 12.50 J 10.00 J −20.0%" in energy
    assert "Scope: whole machine" in energy
    assert "malformed unavailable: energy was not measured" in energy


def test_sections_inside_measurements_are_read_too(opt_doc):
    doc = copy.deepcopy(opt_doc)
    timeline = doc.pop("timeline")
    for name, tl in timeline.items():
        doc["baseline"][name]["timeline"] = tl
    view = build_view(doc)
    assert set(view["programs"][0]["timeline"]) == {"normal", "malformed"}
    assert "original (peak" in _section(render_html(doc), "timeline")


def test_a_step_not_kept_is_shown_but_not_taken_as_the_result(opt_doc):
    doc = copy.deepcopy(opt_doc)
    last = doc["steps"][-1]
    last["kept_step"] = False
    last["why_not_kept"] = "best peak-RSS reduction 0.40% is below lambda = 1.0%"
    page = render_html(doc)
    summary = _text(_section(page, "summary"))
    kept = doc["steps"][0]["measurements"]["normal"]["peak_rss"]
    rejected = last["measurements"]["normal"]["peak_rss"]
    assert f"normal {_mb(doc['baseline']['normal']['peak_rss'])} {_mb(kept)}" in summary
    assert "lazy-imports not kept" in _text(_section(page, "steps"))
    assert "Hatched bars" in _section(page, "steps")
    edits = _section(page, "edits")
    assert "step not kept: best peak-RSS reduction 0.40% is below lambda = 1.0%" in _text(edits)
    lazy = edits.split("lazy-imports")[1]
    assert 'href="#' not in lazy  # its edits are not in the result's diff
    # the timeline's "optimized" is the last kept step's
    assert "after lazy-imports" not in _section(page, "timeline")
    assert f"{_mb(rejected)} (" in _text(_section(page, "steps"))
    assert "| lazy-imports (not kept) |" in render_markdown(doc)


def test_final_measurements_win_when_present(opt_doc):
    doc = copy.deepcopy(opt_doc)
    doc["final"] = {w: dict(m, peak_rss=12_345_678) for w, m in doc["baseline"].items()}
    summary = _text(_section(render_html(doc), "summary"))
    assert f"normal {_mb(doc['baseline']['normal']['peak_rss'])} 12.3 MB" in summary


def test_specialize_mode_is_loud(opt_doc):
    doc = dict(opt_doc, mode="specialize")
    assert "specialize mode." in render_html(doc)
    assert "**specialize mode**" in render_markdown(doc)
    assert "specialize mode" not in render_html(opt_doc)


def test_user_text_is_escaped(opt_doc):
    doc = copy.deepcopy(opt_doc)
    doc["steps"][0]["kept"][0]["reason"] = "<script>alert(1)</script>"
    page = render_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page


# --------------------------------------------------------------------------- HTML: profile


def test_profile_report_content(prof_doc, prof_html):
    text = _text(prof_html)
    name = "bm_nbody/run_benchmark.py"
    peak = prof_doc["headline"]["peak_rss"]["median"]
    floor = prof_doc["floor"]["peak_rss"]["median"]
    assert f"memtrim profile report: {name}" in text
    assert f"{name} {_mb(peak)} {_mb(peak - floor)}" in _text(_section(prof_html, "summary"))
    assert f"{prof_doc['arenas']['arenas_avg']:.1f}" in _text(_section(prof_html, "arenas"))
    top = prof_doc["allocations"]["top_lines"][0]
    assert f"{top['file']}:{top['line']}" in _text(_section(prof_html, "allocations"))
    assert "a profile measures the original program only" in text.lower()
    assert "unavailable: no energy sensor readable" in _text(_section(prof_html, "energy"))
    assert '<svg class="plot"' in _section(prof_html, "timeline")
    assert "<h2>Edits</h2>" not in prof_html


def test_profile_sections_marked_unavailable_say_why(prof_doc):
    doc = copy.deepcopy(prof_doc)
    doc["allocations"] = {"available": False, "reason": "skipped (--no-tracemalloc)"}
    doc["imports"] = {"available": False, "reason": "skipped (--no-imports)"}
    page = render_html(doc)
    assert "Unavailable: skipped (--no-tracemalloc)" in _text(_section(page, "allocations"))
    assert "Unavailable: skipped (--no-imports)" in _text(_section(page, "modules"))


# --------------------------------------------------------------------------- Markdown


def test_markdown_tables(opt_doc):
    md = render_markdown(opt_doc)
    lines = md.splitlines()
    assert "| workload | peak RSS original | optimized | change | wall original | optimized | " \
           "change |" in lines
    for name in ("normal", "malformed"):
        before = opt_doc["baseline"][name]["peak_rss"]
        after = opt_doc["steps"][-1]["measurements"][name]["peak_rss"]
        row = f"| {name} | {_mb(before)} | {_mb(after)} | {_pct(before, after)} |"
        assert any(line.startswith(row) for line in lines), row
    steps = [line.split(" | ")[0] for line in lines if line.startswith("| ")]
    assert "| static-removal" in steps and "| lazy-imports" in steps
    assert "| BeagleBone Black | 256 MB | yes | yes |" in md
    for line in lines:  # a table row has as many cells as its header
        if line.startswith("|"):
            assert line.endswith("|")


def test_markdown_dropped_edits_and_energy(opt_doc):
    md = render_markdown(opt_doc)
    dropped = opt_doc["steps"][0]["dropped"][0]
    assert "Dropped by verification (1)" in md
    assert "`gateway/commands.py:101` unused-function `Commands.cmd_top_sensors`" in md
    assert dropped["reason"] in md
    assert "- every workload: unavailable: no energy sensor readable" in md


def test_markdown_profile(prof_doc):
    md = render_markdown(prof_doc)
    peak = prof_doc["headline"]["peak_rss"]["median"]
    assert "| workload | peak RSS | reducible (peak - bare) | wall | CPU |" in md
    assert f"| bm_nbody/run_benchmark.py | {_mb(peak)} |" in md
    assert "### Edits" not in md


def test_markdown_escapes_pipes(opt_doc):
    doc = copy.deepcopy(opt_doc)
    doc["baseline"]["a|b"] = doc["baseline"]["normal"]
    assert "| a\\|b |" in render_markdown(doc)


# --------------------------------------------------------------------------- devices


def test_board_table_from_the_paper():
    ram = {b.name: b.ram_bytes // MIB for b in devices.BOARDS}
    assert ram == {"RT5350F-OLinuXino": 32, "Arduino Yún": 64, "STM32 MCU": 64,
                   "LC-CherryPi-PC-V3S": 64, "Giant Board": 128, "Intel Galileo Gen 1 & 2": 256,
                   "BeagleBone Black": 256}
    # the paper: the 258 MB original does not fit the Giant Board, Galileo or BeagleBone
    fit = devices.device_fit(258 * MIB, int(92.8 * MIB))
    for name in ("Giant Board", "Intel Galileo Gen 1 & 2", "BeagleBone Black"):
        assert fit[name]["fits_original"] is False and fit[name]["fits_optimized"] is True
    assert fit["STM32 MCU"]["fits_optimized"] is False
    assert fit["Giant Board"]["headroom_bytes"] == 128 * MIB - int(92.8 * MIB)


@pytest.mark.parametrize("spec", ["64MB", "64M", "64mib", "64 MB", "67108864", "0.0625G",
                                  "65536k"])
def test_device_sizes(spec):
    d = devices.device(spec)
    assert d.ram_bytes == 64 * MIB and d.name == "64 MB budget"


@pytest.mark.parametrize(("spec", "name"), [
    ("BeagleBone Black", "BeagleBone Black"), ("beaglebone-black", "BeagleBone Black"),
    ("bbb", "BeagleBone Black"), ("Galileo", "Intel Galileo Gen 1 & 2"),
    ("arduino yun", "Arduino Yún"), ("Arduino Yún", "Arduino Yún"), ("giant", "Giant Board"),
    ("rt5350f-olinuxino", "RT5350F-OLinuXino"), ("stm", "STM32 MCU"),
])
def test_device_names(spec, name):
    assert devices.device(spec).name == name


@pytest.mark.parametrize("spec", ["", "raspberry", "64XB", "-5MB", "0", "MB"])
def test_device_unknown(spec):
    with pytest.raises(ValueError, match="BeagleBone Black"):
        devices.device(spec)


def test_fit_unknown_peaks():
    fit = devices.device_fit(None, None)
    assert all(v["fits_original"] is None and v["headroom_bytes"] is None for v in fit.values())


# --------------------------------------------------------------------------- plots


def test_downsample_keeps_the_peak_and_bounds_the_points():
    samples = [(i / 1000, (i % 97) * 1000) for i in range(100_000)]
    samples[54_321] = (54.321, 10**9)
    pts = plots.downsample(samples, buckets=100)
    assert len(pts) <= 200
    assert max(p[1] for p in pts) == 10**9
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)
    assert plots.downsample(samples[:10]) == [(float(t), float(v)) for t, v in samples[:10]]


def test_svg_ids_are_prefixed_per_figure():
    a = plots.timeline_svg({"w": [("original", [(0, 1e6), (1, 2e6)])]}, floor=5e5)
    b = plots.timeline_svg({"w": [("original", [(0, 1e6), (1, 2e6)])]}, floor=5e5)
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    assert ids_a and not ids_a & set(re.findall(r'id="([^"]+)"', b))
    assert a.startswith("<svg") and "xmlns" not in a and "<metadata" not in a


def test_icicle_survives_inconsistent_costs():
    tree = [{"module": "a", "cum_rss": -5_000_000, "self_rss": 0, "ok": False, "children": [
        {"module": "b", "cum_rss": 3_000_000, "self_rss": 3_000_000, "children": []}]}]
    svg = plots.icicle_svg(tree, title="t")
    assert "a: cumulative -5.00 MB, self 0.00 MB (import failed)" in svg
    assert "b: cumulative 3.00 MB" in svg


# --------------------------------------------------------------------------- browser


def _chromium() -> str:
    """The chromium binary, installed from Debian's archive if it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and apt-get is not available to install it")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.skip(f"chromium could not be installed: {' '.join(cmd)} timed out")
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"chromium could not be installed: {' '.join(cmd)} failed: {tail[0]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int) -> None:
    """Load ``page`` from a file in headless Chromium and save a screenshot to ``png``."""
    with tempfile.TemporaryDirectory(prefix="memtrim-chromium-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and png.exists(), r.stderr[-2000:]


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(1200, 2400), (420, 2400)])
def test_report_renders_in_headless_chromium(tmp_path, opt_doc, opt_html, width, height):
    from matplotlib.image import imread

    chromium = _chromium()
    page = tmp_path / "report.html"
    page.write_text(opt_html, encoding="utf-8")
    png = tmp_path / "shot.png"
    screenshot(chromium, page, png, width, height)
    img = imread(str(png))[..., :3]
    assert img.shape[:2] == (height, width)
    ink = (img.min(axis=2) < 0.85).mean()  # pixels that are not white or near-white
    assert ink > 0.03, f"screenshot looks blank ({ink:.3%} non-white pixels)"
    assert img.std() > 0.05
    # colour, not only text: the plots' orange/blue lines and bars are drawn
    r, b = img[..., 0], img[..., 2]
    assert ((b - r > 0.3) & (b > 0.5)).sum() > 500, "no blue plot ink: did the SVGs render?"
