"""Fetching: one polite, guarded HTTP client for the whole run, and the raw archive of what it got.

:class:`Fetcher` fetches a URL (robots.txt, per-host politeness, address guard, deadlines,
retries, conditional GET) and archives every exchange as WARC (:class:`WarcArchive`);
``Fetcher.fetch_all`` runs many candidates through the dispatcher.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.fetch.archive import (
        Exchange as Exchange,
    )
    from etl.fetch.archive import (
        Opener as Opener,
    )
    from etl.fetch.archive import (
        WarcArchive as WarcArchive,
    )
    from etl.fetch.archive import (
        raw_loader as raw_loader,
    )
    from etl.fetch.archive import (
        read_record as read_record,
    )
    from etl.fetch.archive import (
        record_page as record_page,
    )
    from etl.fetch.deadline import (
        http_client as http_client,
    )
    from etl.fetch.fetcher import (
        Fetcher as Fetcher,
    )
    from etl.fetch.models import (
        FetchLog as FetchLog,
    )
    from etl.fetch.models import (
        FetchPolicy as FetchPolicy,
    )
    from etl.fetch.models import (
        FetchResult as FetchResult,
    )
    from etl.fetch.models import (
        Validators as Validators,
    )
    from etl.fetch.models import (
        validators_from_json as validators_from_json,
    )
    from etl.fetch.models import (
        validators_to_json as validators_to_json,
    )
    from etl.fetch.netguard import (
        Resolver as Resolver,
    )
    from etl.fetch.netguard import (
        system_resolver as system_resolver,
    )

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "archive": (
            "Exchange",
            "Opener",
            "WarcArchive",
            "raw_loader",
            "read_record",
            "record_page",
        ),
        "deadline": ("http_client",),
        "fetcher": ("Fetcher",),
        "models": (
            "FetchLog",
            "FetchPolicy",
            "FetchResult",
            "Validators",
            "validators_from_json",
            "validators_to_json",
        ),
        "netguard": (
            "Resolver",
            "system_resolver",
        ),
    },
)
