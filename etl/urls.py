"""URL canonicalization: one article, one canonical URL, one ``article_id``.

:func:`canonicalize` folds the variants a news site hands out for the same article onto one form:

* scheme and host-alias variants: ``http://www.example.com/a``, ``https://example.com/a``,
  ``https://m.example.com/a`` and ``https://mobile.example.com/a`` are one URL (``www.``,
  ``amp.``, ``m.`` and ``mobile.`` are folded when what remains is still a site of its own, per
  the public suffix list: ``amp.dev`` keeps its name). The canonical form is ``https`` when the
  port is the default; an explicit port keeps its scheme, since ``http://host:8080`` and
  ``https://host:8080`` cannot both be the same server;
* tracking parameters (``utm_*``, ``fbclid``, ``gclid``, …) are dropped, the rest are sorted;
* fragments, user info and default ports are dropped; the host is lower-cased (IDNA);
* AMP variants (``/amp/`` path segments, a trailing ``/amp`` or ``.amp``, ``amp.`` hosts,
  ``?amp=1``, ``outputType=amp``, Google AMP cache URLs) map to the plain article URL;
* the path is normalised (dot segments, duplicate and trailing slashes, percent-encoding).

:func:`article_id` is the first 32 hex characters of the SHA-256 of the canonical URL.

:func:`identify` gives a fetched page its identity: its declared ``<link rel="canonical">``
counts when it points at the same *site*, the registrable domain (:func:`site`, from the Public
Suffix List shipped inside the ``publicsuffixlist`` package: no network, ever); a canonical link
to another site never gives the id (a page cannot claim another site's article) and is kept as
``canonical_link``. :func:`domain` is the host of the canonical form: the ``domain`` column and
the key of per-domain rules.

courlan (trafilatura's URL library) is not used for the id on purpose: its ``normalize_url`` /
``clean_url`` drop blank query values, strip any query key that merely contains ``ga``, ``gl``,
``cid``, ``ref``, ``source``, ``uid``… (``?gallery=2`` would lose its parameter), decode IDNA
hosts, and ``scrub_url`` unwraps a URL embedded in another (``/share?u=https://other.test/x``),
which would hand the listing another site's identity. Those would merge distinct articles and
change existing ids; the explicit rules here do not.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from publicsuffixlist import PublicSuffixList

__all__ = [
    "Identity",
    "article_id",
    "canonicalize",
    "domain",
    "identify",
    "origin",
    "resolve_canonical",
    "same_site",
    "site",
    "url_filter",
]

_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "mtm_", "hsa_", "_hs", "at_", "ga_")
_TRACKING_KEYS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "_ga",
        "_gl",
        "ref_src",
        "ref_url",
        "cmpid",
        "cmp",
        "ncid",
        "ocid",
        "sr_share",
        "smid",
        "smtyp",
        "s_cid",
        "taid",
        "guccounter",
        "guce_referrer",
        "rss",
        "xtor",
        "wt.mc_id",
        "icid",
        "spm",
        "share",
        "amp",
        "outputtype",
    }
)
_HOST_ALIASES = ("www.", "amp.", "m.", "mobile.")
_AMP_CACHE = re.compile(r"^[a-z0-9-]+\.cdn\.ampproject\.org$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def article_id(url: str) -> str:
    """First 32 hex characters of the SHA-256 of :func:`canonicalize` (url)."""
    return _hash(canonicalize(url))


def canonicalize(url: str) -> str:
    """The canonical form of an absolute http(s) URL (see the module docstring).

    Raises ``ValueError`` for anything that is not an absolute http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = _host(parts.hostname)
    path, query = parts.path, parts.query
    if _AMP_CACHE.match(host):
        unwrapped = _unwrap_amp_cache(path, query)
        if unwrapped is not None:
            return canonicalize(unwrapped)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in URL: {url!r}") from None
    for prefix in _HOST_ALIASES:
        if host.startswith(prefix) and _registrable(host[len(prefix) :]) is not None:
            host = host[len(prefix) :]
            break
    if port is None or port == _DEFAULT_PORTS[scheme]:
        netloc, scheme = host, "https"
    else:
        netloc = f"{host}:{port}"
    return urlunsplit((scheme, netloc, _path(path), _query(query), ""))


@dataclass(frozen=True)
class Identity:
    """Who a page is: ``canonical_url`` (:func:`canonicalize` form), its ``article_id``, its
    ``domain``, and ``canonical_link``, the canonical link it declared when that points at
    another site (absolute, as declared; never used for the id)."""

    canonical_url: str
    article_id: str
    domain: str
    canonical_link: str | None = None


def identify(url: str | None, declared: str | None = None) -> Identity | None:
    """The identity of a page fetched from ``url`` that declares ``declared`` as canonical.

    The declared link (made absolute against ``url``) gives the id when it is an http(s) URL on
    the same site (:func:`same_site`); one on another site is kept as ``canonical_link`` and the
    page is identified by ``url``. A page with no http(s) URL of its own (a local file) is
    identified by its declared link if that is absolute. None when neither is usable.
    """
    own = _try_canonicalize(url)
    link = (declared or "").strip() or None
    if link is not None and own is not None and url is not None:
        link = urljoin(url.strip(), link)
    target = _try_canonicalize(link)
    cross = None
    if target is not None and (own is None or same_site(target, own)):
        canon = target
    elif own is not None:
        canon, cross = own, (link if target is not None else None)
    else:
        return None
    return Identity(canon, _hash(canon), urlsplit(canon).hostname or "", cross)


def resolve_canonical(url: str, declared: str | None) -> str:
    """Canonical URL of a page at ``url`` declaring ``declared``: :func:`identify`'s
    ``canonical_url``. Raises ``ValueError`` when ``url`` is not an absolute http(s) URL."""
    canonicalize(url)
    ident = identify(url, declared)
    assert ident is not None
    return ident.canonical_url


def domain(url: str | None) -> str | None:
    """Host of ``url`` in :func:`canonicalize` form (``www.``/``amp.``/``m.`` folded, IDNA,
    no port); None for anything that is not an absolute http(s) URL."""
    canon = _try_canonicalize(url)
    return (urlsplit(canon).hostname or None) if canon else None


def site(url: str) -> str:
    """The site of ``url``: the registrable domain of its host (``news.bbc.co.uk`` →
    ``bbc.co.uk``; ``a.github.io`` stays, ``github.io`` being a public suffix). An IP address
    or a host that is a public suffix itself (``localhost``) is its own site. Raises
    ``ValueError`` like :func:`canonicalize`."""
    host = urlsplit(canonicalize(url)).hostname or ""
    return _registrable(host) or host


def same_site(a: str, b: str) -> bool:
    """Whether two absolute http(s) URLs are on one site (:func:`site`); ports are ignored."""
    return site(a) == site(b)


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list inside the package, read from disk: never fetched


def _registrable(host: str) -> str | None:
    """eTLD+1 of ``host`` (private suffixes such as ``github.io`` count); None for an IP
    address or a host that is itself a public suffix."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        found: str | None = _psl().privatesuffix(bare)
        return found
    return None


def _try_canonicalize(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return canonicalize(url)
    except ValueError:
        return None


def _hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` as fetched (no canonicalization): the politeness key."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _host(hostname: str) -> str:
    host = hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        return f"[{host}]"
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _unwrap_amp_cache(path: str, query: str) -> str | None:
    # https://example-com.cdn.ampproject.org/c/s/example.com/news/story.amp.html
    m = re.match(r"^/[cvi]/(?:[a-z]+/)*?(s/)?([^/]+\.[^/]+)(/.*)?$", path)
    if not m:
        return None
    scheme = "https" if m.group(1) else "http"
    tail = m.group(3) or "/"
    return f"{scheme}://{m.group(2)}{tail}" + (f"?{query}" if query else "")


def _path(path: str) -> str:
    path = _normalise_percent(path or "/")
    path = re.sub(r"/{2,}", "/", path)
    path = posixpath.normpath(path) if path not in ("", "/") else "/"
    if not path.startswith("/"):
        path = "/" + path
    segments = [s for s in path.split("/") if s]
    if segments and segments[0] == "amp" and len(segments) > 1:
        segments = segments[1:]
    if segments and segments[-1] == "amp" and len(segments) > 1:
        segments = segments[:-1]
    if segments:
        last = segments[-1]
        for suffix, keep in ((".amp.html", ".html"), (".amp.htm", ".htm"), (".amp", "")):
            if last.endswith(suffix) and len(last) > len(suffix):
                segments[-1] = last[: -len(suffix)] + keep
                break
    return "/" + "/".join(segments)


def _normalise_percent(s: str) -> str:
    """Decode percent-escapes of unreserved characters, upper-case the others, quote the rest."""
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", s[i + 1 : i + 3]):
            decoded = chr(int(s[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + s[i + 1 : i + 3].upper())
            i += 3
            continue
        out.append(quote(ch, safe="/:@!$&'()*+,;=-._~") if ch != "%" else "%25")
        i += 1
    return "".join(out)


def _query(query: str) -> str:
    if not query:
        return ""
    pairs = [
        (k, v)
        for k, v in parse_qsl(query, keep_blank_values=True)
        if not _is_tracking(k.strip().lower())
    ]
    pairs.sort()
    return urlencode(pairs, quote_via=quote, safe="-._~")


def _is_tracking(key: str) -> bool:
    return key in _TRACKING_KEYS or key.startswith(_TRACKING_PREFIXES)


def url_filter(
    include: Sequence[str] = (), exclude: Sequence[str] = (), domains: Sequence[str] = ()
) -> Callable[[str], bool]:
    """A predicate for a source's URL options.

    ``include``/``exclude``: regular expressions searched in the URL (at least one ``include`` must
    match when any is given; no ``exclude`` may match). ``domains``: host globs
    (``example.com``, ``*.example.com``); when given, the host must match one (``www.`` ignored).
    """
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]
    globs = [d.lower().removeprefix("www.") for d in domains]

    def allowed(url: str) -> bool:
        if inc and not any(p.search(url) for p in inc):
            return False
        if any(p.search(url) for p in exc):
            return False
        if globs:
            host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
            return any(fnmatch.fnmatchcase(host, g) for g in globs)
        return True

    return allowed
