"""The one publisher: dedupe, quality figures and gate, then the interval publish (or quarantine).

``newsetl ingest``, ``newsetl run`` and the DAG's ``publish`` task all end in :func:`publish`:

1. the staged rows go through :func:`etl.article.dedupe` against the seen index into a local temp
   Parquet file, while the quality figures are counted (:class:`Figures`);
2. the gate (:func:`gate`) checks the figures against the thresholds (``quality:`` in
   sources.yaml, :class:`etl.config.QualitySettings`);
3. passed: :func:`etl.lake.store.publish_interval` writes the interval, the figures in its manifest;
   refused: nothing under ``articles/`` or ``fetch_log/`` changes (the interval's published
   articles stay as they were); the rows, the fetch log and a manifest naming the failed figure go
   to ``_quarantine/<interval>/<attempt>/`` (readers never look there) and :class:`QualityError`
   (terminal) names the figure and the threshold.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl.config import QualitySettings
from etl.errors import QualityError
from etl.lake.base import Lake
from etl.lake.layout import quarantine_prefix
from etl.lake.manifest import Manifest
from etl.lake.seen_recheck import SeenRecheck
from etl.lake.store import publish_interval
from etl.lake.tables import write_table
from etl.records import Interval
from etl.schema import article_schema
from etl.workdir import new_workdir

__all__ = [
    "KEY_UNSAFE",
    "Figures",
    "gate",
    "manifest_extra",
    "new_attempt",
    "publish",
]

log = logging.getLogger("etl.lake.publishing")


KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
READ_BATCH_ROWS = 2000  # rows per batch read back from the gated file (normalize's batches)


def new_attempt(label: str | None = None) -> str:
    """A fresh attempt id, safe in a lake key and sortable by time:
    ``20261130T044600Z-<label>-<8 hex>`` (``label``, e.g. a DAG run id, made key-safe)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = KEY_UNSAFE.sub("-", label or "").strip("-.")[:80]
    return "-".join(x for x in (stamp, safe, uuid.uuid4().hex[:8]) if x)


@dataclass
class Figures:
    """Quality figures of the rows about to be published (counted as they stream by)."""

    min_words: int
    rows: int = 0
    short: int = 0
    words: int = 0
    with_title: int = 0
    with_date: int = 0
    with_author: int = 0
    doubtful: int = 0  # rows whose extraction is flagged doubtful (the `extraction` column)
    languages: Counter[str] = field(default_factory=Counter)
    ids: set[bytes | str] = field(default_factory=set)  # distinct ids (compact: 49 B each)

    def add(self, batch: pa.RecordBatch) -> None:
        from etl.article import compact_key

        names = ("word_count", "title", "published_at", "authors", "language", "article_id")
        cols = {n: batch.column(n).to_pylist() for n in names}  # not the text: it is long
        self.rows += batch.num_rows
        for w in cols["word_count"]:
            self.words += w or 0
            self.short += (w or 0) < self.min_words
        self.with_title += sum(1 for t in cols["title"] if t)
        self.with_date += sum(1 for d in cols["published_at"] if d is not None)
        self.with_author += sum(1 for a in cols["authors"] if a)
        self.languages.update(lang or "unknown" for lang in cols["language"])
        self.ids.update(compact_key(str(a)) for a in cols["article_id"])
        if "extraction" in batch.schema.names:
            ex = batch.column("extraction").to_pylist()
            self.doubtful += sum(1 for e in ex if e and e.get("doubtful"))

    def _share(self, n: int) -> float:
        return round(n / self.rows, 4) if self.rows else 0.0

    def as_dict(self, dropped: Mapping[str, int], rule_hits: Mapping[str, int]) -> dict[str, Any]:
        rows_in = int(dropped.get("rows_in", self.rows))
        dup_dropped = sum(
            int(dropped.get(k, 0)) for k in ("duplicate_id", "duplicate_content", "near_duplicate")
        )
        return {
            "articles": self.rows,
            "empty_rate": self._share(self.short),
            "duplicate_rate": self._share(self.rows - len(self.ids)),
            "dedupe_dropped_rate": round(dup_dropped / rows_in, 4) if rows_in else 0.0,
            "with_title": self._share(self.with_title),
            "with_date": self._share(self.with_date),
            "with_author": self._share(self.with_author),
            "doubtful": self.doubtful,
            "doubtful_share": self._share(self.doubtful),
            "languages": dict(self.languages.most_common()),
            "mean_words": round(self.words / self.rows, 1) if self.rows else 0.0,
            "rule_hits": sum(rule_hits.values()),
            "min_words": self.min_words,
        }


def manifest_extra(
    sources: dict[str, dict[str, Any]],
    rule_hits: Counter[str],
    *,
    rules_versions: list[str],
    urls_tried: int,
) -> dict[str, Any]:
    """The ``extra`` of every manifest (run, DAG and ingest: one shape)."""
    return {
        "sources": sources,
        "pages": sum(int(s.get("rows") or 0) + int(s.get("failed") or 0) for s in sources.values()),
        "failed": sum(int(s.get("failed") or 0) for s in sources.values()),
        "rule_hits": dict(rule_hits.most_common()),
        "rules_version": sorted(set(rules_versions)),
        "urls_tried": urls_tried,
        "published_by": "newsetl",
    }


def gate(figures: Mapping[str, Any], q: QualitySettings) -> list[str]:
    """What the figures break, each naming the figure, its value and the threshold."""
    if not figures.get("articles"):
        return []
    out = []
    checks = (
        ("empty-text rate", "empty_rate", q.max_empty_rate, "max_empty_rate", False),
        ("duplicate rate", "duplicate_rate", q.max_duplicate_rate, "max_duplicate_rate", False),
        ("share with title", "with_title", q.min_title_share, "min_title_share", True),
        ("share with date", "with_date", q.min_date_share, "min_date_share", True),
        ("share with author", "with_author", q.min_author_share, "min_author_share", True),
    )
    for label, key, limit, name, at_least in checks:
        value = float(figures[key])
        if (value < limit) if at_least else (value > limit):
            op = "<" if at_least else ">"
            out.append(f"{label} {value:.1%} {op} {limit:.1%} (quality.{name})")
    return out


def publish(
    lake: Lake,
    interval: Interval,
    batches: Iterable[pa.RecordBatch],
    *,
    seen: frozenset[str],
    quality: QualitySettings,
    attempt: str,
    n_shards: int = 1,
    fetch_log: pa.Table | Callable[[], pa.Table] | None = None,
    extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    rule_hits: Mapping[str, int] | None = None,
    status: str = "complete",
    pending: Iterable[Mapping[str, Any]] = (),
    failed_sources: Iterable[Mapping[str, Any]] = (),
    recheck: SeenRecheck | None = None,
) -> Manifest:
    """Dedupe ``batches``, gate them, and publish the interval (see the module docstring).

    ``recheck``: the seen check again inside the lake-wide publish lease, right before the
    writes (:class:`etl.lake.SeenRecheck`); the rows it drops count in the manifest's dedupe
    figures (the quality figures are those of the rows before it)."""
    from etl.article import dedupe

    hits = dict(rule_hits or {})
    deduped = dedupe(batches, seen=seen)
    if recheck is not None and recheck.stats is None:
        recheck = dataclasses.replace(recheck, stats=deduped.stats)
    figures = Figures(quality.min_words)
    tmp = new_workdir("gate")
    try:
        path = tmp / "deduped.parquet"
        with pq.ParquetWriter(path, article_schema(), compression="zstd") as writer:
            for batch in deduped:
                figures.add(batch)
                writer.write_batch(batch)
        figs = figures.as_dict(deduped.stats.as_dict(), hits)
        if callable(fetch_log):  # built once the row stream is consumed
            fetch_log = fetch_log()
        given = dict((extra() if callable(extra) else extra) or {})
        full_extra = {**given, "dedupe": deduped.stats.as_dict()}
        broken = gate(figs, quality)
        if broken:
            where = _quarantine(
                lake,
                interval,
                attempt,
                rows=path,
                fetch_log=fetch_log,
                figures=figs,
                broken=broken,
                extra=full_extra,
            )
            raise QualityError(
                interval.id,
                f"quality gate failed: {'; '.join(broken)}; nothing published, "
                f"the rows are in {where}",
            )

        def rows() -> Iterator[pa.RecordBatch]:
            # the temp folder goes as soon as the rows are read: publish_interval reads them all
            # before its first put, so a publish killed later leaves nothing behind locally
            try:
                # in the row groups they were written in, one at a time, on this thread (a
                # threaded read spreads its buffers over the allocator's per-thread heaps,
                # which keep them: +36 MiB of RSS at 20,000 rows)
                yield from pq.ParquetFile(path).iter_batches(
                    batch_size=READ_BATCH_ROWS, use_threads=False
                )
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        return publish_interval(
            lake,
            interval,
            rows(),
            n_shards=n_shards,
            fetch_log=fetch_log,
            # evaluated after the re-check, whose drops count in the dedupe figures
            manifest_extra=lambda: {**given, "dedupe": deduped.stats.as_dict()},
            status=status,
            pending=pending,
            failed_sources=failed_sources,
            quality=figs,
            attempt=attempt,
            recheck=recheck,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _quarantine(
    lake: Lake,
    interval: Interval,
    attempt: str,
    *,
    rows: Path,
    fetch_log: pa.Table | None,
    figures: Mapping[str, Any],
    broken: list[str],
    extra: Mapping[str, Any],
) -> str:
    prefix = quarantine_prefix(interval, attempt)
    lake.put_file(prefix + "articles.parquet", rows)
    if fetch_log is not None:
        write_table(lake, prefix + "fetch_log.parquet", fetch_log)
    manifest = {
        "interval": interval.id,
        "attempt": attempt,
        "status": "quarantined",
        "failed": broken,
        "quality": dict(figures),
        "extra": dict(extra),
        "at": datetime.now(UTC).isoformat(),
    }
    lake.put_bytes(prefix + "manifest.json", json.dumps(manifest, indent=2, default=str).encode())
    log.error("interval %s: quality gate failed (%s); rows in %s", interval.id, broken, prefix)
    return prefix
