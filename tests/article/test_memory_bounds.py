"""Memory that must not grow with an interval's rows (issue 10, bench_load's 1.2x target).

The run-wide dedupe state is compact (a few hundred bytes a row), and a publish holds a bounded
part of the rows at any time (a read batch and a row group), never the interval.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

from etl.article import hamming
from etl.article.deduplication import _NearIndex, compact_key, dedupe
from tests.support.article_factory import batches, make_article, prose

ROOT = Path(__file__).resolve().parents[2]


class _Buckets:
    """The index as it was (a list per block value): what the compact one must answer."""

    def __init__(self, distance: int) -> None:
        self.distance = distance
        self.blocks: list[dict[int, list[tuple[int, str]]]] = [{} for _ in range(4)]

    def match(self, h: int) -> str | None:
        for i, bucket in enumerate(self.blocks):
            for other, other_id in bucket.get((h >> (16 * i)) & 0xFFFF, ()):
                if hamming(h, other) <= self.distance:
                    return other_id
        return None

    def add(self, h: int, aid: str) -> None:
        for i, bucket in enumerate(self.blocks):
            bucket.setdefault((h >> (16 * i)) & 0xFFFF, []).append((h, aid))


def test_near_index_finds_the_same_first_match_as_lists_per_block() -> None:
    rng = random.Random(10)
    bases = [rng.getrandbits(64) for _ in range(20)]
    compact, reference = _NearIndex(3), _Buckets(3)
    matched = 0
    for n in range(3000):
        h = rng.choice(bases)
        for _ in range(rng.randrange(6)):  # 0..5 flipped bits: some near, some not
            h ^= 1 << rng.randrange(64)
        if rng.random() < 0.5:
            h -= 1 << 64 if h >= 1 << 63 else 0  # as the int64 column holds it
        want = reference.match(h)
        assert compact.match(h) == want
        matched += want is not None
        if want is None or n % 7 == 0:  # several rows near one another: order matters
            compact.add(h, f"id{n}")
            reference.add(h, f"id{n}")
    assert 1000 < matched < 3000


def test_compact_key_equal_exactly_when_the_strings_are() -> None:
    values = ["ab", "AB", "0xab", " ab", "ab ", "a", "abc", "", "ab_cd", "abcd", "b" * 64, "é"]
    keys = [compact_key(v) for v in values]
    assert len(set(keys)) == len(values)
    assert compact_key("ab") == compact_key("ab") == b"\xab"
    assert compact_key("AB") == "AB" and compact_key("0xab") == "0xab"


def test_dedupe_remembers_each_row_in_a_few_hundred_bytes() -> None:
    n = 4000
    arts = [make_article(f"https://example.com/n/{i}", text=prose(i, 40), seed=i) for i in range(n)]
    data = batches(arts, batch_rows=500)
    del arts
    tracemalloc.start()
    try:
        run = dedupe(data)
        before = tracemalloc.get_traced_memory()[0]
        for _ in run:
            pass
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert run.stats.rows_out == n
    # ids (~110 B with their set slot), content hashes as bytes (~95), near index (~60):
    # about 270 B a row (the lists of tuples per block it replaced held ~1 KB a row)
    assert held / n < 450, f"{held / n:.0f} bytes a row"


PUBLISH = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    sys.path.insert(0, {root!r})
    import pyarrow as pa
    from tests.support.article_factory import make_article, prose
    from etl.article import normalize
    from etl.config import QualitySettings
    from etl.lake import publish
    from etl.lake.local import LocalLake
    from etl.records import Interval

    n = {n}
    arts = (
        make_article(f"https://example.com/n/{{i}}", text=prose(i, 300), seed=i) for i in range(n)
    )
    rows = normalize(arts, dt="2026-01-05", rules_version="r")
    interval = Interval(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))
    quality = QualitySettings(min_title_share=0, min_date_share=0, min_author_share=0)
    m = publish(LocalLake({lake!r}), interval, rows, seen=frozenset(), quality=quality, attempt="a")
    pool = pa.default_memory_pool()
    print(m.articles, pool.max_memory())
    """
)


def _publish_peak(tmp: Path, n: int) -> int:
    code = PUBLISH.format(root=str(ROOT), n=n, lake=str(tmp / f"lake-{n}"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    rows, peak = map(int, out.split())
    assert rows == n
    return peak


def test_publish_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    """The Arrow memory a publish holds at its peak (a fresh process each): the same for 3,000
    and 9,000 rows of ~2.5 KB (before: the gated file was read back in one batch and buffered
    as one row group, so the peak grew with the interval: 9,000 rows cost 2.6x 3,000)."""
    small, large = _publish_peak(tmp_path, 3000), _publish_peak(tmp_path, 9000)
    assert large < 1.25 * small, f"Arrow peak {small / 2**20:.1f} -> {large / 2**20:.1f} MiB"
