"""HTTP for every call of a run (calls.py gives it its one shape), imported only when a call is made.
Each socket wait is bounded by httpx's `timeout=`, the whole call by one deadline that calls.py
enforces (the request runs in a worker thread it stops waiting for then). Bodies are capped at
MAX_BODY_BYTES, raw and decoded (one `gzip`, in slices of CHUNK). Retries are bounded, with backoff
and jitter, on connection errors, timeouts, 429 and 5xx (Retry-After within the deadline), never on a
certificate that does not verify, and a POST gets one attempt. No redirects; nothing read from the
environment (trust_env off): the CA and proxies come from the run's settings."""

from __future__ import annotations

import math
import random
import ssl
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import __version__, proxies
from .environment import Http
from .errors import CertificatesMissing, ProxyUnusable, quoted
from .proxies import Proxies

if TYPE_CHECKING:
    import httpx

USER_AGENT = f"authress-gitlab-token/{__version__}"
MAX_BODY_BYTES = 1024 * 1024  # discovery, JWKS and an account are a few KiB; refuse to keep more, decoded
CHUNK = 64 * 1024  # the most one decompression step may produce
CA_ADVICE = "if it uses a private CA, set SSL_CERT_FILE (or SSL_CERT_DIR) to a file holding that CA"
# What a request was doing when the deadline came, from httpx's trace events (a public extension).
PHASES = {
    "connection.connect_tcp.started": "connecting to {host} (resolving its name or connecting)",
    "connection.start_tls.started": "in the TLS handshake with {host}",
    "http11.send_request_headers.started": "sending the request to {host}",
    "http11.receive_response_headers.started": "waiting for {host} to answer",
    "http11.receive_response_body.started": "reading the answer of {host}",
}


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Progress:
    """What a call's worker has done so far, for the caller that stops waiting at the deadline."""

    attempts: int = 0
    phase: str = ""
    sent: bool = False  # this attempt sent a request (to a proxy, CONNECT): a TLS failure after is the host's

    def trace(self, host: str) -> Any:
        """httpx's trace callback for one attempt."""
        self.sent = False

        def event(name: str, info: Mapping[str, Any]) -> None:
            if name in PHASES:
                self.phase = PHASES[name].format(host=quoted(host))
            self.sent = self.sent or name == "http11.send_request_headers.started"

        return event


class Unanswered(Exception):
    """Every attempt failed to get an answer other than 429/5xx; `reason` says how the last one ended."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason, attempts)
        self.reason, self.attempts = reason, attempts


class Refused(Exception):
    """An answer (or a URL) no retry can make usable: what is wrong, and what to do (if anything)."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class TooLarge(Exception):
    """The body is larger than MAX_BODY_BYTES, raw or decoded."""


class _Retry(Exception):
    """A failure worth another attempt: connection, timeout, 429 or 5xx."""


@contextmanager
def session(http: Http) -> Iterator[Session]:
    """One connection pool for a run's requests (discovery and the JWKS go out at once, on two
    connections), with the CA and proxies of `http` and nothing read from the environment."""
    found = proxies.from_environ(dict(http.proxy_env))
    import httpx

    try:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=http.ca_file or None, capath=http.ca_dir or None)
            if http.ca_file or http.ca_dir
            else True
        )
    except (OSError, ssl.SSLError) as exc:
        name, value = ("SSL_CERT_FILE", http.ca_file) if http.ca_file else ("SSL_CERT_DIR", http.ca_dir)
        what = "is not a file" if isinstance(exc, FileNotFoundError | IsADirectoryError) else "holds no PEM CA"
        raise CertificatesMissing(
            f"{name} is {quoted(value)}, which {what}",
            "point it at the PEM file that holds the CA of your GitLab instance (or of Authress's endpoint), "
            "or unset it to use the default CAs",
        ) from None
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for scheme, proxy in (("https://", found.https), ("http://", found.http)):
        if proxy is not None:
            try:  # proxies.from_environ judged what httpx would take and fail on later; httpx judges the rest
                mounts[scheme] = httpx.HTTPTransport(verify=verify, proxy=httpx.Proxy(proxy.url))
            except (ValueError, ImportError, httpx.InvalidURL):  # not httpx's message: a proxy URL may hold a password
                raise ProxyUnusable(f"{proxy.variable} is not a proxy URL httpx can use", proxies.FIX) from None
    mounts.update(dict.fromkeys(found.direct))  # NO_PROXY: straight to the host
    client = httpx.Client(
        timeout=httpx.Timeout(http.timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"},
        follow_redirects=False,
        verify=verify,
        trust_env=False,
        mounts=mounts,
    )
    with client:
        yield Session(client, found)


@dataclass(frozen=True)
class Session:
    """An open client and the proxies it was made with (for a failure only a proxy can cause)."""

    client: httpx.Client
    proxies: Proxies


def retry_after(value: str | None) -> float:
    """Retry-After in seconds (the delta form; an HTTP date or nonsense counts as none)."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def send(
    session: Session,
    method: str,
    url: str,
    payload: Any,
    headers: Mapping[str, str],
    timeout: float,
    attempts: int,
    deadline: float,
    progress: Progress,
) -> Response:
    """The first answer that is not 429 or 5xx within `attempts` and `deadline`, else Unanswered; Refused
    or TooLarge for what no retry fixes. A POST gets one attempt: a retried create could make two."""
    attempts = 1 if method == "POST" else attempts
    last = "no time was left"
    while progress.attempts < attempts and (remaining := deadline - time.monotonic()) > 0:
        progress.attempts += 1
        try:
            return _once(session, method, url, min(timeout, remaining), headers, payload, progress)
        except _Retry as exc:
            last, wait = exc.args[0], retry_after(exc.args[1] if len(exc.args) > 1 else None)
        pause = max(wait, 0.2 * 2 ** (progress.attempts - 1) + random.uniform(0, 0.2))
        if progress.attempts == attempts or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    raise Unanswered(last, progress.attempts)


def _once(
    session: Session,
    method: str,
    url: str,
    timeout: float,
    headers: Mapping[str, str],
    payload: Any,
    progress: Progress,
) -> Response:
    import httpx

    extensions = {"trace": progress.trace(_host(url))}
    proxy = session.proxies.https if url.lower().startswith("https:") else session.proxies.http
    try:
        with session.client.stream(
            method, url, headers=headers, timeout=httpx.Timeout(timeout), json=payload, extensions=extensions
        ) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code}", response.headers.get("retry-after"))
            chunks = _decoded(response.iter_raw(), response.headers.get("content-encoding", ""), url)
            body = bytearray()
            for chunk in chunks:
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise TooLarge(url)
            return Response(response.status_code, response.headers, bytes(body))
    except httpx.TimeoutException:
        raise _Retry(f"timed out {progress.phase}".strip()) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        # A control character, a malformed IPv6 host: the caller's fix says where the URL came from.
        raise Refused(f"{quoted(url)} is not a URL that can be fetched ({_first_line(exc)})") from None
    except httpx.ProxyError as exc:
        reason, fix, retry = proxies.refusal(_first_line(exc), _host(url, port=True), proxy)
        raise (_Retry(reason) if retry else Refused(reason, fix)) from None
    except httpx.TransportError as exc:
        unverified = _certificate_error(exc)
        if unverified is not None:
            host = quoted(_host(url))
            if proxy is not None and proxy.url.lower().startswith("https://") and not progress.sent:
                host = f"the proxy in {proxy.variable}"  # an https proxy: TLS to it comes first
            raise Refused(f"the TLS certificate of {host} did not verify ({unverified})", f"{CA_ADVICE}") from None
        raise _Retry(f"connection failed ({_first_line(exc)})") from None


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


def _host(url: str, port: bool = False) -> str:
    """The host of `url` (with its port) for messages; the URL itself when it has none that parses."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 443}" if port else parts.hostname or url
    except ValueError:
        return url


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).splitlines()
    return text[0][:120] if text else type(exc).__name__
