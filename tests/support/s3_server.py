"""A moto S3 server on 127.0.0.1 in a subprocess, for tests and benchmarks (loopback only).

:class:`MotoServer` starts ``python -m moto.server -H 127.0.0.1 -p <free port>``, waits until it
answers HTTP, and stops it on :meth:`~MotoServer.close`. :data:`AWS_TEST_ENV` is the offline AWS
environment tests run under: dummy credentials and region, no instance metadata lookups, no
shared config files, and an ``AWS_ENDPOINT_URL`` that points at a closed loopback port, so a
client built without an explicit endpoint can never reach a real AWS address.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

import boto3
from botocore.config import Config

from etl.lake.settings import LakeSettings

__all__ = [
    "AWS_TEST_ENV",
    "AWS_UNSET",
    "CREDENTIALS",
    "REGION",
    "MotoServer",
    "free_port",
    "lake_settings",
]

REGION = "us-east-1"


class Credentials(TypedDict):
    """The keyword arguments boto3.client takes for static credentials."""

    aws_access_key_id: str
    aws_secret_access_key: str


CREDENTIALS: Credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
    "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # discard port: nothing listens, nothing leaves
}
AWS_UNSET: tuple[str, ...] = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
)
AWS_UNSET += ("AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
AWS_UNSET += ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
LOOPBACK = ("127.0.0.1", "localhost")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def no_proxy(current: str | None) -> str:
    """``NO_PROXY`` extended with the loopback names (a proxy must never see test traffic)."""
    names = [n for n in (current or "").split(",") if n.strip()]
    return ",".join([*names, *(n for n in LOOPBACK if n not in names)])


ATOMIC = Path(__file__).with_name("moto_atomic.py")  # moto's server, conditional writes atomic


class MotoServer:
    """moto's S3 server on 127.0.0.1; ``endpoint`` is its URL once started."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        env = {k: v for k, v in os.environ.items() if k not in AWS_UNSET}
        env.update(AWS_TEST_ENV)
        env["NO_PROXY"] = env["no_proxy"] = no_proxy(env.get("NO_PROXY"))
        self.proc = subprocess.Popen(
            [sys.executable, str(ATOMIC), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"moto server on port {self.port} did not start")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client(self, **config: Any) -> Any:
        """A plain boto3 S3 client for this server (``config``: botocore Config options)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            config=Config(**config) if config else None,
            **CREDENTIALS,
        )

    def new_bucket(self, prefix: str = "lake") -> str:
        """Create a bucket with a fresh name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name


def lake_settings(
    endpoint: str, bucket: str, *, prefix: str = "news", path_style: bool = False
) -> LakeSettings:
    """The settings of the lake ``s3://bucket/prefix`` on the moto server at ``endpoint`` (the
    server's, or a proxy's in front of it), with the test credentials."""
    return LakeSettings(
        uri=f"s3://{bucket}/{prefix}",
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
        path_style=path_style,
    )
