"""The validate step of an interval whose day was compacted before it ran (issue 9 review): a
late hour published just before the daily compaction, its validate task queued behind it, or
validate cleared and rerun on a compacted day. The manifest's shards are gone then (folded into
the compacted files); validate failed on every retry ("no such object")."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.errors import StoreError
from etl.lake.compact import compact_day
from etl.lake.store import publish_interval
from etl.runner.publish import validate_step
from tests.support.article_factory import batches, make_article, prose
from tests.support.runner_helpers import HOUR9, HOUR10, open_run, sources_file


def test_validate_after_the_day_was_compacted(tmp_path: Path) -> None:
    sources = sources_file(tmp_path, {"id": "wire", "kind": "rss", "url": "http://127.0.0.1:9/f"})
    run = open_run(tmp_path, sources)
    arts = [make_article(f"https://wire.example.com/{i}", text=prose(i, 80)) for i in range(5)]
    publish_interval(run.lake, HOUR9, batches(arts, dt=HOUR9.dt, batch_rows=50), n_shards=2)
    before = validate_step(run)
    assert before["articles"] == 5
    compact_day(run.lake, HOUR9.dt)
    after = validate_step(run)
    assert after["articles"] == 5 and after["duplicate_rate"] == 0.0
    assert after["status"] == "complete"
    # a shard gone on a day that was not compacted is still an error
    publish_interval(run.lake, HOUR10, batches(arts[:2], dt=HOUR10.dt, batch_rows=50))
    run10 = open_run(tmp_path, sources, HOUR10)
    run.lake.delete(run.lake.list(f"articles/dt={HOUR10.dt}/{HOUR10.id}"))
    with pytest.raises(StoreError, match="no such object"):
        validate_step(run10)
