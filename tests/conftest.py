"""Shared pytest fixtures. Each section is owned by the module it serves; add yours in its own."""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# fetch / sources / warc (etl.fetch, etl.sources, etl.warc): local HTTP sites on 127.0.0.1
# ---------------------------------------------------------------------------------------------
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sites import Site


@pytest.fixture
def site() -> Iterator[Site]:
    """A started local site with an empty route table (fill ``site.routes``)."""
    with Site() as s:
        yield s


@pytest.fixture
def make_site() -> Iterator[Callable[..., Site]]:
    """Factory for more sites (``make_site(routes, rate_limit=...)``); all closed at teardown."""
    sites: list[Site] = []

    def make(*args: Any, **kwargs: Any) -> Site:
        s = Site(*args, **kwargs).start()
        sites.append(s)
        return s

    yield make
    for s in sites:
        s.close()


# ---------------------------------------------------------------------------------------------
# lake / S3 (etl.lake, etl.lake_s3, etl.store): an offline AWS environment for every test and a
# moto S3 server on 127.0.0.1 for the session (tests/s3_server.py)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def aws_offline_env() -> Iterator[None]:
    """Dummy AWS credentials and region, no instance metadata, no proxy for loopback, and a
    default endpoint on a closed loopback port: no test can reach a real AWS address."""
    import os

    from s3_server import AWS_TEST_ENV, AWS_UNSET, no_proxy

    with pytest.MonkeyPatch.context() as mp:
        for name in AWS_UNSET:
            mp.delenv(name, raising=False)
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        for name in ("NO_PROXY", "no_proxy"):
            mp.setenv(name, no_proxy(os.environ.get(name)))
        yield


@pytest.fixture(scope="session")
def s3_server(aws_offline_env: None) -> Iterator[Any]:
    """A started :class:`s3_server.MotoServer` (``.endpoint``, ``.client()``, ``.new_bucket()``)."""
    from s3_server import MotoServer

    with MotoServer() as server:
        yield server
