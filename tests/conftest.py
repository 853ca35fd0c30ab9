"""Shared pytest fixtures. Each section is owned by the module it serves; add yours in its own."""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# fetch / discover (etl.fetch, etl.discover): local HTTP sites on 127.0.0.1
# ---------------------------------------------------------------------------------------------
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.sites import Site


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
# lake / S3 (etl.lake): an offline AWS environment for every test and a
# moto S3 server on 127.0.0.1 for the session (tests/support/s3_server.py)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def aws_offline_env() -> Iterator[None]:
    """Dummy AWS credentials and region, no instance metadata, no proxy for loopback, and a
    default endpoint on a closed loopback port: no test can reach a real AWS address."""
    import os

    from tests.support.s3_server import AWS_TEST_ENV, AWS_UNSET, no_proxy

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
    from tests.support.s3_server import MotoServer

    with MotoServer() as server:
        yield server


# ---------------------------------------------------------------------------------------------
# Airflow (dags/; tests/airflow/: test_dags.py, test_airflow_e2e.py and the other slow Airflow
# tests): Airflow only ever runs in subprocesses, never imported by the test session (importing
# it reconfigures logging and fixes AIRFLOW_HOME for the whole process). Their environment comes
# from scripts/airflow_local.py, the helper `make run` and `make bench` use too.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_local() -> Any:
    """The module ``scripts/airflow_local.py``: ``airflow_vars``, ``subprocess_env``,
    ``prepare_home``, ``dags_test`` (``airflow dags test`` with its final state), ``bin_path``."""
    import importlib
    import sys
    from pathlib import Path

    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module("airflow_local")


@pytest.fixture(scope="session")
def airflow_env(
    airflow_local: Any, aws_offline_env: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A migrated Airflow home for the session, shared by every slow Airflow test.

    Returns a dict of that home's Airflow variables (one dict for the session: copy it before
    changing it):

    - ``AIRFLOW_HOME``: a temp folder holding ``airflow.db`` (SQLite), migrated with
      ``airflow db migrate``, and the ``news_http`` pool (4 slots);
    - ``AIRFLOW__CORE__DAGS_FOLDER``: this repository's ``dags/``;
    - ``AIRFLOW__API_AUTH__JWT_SECRET``: one random secret for the session;
    - ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, ``AIRFLOW__CORE__LOAD_EXAMPLES=False``, and
      Airflow's network features off (metrics, traces, Sentry, e-mail; API URLs on loopback).

    Merge it over the session's (offline AWS) environment to run Airflow, adding what the run
    needs::

        extra = {"NEWSETL_SOURCES": ..., "NEWSETL_LAKE": ...}
        env = airflow_local.subprocess_env(airflow_env, extra)
        result = airflow_local.dags_test(env, logical_date, log=tmp_path / "dags-test.log")
        assert result.ok, result.tail()
        # or: subprocess.run([airflow_local.bin_path("airflow"), ...], env=env)

    ``subprocess_env`` drops inherited ``AIRFLOW__*``/``AIRFLOW_HOME`` settings and keeps
    ``AIRFLOW_CONN_*`` (pass ``AIRFLOW_CONN_NEWS_LAKE`` in the extra dict for an S3 lake). The
    database is shared: runs of ``news_ingest`` with the same logical date in two tests are the
    same DAG run (``dags test`` clears and reruns it). Set-up costs ~10 s once per session.
    """
    home = tmp_path_factory.mktemp("airflow_home")
    variables = airflow_local.airflow_vars(home, jwt_secret=airflow_local.new_jwt_secret())
    airflow_local.prepare_home(home, airflow_local.subprocess_env(variables))
    return dict(variables)
