"""Leases on lake keys: one run at a time per interval, one publish at a time per lake.

A lease is a small JSON object (:class:`LeaseInfo`: holder, host, pid, attempt, acquired /
renewed / expires timestamps) created with a conditional write (``Lake.put_if_absent``:
``If-None-Match: *`` on S3, an exclusive create locally). Whoever created it holds it until it
expires (``ttl_s`` after the last renewal) or is released. A holder renews it with
``put_if_match`` (the ETag it last wrote: a compare-and-swap), so a renewal never overwrites a
lease someone else has taken; a heartbeat thread renews it every ``ttl_s / 3`` while a long
step runs. A crashed holder stops renewing: once its lease has expired the next run takes it
over (again by compare-and-swap: of two runs taking over at once, one wins). Acquiring a lease
already held by the *same* holder re-enters it (the tasks of one Airflow DAG run share one
holder id). A second holder waits up to ``wait_s``, then gets a transient
:class:`~etl.errors.LeaseError` naming the holder, so Airflow retries the task later. A
*process-bound* lease (``newsetl run``, a publish: held by one process, never across tasks) is
taken over at once, expired or not, when its process is gone on this very host (``kill -9``).

Keys: ``_leases/interval/<interval>.json`` (:func:`interval_lease`: held for a whole
``newsetl run``, or across the tasks of a DAG run) and ``_leases/publish.json``
(:func:`publish_lease`: held around the seen check and the writes of one publish, lake-wide).

Clock: expiry compares the holder's ``expires_at`` (UTC) with the reader's clock; keep hosts in
NTP sync, and ``ttl_s`` well above any skew. A holder paused longer than ``ttl_s`` (SIGSTOP, a
VM freeze) can wake up after its lease was taken over: :meth:`Lease.check` before each write
narrows that window, it cannot close it (that needs fencing tokens in the store itself).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from etl.lake.base import Lake
from etl.lake.layout import PUBLISH_LEASE_KEY, STAGING_PREFIX, interval_lease_key
from etl.lake.lease_object import Lease, LeaseInfo
from etl.lake.settings import LeaseSettings

log = logging.getLogger("etl.lake.lease")


def new_holder(kind: str = "newsetl") -> str:
    """A holder id unique to this process and call: ``<kind>@<host>:<pid>:<random>``."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def hold(
    lake: Lake,
    key: str,
    *,
    holder: str,
    ttl_s: float,
    wait_s: float,
    poll_s: float = 0.5,
    attempt: str | None = None,
    release: bool = True,
    process_bound: bool = False,
) -> Iterator[Lease]:
    """Acquire the lease at ``key``, renew it while the block runs, release it after.
    ``process_bound``: the lease lives only as long as this process (a run on the same host
    takes it over at once when the process is gone)."""
    lease = Lease(
        lake, key, holder=holder, ttl_s=ttl_s, attempt=attempt, process_bound=process_bound
    )
    lease.acquire(wait_s=wait_s, poll_s=poll_s)
    try:
        with lease.heartbeat():
            yield lease
    finally:
        if release:
            lease.release()


@contextmanager
def interval_lease(
    lake: Lake,
    interval_id: str,
    *,
    holder: str,
    settings: LeaseSettings,
    attempt: str | None = None,
    release: bool = True,
) -> Iterator[Lease]:
    """Hold the interval's lease for the block. When it changes hands, the staging the
    previous holders left under ``_staging/<interval>/`` is removed first (all of it but
    ``attempt``'s own folder). ``release=False`` leaves it held (until it expires) for the
    next task of the same holder; with ``release=True`` the lease is bound to this process."""
    with hold(
        lake,
        interval_lease_key(interval_id),
        holder=holder,
        ttl_s=settings.ttl_s,
        wait_s=settings.wait_s,
        poll_s=settings.poll_s,
        attempt=attempt,
        release=release,
        process_bound=release,
    ) as lease:
        if lease.fresh:
            clean_interval_staging(lake, interval_id, keep=attempt)
        yield lease


@contextmanager
def publish_lease(lake: Lake, *, holder: str, settings: LeaseSettings) -> Iterator[Lease]:
    """Hold the lake-wide publish lease for the block (the seen check and the writes)."""
    with hold(
        lake,
        PUBLISH_LEASE_KEY,
        holder=holder,
        ttl_s=settings.publish_ttl_s,
        wait_s=settings.publish_wait_s,
        poll_s=min(settings.poll_s, 0.2),
        process_bound=True,
    ) as lease:
        yield lease


def clean_interval_staging(lake: Lake, interval_id: str, *, keep: str | None = None) -> list[str]:
    """Remove ``_staging/<interval>/`` but for ``keep``'s folder; only the holder of the
    interval's lease may call this. Returns the keys removed."""
    prefix = f"{STAGING_PREFIX}{interval_id}/"
    mine = f"{prefix}{keep}/" if keep else None
    stale = [k for k in lake.list(prefix) if mine is None or not k.startswith(mine)]
    if stale:
        lake.delete(stale)
        log.info("interval %s: removed %d staging objects of earlier runs", interval_id, len(stale))
    return stale


def clean_old_staging(lake: Lake, *, max_age_s: float, now: datetime | None = None) -> list[str]:
    """Remove ``_staging/`` objects older than ``max_age_s``, except those of intervals whose
    lease is held by a live (unexpired) holder. Returns the keys removed."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=max_age_s)
    by_interval: dict[str, list[str]] = {}
    for key, modified in lake.list_modified(STAGING_PREFIX):
        if modified < cutoff:
            rest = key[len(STAGING_PREFIX) :]
            by_interval.setdefault(rest.split("/", 1)[0] if "/" in rest else "", []).append(key)
    old: list[str] = []
    for interval_id, keys in by_interval.items():
        if interval_id:
            got = lake.get_tagged(interval_lease_key(interval_id))
            info = LeaseInfo.from_json(got[0]) if got else None
            if info is not None and not info.expired():
                continue  # a live run owns it
        old += keys
    if old:
        lake.delete(old)
        log.info("removed %d staging objects older than %gs", len(old), max_age_s)
    return old
