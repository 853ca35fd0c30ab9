"""The address guard: refuse hosts that resolve to non-public addresses.

A fetch of ``http://host/…`` first resolves ``host`` (through an injectable resolver, so tests use
a stub and never touch DNS) and refuses the URL when *any* address is loopback, private,
link-local, shared, reserved, multicast or otherwise not globally routable. The fetcher calls
:func:`check` for the first URL and again for every redirect target, and pins plain-http
connections to the vetted address (so a second DNS answer cannot differ: no rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

from etl.errors import FetchTerminal, FetchTransient

__all__ = ["Resolver", "check", "is_public", "system_resolver"]

Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses``: the IP addresses a connection to ``host`` may use."""


def system_resolver(host: str, port: int) -> list[str]:
    """Addresses from the system resolver (``getaddrinfo``), in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in out:
            out.append(addr)
    return out


def is_public(address: str) -> bool:
    """True when ``address`` is a globally routable unicast address."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None and not is_public(str(mapped)):
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check(url: str, host: str, port: int, resolver: Resolver) -> str:
    """Resolve ``host`` and return the address to connect to, or raise ``address-blocked``.

    A literal IP is checked as it is. Resolution failures are transient (``dns``).
    """
    literal = host.strip("[]")
    try:
        ipaddress.ip_address(literal)
        addresses: Sequence[str] = [literal]
    except ValueError:
        try:
            addresses = resolver(literal, port)
        except (OSError, UnicodeError) as exc:
            raise FetchTransient(url, f"cannot resolve {host}: {exc}", kind="dns") from None
    if not addresses:
        raise FetchTransient(url, f"{host} resolves to no address", kind="dns")
    blocked = [a for a in addresses if not is_public(a)]
    if blocked:
        raise FetchTerminal(
            url,
            f"{host} resolves to non-public address {blocked[0]} "
            "(set allow_private_addresses: true in the sources file to allow it)",
            kind="address-blocked",
        )
    return addresses[0]
