"""The typed seams: step results as declared (etl.runner.results), one error vocabulary
(etl.errors.ErrorKind), one fetch configuration (FetchPolicy is FetchOptions plus the run's own)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pydantic
import pytest
import yaml

from etl.config import FetchOptions, Settings, load_sources
from etl.errors import ERROR_KINDS, TRANSIENT_KINDS
from etl.fetch.models import FetchPolicy, status_error
from etl.records import Interval
from etl.runner import (
    Discovered,
    IntervalResult,
    Mode,
    Processed,
    Published,
    Run,
    Status,
    Validated,
    discover_step,
    run_interval,
)
from tests.support.sites import Response, Site

ETL = Path(__file__).resolve().parents[2] / "etl"
HOUR = Interval(datetime(2022, 5, 14, 9, tzinfo=UTC), datetime(2022, 5, 14, 10, tzinfo=UTC))
WHEN = "Sat, 14 May 2022 09:30:00 +0000"
BODY = "".join(
    f"<p>{s} The harbour ferry returned to service on Monday after a three-month refit that "
    "replaced both engines and rebuilt the passenger lounge, the port authority said.</p>"
    for s in ("First.", "Second.", "Third.", "Fourth.")
)
PAGE = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Ferry returns</title>"
    f"</head><body><main><article><h1>Ferry returns</h1>{BODY}</article></main></body></html>"
).encode()


def keys(td: Any) -> tuple[frozenset[str], frozenset[str]]:
    return td.__required_keys__, td.__required_keys__ | td.__optional_keys__


def assert_shape(value: dict[str, Any], td: Any) -> None:
    required, allowed = keys(td)
    assert required <= set(value), f"{td.__name__}: missing {required - set(value)}"
    assert set(value) <= allowed, f"{td.__name__}: undeclared {set(value) - allowed}"


def rss(base: str, paths: list[str]) -> Response:
    items = "".join(
        f"<item><title>{p}</title><link>{base}{p}</link><pubDate>{WHEN}</pubDate></item>"
        for p in paths
    )
    body = (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}</channel></rss>"
    )
    return Response(200, body.encode(), content_type="application/rss+xml")


def open_run(tmp_path: Path, site: Site) -> Run:
    data = {
        "allow_private_addresses": True,
        "fetch": {"max_attempts": 1, "connect_timeout_s": 2.0, "read_timeout_s": 2.0},
        "sources": [
            {"id": "news", "kind": "rss", "url": site.url("/feed.xml"), "per_host_delay_s": 0},
            {"id": "gone", "kind": "rss", "url": site.url("/gone.xml"), "per_host_delay_s": 0},
        ],
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return Run.open(Settings(lake=str(tmp_path / "lake"), sources=path), HOUR)


def test_step_results_have_the_declared_shape(tmp_path: Path, site: Site) -> None:
    site.routes.update(
        {
            "/feed.xml": rss(site.base, ["/a", "/busy"]),
            "/a": Response(200, PAGE),
            "/busy": Response(503, b"busy", content_type="text/plain"),
            "/gone.xml": Response(404, b"no", content_type="text/plain"),
        }
    )
    run = open_run(tmp_path, site)
    found = discover_step(run, "news")
    assert_shape(dict(found), Discovered)
    assert found["mode"] == "fetch"

    out: IntervalResult = run_interval(run)
    assert_shape(dict(out), IntervalResult)
    assert_shape(dict(out["quality"]), Validated)
    published = {k: v for k, v in out.items() if k not in ("quality", "sources")}
    assert_shape(published, Published)
    modes = []
    for p in out["sources"]:
        assert_shape(dict(p), Processed)
        assert p["mode"] in get_args(Mode)
        modes.append(p["mode"])
        if "kind" in p:
            assert p["kind"] in ERROR_KINDS
    assert sorted(modes) == ["failed", "fetch"]
    assert out["status"] in get_args(Status) and out["status"] == "incomplete"
    assert out["pending"] == [site.url("/busy")] and out["articles"] == 1


def kinds_in_source() -> set[str]:
    """Every literal ``kind=`` / ``error_class=`` / Failure kind written in etl/."""
    found = set()
    for path in ETL.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg in ("kind", "error_class"):
                values = [node.value]
                if isinstance(node.value, ast.IfExp):
                    values = [node.value.body, node.value.orelse]
                found |= {
                    v.value
                    for v in values
                    if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value
                }
    return found


def test_every_error_kind_is_declared_once() -> None:
    used = kinds_in_source()
    assert len(used) > 25  # the reader sees them
    assert used - ERROR_KINDS == set()
    assert TRANSIENT_KINDS <= ERROR_KINDS
    # the status errors name declared kinds, 1xx and 3xx included (no kind made of a number)
    for status in (*range(100, 200, 7), 300, 305, *range(400, 600, 3)):
        err = status_error("https://example.org/x", status)
        assert err is not None and err.kind in ERROR_KINDS, status
    assert status_error("https://example.org/x", 150).kind == "http-1xx"  # type: ignore[union-attr]
    assert status_error("https://example.org/x", 300).kind == "http-3xx"  # type: ignore[union-attr]


def test_fetch_policy_is_the_fetch_options_plus_the_runs_own(tmp_path: Path) -> None:
    assert issubclass(FetchPolicy, FetchOptions)
    shared = set(FetchOptions.model_fields)
    assert shared <= set(FetchPolicy.model_fields)
    for name in shared:  # one default, declared once
        assert FetchPolicy.model_fields[name].default == FetchOptions.model_fields[name].default
    path = tmp_path / "sources.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "user_agent": "t/1 (+https://example.org/c)",
                "fetch": {"max_concurrency": 3, "run_deadline_s": 9.5, "max_attempts": 2},
                "sources": [{"id": "s", "kind": "rss", "url": "https://example.org/f"}],
            }
        )
    )
    sources = load_sources(path)
    policy = FetchPolicy.from_config(sources)
    assert {n: getattr(policy, n) for n in shared} == sources.fetch.model_dump()
    assert (policy.max_concurrency, policy.run_deadline_s, policy.max_attempts) == (3, 9.5, 2)
    assert policy.user_agent == "t/1 (+https://example.org/c)"
    # the bounds of the sources file hold for a policy made in code too
    with pytest.raises(pydantic.ValidationError):
        FetchPolicy(max_concurrency=0)
    with pytest.raises(pydantic.ValidationError):
        FetchPolicy(per_host_delay_s=-1)
