"""The proxy settings httpx takes from the environment (HTTPS_PROXY, ALL_PROXY, HTTP_PROXY; the lower-case
name wins, as in urllib). One httpx cannot use would end every request in an internal error, so it is
refused first with its variable named; a value is never echoed (a proxy URL may hold a password)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from .errors import ProxyUnusable, quoted

SCHEMES = ("https", "all", "http")  # the variables httpx reads; an https request goes through the first two
EXAMPLE = "http://proxy.example:3128"
FIX = f"set it to the http:// URL of a proxy that supports CONNECT (e.g. {quoted(EXAMPLE)}), or unset it"


def variable(scheme: str, environ: Mapping[str, str]) -> str | None:
    """The name of the variable httpx takes the `scheme` proxy from, or None when none is set."""
    lower, upper = f"{scheme}_proxy", f"{scheme.upper()}_PROXY"
    if lower in environ:  # urllib's rule: the lower-case name wins, and empty it means no proxy
        return lower if environ[lower] else None
    return upper if environ.get(upper) else None


def check(environ: Mapping[str, str]) -> None:
    """ProxyUnusable for the first proxy variable httpx could not use."""
    name = variable("no", environ)
    if name and "*" in (host.strip() for host in environ[name].split(",")):
        return  # NO_PROXY=*: httpx uses no proxy at all
    for scheme in SCHEMES:
        name = variable(scheme, environ)
        if name is not None:
            problem = _problem(environ[name].strip())
            if problem:
                raise ProxyUnusable(f"{name} {problem}", f"{FIX}")


def _problem(value: str) -> str | None:
    url = value if "://" in value else f"http://{value}"  # what httpx does with a bare host:port
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
    if not parts.hostname or any(c.isspace() or not c.isprintable() for c in value):
        return "is not a valid URL (no host, or whitespace in it)"
    return None


def for_https(environ: Mapping[str, str]) -> str:
    """The variable an https request's proxy came from, for messages."""
    return variable("https", environ) or variable("all", environ) or "HTTPS_PROXY"


def refusal(status_line: str, host: str, environ: Mapping[str, str]) -> tuple[str, str, bool]:
    """What a proxy's refusal of CONNECT means, what to do, and whether another attempt could help."""
    name = for_https(environ)
    if status_line.startswith("407"):
        return (
            f"the proxy in {name} answered 407 (proxy authentication required) to CONNECT {quoted(host)}",
            f"put the proxy's user and password in {name} (http://USER:PASSWORD@HOST:PORT), or ask its "
            "administrator to let this runner through",
            False,
        )
    return f"the proxy in {name} refused CONNECT {quoted(host)} ({quoted(status_line[:60])})", "", True
