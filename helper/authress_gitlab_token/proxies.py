"""The proxy settings of a run, read once from the environment (HTTPS_PROXY, ALL_PROXY, HTTP_PROXY,
NO_PROXY; the lower-case name wins, and empty it means none, as in urllib and httpx) and handed to httpx
as `mounts`. httpx's own reading (trust_env) is off: it fails on a bracketed IPv6 NO_PROXY entry
(`[::1]`), common on corporate runners. A value is never echoed (a proxy URL may hold a password)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ProxyUnusable, quoted

EXAMPLE = "http://proxy.example:3128"
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?")
FIX = f"set it to the http:// URL of a proxy that supports CONNECT (e.g. {quoted(EXAMPLE)}), or unset it"


@dataclass(frozen=True)
class Proxy:
    variable: str  # where it came from, for messages
    url: str


@dataclass(frozen=True)
class Proxies:
    """The proxy of https requests, of http requests, and the hosts reached directly (NO_PROXY)."""

    https: Proxy | None = None
    http: Proxy | None = None
    direct: tuple[str, ...] = ()  # httpx URL patterns of NO_PROXY's entries


def variable(scheme: str, environ: Mapping[str, str]) -> str | None:
    """The name of the variable the `scheme` proxy comes from, or None when none is set."""
    lower, upper = f"{scheme}_proxy", f"{scheme.upper()}_PROXY"
    if lower in environ:  # urllib's rule: the lower-case name wins, and empty it means no proxy
        return lower if environ[lower] else None
    return upper if environ.get(upper) else None


def from_environ(environ: Mapping[str, str]) -> Proxies:
    """The run's proxies; ProxyUnusable for a variable no request could go through."""
    name = variable("no", environ)
    entries = [e.strip() for e in environ[name].split(",")] if name else []
    if "*" in entries:
        return Proxies()  # NO_PROXY=*: no proxy at all

    def proxy(*schemes: str) -> Proxy | None:
        for scheme in schemes:
            found = variable(scheme, environ)
            if found is not None:
                url = environ[found].strip()
                url = url if "://" in url else f"http://{url}"  # a bare host:port, as httpx reads it
                problem = _problem(url)
                if problem:
                    raise ProxyUnusable(f"{found} {problem}", FIX)
                return Proxy(found, url)
        return None

    return Proxies(proxy("https", "all"), proxy("http", "all"), tuple(filter(None, map(_pattern, entries))))


def _pattern(entry: str) -> str:
    """The httpx mount pattern of one NO_PROXY entry: an address, `localhost`, or a domain and its
    subdomains (`example.com`, `.example.com`, `*.example.com`); "" for an entry that names no host
    (a CIDR range, a typo), which httpx could not read either."""
    import ipaddress

    host = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        domain = host.removeprefix("*").lstrip(".")
        if not _DOMAIN.fullmatch(domain):
            return ""
        return "all://localhost" if domain.lower() == "localhost" else f"all://*{domain}"
    return f"all://[{address}]" if address.version == 6 else f"all://{address}"


def _problem(url: str) -> str | None:
    if any(c.isspace() or not c.isprintable() for c in url):
        return "is not a valid URL (whitespace or a control character in it)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL (host or port)"
    scheme = parts.scheme.lower()
    if scheme.startswith("socks"):
        return f"names a {quoted(scheme[:20])} proxy, which this helper cannot use (httpx needs socksio for it)"
    if scheme not in ("http", "https"):
        return f"has the scheme {quoted(scheme[:20])}, which is not a proxy scheme httpx knows"
    if not parts.hostname:
        return "is not a valid URL (no host)"
    return None


def refusal(status_line: str, host: str, proxy: Proxy | None) -> tuple[str, str, bool]:
    """What a proxy's refusal of CONNECT means, what to do, and whether another attempt could help."""
    name = proxy.variable if proxy else "HTTPS_PROXY"
    if status_line.startswith("407"):
        return (
            f"the proxy in {name} answered 407 (proxy authentication required) to CONNECT {quoted(host)}",
            f"put the proxy's user and password in {name} (http://USER:PASSWORD@HOST:PORT), or ask its "
            "administrator to let this runner through",
            False,
        )
    return f"the proxy in {name} refused CONNECT {quoted(host)} ({quoted(status_line[:60])})", "", True
