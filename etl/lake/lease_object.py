"""A lease on one lake key: the lease object (:class:`LeaseInfo`) and the handle its holder
acquires, renews, checks and releases it with (:class:`Lease`); how leases work and which ones
newsetl takes: :mod:`etl.lake.lease`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from etl.errors import EtlError, LeaseError
from etl.lake.base import Lake

log = logging.getLogger("etl.lake.lease_object")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease object says."""

    holder: str
    host: str
    pid: int
    attempt: str | None
    acquired_at: str
    renewed_at: str
    expires_at: str
    ttl_s: float
    process_bound: bool = False  # held only while its process lives (not across DAG tasks)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or _now()) >= datetime.fromisoformat(self.expires_at)

    def holder_dead(self) -> bool:
        """A process-bound lease whose process, on this very host, is gone."""
        if not self.process_bound or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, owned by someone else
            return False
        return False

    def describe(self) -> str:
        attempt = f", attempt {self.attempt}" if self.attempt else ""
        return (
            f"{self.holder} (host {self.host}, pid {self.pid}{attempt}), "
            f"acquired {self.acquired_at}, expires {self.expires_at}"
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> LeaseInfo | None:
        """The lease, or None when the object is not a readable lease (taken over as expired)."""
        try:
            raw = json.loads(data)
            info = cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
            datetime.fromisoformat(info.expires_at)
            return info
        except (ValueError, TypeError, KeyError):
            return None


class Lease:
    """A lease on one lake key for ``holder``: :meth:`acquire`, :meth:`renew`, :meth:`release`.

    After :meth:`acquire`, ``fresh`` says whether the lease changed hands (created, or taken
    over from another holder) rather than being re-entered by the same holder, and
    ``previous`` is the lease taken over, if any.
    """

    def __init__(
        self,
        lake: Lake,
        key: str,
        *,
        holder: str,
        ttl_s: float,
        attempt: str | None = None,
        process_bound: bool = False,
    ) -> None:
        self.lake, self.key, self.holder, self.ttl_s = lake, key, holder, ttl_s
        self.attempt, self.process_bound = attempt, process_bound
        self.tag: str | None = None
        self.info: LeaseInfo | None = None
        self.fresh = False
        self.previous: LeaseInfo | None = None
        self.lost: EtlError | None = None
        self._lock = threading.Lock()

    @property
    def subject(self) -> str:
        return self.lake.uri_for(self.key)

    def _body(self, acquired_at: str | None = None) -> LeaseInfo:
        now = _now()
        return LeaseInfo(
            holder=self.holder,
            host=socket.gethostname(),
            pid=os.getpid(),
            attempt=self.attempt,
            acquired_at=acquired_at or now.isoformat(),
            renewed_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=self.ttl_s)).isoformat(),
            ttl_s=self.ttl_s,
            process_bound=self.process_bound,
        )

    def _try(self) -> LeaseInfo | None:
        """One try; None once held, else the (live) lease of the other holder."""
        while True:
            body = self._body()
            tag = self.lake.put_if_absent(self.key, body.to_json())
            if tag is not None:
                self.tag, self.info, self.fresh, self.previous = tag, body, True, None
                return None
            got = self.lake.get_tagged(self.key)
            if got is None:  # released in between: try again at once
                continue
            current = LeaseInfo.from_json(got[0])
            mine = current is not None and current.holder == self.holder
            live = current is not None and not current.expired() and not current.holder_dead()
            if current is not None and not mine and live:
                return current
            if mine and current is not None:
                body = self._body(acquired_at=current.acquired_at)
            tag = self.lake.put_if_match(self.key, body.to_json(), got[1])
            if tag is None:  # someone else changed it first: look again
                continue
            self.tag, self.info, self.fresh = tag, body, not mine
            self.previous = None if mine else current
            if not mine:
                was = current.describe() if current else "an unreadable lease"
                log.warning(
                    "lease %s: took over the lease of %s (expired or dead)", self.subject, was
                )
            return None

    def acquire(self, *, wait_s: float = 0.0, poll_s: float = 0.5) -> Lease:
        """Hold the lease, waiting up to ``wait_s`` for another holder to release it or let it
        expire; then a transient LeaseError naming that holder."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                other = self._try()
            if other is None:
                self.lost = None
                log.debug("lease %s held by %s", self.subject, self.holder)
                return self
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeaseError(
                    self.subject,
                    f"held by {other.describe()}; gave up after {wait_s:g}s "
                    f"(another run is working on it; retry later)",
                    holder=other.holder,
                )
            time.sleep(min(left, poll_s * random.uniform(0.5, 1.5)))

    def renew(self) -> None:
        """Extend the lease by ``ttl_s``; a LeaseError (``lease-lost``) if it is not ours."""
        with self._lock:
            if self.tag is None or self.info is None:
                raise LeaseError(self.subject, "renewing a lease never acquired", kind="lease-lost")
            while True:
                body = self._body(acquired_at=self.info.acquired_at)
                tag = self.lake.put_if_match(self.key, body.to_json(), self.tag)
                if tag is not None:
                    self.tag, self.info = tag, body
                    return
                got = self.lake.get_tagged(self.key)  # changed: by a task sharing our holder?
                current = LeaseInfo.from_json(got[0]) if got else None
                if got is None or current is None or current.holder != self.holder:
                    self.tag = None
                    who = current.describe() if current else "nobody (released)"
                    raise LeaseError(
                        self.subject,
                        f"lease lost by {self.holder}: now held by {who}",
                        kind="lease-lost",
                        holder=current.holder if current else None,
                    )
                self.tag = got[1]

    def check(self) -> None:
        """Raise if the heartbeat found the lease lost (call before writing)."""
        if self.lost is not None:
            raise self.lost
        if self.info is not None and self.info.expired():
            raise LeaseError(self.subject, f"lease of {self.holder} expired", kind="lease-lost")

    def release(self) -> bool:
        """Give the lease up: delete it if its holder is still ours (another task of the same
        holder may have renewed it since); False if it was not ours any more."""
        with self._lock:
            tag, self.tag = self.tag, None
            done = False
            while tag is not None:
                if self.lake.delete_if_match(self.key, tag):
                    done = True
                    break
                got = self.lake.get_tagged(self.key)
                current = LeaseInfo.from_json(got[0]) if got else None
                tag = got[1] if got and current and current.holder == self.holder else None
        if not done:
            log.warning("lease %s: not released by %s, no longer its holder", self.key, self.holder)
        return done

    @contextmanager
    def heartbeat(self, every_s: float | None = None) -> Iterator[Lease]:
        """Renew the lease in a background thread while the block runs."""
        stop = threading.Event()
        every = every_s or self.ttl_s / 3

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.renew()
                except LeaseError as exc:
                    self.lost = exc
                    log.error("%s", exc)
                    return
                except EtlError as exc:  # a store hiccup: try again at the next beat
                    log.warning("lease %s: renewal failed, will retry: %s", self.key, exc)

        thread = threading.Thread(target=beat, name=f"lease-heartbeat {self.key}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
