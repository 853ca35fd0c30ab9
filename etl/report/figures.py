"""``newsetl report``: figures from the manifests, the fetch_log and the articles' small columns.

Entry point :func:`build_report`. Per interval (from ``_runs/*.json``): articles written, bytes,
URLs tried, the dedupe figures (skipped as seen, duplicates), rule hits, and whatever else the
manifest carries (status, timings, quality figures: read if present). Per day and source:
discovered, fetched, extracted, written (from the manifests' per-source figures and the
articles), failures by error class and bytes fetched (fetch_log), mean word count, the share of
rows with title, date and author, near-duplicates, the language mix. The article and fetch_log
figures come from lazy queries (:mod:`etl.lake.query`): only the small columns are read.

:func:`flags` marks a source whose yield (written / fetched) or mean word count on a day drops
below half of its own trailing-week mean: what a site redesign that breaks extraction looks like.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb

from etl.errors import StoreError
from etl.lake import MANIFEST_KEY, LakeSettings, connect, open_lake

log = logging.getLogger("etl.report.figures")

DROP = 0.5  # a value under half of the trailing mean is a sharp drop
TRAILING_DAYS = 7
MIN_TRAILING = 3  # days of history needed before a source can be flagged


@dataclass
class Report:
    since: str | None
    intervals: list[dict[str, Any]] = field(default_factory=list)
    days: list[dict[str, Any]] = field(default_factory=list)  # per (dt, source)
    failures: list[dict[str, Any]] = field(default_factory=list)  # per (dt, error_class)
    rules: Counter[str] = field(default_factory=Counter)
    languages: dict[str, Counter[str]] = field(default_factory=dict)  # source -> language -> n
    flags: list[dict[str, Any]] = field(default_factory=list)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _manifests(lake_uri: str | LakeSettings, since: str | None) -> list[dict[str, Any]]:
    lake = open_lake(lake_uri)
    out = []
    for key in lake.list("_runs/"):
        m = MANIFEST_KEY.match(key)
        if not m or (since and "-".join(m.groups()) < since):
            continue
        try:
            data = json.loads(lake.get_bytes(key))
        except (StoreError, ValueError) as exc:  # one bad manifest does not hide the others
            log.warning("%s: skipped, not a readable manifest: %s", key, exc)
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def _interval_row(m: dict[str, Any]) -> dict[str, Any]:
    extra = _dict(m.get("extra"))
    dedupe = _dict(extra.get("dedupe"))
    raw_shards = m.get("shards")
    shards: list[Any] = raw_shards if isinstance(raw_shards, list) else []
    return {
        "interval": str(m.get("interval", "?")),
        "dt": str(m.get("dt", "?")),
        "status": str(m.get("status") or extra.get("status") or "complete"),
        "articles": int(_num(m.get("articles"))),
        "bytes": int(sum([_num(_dict(s).get("bytes")) for s in shards])),
        "urls_tried": int(_num(extra.get("urls_tried"))),
        "seen": int(_num(dedupe.get("seen"))),
        "duplicates": int(sum(_num(dedupe.get(k)) for k in ("duplicate_id", "duplicate_content"))),
        "near_duplicates": int(_num(dedupe.get("near_duplicate"))),
        "timings": _dict(extra.get("timings")),
        "quality": _dict(m.get("quality") or extra.get("quality")),
    }


_ARTICLES_SQL = """
SELECT dt, coalesce(source_id, '(none)') AS source, count(*) AS written,
       avg(word_count) AS words,
       avg(CASE WHEN coalesce(title, '') <> '' THEN 1 ELSE 0 END) AS title_share,
       avg(CASE WHEN published_at IS NOT NULL THEN 1 ELSE 0 END) AS date_share,
       avg(CASE WHEN len(authors) > 0 THEN 1 ELSE 0 END) AS author_share,
       count(duplicate_of) AS near_duplicates,
       count(*) FILTER (WHERE extraction.doubtful) AS doubtful
FROM articles WHERE dt >= $since GROUP BY ALL ORDER BY ALL
"""
_LANG_SQL = """SELECT coalesce(source_id, '(none)'), coalesce(language, '?'), count(*)
FROM articles WHERE dt >= $since GROUP BY ALL"""
_LOG_SQL = """
SELECT dt, coalesce(source_id, '(none)') AS source, coalesce(error_class, 'ok') AS class,
       count(*) AS n, coalesce(sum(bytes), 0) AS bytes
FROM fetch_log WHERE dt >= $since GROUP BY ALL ORDER BY ALL
"""


def _rows(con: Any, sql: str, since: str) -> list[dict[str, Any]]:
    cur = con.execute(sql, {"since": since})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def build_report(lake_uri: str | LakeSettings, since: str | None = None) -> Report:
    """Gather the figures (see the module doc) for days ``>= since`` (all days if None)."""
    report = Report(since)
    manifests = _manifests(lake_uri, since)
    report.intervals = sorted((_interval_row(m) for m in manifests), key=lambda r: r["interval"])
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for m in manifests:
        extra = _dict(m.get("extra"))
        report.rules.update(
            {str(k): int(_num(v)) for k, v in _dict(extra.get("rule_hits")).items()}
        )
        for src, fig in _dict(extra.get("sources")).items():
            if not isinstance(fig, dict):
                continue
            row = per[(str(m.get("dt")), str(src))]
            for ours, theirs in (("discovered", "count"), ("fetched", "pages"),
                                 ("extracted", "rows"), ("failed", "failed")):  # fmt: skip
                row[ours] = row.get(ours, 0) + int(_num(fig.get(theirs)))
    try:
        _query_figures(lake_uri, since, per, report)
    except duckdb.Error as exc:  # an unreadable article or fetch_log file: name the lake
        where = lake_uri if isinstance(lake_uri, str) else lake_uri.uri
        raise StoreError(where, f"report query failed: {str(exc).splitlines()[0]}") from None
    for (dt, src), row in sorted(per.items()):
        fetched = row.get("fetched") or 0
        written = row.get("written") or 0
        report.days.append({
            "dt": dt, "source": src, "discovered": row.get("discovered", 0), "fetched": fetched,
            "extracted": row.get("extracted", 0), "failed": row.get("failed", 0),
            "written": written, "yield": written / fetched if fetched else None,
            "words": float(row["words"]) if row.get("words") is not None else None,
            "title_share": row.get("title_share"), "date_share": row.get("date_share"),
            "author_share": row.get("author_share"),
            "near_duplicates": row.get("near_duplicates", 0),
            "doubtful": row.get("doubtful", 0),
            "bytes_fetched": row.get("bytes_fetched", 0), "failures": row.get("failures", {}),
        })  # fmt: skip
    report.flags = flags(report.days)
    return report


def _query_figures(
    lake_uri: str | LakeSettings,
    since: str | None,
    per: dict[tuple[str, str], dict[str, Any]],
    report: Report,
) -> None:
    """The article and fetch_log figures, from lazy queries of the small columns."""
    con = connect(lake_uri)
    try:
        for r in _rows(con, _ARTICLES_SQL, since or ""):
            per[(str(r["dt"]), str(r["source"]))].update(
                {k: v for k, v in r.items() if k not in ("dt", "source")}
            )
        for src, lang, n in con.execute(_LANG_SQL, {"since": since or ""}).fetchall():
            report.languages.setdefault(str(src), Counter())[str(lang)] += int(n)
        fails: Counter[tuple[str, str]] = Counter()
        for r in _rows(con, _LOG_SQL, since or ""):
            row = per[(str(r["dt"]), str(r["source"]))]
            row["bytes_fetched"] = row.get("bytes_fetched", 0) + int(r["bytes"])
            if r["class"] != "ok":
                fails[(str(r["dt"]), str(r["class"]))] += int(r["n"])
                row.setdefault("failures", {})[str(r["class"])] = int(r["n"])
    finally:
        con.close()
    report.failures = [{"dt": d, "class": c, "n": n} for (d, c), n in sorted(fails.items())]


def flags(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Days on which a source's yield or mean word count fell below ``DROP`` x its trailing
    mean over the previous ``TRAILING_DAYS`` days with data (at least ``MIN_TRAILING``)."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in days:
        by_source[row["source"]].append(row)
    out = []
    for src, rows in sorted(by_source.items()):
        rows.sort(key=lambda r: r["dt"])
        for i, row in enumerate(rows):
            for metric in ("yield", "words"):
                history = [r[metric] for r in rows[max(0, i - TRAILING_DAYS) : i]
                           if r[metric] is not None]  # fmt: skip
                value = row[metric]
                if value is None or len(history) < MIN_TRAILING:
                    continue
                trailing = sum(history) / len(history)
                if trailing > 0 and value < DROP * trailing:
                    out.append({"source": src, "dt": row["dt"], "metric": metric,
                                "value": value, "trailing": trailing})  # fmt: skip
    return out
