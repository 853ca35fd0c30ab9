from __future__ import annotations

from typing import cast

import pyarrow as pa
import pytest

from etl.article.deduplication import dedupe
from etl.article.normalization import article_id
from tests.support.article_factory import batches, make_article, prose


def _ids(out: list[pa.RecordBatch]) -> list[str]:
    return [i for b in out for i in cast("list[str]", b.column("article_id").to_pylist())]


def _urls(out: list[pa.RecordBatch]) -> list[str]:
    return [u for b in out for u in cast("list[str]", b.column("url").to_pylist())]


def test_unique_rows_pass_through_in_order() -> None:
    arts = [make_article(f"https://example.com/{i}", seed=i) for i in range(5)]
    run = dedupe(batches(arts))
    out = list(run)
    assert _ids(out) == [article_id(f"https://example.com/{i}") for i in range(5)]
    assert run.stats.rows_in == run.stats.rows_out == 5 and run.stats.dropped == 0


def test_first_of_duplicate_ids_wins_across_batches() -> None:
    arts = [
        make_article("https://example.com/a", seed=1),
        make_article("https://example.com/b", seed=2),
        make_article("https://EXAMPLE.com/a#again", seed=3),  # same id, other text
    ]
    run = dedupe(batches(arts, batch_rows=2))
    out = list(run)
    assert _urls(out) == ["https://example.com/a", "https://example.com/b"]
    assert run.stats.duplicate_id == 1 and run.stats.dropped == 1


def test_seen_ids_are_dropped() -> None:
    arts = [make_article(f"https://example.com/{i}", seed=i) for i in range(4)]
    seen = {article_id("https://example.com/1"), article_id("https://example.com/3"), "other"}
    run = dedupe(batches(arts), seen=frozenset(seen))
    assert _urls(list(run)) == ["https://example.com/0", "https://example.com/2"]
    assert run.stats.seen == 2 and run.stats.rows_out == 2


def test_same_content_under_another_url_keeps_first() -> None:
    text = prose(7)
    arts = [
        make_article("https://a.example/story", text),
        make_article("https://b.example/copy", "  " + text.upper() + "\n"),  # same normalized
        make_article("https://c.example/other", prose(8)),
    ]
    run = dedupe(batches(arts))
    assert _urls(list(run)) == ["https://a.example/story", "https://c.example/other"]
    assert run.stats.duplicate_content == 1


def test_near_duplicates_linked_or_dropped_unless_disabled() -> None:
    text = prose(11)
    near = text.replace(" ", ", ", 5)  # punctuation only: other content hash, same tokens
    arts = [make_article("https://a.example/1", text), make_article("https://b.example/2", near)]
    linked = dedupe(batches(arts))  # schema v2: kept, linked to the first
    rows = pa.Table.from_batches(list(linked)).select(["url", "duplicate_of"]).to_pylist()
    assert rows == [
        {"url": "https://a.example/1", "duplicate_of": None},
        {"url": "https://b.example/2", "duplicate_of": article_id("https://a.example/1")},
    ]
    assert linked.stats.near_duplicate == 1 and linked.stats.rows_out == 2
    run = dedupe(batches(arts), near="drop")
    assert _urls(list(run)) == ["https://a.example/1"]
    assert run.stats.near_duplicate == 1
    assert run.stats.near_pairs == [
        (article_id("https://b.example/2"), article_id("https://a.example/1"))
    ]

    keep = dedupe(batches(arts), near_distance=None)
    assert len(_urls(list(keep))) == 2 and keep.stats.near_duplicate == 0


def _with_simhashes(values: list[int]) -> pa.RecordBatch:
    arts = [make_article(f"https://example.com/{i}", seed=i) for i in range(len(values))]
    (batch,) = batches(arts, batch_rows=len(values))
    i = batch.schema.get_field_index("simhash")
    return batch.set_column(i, batch.schema.field(i), pa.array(values, pa.int64()))


def test_near_duplicate_threshold_is_hamming_distance() -> None:
    three_apart = (1 << 0) | (1 << 20) | (1 << 63)  # 3 bits in 3 different 16-bit blocks
    four_in_one_block = 0b1111  # 4 bits, same block: shares three blocks with 0
    signed = three_apart - (1 << 64)  # stored as signed int64
    run = dedupe([_with_simhashes([0, signed, four_in_one_block, -1])], near="drop")
    out = list(run)
    assert _urls(out) == ["https://example.com/0", "https://example.com/2", "https://example.com/3"]
    assert run.stats.near_pairs == [
        (article_id("https://example.com/1"), article_id("https://example.com/0"))
    ]

    strict = dedupe([_with_simhashes([0, signed, four_in_one_block])], near_distance=2, near="drop")
    assert len(_urls(list(strict))) == 3


def test_many_distinct_texts_are_all_kept() -> None:
    arts = [make_article(f"https://example.com/{i}", seed=i) for i in range(60)]
    run = dedupe(batches(arts, batch_rows=25))
    assert len(_ids(list(run))) == 60 and run.stats.near_duplicate == 0


def test_fully_dropped_batches_are_not_yielded_and_stats_fill_lazily() -> None:
    arts = [make_article("https://example.com/a", seed=1)] * 3
    run = dedupe(batches(arts, batch_rows=1))
    assert run.stats.rows_in == 0  # nothing read before iteration
    out = list(run)
    assert len(out) == 1 and out[0].num_rows == 1
    assert run.stats.as_dict() == {
        "rows_in": 3, "rows_out": 1, "seen": 0, "duplicate_id": 2,
        "duplicate_content": 0, "near_duplicate": 0, "seen_at_publish": 0,
    }  # fmt: skip


def test_bad_near_distance() -> None:
    with pytest.raises(ValueError, match="near_distance"):
        dedupe([], near_distance=4)
