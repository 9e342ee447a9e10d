"""HTTP for the places that talk to servers (the issuer's keys, the Authress check, `setup --apply`):
explicit timeouts, bounded retries with backoff and jitter on connection errors, timeouts, 429 and 5xx
(Retry-After honoured within the deadline), a capped body, and no redirects. A write is retried only
when repeating it is harmless (PUT replaces; a POST gets one attempt). httpx is imported only here,
and only when a request is made."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import __version__

USER_AGENT = f"authress-gitlab-token/{__version__}"
MAX_BODY_BYTES = 1024 * 1024  # discovery, JWKS and an account are a few KiB; refuse to buffer more


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


class TooLarge(Exception):
    """The body is larger than MAX_BODY_BYTES."""


class _Retry(Exception):
    """A failure worth another attempt: connection, timeout, 429 or 5xx."""


@contextmanager
def session(timeout: float) -> Iterator[Any]:
    """One connection pool for a run's requests (discovery and JWKS share a TLS handshake)."""
    import httpx

    with httpx.Client(
        timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT}, follow_redirects=False
    ) as client:
        yield client


def retry_after(value: str | None) -> float:
    """Retry-After in seconds (the delta form; an HTTP date or nonsense counts as none)."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def get(
    client: Any,
    url: str,
    *,
    timeout: float,
    deadline: float,
    attempts: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The first answer that is not 429 or 5xx; Unanswered when none came within `attempts` and
    `deadline` (time.monotonic())."""
    return send(client, "GET", url, None, timeout=timeout, deadline=deadline, attempts=attempts, headers=headers)


def send(
    client: Any,
    method: str,
    url: str,
    payload: Any,
    *,
    timeout: float,
    deadline: float,
    attempts: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """`get` for any method, with `payload` sent as JSON unless None. A POST gets one attempt whatever
    `attempts` says (a retried create could make two); GET and PUT, which replaces, are retried."""
    attempts = 1 if method == "POST" else attempts
    last, made = "no time was left", 0
    while made < attempts and (remaining := deadline - time.monotonic()) > 0:
        made += 1
        try:
            return _once(client, method, url, min(timeout, remaining), deadline, headers or {}, payload)
        except _Retry as exc:
            last, wait = exc.args[0], retry_after(exc.args[1] if len(exc.args) > 1 else None)
        pause = max(wait, 0.2 * 2 ** (made - 1) + random.uniform(0, 0.2))
        if made == attempts or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    raise Unanswered(last, made)


def _once(
    client: Any, method: str, url: str, timeout: float, deadline: float, headers: Mapping[str, str], payload: Any
) -> Response:
    import httpx

    try:
        with client.stream(method, url, headers=headers, timeout=httpx.Timeout(timeout), json=payload) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code}", response.headers.get("retry-after"))
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise TooLarge(url)
                if time.monotonic() > deadline:
                    raise _Retry("timed out")  # a trickle of bytes must not outlast the bound
            return Response(response.status_code, response.headers, bytes(body))
    except httpx.TimeoutException:
        raise _Retry("timed out") from None
    except httpx.TransportError as exc:
        raise _Retry(f"connection failed ({type(exc).__name__})") from None
