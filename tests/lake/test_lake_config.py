"""Lake settings: from the AWS environment, from an Airflow AWS connection, inside Settings."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from etl.config import Settings, load_settings
from etl.errors import ConfigError
from etl.lake.settings import (
    DEFAULT_LAKE,
    LakeSettings,
    lake_settings_from_airflow_conn,
    lake_settings_from_env,
)

URI = "s3://news-lake/prod"


def test_from_env_reads_the_standard_aws_variables() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://generic:9000",
        "AWS_ENDPOINT_URL_S3": "http://minio:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "SECRET",
        "AWS_SESSION_TOKEN": "TOKEN",
        "AWS_PROFILE": "ignored-when-keys-are-set",
        "AWS_MAX_ATTEMPTS": "8",
        "NEWSETL_S3_PATH_STYLE": "true",
        "NEWSETL_S3_MULTIPART_THRESHOLD_MB": "64",
        "NEWSETL_S3_MULTIPART_CHUNK_MB": "32",
        "NEWSETL_S3_MAX_CONCURRENCY": "4",
    }
    s = lake_settings_from_env(env, URI)
    assert (s.uri, s.endpoint_url, s.region, s.path_style) == (
        URI,
        "http://minio:9000",  # the S3-specific endpoint wins
        "eu-central-1",  # AWS_REGION wins over AWS_DEFAULT_REGION
        True,
    )
    assert (s.access_key_id, s.secret_access_key, s.session_token, s.profile) == (
        "AKID",
        "SECRET",
        "TOKEN",
        None,
    )
    assert (s.max_attempts, s.multipart_threshold_mb, s.multipart_chunk_mb) == (8, 64, 32)
    assert s.max_concurrency == 4 and s.is_s3


def test_from_env_fallbacks() -> None:
    s = lake_settings_from_env({}, URI)
    assert s == LakeSettings(uri=URI)
    assert (s.endpoint_url, s.region, s.access_key_id, s.profile, s.path_style) == (
        None,
        None,
        None,
        None,
        False,
    )
    s = lake_settings_from_env(
        {
            "AWS_ENDPOINT_URL": "http://generic:9000",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AKID",  # without its secret: left to boto3's chain
            "AWS_PROFILE": "dev",
            "NEWSETL_S3_PATH_STYLE": "0",
        },
        "./lake",
    )
    assert (s.endpoint_url, s.region, s.access_key_id, s.profile, s.path_style) == (
        "http://generic:9000",
        "eu-west-1",
        None,
        "dev",
        False,
    )
    assert not s.is_s3
    ignored = {"AWS_ENDPOINT_URL": "http://x:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert lake_settings_from_env(ignored, URI).endpoint_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEWSETL_S3_PATH_STYLE", "maybe"),
        ("AWS_MAX_ATTEMPTS", "three"),
        ("NEWSETL_S3_MULTIPART_CHUNK_MB", "4"),  # below S3's 5 MiB minimum part
        ("NEWSETL_S3_MAX_CONCURRENCY", "0"),
    ],
)
def test_from_env_rejects_bad_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        lake_settings_from_env({name: value}, URI)


def _conn(extra: Any, **kw: Any) -> dict[str, Any]:
    return {"conn_type": "aws", "login": "AKID", "password": "SECRET", "extra": extra, **kw}


@pytest.mark.parametrize("as_json", [False, True])
def test_from_airflow_connection(as_json: bool) -> None:
    extra = {
        "endpoint_url": "http://minio:9000",
        "region_name": "us-east-1",
        "aws_session_token": "TOKEN",
        "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 9}},
    }
    s = lake_settings_from_airflow_conn(_conn(json.dumps(extra) if as_json else extra), URI)
    assert (s.uri, s.endpoint_url, s.region, s.path_style) == (
        URI,
        "http://minio:9000",
        "us-east-1",
        True,
    )
    assert (s.access_key_id, s.secret_access_key, s.session_token) == ("AKID", "SECRET", "TOKEN")
    assert s.max_attempts == 10  # botocore's max_attempts counts retries, ours every try


def test_from_airflow_connection_variants() -> None:
    s = lake_settings_from_airflow_conn(
        _conn(
            {
                "service_config": {"s3": {"endpoint_url": "http://ceph:7480"}},
                "s3": {"addressing_style": "path"},
                "config_kwargs": {"retries": {"total_max_attempts": 3}},
            }
        ),
        URI,
    )
    assert (s.endpoint_url, s.path_style, s.max_attempts) == ("http://ceph:7480", True, 3)
    bare = lake_settings_from_airflow_conn({"conn_type": "aws", "extra": ""}, URI)
    assert bare == LakeSettings(uri=URI)  # everything from boto3's default chain
    virtual = lake_settings_from_airflow_conn(
        _conn({"config_kwargs": {"s3": {"addressing_style": "virtual"}}}), URI
    )
    assert not virtual.path_style
    assert lake_settings_from_airflow_conn(_conn(None, login=None, password=None), URI) == (
        LakeSettings(uri=URI)
    )


@pytest.mark.parametrize(
    ("conn", "match"),
    [
        (_conn("{not json"), "not valid JSON"),
        (_conn("[1, 2]"), "JSON object"),
        (_conn({"config_kwargs": "path"}), "config_kwargs"),
        (_conn({"config_kwargs": {"retries": {"total_max_attempts": "x"}}}), "retries"),
        (_conn({}, password=None), "secret access key"),
    ],
)
def test_from_airflow_connection_rejects(conn: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        lake_settings_from_airflow_conn(conn, URI)


def test_lake_settings_validate_and_hide_secrets() -> None:
    s = LakeSettings(uri=URI, access_key_id="AKID", secret_access_key="SECRET", session_token="T")
    assert "SECRET" not in repr(s) and "'T'" not in repr(s) and "AKID" in repr(s)
    assert pickle.loads(pickle.dumps(s)) == s
    for bad in (
        {"multipart_chunk_mb": 4},
        {"multipart_threshold_mb": 1},
        {"max_attempts": 0},
        {"connect_timeout_s": 0},
        {"uri": ""},
        {"secret_access_key": "only-the-secret"},
    ):
        with pytest.raises(ConfigError):
            kwargs: dict[str, Any] = {"uri": URI, **bad}
            LakeSettings(**kwargs)


def test_load_settings_resolves_the_lake_settings() -> None:
    env = {
        "NEWSETL_LAKE": URI,
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "NEWSETL_S3_PATH_STYLE": "yes",
    }
    s = load_settings(env=env)
    assert s.lake == URI and s.lake_settings.uri == URI
    assert s.lake_settings.endpoint_url == "http://minio:9000" and s.lake_settings.path_style
    flag = load_settings(env=env, lake="s3://other/x", workers=2)
    assert flag.lake == flag.lake_settings.uri == "s3://other/x" and flag.workers == 2
    conn = _conn({"endpoint_url": "http://from-conn:9000"})
    airflow = load_settings(env=env, lake="s3://other/x", lake_conn=conn)
    assert airflow.lake_settings.endpoint_url == "http://from-conn:9000"
    assert not airflow.lake_settings.path_style  # the connection replaces the AWS_* variables
    default = load_settings(env={})
    assert default.lake == DEFAULT_LAKE == default.lake_settings.uri
    assert pickle.loads(pickle.dumps(flag)) == flag  # settings travel to worker processes


def test_settings_keep_lake_and_lake_settings_in_step() -> None:
    assert Settings(lake="/data/lake").lake_settings.uri == "/data/lake"
    from_settings = Settings(lake_settings=LakeSettings(uri=URI, path_style=True))
    assert from_settings.lake == URI and from_settings.lake_settings.path_style
    assert Settings().lake == Settings().lake_settings.uri == DEFAULT_LAKE
    with pytest.raises(ConfigError, match="differs"):
        Settings(lake="/a", lake_settings=LakeSettings(uri="/b"))
