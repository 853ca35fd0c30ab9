"""The one exception tree of newsetl.

Every error is either *transient* (worth retrying: timeouts, 5xx, throttling; Airflow retries the
task) or *terminal* (retrying cannot help: no article text, robots disallow, 404, bad input; it
becomes data, a row with an ``error`` or a ``fetch_log`` entry). Every message names the URL,
file, source or lake key it is about.

::

    EtlError                      (base; .transient: bool, .subject: str)
    ├── ConfigError               terminal  bad sources.yaml / settings / env value
    ├── SourceError               either    a feed, sitemap, URL list or WARC could not be read
    ├── FetchError                either    an HTTP fetch failed
    │   ├── FetchTransient        transient timeout, connect error, 429, 5xx
    │   └── FetchTerminal         terminal  robots, 4xx, wrong type, too large, address blocked
    ├── ExtractError              terminal  empty/binary/undecodable page, no article text
    ├── StoreError                either    a lake read/write failed (S3 throttling is transient)
    │   └── LeaseError            transient another run holds the interval / publish lease, or
    │                                       took it over (names the lease key and the holder)
    └── QualityError              terminal  the quality gate refused an interval

*What* went wrong is the error's ``kind``, one of :data:`ErrorKind` (also a ``fetch_log`` row's
``error_class`` and a failed page's ``kind``). *Whether to retry* is said one way: the error's
``transient`` flag (its class's default, or ``transient=`` for the classes that can be either);
a step result that reports an error carries that flag under the same name, and
:data:`TRANSIENT_KINDS` names the ``error_class`` values a transient fetch error leaves in a row.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ERROR_KINDS",
    "TRANSIENT_KINDS",
    "ConfigError",
    "ErrorKind",
    "EtlError",
    "ExtractError",
    "FetchError",
    "FetchTerminal",
    "FetchTransient",
    "LeaseError",
    "QualityError",
    "SourceError",
    "StoreError",
]

ErrorKind = Literal[
    # the class-level kinds of the tree below
    "error", "config", "source", "fetch", "extract", "store", "quality",
    "lease-held", "lease-lost",
    # fetching (a fetch_log row's error_class)
    "address-blocked", "bad-url", "connect", "deadline", "dns", "network", "timeout",
    "http-1xx", "http-3xx", "http-429", "http-4xx", "http-5xx", "not-found", "robots",
    "redirect-loop", "too-many-redirects", "too-large", "wrong-type", "pending",
    # sources
    "listing", "parse", "internal",
    # pages (extract: a failed page's row)
    "bad-encoding", "binary", "empty", "no-text", "no-url", "too-complex", "too-deep",
    "undecodable", "unreadable",
]  # fmt: skip
"""What went wrong, as one word: an error's ``kind`` and a ``fetch_log`` row's ``error_class``."""

ERROR_KINDS: frozenset[str] = frozenset(get_args(ErrorKind))

TRANSIENT_KINDS: frozenset[ErrorKind] = frozenset(
    ("connect", "network", "dns", "timeout", "http-429", "http-5xx")
)
"""The fetch_log error classes a later try may not repeat (the row of a transient error)."""


class EtlError(Exception):
    """Base of every newsetl error. ``subject`` is the URL, file, source id or key concerned."""

    transient: bool = False
    kind: ErrorKind = "error"

    def __init__(
        self,
        subject: str,
        message: str,
        *,
        kind: ErrorKind | None = None,
        transient: bool | None = None,
    ) -> None:
        self.subject = subject
        self.message = message
        if kind is not None:
            self.kind = kind
        if transient is not None:
            self.transient = transient
        super().__init__(f"{subject}: {message}")


class ConfigError(EtlError):
    """Invalid configuration: names the file or variable and the field."""

    kind: ErrorKind = "config"


class SourceError(EtlError):
    """A source (feed, sitemap, URL list, WARC) could not be read or parsed."""

    kind: ErrorKind = "source"


class FetchError(EtlError):
    """An HTTP fetch failed; ``kind`` is the fetch_log error class."""

    kind: ErrorKind = "fetch"


class FetchTransient(FetchError):
    transient = True


class FetchTerminal(FetchError):
    transient = False


class ExtractError(EtlError):
    """A page yielded no article: ``kind`` is empty, binary, undecodable, no-text, parse."""

    kind: ErrorKind = "extract"


class StoreError(EtlError):
    """A lake operation failed; ``subject`` is the key or URI."""

    kind: ErrorKind = "store"


class LeaseError(StoreError):
    """A lease is held by someone else (or was lost to them); retry later.

    ``kind`` is ``lease-held`` (acquisition gave up waiting) or ``lease-lost`` (a renewal
    found another holder); ``holder`` is the other holder, when known."""

    kind: ErrorKind = "lease-held"
    transient = True

    def __init__(
        self,
        subject: str,
        message: str,
        *,
        kind: ErrorKind | None = None,
        holder: str | None = None,
    ) -> None:
        super().__init__(subject, message, kind=kind)
        self.holder = holder


class QualityError(EtlError):
    """The quality gate refused an interval's output."""

    kind: ErrorKind = "quality"
