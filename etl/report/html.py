"""The HTML run report: one self-contained file, charts as inline SVG drawn by matplotlib.

Entry point :func:`render_html`. No script, no stylesheet and no font from the web: the SVG
keeps its text as text (``svg.fonttype = none``), so the file is viewable offline. Every bar
carries an SVG id naming what it shows (``volume|<source>|<dt>|<n>``, ``failures|<class>|<dt>|<n>``,
``rule|<rule>|<n>``) and every yield line ``yield|<source>``: the tests check the geometry of
each mark against its number.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from etl.report.figures import Report

TOP_RULES = 15
# text.parse_math off: a source id or rule id is a name, never mathtext ("a$\\frac$b" raised)
_RC: Any = {"svg.fonttype": "none", "svg.hashsalt": "newsetl-report", "font.size": 9,
            "text.parse_math": False}  # fmt: skip


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML


def _bars_by_day(
    title: str, kind: str, series: dict[str, dict[str, int]], days: list[str], ylabel: str
) -> str:
    """Stacked bars: one bar per day, one segment per series (source or error class)."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(max(6.0, 0.5 * len(days) + 3), 3.2))
        ax = fig.subplots()
        bottoms = [0] * len(days)
        for name in sorted(series):
            values = [series[name].get(d, 0) for d in days]
            bars = ax.bar(range(len(days)), values, bottom=bottoms, label=name)
            for bar, d, v in zip(bars, days, values, strict=True):
                bar.set_gid(f"{kind}|{name}|{d}|{v}")
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
        ax.set_xticks(range(len(days)), days, rotation=45, ha="right")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if series:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def _yield_chart(report: Report, days: list[str]) -> str:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(max(6.0, 0.5 * len(days) + 3), 3.2))
        ax = fig.subplots()
        by_source: dict[str, dict[str, float]] = defaultdict(dict)
        for row in report.days:
            if row["yield"] is not None:
                by_source[row["source"]][row["dt"]] = row["yield"]
        for src in sorted(by_source):
            xs = [i for i, d in enumerate(days) if d in by_source[src]]
            (line,) = ax.plot(xs, [by_source[src][days[i]] for i in xs], marker="o", label=src)
            line.set_gid(f"yield|{src}")
        ax.set_xticks(range(len(days)), days, rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title("Extraction yield (articles written / pages fetched)")
        if by_source:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def _rules_chart(report: Report) -> str:
    top = report.rules.most_common(TOP_RULES)[::-1]
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.5, 0.3 * len(top) + 1.2))
        ax = fig.subplots()
        bars = ax.barh(range(len(top)), [n for _, n in top])
        for bar, (rule, n) in zip(bars, top, strict=True):
            bar.set_gid(f"rule|{rule}|{n}")
        ax.set_yticks(range(len(top)), [r for r, _ in top])
        ax.set_title(f"Top boilerplate rules (lines removed, top {TOP_RULES})")
        return _svg(fig)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.2f}"
        if isinstance(v, dict):
            return ", ".join(f"{k} {n}" for k, n in sorted(v.items()))
        return "" if v is None else str(v)

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    days = sorted({r["dt"] for r in report.days} | {f["dt"] for f in report.failures})
    volume: dict[str, dict[str, int]] = defaultdict(dict)
    for row in report.days:
        volume[row["source"]][row["dt"]] = int(row["written"] or 0)
    failures: dict[str, dict[str, int]] = defaultdict(dict)
    for f in report.failures:
        failures[f["class"]][f["dt"]] = int(f["n"])
    flags = [
        {**f, "value": round(f["value"], 3), "trailing": round(f["trailing"], 3)}
        for f in report.flags
    ]
    langs = [{"source": s, "languages": dict(c)} for s, c in sorted(report.languages.items())]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>newsetl report</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        ".flag{color:#a00}</style></head><body>",
        f"<h1>newsetl report</h1><p>since {html.escape(report.since or 'the beginning')}: "
        f"{len(report.intervals)} intervals, {sum(r['articles'] for r in report.intervals)} "
        "articles</p>",
        "<h2>Flags</h2>",
        _table(flags, ["source", "dt", "metric", "value", "trailing"])
        if flags
        else "<p>No source dropped sharply against its trailing week.</p>",
        "<h2>Charts</h2>",
        _bars_by_day("Articles written per source per day", "volume", volume, days, "articles"),
        _bars_by_day("Failures by error class", "failures", failures, days, "URLs"),
        _yield_chart(report, days),
        _rules_chart(report),
        "<h2>Per day and source</h2>",
        _table(report.days, ["dt", "source", "discovered", "fetched", "extracted", "failed",
                             "written", "yield", "words", "title_share", "date_share",
                             "author_share", "near_duplicates", "doubtful", "bytes_fetched",
                             "failures"]),
        "<h2>Languages</h2>",
        _table(langs, ["source", "languages"]),
        "<h2>Intervals</h2>",
        _table(report.intervals, ["interval", "status", "articles", "bytes", "urls_tried",
                                  "seen", "duplicates", "near_duplicates", "timings"]),
        "</body></html>\n",
    ]  # fmt: skip
    return "\n".join(parts)
