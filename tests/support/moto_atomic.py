"""moto's S3 server (``python -m moto.server``) with atomic conditional writes, as real S3 has.

moto checks ``If-None-Match`` / ``If-Match`` and then writes, without a lock: two racing
conditional PUTs can both pass the check (real S3 lets exactly one win). This launcher runs
the same server with every conditional request (a PUT, POST or DELETE carrying ``If-Match``
or ``If-None-Match``) made exclusive of the others, so the lease tests exercise S3's promise
rather than moto's race. Everything else is moto unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.s3.responses import S3Response
from moto.server import main

_lock = threading.Lock()
_key_response = S3Response._key_response


def _atomic_key_response(self: S3Response, request: Any, full_url: str) -> Any:
    headers = request.headers
    if request.method in ("PUT", "POST", "DELETE") and (
        headers.get("If-None-Match") or headers.get("If-Match")
    ):
        with _lock:
            return _key_response(self, request, full_url)
    return _key_response(self, request, full_url)


S3Response._key_response = _atomic_key_response  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
