"""Conditional writes on the lake and the leases built on them (etl.lake).

Every test taking the ``lake`` fixture runs twice: on a local folder and on the session's S3
server (moto in server mode, its own process, through boto3). Races are real: threads, or
processes for a holder that dies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from etl.config import load_settings
from etl.errors import ConfigError, LeaseError, StoreError
from etl.lake.base import Lake, update_json_object
from etl.lake.layout import PUBLISH_LEASE_KEY, interval_lease_key
from etl.lake.lease import (
    clean_interval_staging,
    clean_old_staging,
    interval_lease,
    publish_lease,
)
from etl.lake.lease_object import Lease, LeaseInfo
from etl.lake.local import LocalLake
from etl.lake.opener import open_lake
from etl.lake.settings import LakeSettings, LeaseSettings
from tests.support.s3_server import CREDENTIALS, REGION

IID = "20261125T1300Z-20261125T1400Z"
ROOT = Path(__file__).resolve().parents[2]


def s3_settings(endpoint: str, uri: str) -> LakeSettings:
    return LakeSettings(
        uri=uri,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )


@pytest.fixture(params=["local", "s3"])
def lake_settings(request: pytest.FixtureRequest, tmp_path: Path) -> LakeSettings:
    if request.param == "local":
        return LakeSettings(uri=str(tmp_path / "lake"))
    server = request.getfixturevalue("s3_server")
    return s3_settings(server.endpoint, f"s3://{server.new_bucket()}/news")


@pytest.fixture
def lake(lake_settings: LakeSettings) -> Lake:
    return open_lake(lake_settings)


def run_threads(n: int, target: Any) -> list[Any]:
    """Run ``target(i)`` in ``n`` threads released together; their results (or exceptions)."""
    results: list[Any] = [None] * n
    gate = threading.Barrier(n)

    def go(i: int) -> None:
        gate.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- conditional writes ------------------------------------------------------------------------


def test_conditional_writes(lake: Lake) -> None:
    tag = lake.put_if_absent("_leases/x.json", b"one")
    assert tag
    assert lake.put_if_absent("_leases/x.json", b"two") is None  # exists: not replaced
    assert lake.get_tagged("_leases/x.json") == (b"one", tag)
    assert lake.put_if_match("_leases/x.json", b"three", "not-the-tag") is None
    new = lake.put_if_match("_leases/x.json", b"three", tag)
    assert new and new != tag
    assert lake.get_bytes("_leases/x.json") == b"three"
    assert lake.put_if_match("_leases/x.json", b"four", tag) is None  # stale tag
    assert not lake.delete_if_match("_leases/x.json", tag)
    assert lake.delete_if_match("_leases/x.json", new)
    assert not lake.exists("_leases/x.json") and lake.get_tagged("_leases/x.json") is None
    assert lake.put_if_match("_leases/x.json", b"five", new) is None  # gone: no match
    assert not lake.delete_if_match("_leases/x.json", new)
    assert lake.list() == []
    with pytest.raises(StoreError, match="invalid lake key"):
        lake.put_if_absent("../x", b"x")


def test_put_if_absent_has_exactly_one_winner(lake: Lake) -> None:
    for round_ in range(10):
        key = f"race/{round_}.json"
        tags = run_threads(6, lambda i, key=key: lake.put_if_absent(key, f"writer {i}".encode()))
        winners = [i for i, t in enumerate(tags) if isinstance(t, str)]
        assert len(winners) == 1 and tags.count(None) == 5, tags
        assert lake.get_bytes(key) == f"writer {winners[0]}".encode()


def test_local_exclusive_create_never_shows_a_partial_file(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    big = b"x" * 5_000_000
    seen: list[int] = []

    def reader() -> None:
        while not done.is_set():
            got = lake.get_tagged("k.bin")
            if got:
                seen.append(len(got[0]))

    done = threading.Event()
    t = threading.Thread(target=reader)
    t.start()
    assert lake.put_if_absent("k.bin", big)
    done.set()
    t.join()
    assert set(seen) <= {len(big)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.bin"]  # no temp or lock file left


def test_update_json_object_keeps_concurrent_entries(lake: Lake) -> None:
    lake.put_bytes("_state/validators/s.json", json.dumps({"old": 1, "gone": 2}).encode())

    def updater(i: int) -> None:
        before = {"old": 1, "gone": 2}
        for j in range(5):
            after = {**before, f"w{i}-{j}": j, "old": 1}
            after.pop("gone", None)
            update_json_object(lake, "_state/validators/s.json", before, after)
            before = after

    assert run_threads(4, updater) == [None] * 4
    stored = json.loads(lake.get_bytes("_state/validators/s.json"))
    assert stored == {"old": 1, **{f"w{i}-{j}": j for i in range(4) for j in range(5)}}


def test_update_json_object_refuses_a_non_object(lake: Lake) -> None:
    lake.put_bytes("_state/x.json", b"[1, 2]")
    with pytest.raises(StoreError, match=r"_state/x.json.*not a JSON object"):
        update_json_object(lake, "_state/x.json", {}, {"a": 1})


# --- leases --------------------------------------------------------------------------------------


def test_second_holder_is_refused_naming_the_holder(lake: Lake) -> None:
    key = interval_lease_key(IID)
    first = Lease(lake, key, holder="airflow:news_ingest/run-1", ttl_s=60, attempt="a1").acquire()
    assert first.fresh and first.previous is None
    info = LeaseInfo.from_json(lake.get_bytes(key))
    assert info is not None and info.holder == "airflow:news_ingest/run-1"
    assert info.pid == os.getpid() and info.attempt == "a1" and not info.expired()
    other = Lease(lake, key, holder="newsetl-run@host:1", ttl_s=60)
    started = time.monotonic()
    with pytest.raises(LeaseError) as caught:
        other.acquire(wait_s=0.6, poll_s=0.1)
    assert time.monotonic() - started >= 0.6  # it waited, then gave up
    err = caught.value
    assert err.transient and err.kind == "lease-held" and err.holder == "airflow:news_ingest/run-1"
    assert f"_leases/interval/{IID}.json" in str(err) and "airflow:news_ingest/run-1" in str(err)
    assert f"pid {os.getpid()}" in str(err)
    again = Lease(lake, key, holder="airflow:news_ingest/run-1", ttl_s=60).acquire()
    assert not again.fresh  # the same holder (another task of the DAG run) re-enters
    assert first.release()  # its tag is stale, but the holder is the same: the run is done
    assert not again.release()
    assert not lake.exists(key)
    assert other.acquire().fresh
    other.release()


def test_waiting_holder_gets_the_lease_once_released(lake: Lake) -> None:
    key = interval_lease_key(IID)
    first = Lease(lake, key, holder="first", ttl_s=60).acquire()
    timer = threading.Timer(0.8, first.release)
    timer.start()
    started = time.monotonic()
    second = Lease(lake, key, holder="second", ttl_s=60).acquire(wait_s=120, poll_s=0.1)
    timer.join()
    assert time.monotonic() - started >= 0.7
    assert second.fresh and second.previous is None
    assert LeaseInfo.from_json(lake.get_bytes(key)).holder == "second"  # type: ignore[union-attr]


_DEAD_HOLDER = """
import os, sys
from etl.lake.settings import LakeSettings
from etl.lake.opener import open_lake
from etl.lake.lease_object import Lease
uri, endpoint = sys.argv[1], sys.argv[2] or None
settings = LakeSettings(uri=uri, endpoint_url=endpoint, region="us-east-1",
                        access_key_id="testing", secret_access_key="testing") if endpoint \
    else LakeSettings(uri=uri)
Lease(open_lake(settings), sys.argv[3], holder="doomed", ttl_s=float(sys.argv[4]),
      process_bound=sys.argv[5] == "bound").acquire()
os._exit(0)  # dies holding it: no release, no more renewals
"""


def dead_holder(ls: LakeSettings, key: str) -> list[str]:
    return [sys.executable, "-c", _DEAD_HOLDER, ls.uri, ls.endpoint_url or "", key]


def test_expired_lease_of_a_dead_holder_is_taken_over(
    lake: Lake, lake_settings: LakeSettings
) -> None:
    key = interval_lease_key(IID)
    lake.put_bytes(f"_staging/{IID}/dead-attempt/articles/s.parquet", b"leftover")
    proc = subprocess.run(
        [*dead_holder(lake_settings, key), "1.5", "task"],
        cwd=ROOT,
        check=True,
    )
    assert proc.returncode == 0
    dead = LeaseInfo.from_json(lake.get_bytes(key))
    assert dead is not None and dead.holder == "doomed" and dead.pid != os.getpid()
    settings = LeaseSettings(ttl_s=30, wait_s=0, poll_s=0.1)
    if not dead.expired():
        with (
            pytest.raises(LeaseError, match=rf"doomed .*pid {dead.pid}"),
            interval_lease(lake, IID, holder="rescuer", settings=settings),
        ):
            pass
    patient = LeaseSettings(ttl_s=30, wait_s=60, poll_s=0.1)
    with interval_lease(lake, IID, holder="rescuer", settings=patient, attempt="a2") as lease:
        assert dead.expired()
        assert lease.fresh and lease.previous is not None and lease.previous.pid == dead.pid
        assert lake.list("_staging/") == []  # the dead attempt's leftovers are gone
        lake.put_bytes(f"_staging/{IID}/a2/x", b"mine")
    assert not lake.exists(key)  # released


def test_heartbeat_keeps_a_long_step_leased(lake: Lake) -> None:
    settings = LeaseSettings(ttl_s=0.9, wait_s=0, poll_s=0.05)
    with interval_lease(lake, IID, holder="long-step", settings=settings) as lease:
        time.sleep(2.5)  # almost three lifetimes of the lease
        lease.check()
        with pytest.raises(LeaseError, match="long-step"):
            Lease(lake, interval_lease_key(IID), holder="other", ttl_s=1).acquire()
    assert not lake.exists(interval_lease_key(IID))


def test_renewal_after_a_takeover_reports_the_lease_lost(lake: Lake) -> None:
    key = interval_lease_key(IID)
    stalled = Lease(lake, key, holder="stalled", ttl_s=0.3).acquire()
    time.sleep(0.5)  # it stopped renewing (a paused process)
    taker = Lease(lake, key, holder="taker", ttl_s=60).acquire()
    assert taker.fresh and taker.previous is not None and taker.previous.holder == "stalled"
    with pytest.raises(LeaseError) as caught:
        stalled.renew()
    assert caught.value.kind == "lease-lost" and caught.value.holder == "taker"
    with pytest.raises(LeaseError, match="expired"):
        stalled.check()
    assert not stalled.release()  # never deletes the taker's lease
    assert LeaseInfo.from_json(lake.get_bytes(key)).holder == "taker"  # type: ignore[union-attr]


def test_tasks_sharing_a_holder_renew_side_by_side(lake: Lake) -> None:
    """Mapped tasks of one DAG run hold the interval lease at once, each renewing it."""
    # ttl 2 s, held 3 s: renewed at least once, with room for a heartbeat late on a busy box
    settings = LeaseSettings(ttl_s=2.0, wait_s=5, poll_s=0.05)

    def task(i: int) -> bool:
        with interval_lease(lake, IID, holder="dag-run-1", settings=settings, release=False) as ls:
            time.sleep(3.0)
            ls.check()
            return ls.lost is None

    assert run_threads(3, task) == [True, True, True]


def test_unreadable_lease_is_taken_over(lake: Lake) -> None:
    lake.put_bytes(PUBLISH_LEASE_KEY, b"garbage")
    with publish_lease(lake, holder="me", settings=LeaseSettings(publish_wait_s=0)) as lease:
        assert lease.fresh
    assert not lake.exists(PUBLISH_LEASE_KEY)


def test_lease_settings_from_the_environment() -> None:
    env = {"NEWSETL_LEASE_TTL_S": "120", "NEWSETL_LEASE_WAIT_S": "0", "NEWSETL_PUBLISH_WAIT_S": "9"}
    lease = load_settings(env=env).lease
    assert (lease.ttl_s, lease.wait_s, lease.publish_wait_s) == (120, 0, 9)
    assert load_settings(env={}).lease == LeaseSettings()
    with pytest.raises(ConfigError, match=r"NEWSETL_LEASE_TTL_S.*number"):
        load_settings(env={"NEWSETL_LEASE_TTL_S": "soon"})
    with pytest.raises(ConfigError, match=r"NEWSETL_LEASE_TTL_S.*> 0"):
        load_settings(env={"NEWSETL_LEASE_TTL_S": "0"})


# --- staging cleanup ---------------------------------------------------------------------------


def test_next_holder_removes_other_attempts_staging(lake: Lake) -> None:
    for key in (
        f"_staging/{IID}/crashed/articles/a.parquet",
        f"_staging/{IID}/crashed/fetch_log/a.parquet",
        f"_staging/{IID}/mine/candidates/a.jsonl",
        "_staging/20261125T1400Z-20261125T1500Z/other/x",  # another interval: untouched
    ):
        lake.put_bytes(key, b"x")
    settings = LeaseSettings(wait_s=0)
    with interval_lease(lake, IID, holder="h", settings=settings, attempt="mine", release=False):
        assert lake.list("_staging/") == [
            f"_staging/{IID}/mine/candidates/a.jsonl",
            "_staging/20261125T1400Z-20261125T1500Z/other/x",
        ]
    lake.put_bytes(f"_staging/{IID}/h-later/x", b"x")
    with interval_lease(lake, IID, holder="h", settings=settings, attempt="mine"):
        assert lake.exists(f"_staging/{IID}/h-later/x")  # re-entered: nothing cleaned
    assert clean_interval_staging(lake, IID) == [
        f"_staging/{IID}/h-later/x",
        f"_staging/{IID}/mine/candidates/a.jsonl",
    ]


def test_staging_older_than_a_day_is_removed_unless_leased(lake: Lake) -> None:
    live, dead, fresh = (
        "20261120T0000Z-20261120T0100Z",
        "20261120T0100Z-20261120T0200Z",
        "20261125T1300Z-20261125T1400Z",
    )
    for key in (f"_staging/{live}/a/x", f"_staging/{dead}/a/x", f"_staging/{dead}/b/y"):
        lake.put_bytes(key, b"x")
    lake.put_bytes("_staging/stray.txt", b"x")
    held = Lease(lake, interval_lease_key(live), holder="running", ttl_s=3600).acquire()
    expired = Lease(lake, interval_lease_key(dead), holder="crashed", ttl_s=0.01).acquire()
    time.sleep(0.05)
    assert expired.info is not None and expired.info.expired()
    if isinstance(lake, LocalLake):  # age them for real; on S3 look from two days ahead
        old = time.time() - 2 * 86400
        for key in lake.list("_staging/"):
            os.utime(lake.uri_for(key), (old, old))
        now = None
    else:
        now = datetime.now(UTC) + timedelta(days=2)
    lake.put_bytes(f"_staging/{fresh}/c/z", b"new")
    removed = clean_old_staging(lake, max_age_s=86400, now=now)
    if now is None:
        assert removed == [f"_staging/{dead}/a/x", f"_staging/{dead}/b/y", "_staging/stray.txt"]
        assert lake.list("_staging/") == [f"_staging/{live}/a/x", f"_staging/{fresh}/c/z"]
    else:  # from two days ahead the fresh one is old too
        assert removed == [
            f"_staging/{dead}/a/x",
            f"_staging/{dead}/b/y",
            f"_staging/{fresh}/c/z",
            "_staging/stray.txt",
        ]
        assert lake.list("_staging/") == [f"_staging/{live}/a/x"]
    held.release()


def test_process_bound_lease_of_a_killed_process_is_taken_over_at_once(
    lake: Lake, lake_settings: LakeSettings
) -> None:
    """``newsetl run`` killed with -9: its lease (process-bound, on this host) does not block
    the next run for its whole TTL; a DAG run's lease (shared across task processes) does."""
    key = interval_lease_key(IID)
    subprocess.run([*dead_holder(lake_settings, key), "3600", "bound"], cwd=ROOT, check=True)
    dead = LeaseInfo.from_json(lake.get_bytes(key))
    assert dead is not None and dead.process_bound and not dead.expired() and dead.holder_dead()
    lease = Lease(lake, key, holder="next", ttl_s=60).acquire(wait_s=0)
    assert lease.fresh and lease.previous == dead
    assert lease.release()
    subprocess.run([*dead_holder(lake_settings, key), "3600", "task"], cwd=ROOT, check=True)
    with pytest.raises(LeaseError, match="doomed"):
        Lease(lake, key, holder="next", ttl_s=60).acquire(wait_s=0)
