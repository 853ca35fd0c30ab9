"""infra/: the compose file, the Helm values and the image parse and say the right things.

No container engine runs on the build machines, so nothing here starts a container; these tests
catch broken YAML, wrong images, missing services or variables, and a news_lake connection that
the lake code would read differently from what the files intend.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from etl.lake.settings import lake_settings_from_airflow_conn

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
AIRFLOW_IMAGE = "apache/airflow:3.3.2"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
LAKE = "s3://news-lake/prod"


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose variable interpolation: ``${X}``, ``${X:-default}``, ``${X-default}``, ``$$``."""
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", sub, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    data = yaml.safe_load((INFRA / "helm" / "values.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {k: interpolate(str(v)) for k, v in env.items()}


def _script(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return interpolate(" ".join(command) if isinstance(command, list) else str(command))


# --- compose -------------------------------------------------------------------------------


def test_compose_services_and_images(services: dict[str, Any]) -> None:
    assert set(services) == {
        *AIRFLOW_SERVICES,
        "airflow-init",
        "postgres",
        "redis",
        "minio",
        "minio-init",
    }
    for name, command in AIRFLOW_SERVICES.items():
        assert interpolate(services[name]["image"]) == AIRFLOW_IMAGE, name
        assert services[name]["command"] == command, name
        assert services[name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }
    assert interpolate(services["airflow-init"]["image"]) == AIRFLOW_IMAGE
    assert services["postgres"]["image"] == "postgres:16"
    assert interpolate(services["redis"]["image"]).startswith("valkey/valkey:8")
    assert interpolate(services["minio"]["image"]).startswith("minio/minio:RELEASE.")
    assert interpolate(services["minio-init"]["image"]).startswith("minio/mc:RELEASE.")
    assert services["minio-init"]["depends_on"]["minio"] == {"condition": "service_healthy"}
    assert services["airflow-init"]["depends_on"]["minio-init"] == {
        "condition": "service_completed_successfully"
    }


def test_compose_airflow_environment(services: dict[str, Any]) -> None:
    envs = {name: _env(services[name]) for name in [*AIRFLOW_SERVICES, "airflow-init"]}
    first = next(iter(envs.values()))
    for name, env in envs.items():
        assert env == first, f"{name} must share the common Airflow environment"
    assert first["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert len(first["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 16
    assert first["NEWSETL_LAKE"] == LAKE
    assert first["NEWSETL_SOURCES"].startswith("/opt/newsetl/")
    db = urlsplit(first["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert db.scheme.startswith("postgresql") and db.hostname == "postgres"
    pg = services["postgres"]["environment"]
    assert (db.username, db.password, db.path) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        "/" + pg["POSTGRES_DB"],
    )
    api = urlsplit(first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver" and api.path == "/execution/"
    assert f"{api.port}:{api.port}" in services["airflow-apiserver"]["ports"]


def test_compose_news_lake_connection(services: dict[str, Any]) -> None:
    env = _env(services["airflow-scheduler"])
    conn = json.loads(env["AIRFLOW_CONN_NEWS_LAKE"])
    assert conn["conn_type"] == "aws"
    minio_env = _env(services["minio"])
    assert (conn["login"], conn["password"]) == (
        minio_env["MINIO_ROOT_USER"],
        minio_env["MINIO_ROOT_PASSWORD"],
    )
    endpoint = urlsplit(conn["extra"]["endpoint_url"])
    assert (
        endpoint.hostname == "minio"
        and f"{endpoint.port}:{endpoint.port}" in (services["minio"]["ports"])
    )
    settings = lake_settings_from_airflow_conn(conn, env["NEWSETL_LAKE"])
    assert settings.is_s3 and settings.path_style
    assert settings.endpoint_url == "http://minio:9000" and settings.region == "us-east-1"
    assert settings.access_key_id == minio_env["MINIO_ROOT_USER"]
    # the bucket the lake lives in is the one the init service creates
    bucket = urlsplit(LAKE).netloc
    assert f"mb --ignore-existing lake/{bucket}" in _script(services["minio-init"])
    assert "mc alias set lake http://minio:9000" in _script(services["minio-init"])


def test_compose_init_migrates_and_creates_connection_and_pool(services: dict[str, Any]) -> None:
    script = _script(services["airflow-init"])
    assert "airflow db migrate" in script
    assert 'airflow connections add news_lake --conn-json "${AIRFLOW_CONN_NEWS_LAKE}"' in script
    assert "airflow pools set news_http" in script


def test_compose_mounts_dags_and_project(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        mounts = dict(v.rsplit(":", 1) for v in services[name]["volumes"])
        assert mounts["../dags"] == "/opt/airflow/dags"
        assert mounts[".."] == "/opt/newsetl"
        assert (INFRA / "../dags").resolve() == ROOT / "dags"
        env = _env(services[name])
        assert env["_PIP_ADDITIONAL_REQUIREMENTS"] == "/opt/newsetl"


# --- Helm values and image -----------------------------------------------------------------


def test_helm_values_versions_executor_and_images(values: dict[str, Any]) -> None:
    assert values["airflowVersion"] == "3.3.2"  # a string: 3.3.2 is not a float, but keep quotes
    assert values["defaultAirflowTag"] == "3.3.2"
    assert values["defaultAirflowRepository"] == "apache/airflow"
    assert values["executor"] in {"CeleryExecutor", "KubernetesExecutor"}
    image = values["images"]["airflow"]
    assert image["repository"] and str(image["tag"]).startswith("3.3.2-newsetl-")
    assert values["workers"]["replicas"] >= 2
    assert values["dagProcessor"]["enabled"] and values["triggerer"]["enabled"]
    dockerfile = (INFRA / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^FROM {re.escape(AIRFLOW_IMAGE)}$", dockerfile, re.M)
    assert "COPY --chown=airflow:0 dags /opt/airflow/dags" in dockerfile
    assert f"{image['repository']}:{image['tag']}" in dockerfile  # the build command's tag


def test_helm_values_lake_connection_and_secrets(values: dict[str, Any]) -> None:
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["NEWSETL_LAKE"] == LAKE
    (conn,) = [s for s in values["secret"] if s["envName"] == "AIRFLOW_CONN_NEWS_LAKE"]
    assert conn["secretKey"] == "AIRFLOW_CONN_NEWS_LAKE"
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    assert f"secret generic {conn['secretName']} --from-literal=AIRFLOW_CONN_NEWS_LAKE=" in readme
    jwt = values["jwtSecretName"]
    assert f"secret generic {jwt} --from-literal=jwt-secret=" in readme
    assert "news_http" in (INFRA / "helm" / "values.yaml").read_text(encoding="utf-8")


# --- the settings `make cluster` runs (scripts/cluster.py SETTINGS, tests/airflow/test_cluster.py)


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, Any]:
    import sys

    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from cluster import SETTINGS

    settings: dict[str, Any] = SETTINGS
    return settings


def test_compose_carries_the_cluster_settings(
    services: dict[str, Any], cluster_settings: dict[str, Any]
) -> None:
    s = cluster_settings
    env = _env(services["airflow-worker"])
    assert env[s["executor_var"]] == s["executor"]
    broker = urlsplit(env[s["broker_var"]])
    assert broker.scheme == s["broker_scheme"] and broker.hostname == "redis"
    assert services["airflow-worker"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    backend = env[s["result_backend_var"]]
    assert backend.startswith(s["result_backend_scheme"] + "+") or backend.startswith(
        s["result_backend_scheme"] + ":"
    )
    # the result backend is the metadata database (as in the cluster)
    assert backend.split("://", 1)[1] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("://")[1]
    assert int(env[s["worker_concurrency_var"]]) == s["worker_concurrency"]
    conn = json.loads(env[s["connection_var"]])
    assert conn["conn_type"] == s["connection_type"]
    assert conn["extra"]["config_kwargs"]["s3"]["addressing_style"] == s["addressing_style"]
    assert s["connection_var"] == "AIRFLOW_CONN_" + s["connection"].upper()
    script = _script(services["airflow-init"])
    assert f"airflow connections add {s['connection']} " in script
    assert f"airflow pools set {s['pool']} " in script


def test_helm_values_carry_the_cluster_settings(
    values: dict[str, Any], cluster_settings: dict[str, Any]
) -> None:
    s = cluster_settings
    assert values["executor"] == s["executor"]
    assert values["redis"]["enabled"] is True  # the chart's broker: redis://
    assert values["workers"]["replicas"] >= s["workers"]
    assert values["config"]["celery"]["worker_concurrency"] == s["worker_concurrency"]
    assert [e["envName"] for e in values["secret"]] == [s["connection_var"]]
    text = (INFRA / "helm" / "values.yaml").read_text(encoding="utf-8")
    for name in (s["broker_var"], s["result_backend_var"], s["result_backend_scheme"]):
        assert name in text
    assert f"airflow pools set {s['pool']} " in text


def test_the_cluster_harness_uses_its_settings(
    cluster_settings: dict[str, Any], tmp_path: Path
) -> None:
    """What the harness puts in every process's environment is SETTINGS (no process starts)."""
    from airflow_local import POOL
    from cluster import Cluster

    s = cluster_settings
    env = Cluster(tmp_path, meta={"redis_port": 6390, "s3": "http://127.0.0.1:9"}).env
    assert env[s["executor_var"]] == s["executor"]
    assert env[s["broker_var"]] == f"{s['broker_scheme']}://127.0.0.1:6390/0"
    backend = env[s["result_backend_var"]]
    assert backend.startswith(s["result_backend_scheme"] + "+psycopg2://")
    assert backend.split("://")[1] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("://")[1]
    assert env[s["worker_concurrency_var"]] == str(s["worker_concurrency"])
    conn = json.loads(env[s["connection_var"]])
    settings = lake_settings_from_airflow_conn(conn, "s3://news-lake/cluster")
    assert conn["conn_type"] == s["connection_type"] and settings.is_s3 and settings.path_style
    assert settings.endpoint_url == env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert s["pool"] == POOL  # the pool the harness creates (AirflowStack.migrate)


def test_readme_says_the_files_are_not_exercised_here() -> None:
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    assert "Not exercised in CI" in readme and "No container engine" in readme


def test_interpolate() -> None:
    assert interpolate("${A:-x}/${B-y}/${C}/$$HOME", {"B": ""}) == "x///$HOME"
    assert interpolate("${A:-x}", {"A": "a"}) == "a"
