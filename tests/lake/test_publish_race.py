"""Exactly once across intervals: four intervals publishing at the same moment.

The reproduction (issue 7): two intervals publishing at once both kept the same article (14 rows
for 7 ids in 1 of 4 trials): each read the seen index, then wrote, and the DAG runs 4 intervals
at once. Here the window between the seen check and the write is widened on purpose
(``etl.lake.store.hook_between_seen_and_write`` waits until all four publishes are in it, or 3 s),
so on the old code every round duplicates; with the publish lease only one publish is ever in
the window and each article id lands exactly once across the lake. Runs on a local lake and on
the S3 server (moto, its own process), over several rounds.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from etl.config import Settings, load_sources
from etl.lake import store
from etl.lake.manifest import read_manifest
from etl.lake.opener import open_lake
from etl.lake.settings import LakeSettings
from etl.lake.tables import read_articles, write_table
from etl.records import Interval
from etl.runner.publish import publish_step
from etl.runner.run import Run
from tests.support.article_factory import DT, batches, make_article
from tests.support.s3_server import CREDENTIALS, REGION

SHARED, OWN, INTERVALS, ROUNDS = 7, 2, 4, 3


def hour(h: int) -> Interval:
    start = datetime(2026, 11, 25, h, tzinfo=UTC)
    return Interval(start, start + timedelta(hours=1))


def lake_settings(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> LakeSettings:
    if kind == "local":
        return LakeSettings(uri=str(tmp_path / "lake"))
    server = request.getfixturevalue("s3_server")
    return LakeSettings(
        uri=f"s3://{server.new_bucket()}/news",
        endpoint_url=server.endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )


def staged_runs(settings: Settings, sources: Path, round_: int) -> list[tuple[Run, list[Any]]]:
    """Four runs (hours 9..12 of one day), each with its articles staged: the same ``SHARED``
    articles in every one (an article listed in several intervals) plus ``OWN`` of its own."""
    runs = []
    shared = [make_article(f"https://example.com/shared/{round_}/{i}", seed=i) for i in range(7)]
    for n in range(INTERVALS):
        interval = hour(9 + n)
        own = [
            make_article(f"https://example.com/own/{round_}/{n}/{i}", seed=100 * (n + 1) + i)
            for i in range(OWN)
        ]
        lake = open_lake(settings.lake_settings)  # one client per run, as separate processes
        run = Run(settings, load_sources(sources), interval, lake)
        key = run.staging("articles", "src.parquet")
        write_table(lake, key, pa.Table.from_batches(batches([*shared, *own], dt=DT)))
        runs.append((run, [{"source": "src", "mode": "fetch", "articles": key}]))
    return runs


def publish_all(runs: list[tuple[Run, list[Any]]]) -> list[BaseException]:
    """``publish_step`` of every run in its own thread, released together; the errors."""
    errors: list[BaseException] = []
    gate = threading.Barrier(len(runs))

    def publish(run: Run, processed: list[Any]) -> None:
        gate.wait()
        try:
            publish_step(run, processed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=r) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class Window:
    """Widens the seen-check-to-write window: each publish waits there until all four are in
    it (or 3 s). ``entered`` is the order publishes entered it; ``new_round`` re-arms it."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.gate = threading.Barrier(INTERVALS, timeout=3)

    def new_round(self) -> None:
        self.gate = threading.Barrier(INTERVALS, timeout=3)

    def __call__(self, interval: Interval) -> None:
        self.entered.append(interval.id)
        # not all four got in (BrokenBarrierError): the window is guarded
        with contextlib.suppress(threading.BrokenBarrierError):
            self.gate.wait()


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> Window:
    hook = Window()
    monkeypatch.setattr(store, "hook_between_seen_and_write", hook)
    return hook


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_four_intervals_publishing_at_once_keep_each_article_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, window: Window
) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump({"sources": [{"id": "src", "kind": "urls", "path": str(tmp_path / "u")}]})
    )
    for round_ in range(ROUNDS):
        ls = lake_settings(kind, tmp_path / f"round{round_}", request)
        settings = Settings(lake=ls.uri, sources=sources, lake_settings=ls)
        runs = staged_runs(settings, sources, round_)
        window.new_round()
        assert publish_all(runs) == []
        lake = open_lake(ls)
        ids = Counter(read_articles(lake).column("article_id").to_pylist())
        assert len(ids) == SHARED + INTERVALS * OWN
        assert max(ids.values()) == 1, (
            f"round {round_}: {sum(ids.values())} rows for {len(ids)} ids"
        )
        dedupe = [read_manifest(lake, run.interval)["extra"]["dedupe"] for run, _ in runs]  # type: ignore[index]
        assert sum(d["seen"] for d in dedupe) == (INTERVALS - 1) * SHARED
        assert sum(d["seen_at_publish"] for d in dedupe) == (INTERVALS - 1) * SHARED
        assert sum(d["rows_out"] for d in dedupe) == SHARED + INTERVALS * OWN
        assert lake.list("_staging/") == [] and lake.list("_leases/") == []
    assert len(window.entered) == ROUNDS * INTERVALS


def test_recheck_drops_rows_published_meanwhile_and_counts_them(tmp_path: Path) -> None:
    from etl.article.deduplication import dedupe
    from etl.lake.seen_recheck import SeenRecheck
    from etl.lake.settings import LeaseSettings
    from etl.lake.store import publish_interval

    lake = open_lake(str(tmp_path / "lake"))
    arts = [make_article(f"https://example.com/r/{i}", seed=i) for i in range(6)]
    publish_interval(lake, hour(9), batches(arts[:3], dt=DT))  # another interval, meanwhile
    stream = dedupe(batches(arts, dt=DT))  # its seen index was read before: empty
    recheck = SeenRecheck(7, LeaseSettings(publish_wait_s=0), holder="me", stats=stream.stats)
    m = publish_interval(
        lake,
        hour(10),
        stream,
        n_shards=4,
        recheck=recheck,
        manifest_extra=lambda: {"dedupe": stream.stats.as_dict()},
    )
    first = {r["article_id"] for r in read_articles(lake).to_pylist() if r["dt"] == DT}
    assert len(set(recheck.dropped)) == 3 and set(recheck.dropped) <= first and m.articles == 3
    assert m.extra["dedupe"]["seen"] == 3 and m.extra["dedupe"]["seen_at_publish"] == 3
    assert m.extra["dedupe"]["rows_out"] == 3
    assert all(s.rows > 0 for s in m.shards)  # a shard left empty is not written
    ids = Counter(read_articles(lake).column("article_id").to_pylist())
    assert len(ids) == 6 and max(ids.values()) == 1
    assert lake.list("_leases/") == []
