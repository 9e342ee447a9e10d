"""The issuer's signing keys: discovery, then JWKS, kept in a small disk cache.

Only the configured issuer is ever asked; nothing in a token chooses where keys come from. The warm
path reads one small file and never imports httpx.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import KeyFetchFailed, VerificationFailed, quoted

CACHE_DIR_ENV = "AUTHRESS_GITLAB_TOKEN_CACHE_DIR"
TIMEOUT_ENV = "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT"
DEFAULT_TIMEOUT = 5.0  # seconds, for connect and for each read
ATTEMPTS = 4  # per URL; retried on connection errors, timeouts, 429 and 5xx
MAX_AGE_DEFAULT, MAX_AGE_MIN, MAX_AGE_MAX = 3600, 300, 86400  # JWKS freshness, from Cache-Control
STALE_GRACE = 24 * 3600  # serve the last good keys this long past freshness when the issuer is down
UNKNOWN_KID_COOLDOWN = 30  # a refetch for an unknown kid at most this often
LOCK_WAIT = 30.0  # how long a process waits for another one's fetch before fetching itself
USER_AGENT = f"authress-gitlab-token/{__version__}"


@dataclass(frozen=True)
class KeySet:
    """A JWKS as fetched from the issuer, with when it was fetched and how long it stays fresh."""

    issuer: str
    jwks_uri: str
    keys: tuple[Mapping[str, Any], ...]
    fetched_at: float
    max_age: float

    def find(self, kid: str) -> Mapping[str, Any] | None:
        return next((k for k in self.keys if k.get("kid") == kid), None)

    def fresh(self, now: float) -> bool:
        return self.fetched_at <= now < self.fetched_at + self.max_age

    def usable_when_issuer_down(self, now: float) -> bool:
        return self.fetched_at <= now < self.fetched_at + self.max_age + STALE_GRACE

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "jwks": {"keys": list(self.keys)},
            "fetched_at": self.fetched_at,
            "max_age": self.max_age,
        }


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "authress-gitlab-token"


def valid_keys(jwks: Any) -> tuple[Mapping[str, Any], ...] | None:
    """The keys of a well-formed, non-empty JWKS, else None (such a set is never cached)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return None
    keys = jwks["keys"]
    if not all(isinstance(k, dict) and isinstance(k.get("kty"), str) for k in keys):
        return None
    return tuple(keys)


class KeyCache:
    """One JSON file per issuer, replaced atomically; a bad or foreign file is ignored, never fatal."""

    def __init__(self, directory: Path, issuer: str) -> None:
        self.directory = directory
        stem = hashlib.sha256(issuer.encode()).hexdigest()[:32]
        self.path = directory / f"jwks-{stem}.json"
        self.issuer = issuer

    def load(self) -> KeySet | None:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                # Keys decide what we trust: ignore a file someone else could have written.
                if st.st_uid != os.getuid() or st.st_mode & 0o022:
                    return None
                data = json.loads(f.read(1024 * 1024))
            keys = valid_keys(data["jwks"])
            if data["version"] != 1 or data["issuer"] != self.issuer or keys is None:
                return None
            return KeySet(self.issuer, str(data["jwks_uri"]), keys, float(data["fetched_at"]), float(data["max_age"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, keyset: KeySet) -> None:
        """Write-then-rename, so a parallel reader sees the old file or the new one, never a torn one."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".jwks-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(keyset.to_json(), f)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only home only costs a fetch per run

    @contextlib.contextmanager
    def fetch_lock(self) -> Iterator[None]:
        """Let one process fetch while parallel ones wait for its result (bounded wait)."""
        import fcntl

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            yield
            return
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break  # the holder is stuck; fetch without the lock rather than fail
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # releases the lock


class IssuerKeys:
    """Finds the public key for a `kid` of the configured issuer: cache first, then the network."""

    def __init__(
        self,
        issuer: str,
        cache: KeyCache | None,
        fetch: Callable[[str], KeySet] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.cache = cache
        self._fetch = fetch or (lambda iss: fetch_keyset(iss, timeout_from_env(os.environ)))
        self._clock = clock

    def jwk(self, kid: str) -> Mapping[str, Any]:
        now = self._clock()
        cached = self.cache.load() if self.cache else None
        if cached and cached.fresh(now):
            found = cached.find(kid)
            if found is not None:
                return found
            if now - cached.fetched_at < UNKNOWN_KID_COOLDOWN:
                raise self._unknown(kid, cached, now)
        if self.cache is None:
            return self._fetched(kid, cached, now)
        with self.cache.fetch_lock():
            # Another process may have fetched while we waited: judge its keys by the time now, or
            # keys fetched after our start look future-dated and every waiter fetches again.
            now = self._clock()
            again = self.cache.load()
            if again and again.fresh(now) and (cached is None or again.fetched_at > cached.fetched_at):
                found = again.find(kid)
                if found is not None:
                    return found
                if now - again.fetched_at < UNKNOWN_KID_COOLDOWN:
                    raise self._unknown(kid, again, now)
            return self._fetched(kid, again or cached, now)

    def _fetched(self, kid: str, previous: KeySet | None, now: float) -> Mapping[str, Any]:
        try:
            keyset = self._fetch(self.issuer)
        except KeyFetchFailed:
            if previous and previous.usable_when_issuer_down(now) and previous.find(kid):
                return previous.find(kid)  # type: ignore[return-value]
            raise
        if self.cache:
            self.cache.store(keyset)
        found = keyset.find(kid)
        if found is None:
            raise self._unknown(kid, keyset, now)
        return found

    def _unknown(self, kid: str, keyset: KeySet, now: float) -> VerificationFailed:
        known = ", ".join(quoted(k.get("kid")) for k in keyset.keys)
        return VerificationFailed(
            f"token kid {quoted(kid, 80)} is not among the keys of issuer {quoted(self.issuer)} "
            f"(known: {known}; fetched {int(now - keyset.fetched_at)} s ago); the token was not "
            'signed by this issuer: check the query key "issuer"'
        )


def timeout_from_env(environ: Mapping[str, str]) -> float:
    try:
        value = float(environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        value = DEFAULT_TIMEOUT
    return min(max(value, 0.1), 60.0)


def fetch_keyset(issuer: str, timeout: float = DEFAULT_TIMEOUT) -> KeySet:
    """Discovery (whose `issuer` must equal ours exactly), then its https `jwks_uri`."""
    import httpx  # only a cold run pays for it

    deadline = time.monotonic() + ATTEMPTS * (timeout + 1.0)
    with httpx.Client(
        timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT}, follow_redirects=False
    ) as client:
        discovery, _ = _get_json(client, issuer + "/.well-known/openid-configuration", deadline)
        if not isinstance(discovery, dict):
            raise KeyFetchFailed(
                f'the discovery document of {quoted(issuer)} is not a JSON object; check the query key "issuer"'
            )
        if discovery.get("issuer") != issuer:
            raise KeyFetchFailed(
                f"discovery at {quoted(issuer)} names issuer {quoted(discovery.get('issuer'))}, expected "
                f'{quoted(issuer)}; set the query key "issuer" to exactly the issuer GitLab names'
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise KeyFetchFailed(
                f"discovery at {quoted(issuer)} names jwks_uri {quoted(jwks_uri)}, "
                "expected an https URL; keys are only fetched over https"
            )
        jwks, headers = _get_json(client, jwks_uri, deadline)
    keys = valid_keys(jwks)
    if keys is None:
        raise KeyFetchFailed(
            f"{quoted(jwks_uri)} did not return a non-empty JSON Web Key Set; the issuer may be misconfigured"
        )
    return KeySet(issuer, jwks_uri, keys, time.time(), max_age(headers.get("cache-control", "")))


def max_age(cache_control: str) -> float:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return float(min(max(int(value), MAX_AGE_MIN), MAX_AGE_MAX))
    return float(MAX_AGE_DEFAULT)


def _get_json(client: Any, url: str, deadline: float) -> tuple[Any, Mapping[str, str]]:
    """GET with bounded retries (backoff with jitter; Retry-After honoured within the deadline)."""
    import httpx

    last = ""
    for attempt in range(ATTEMPTS):
        retry_after = 0.0
        try:
            response = client.get(url)
        except httpx.TimeoutException:
            last = "timed out"
        except httpx.TransportError as exc:
            last = f"connection failed ({type(exc).__name__})"
        else:
            if response.status_code == 200:
                try:
                    return response.json(), response.headers
                except ValueError:
                    raise KeyFetchFailed(
                        f"{quoted(url)} did not return JSON; is the issuer URL a GitLab instance?"
                    ) from None
            if response.status_code != 429 and response.status_code < 500:
                raise KeyFetchFailed(
                    f'{quoted(url)} answered HTTP {response.status_code}; check the query key "issuer"'
                )
            last = f"HTTP {response.status_code}"
            with contextlib.suppress(ValueError):
                retry_after = float(response.headers.get("retry-after", "0"))
        pause = max(retry_after, 0.2 * 2**attempt + random.uniform(0, 0.2))
        if attempt + 1 == ATTEMPTS or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    raise KeyFetchFailed(
        f"could not fetch {quoted(url)}: {last} after {attempt + 1} attempt(s); "
        "check the issuer is reachable from this runner, then retry the job"
    )
