"""How the lake is reached: :class:`LakeSettings`, from the environment or an Airflow connection.

Part of the configuration layer (re-exported by :mod:`etl.config`, which calls these in
:func:`etl.config.load_settings`); kept apart so that :mod:`etl.lake` can use the settings type
without importing the sources-file models. Nothing here imports Airflow: a DAG turns its
``Connection`` into a plain dict (``login``, ``password``, ``extra``) first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from etl.errors import ConfigError

DEFAULT_LAKE = "./lake"
CONN_ID = "news_lake"  # the Airflow connection DAGs read the lake settings from


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake is and how an ``s3://`` lake is reached (ignored for a local folder).

    ``None`` endpoint, region or credentials leave the choice to boto3's default chain
    (``AWS_*`` variables, profiles, instance roles). ``path_style`` forces path-style
    addressing (``http://host/bucket/key``), which MinIO-type servers behind one host name
    need. Uploads at or above ``multipart_threshold_mb`` go multipart in parts of
    ``multipart_chunk_mb`` (S3's minimum part is 5 MiB), ``max_concurrency`` parts at a time.
    ``max_attempts`` counts every try of a request (botocore adaptive retry mode).
    """

    uri: str = DEFAULT_LAKE
    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    multipart_threshold_mb: int = 8
    multipart_chunk_mb: int = 8
    max_concurrency: int = 10
    max_attempts: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        checks = [
            ("uri", bool(self.uri), "must not be empty"),
            ("multipart_threshold_mb", self.multipart_threshold_mb >= 5, "must be >= 5"),
            ("multipart_chunk_mb", 5 <= self.multipart_chunk_mb <= 5120, "must be 5..5120"),
            ("max_concurrency", 1 <= self.max_concurrency <= 256, "must be 1..256"),
            ("max_attempts", 1 <= self.max_attempts <= 20, "must be 1..20"),
            ("timeouts", min(self.connect_timeout_s, self.read_timeout_s) > 0, "must be > 0"),
            (
                "credentials",
                (self.access_key_id is None) == (self.secret_access_key is None),
                "an access key id needs its secret access key and vice versa",
            ),
        ]
        if self.endpoint_url and "@" in urlsplit(self.endpoint_url).netloc:
            shown = re.sub(r"//[^/?#]*@", "//***@", self.endpoint_url)
            raise ConfigError(
                f"lake endpoint {shown}",
                "must not carry credentials (user:password@): give the keys in "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the connection's login/password",
            )
        for name, ok, message in checks:
            if not ok:
                raise ConfigError(f"lake settings {name}", message)

    @property
    def is_s3(self) -> bool:
        return self.uri.lower().startswith("s3://")


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ConfigError(name, f"must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None


def _tuning(env: Mapping[str, str]) -> dict[str, Any]:
    names = {
        "multipart_threshold_mb": "NEWSETL_S3_MULTIPART_THRESHOLD_MB",
        "multipart_chunk_mb": "NEWSETL_S3_MULTIPART_CHUNK_MB",
        "max_concurrency": "NEWSETL_S3_MAX_CONCURRENCY",
        "max_attempts": "AWS_MAX_ATTEMPTS",
    }
    return {k: n for k, var in names.items() if (n := _number(env, var)) is not None}


def lake_settings_from_env(env: Mapping[str, str], uri: str) -> LakeSettings:
    """Lake settings from the standard AWS variables (and ``NEWSETL_S3_*`` tuning).

    Endpoint: ``AWS_ENDPOINT_URL_S3`` over ``AWS_ENDPOINT_URL`` (both ignored when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true); region: ``AWS_REGION`` over
    ``AWS_DEFAULT_REGION``; ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``
    when both keys are set, else ``AWS_PROFILE``; ``AWS_MAX_ATTEMPTS``;
    ``NEWSETL_S3_PATH_STYLE`` (true/false); ``NEWSETL_S3_MULTIPART_THRESHOLD_MB``,
    ``NEWSETL_S3_MULTIPART_CHUNK_MB``, ``NEWSETL_S3_MAX_CONCURRENCY``.
    """
    endpoint = None
    if not _flag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    key, secret = env.get("AWS_ACCESS_KEY_ID") or None, env.get("AWS_SECRET_ACCESS_KEY") or None
    keys = key is not None and secret is not None
    return LakeSettings(
        uri=uri,
        endpoint_url=endpoint,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        path_style=_flag(env, "NEWSETL_S3_PATH_STYLE"),
        access_key_id=key if keys else None,
        secret_access_key=secret if keys else None,
        session_token=(env.get("AWS_SESSION_TOKEN") or None) if keys else None,
        profile=None if keys else env.get("AWS_PROFILE") or None,
        **_tuning(env),
    )


def _section(where: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = where.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{CONN_ID} connection extra {name}", "must be a JSON object")
    return value


def lake_settings_from_airflow_conn(conn: Mapping[str, Any], uri: str) -> LakeSettings:
    """Lake settings from an Airflow AWS connection given as a plain dict.

    Shape (what a DAG builds from its ``Connection``): ``login`` (access key id),
    ``password`` (secret), ``extra`` (dict or JSON string) with ``endpoint_url`` (or
    ``service_config.s3.endpoint_url``), ``region_name``, ``aws_session_token``,
    ``profile_name`` and the addressing style as ``config_kwargs.s3.addressing_style`` or
    ``s3.addressing_style`` (``path`` = path style); ``config_kwargs.retries`` may set
    ``total_max_attempts`` (or ``max_attempts``, retries after the first try, as botocore
    counts them). Values left out fall back to boto3's default chain.
    """
    extra: Any = conn.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError as exc:
            raise ConfigError(f"{CONN_ID} connection extra", f"not valid JSON: {exc}") from None
    if not isinstance(extra, Mapping):
        raise ConfigError(f"{CONN_ID} connection extra", "must be a JSON object")
    kwargs = _section(extra, "config_kwargs")
    style = _section(kwargs, "s3").get("addressing_style")
    style = style or _section(extra, "s3").get("addressing_style")
    endpoint = extra.get("endpoint_url")
    endpoint = endpoint or _section(_section(extra, "service_config"), "s3").get("endpoint_url")
    retries = _section(kwargs, "retries")
    attempts: dict[str, int] = {}
    try:
        if retries.get("total_max_attempts") is not None:
            attempts["max_attempts"] = int(retries["total_max_attempts"])
        elif retries.get("max_attempts") is not None:
            attempts["max_attempts"] = int(retries["max_attempts"]) + 1
    except (TypeError, ValueError):
        raise ConfigError(
            f"{CONN_ID} connection extra config_kwargs.retries", "not a number"
        ) from None
    return LakeSettings(
        uri=uri,
        endpoint_url=endpoint or None,
        region=extra.get("region_name") or None,
        path_style=style == "path",
        access_key_id=conn.get("login") or None,
        secret_access_key=conn.get("password") or None,
        session_token=extra.get("aws_session_token") or None,
        profile=extra.get("profile_name") or None,
        **attempts,
    )


@dataclass(frozen=True)
class LeaseSettings:
    """Lease timings (``NEWSETL_LEASE_TTL_S``, ``NEWSETL_LEASE_WAIT_S``,
    ``NEWSETL_PUBLISH_WAIT_S`` in :func:`etl.config.load_settings`).

    ``ttl_s``: an interval lease's life after its last renewal (it must outlast the gaps
    between the tasks of a DAG run, which renew it while they run); ``wait_s``: how long a
    second run of an interval waits before failing; ``publish_ttl_s`` / ``publish_wait_s`` the
    same for the lake-wide publish lease; ``poll_s`` the pause between tries (with jitter);
    ``staging_max_age_s``: ``_staging/`` objects older than this are removed at publish time.
    """

    ttl_s: float = 1800.0
    wait_s: float = 60.0
    publish_ttl_s: float = 300.0
    publish_wait_s: float = 900.0
    poll_s: float = 0.5
    staging_max_age_s: float = 86400.0

    def __post_init__(self) -> None:
        for name in ("ttl_s", "publish_ttl_s", "poll_s", "staging_max_age_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"lease settings {name}", "must be > 0")
        for name in ("wait_s", "publish_wait_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"lease settings {name}", "must be >= 0")
