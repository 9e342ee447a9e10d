"""HTTP for the places that talk to servers: the issuer's keys, the Authress check and `setup --apply`.

What any server can make a run spend is bounded: one deadline covers name resolution, connect (every
address of a host), TLS, headers and body (sockets.py: every socket wait ends by it, so a silent
resolver, dead addresses or a trickle of bytes cannot outlast it); a body is
decoded here, in slices of at most CHUNK bytes, and refused past MAX_BODY_BYTES raw or decoded; a
single `gzip` is the only encoding accepted. Retries are bounded, with backoff and jitter, on
connection errors, timeouts, 429 and 5xx (Retry-After honoured within the deadline); a certificate
that does not verify is not retried. A write is retried only when repeating it is harmless (PUT
replaces; a POST gets one attempt). No redirects. httpx is imported only here, and only when a
request is made."""

from __future__ import annotations

import math
import os
import random
import ssl
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import __version__, proxies, sockets
from .errors import CertificatesMissing, ProxyUnusable, quoted

if TYPE_CHECKING:
    import httpx

USER_AGENT = f"authress-gitlab-token/{__version__}"
MAX_BODY_BYTES = 1024 * 1024  # discovery, JWKS and an account are a few KiB; refuse to keep more, decoded
CHUNK = 64 * 1024  # the most one decompression step may produce
CA_ADVICE = "if it uses a private CA, set SSL_CERT_FILE (or SSL_CERT_DIR) to a file holding that CA"


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Unanswered(Exception):
    """Every attempt failed to get an answer other than 429/5xx; `reason` says how the last one ended."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason, attempts)
        self.reason = reason
        self.attempts = attempts


class Refused(Exception):
    """An answer (or a URL) no retry can make usable: what is wrong, what to do (if anything), and
    `message`, the whole one-line diagnosis."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem, self.fix = problem, fix
        self.message = f"{problem}; {fix}" if fix else problem
        super().__init__(self.message)


class BadURL(Refused):
    """A URL that cannot even be requested (a control character, a malformed IPv6 host); the caller
    adds where it came from."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{quoted(url)} is not a URL that can be fetched ({reason})")


class TooLarge(Exception):
    """The body is larger than MAX_BODY_BYTES, raw or decoded."""


class _Retry(Exception):
    """A failure worth another attempt: connection, timeout, 429 or 5xx."""


@contextmanager
def session(timeout: float, ca_file: str | None = None) -> Iterator[httpx.Client]:
    """One connection pool for a run's requests (discovery and the JWKS go out at once, on two connections).
    `ca_file`: SSL_CERT_FILE as the run's settings read it ("" unset); None: read it here."""
    cafile = os.environ.get("SSL_CERT_FILE") if ca_file is None else ca_file
    if cafile and not os.path.isfile(cafile):  # httpx would raise FileNotFoundError while making its context
        raise CertificatesMissing(
            f"SSL_CERT_FILE is {quoted(cafile)}, which is not a file",
            "point it at the PEM file that holds "
            "the CA of your GitLab instance (or of Authress's endpoint), or unset it to use the default CAs",
        )
    proxies.check(os.environ)
    import httpx

    try:
        client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"},
            follow_redirects=False,
        )
    except (ValueError, ImportError):  # a proxy URL httpx refuses that proxies.check let through
        names = " or ".join(filter(None, (proxies.variable(s, os.environ) for s in proxies.SCHEMES)))
        # Not httpx's message: it quotes the URL, and a proxy URL may hold a password.
        raise ProxyUnusable(
            f"{names or 'a proxy variable'} is not a proxy URL httpx can use", f"{proxies.FIX}"
        ) from None
    with client:
        for pool in pools(client):
            pool._network_backend = sockets.backend(pool._network_backend)
        yield client


def pools(client: httpx.Client) -> list[Any]:
    """The connection pools of `client` (one per proxy route). httpx offers no hook for its socket
    operations, so network.session swaps each pool's network backend: private attributes, checked to
    exist with httpx 0.27.0 to 0.29.0 and httpcore 1.0.0 to 1.0.9 (tests/faults/test_network.py fails loudly
    when they move; tests/docs/test_dist.py runs it at the floors too)."""
    found = [getattr(t, "_pool", None) for t in [client._transport, *client._mounts.values()] if t is not None]
    if not found or not all(hasattr(p, "_network_backend") for p in found):
        raise RuntimeError("httpx no longer exposes its connection pools: the deadline cannot be enforced")
    return found


def retry_after(value: str | None) -> float:
    """Retry-After in seconds (the delta form; an HTTP date or nonsense counts as none)."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def send(
    client: httpx.Client,
    method: str,
    url: str,
    payload: Any,
    *,
    timeout: float,
    deadline: float,
    attempts: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The first answer that is not 429 or 5xx; Unanswered when none came within `attempts` and
    `deadline` (time.monotonic()); Refused or TooLarge for what no retry can fix. `payload` is sent as
    JSON unless None. A POST gets one attempt whatever `attempts` says (a retried create could make
    two); GET and PUT, which replaces, are retried."""
    attempts = 1 if method == "POST" else attempts
    last, made = "no time was left", 0
    with sockets.deadline(deadline):
        while made < attempts and (remaining := deadline - time.monotonic()) > 0:
            made += 1
            try:
                return _once(client, method, url, min(timeout, remaining), headers or {}, payload)
            except _Retry as exc:
                last, wait = exc.args[0], retry_after(exc.args[1] if len(exc.args) > 1 else None)
            pause = max(wait, 0.2 * 2 ** (made - 1) + random.uniform(0, 0.2))
            if made == attempts or time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
    raise Unanswered(last, made)


def _once(
    client: httpx.Client, method: str, url: str, timeout: float, headers: Mapping[str, str], payload: Any
) -> Response:
    import httpx

    try:
        with client.stream(method, url, headers=headers, timeout=httpx.Timeout(timeout), json=payload) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code}", response.headers.get("retry-after"))
            chunks = _decoded(response.iter_raw(), response.headers.get("content-encoding", ""), url)
            body = bytearray()
            for chunk in chunks:
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise TooLarge(url)
            return Response(response.status_code, response.headers, bytes(body))
    except httpx.TimeoutException as exc:
        raise _Retry(sockets.why(exc, "timed out")) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise BadURL(url, _first_line(exc)) from None
    except httpx.ProxyError as exc:
        parts = urlsplit(url)
        reason, fix, retry = proxies.refusal(_first_line(exc), f"{parts.hostname}:{parts.port or 443}", os.environ)
        raise (_Retry(reason) if retry else Refused(reason, fix)) from None
    except httpx.TransportError as exc:
        unverified = _certificate_error(exc)
        if unverified is not None:
            host = urlsplit(url).hostname or url
            raise Refused(
                f"the TLS certificate of {quoted(host)} did not verify ({unverified})", f"{CA_ADVICE}"
            ) from None
        raise _Retry(sockets.why(exc, f"connection failed ({type(exc).__name__})")) from None


def _decoded(raw: Iterable[bytes], encoding: str, url: str) -> Iterator[bytes]:
    """The body as sent, or gunzipped in slices of at most CHUNK bytes; raw bytes are capped as well."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip() and c.strip().lower() != "identity"]
    if codings not in ([], ["gzip"], ["x-gzip"]):
        raise Refused(
            f"{quoted(url)} answered with Content-Encoding {quoted(encoding[:60])}, but only a single gzip "
            "was asked for",
            "a proxy or server in between is rewriting the answer",
        )
    gunzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if codings else None
    received = 0
    try:
        for chunk in raw:
            received += len(chunk)
            if received > MAX_BODY_BYTES:
                raise TooLarge(url)
            if gunzip is None:
                yield chunk
                continue
            while chunk:
                if gunzip.eof:
                    raise zlib.error("data after the end of the gzip stream")
                yield gunzip.decompress(chunk, CHUNK)
                chunk = gunzip.unconsumed_tail or gunzip.unused_data
        if gunzip is not None and not gunzip.eof:
            raise zlib.error("the gzip stream ends early")
    except zlib.error as exc:
        raise Refused(
            f"{quoted(url)} sent a body that is not valid gzip ({_first_line(exc)})",
            "a proxy or server in between is corrupting the answer",
        ) from None


def _certificate_error(exc: BaseException) -> str | None:
    """Why the server's certificate did not verify, when that is what ended the connection."""
    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain: httpx's error, httpcore's, then ssl's
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return _first_line(seen.verify_message or seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).splitlines()
    return text[0][:120] if text else type(exc).__name__
