"""What a ``newsetl query`` statement needs from the lake, read from DuckDB's own parse tree.

Entry point :func:`plan`. Before any listing, the statement is parsed (``json_serialize_sql``:
DuckDB's parser, nothing executed) to learn which views it names (a query of ``fetch_log``
alone never lists the article files) and which ``dt`` partitions of ``articles`` it can touch,
so that only ``articles/dt=D/`` of those days is listed and only their compaction pointers are
read. Listing the whole lake and every day's pointer is what made a one-day query on S3 cost
about as much as a scan of a small lake.

The day set is derived only where that is safe: ``articles`` is named exactly once, directly in
the ``FROM`` of one ``SELECT`` (no join), and the ``WHERE`` of that ``SELECT`` has ``AND``-ed
conditions on its ``dt`` against string constants (``=``, ``IN``, ``BETWEEN``, ``<``, ``<=``,
``>``, ``>=``). Anything else (another statement kind, a cast, an ``OR``, a second reference to
``articles``) gives ``days=None``: the whole lake, as before. DuckDB still applies the filter
itself, so a day set that is too large is harmless; one that is too small never happens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb

log = logging.getLogger("etl.lake.query_plan")

VIEWS = ("articles", "fetch_log")
_CATALOG = {"TABLE_FUNCTION", "SHOW_REF"}
MAX_DAYS = 400  # a range wider than this lists the whole lake instead of day by day
_RANGE = {
    "COMPARE_GREATERTHANOREQUALTO": (">=", "<="),
    "COMPARE_GREATERTHAN": (">", "<"),
    "COMPARE_LESSTHANOREQUALTO": ("<=", ">="),
    "COMPARE_LESSTHAN": ("<", ">"),
}


@dataclass(frozen=True)
class QueryPlan:
    """The views a statement names (None: unknown, build them all) and the ``dt`` days of
    ``articles`` it can read (None: every day)."""

    views: frozenset[str] | None
    days: tuple[str, ...] | None


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _string(node: Any) -> str | None:
    """The text of a string constant node, else None."""
    if not isinstance(node, dict) or node.get("class") != "CONSTANT":
        return None
    literal = node.get("literal") or node.get("value") or {}
    if literal.get("kind", literal.get("type", {}).get("id")) not in ("STRING", "VARCHAR"):
        return None
    text = literal.get("text", literal.get("value"))
    return text if isinstance(text, str) else None


def _conjuncts(where: Any) -> list[dict[str, Any]]:
    if not isinstance(where, dict):
        return []
    if where.get("type") == "CONJUNCTION_AND":
        return [c for child in where.get("children", []) for c in _conjuncts(child)]
    return [where]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


class _Days:
    """The ``dt`` values the conjuncts allow: an explicit set and/or a closed date range."""

    def __init__(self) -> None:
        self.values: set[str] | None = None
        self.low: date | None = None
        self.high: date | None = None
        self.used = False
        self.unsure = False

    def only(self, values: set[str]) -> None:
        self.values = values if self.values is None else self.values & values
        self.used = True

    def bound(self, op: str, text: str) -> None:
        day = _day(text)
        if day is None:  # not a date: cannot turn into a day range
            self.unsure = True
            return
        if op in (">", ">="):
            day = day + timedelta(days=1) if op == ">" else day
            self.low = day if self.low is None else max(self.low, day)
        else:
            day = day - timedelta(days=1) if op == "<" else day
            self.high = day if self.high is None else min(self.high, day)
        self.used = True

    def result(self) -> tuple[str, ...] | None:
        if not self.used:
            return None
        if self.values is not None:
            return tuple(
                sorted(
                    v
                    for v in self.values
                    if (d := _day(v)) is None
                    or (
                        (self.low is None or d >= self.low)
                        and (self.high is None or d <= self.high)
                    )
                )
            )
        if self.unsure or self.low is None or self.high is None:
            return None
        span = (self.high - self.low).days + 1
        if span > MAX_DAYS:
            return None
        return tuple((self.low + timedelta(days=i)).isoformat() for i in range(max(span, 0)))


def _is_dt(node: Any, names: set[str]) -> bool:
    if not isinstance(node, dict) or node.get("class") != "COLUMN_REF":
        return False
    parts = [p.lower() for p in node.get("column_names", [])]
    return parts == ["dt"] or (len(parts) == 2 and parts[1] == "dt" and parts[0] in names)


def _add(days: _Days, cond: dict[str, Any], names: set[str]) -> None:
    kind = cond.get("type", "")
    if kind == "COMPARE_EQUAL":
        for col, val in (
            (cond.get("left"), cond.get("right")),
            (cond.get("right"), cond.get("left")),
        ):
            if _is_dt(col, names) and (text := _string(val)) is not None:
                days.only({text})
    elif kind == "COMPARE_IN":
        children = cond.get("children", [])
        texts = [_string(c) for c in children[1:]]
        if children and _is_dt(children[0], names) and texts and None not in texts:
            days.only({t for t in texts if t is not None})
    elif kind == "COMPARE_BETWEEN":
        low, high = _string(cond.get("lower")), _string(cond.get("upper"))
        if _is_dt(cond.get("input"), names) and low is not None and high is not None:
            days.bound(">=", low)
            days.bound("<=", high)
    elif kind in _RANGE:
        left, right = cond.get("left"), cond.get("right")
        if _is_dt(left, names) and (text := _string(right)) is not None:
            days.bound(_RANGE[kind][0], text)
        elif _is_dt(right, names) and (text := _string(left)) is not None:
            days.bound(_RANGE[kind][1], text)


def _article_days(statements: list[Any]) -> tuple[str, ...] | None:
    refs = [
        n
        for n in _nodes(statements)
        if n.get("type") == "BASE_TABLE" and str(n.get("table_name", "")).lower() == "articles"
    ]
    if len(statements) != 1 or len(refs) != 1:
        return None
    ref = refs[0]
    owners = [
        n
        for n in _nodes(statements)
        if n.get("type") == "SELECT_NODE" and n.get("from_table") is ref
    ]
    if len(owners) != 1 or ref.get("sample") or ref.get("column_name_alias"):
        return None
    names = {"articles", str(ref.get("alias") or "").lower()} - {""}
    days = _Days()
    for cond in _conjuncts(owners[0].get("where_clause")):
        _add(days, cond, names)
    return days.result()


def plan(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> QueryPlan:
    """The views ``sql`` names and the ``articles`` days it can read (see the module doc).

    ``con``: a DuckDB connection to parse with (opening one costs more than the parse).
    """
    everything = QueryPlan(None, None)
    try:
        own = con or duckdb.connect()
        try:
            rows = own.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
        finally:
            if con is None:
                own.close()
        tree = json.loads(rows[0][0])
    except (duckdb.Error, ValueError, IndexError, TypeError):
        return everything
    if not isinstance(tree, dict) or tree.get("error") or not tree.get("statements"):
        return everything  # not a SELECT (or not parsable): let DuckDB itself say what it thinks
    statements: list[Any] = tree["statements"]
    nodes = list(_nodes(statements))
    tables = {str(n.get("table_name", "")).lower() for n in nodes if n.get("type") == "BASE_TABLE"}
    ctes = {
        str(entry.get("key", "")).lower()
        for n in nodes
        for entry in (n.get("cte_map") or {}).get("map", [])
        if isinstance(entry, dict)
    }
    views: frozenset[str] | None = frozenset(tables & set(VIEWS))
    if tables - set(VIEWS) - ctes or any(n.get("type") in _CATALOG for n in nodes):
        views = None  # SHOW TABLES, information_schema, duckdb_views(): may reach any view
    result = QueryPlan(views, _article_days(statements))
    log.debug("query plan: views %s, days %s", views, result.days)
    return result
