"""``bench/bench_lake.py --quick``: every step of the lake benchmark runs on tiny lakes (a local
folder and the moto S3 server on 127.0.0.1) and prints each target as PASS or MISS with its
figure. (The targets themselves are for the full-size run: ``make bench``.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = [
    "local one-day query bytes",
    "local one-day query time",
    "local seen index (15 days) bytes",
    "local seen index time",
    "newsetl query peak RSS (aggregate over all text)",
    "newsetl query peak RSS (every row to Parquet)",
    "local compacted day scan",
    "S3 one-day query bytes",
    "S3 one-day query time",
    "S3 seen index (15 days) bytes",
    "S3 seen index time",
    "S3 compacted day scan",
]


@pytest.mark.slow
def test_bench_lake_quick_prints_every_target() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_lake.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = re.findall(r"^  (PASS|MISS) ([^:]+): (.+)$", done.stdout, re.M)
    assert [name for _, name, _ in lines] == TARGETS, done.stdout
    # The one-day query reads a small share of the lake even on a tiny one (pruning by dt).
    assert all(ok == "PASS" for ok, name, _ in lines if name.endswith("one-day query bytes"))
    assert re.search(r"^\d+/12 targets met", done.stdout, re.M), done.stdout
