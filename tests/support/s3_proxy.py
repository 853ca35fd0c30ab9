"""A TCP relay in front of the S3 server that kills itself (SIGKILL) at a chosen request.

Run as its own process: ``python s3_proxy.py LISTEN_PORT TARGET_PORT [PATTERN]``. Every byte is
relayed both ways; when a client sends a request line matching ``PATTERN`` (a regex over the
bytes, e.g. ``PUT [^ ]*/_runs/``) the process kills itself before forwarding it, so the client
sees its S3 endpoint die in the middle of a publish. Started again without a pattern, the same
port relays again. moto keeps its objects in memory, so the relay is what is killed and
restarted: the objects written before the kill stay readable, as on a real S3 server.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket, pattern: re.Pattern[bytes] | None) -> None:
    try:
        while chunk := src.recv(65536):
            if pattern is not None and pattern.search(chunk):
                os.kill(os.getpid(), signal.SIGKILL)
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> None:
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    pattern = re.compile(sys.argv[3].encode()) if len(sys.argv) > 3 else None
    server = socket.create_server(("127.0.0.1", listen), reuse_port=False)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=_pipe, args=(client, upstream, pattern), daemon=True).start()
        threading.Thread(target=_pipe, args=(upstream, client, None), daemon=True).start()


if __name__ == "__main__":
    main()
