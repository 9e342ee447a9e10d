"""The issuer's signing keys: discovery, then JWKS, kept in a small disk cache.

Only the configured issuer is ever asked; nothing in a token chooses where keys come from. The warm
path reads one small file and never imports httpx.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import KeyFetchFailed, VerificationFailed, quoted

CACHE_DIR_ENV = "AUTHRESS_GITLAB_TOKEN_CACHE_DIR"
TIMEOUT_ENV = "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT"
DEFAULT_TIMEOUT = 5.0  # seconds, for connect and for each read
ATTEMPTS = 4  # per URL; retried on connection errors, timeouts, 429 and 5xx
MAX_FETCH_SECONDS = 30.0  # all a run spends on keys (waiting for another run's fetch included), whatever the timeout
MAX_CACHE_BYTES = 1024 * 1024  # a cache file holds a JWKS of a few KiB
MAX_AGE_DEFAULT, MAX_AGE_MIN, MAX_AGE_MAX = 3600, 300, 86400  # JWKS freshness, from Cache-Control
STALE_GRACE = 24 * 3600  # serve the last good keys this long past freshness when the issuer is down
UNKNOWN_KID_COOLDOWN = 30  # a refetch for an unknown kid at most this often


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
            # O_NOFOLLOW: a symlink planted in the cache directory must not choose our keys.
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            with open(fd, "rb") as f:
                st = os.fstat(f.fileno())
                # Keys decide what we trust: ignore a file someone else could have written.
                if st.st_uid != os.getuid() or st.st_mode & 0o022:
                    return None
                data = json.loads(f.read(MAX_CACHE_BYTES))
            keys = valid_keys(data["jwks"])
            if data["version"] != 1 or data["issuer"] != self.issuer or keys is None:
                return None
            return KeySet(self.issuer, str(data["jwks_uri"]), keys, float(data["fetched_at"]), float(data["max_age"]))
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
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
    def fetch_lock(self, deadline: float) -> Iterator[bool]:
        """Let one process fetch while parallel ones wait for its result, until `deadline` (monotonic).

        Yields whether the lock is held; True too when locking is impossible (no cache directory)."""
        import fcntl

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError:
            yield True
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        locked = False
                        break
                    time.sleep(0.02)
            yield locked
        finally:
            os.close(fd)  # releases the lock


Fetch = Callable[[str, float], KeySet]  # (issuer, monotonic deadline) -> keys, or KeyFetchFailed


class IssuerKeys:
    """Finds the public key for a `kid` of the configured issuer: cache first, then the network.

    Everything a lookup does, waiting for a parallel run's fetch included, ends by one deadline."""

    def __init__(
        self,
        issuer: str,
        cache: KeyCache | None,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.issuer = issuer
        self.cache = cache
        self.bound = fetch_bound(timeout)
        self._fetch = fetch or (lambda iss, deadline: fetch_keyset(iss, timeout, deadline))
        self._clock = clock

    def jwk(self, kid: str) -> Mapping[str, Any]:
        deadline = time.monotonic() + self.bound
        cached = self.cache.load() if self.cache else None
        found = self._cached(kid, cached, self._clock())
        if found is not None:
            return found
        if self.cache is None:
            return self._fetched(kid, cached, deadline)
        with self.cache.fetch_lock(deadline) as locked:
            again = self.cache.load()  # another process may have fetched while we waited
            if again and (cached is None or again.fetched_at > cached.fetched_at):
                # The clock is read again: the other process's keys are newer than our start.
                found = self._cached(kid, again, self._clock())
                if found is not None:
                    return found
                cached = again
            if not locked:
                failure = KeyFetchFailed(
                    f"another run has been fetching the keys of {quoted(self.issuer)} for {self.bound:.0f} s "
                    "without a result; check the issuer is reachable from this runner, then retry the job"
                )
                return self._stale(kid, cached, failure)
            return self._fetched(kid, cached, deadline)

    def _cached(self, kid: str, keyset: KeySet | None, now: float) -> Mapping[str, Any] | None:
        """The key from fresh keys; None when a fetch is due; an error for an unknown kid in the cooldown."""
        if keyset is None or not keyset.fresh(now):
            return None
        found = keyset.find(kid)
        if found is None and now - keyset.fetched_at < UNKNOWN_KID_COOLDOWN:
            raise self._unknown(kid, keyset, now)
        return found

    def _fetched(self, kid: str, previous: KeySet | None, deadline: float) -> Mapping[str, Any]:
        try:
            keyset = self._fetch(self.issuer, deadline)
        except KeyFetchFailed as exc:
            return self._stale(kid, previous, exc)
        if self.cache:
            self.cache.store(keyset)
        found = keyset.find(kid)
        if found is None:
            raise self._unknown(kid, keyset, self._clock())
        return found

    def _stale(self, kid: str, previous: KeySet | None, failure: KeyFetchFailed) -> Mapping[str, Any]:
        """The last good keys while the issuer is down, within STALE_GRACE; else the failure."""
        if previous and previous.usable_when_issuer_down(self._clock()):
            found = previous.find(kid)
            if found is not None:
                return found
        raise failure

    def _unknown(self, kid: str, keyset: KeySet, now: float) -> VerificationFailed:
        known = ", ".join(quoted(k.get("kid")) for k in keyset.keys)
        return VerificationFailed(
            f"token kid {quoted(kid, 80)} is not among the keys of issuer {quoted(self.issuer)} "
            f"(known: {known}; fetched {int(now - keyset.fetched_at)} s ago); the token was not "
            'signed by this issuer: check the query key "issuer"'
        )


def issuer_keys(issuer: str, environ: Mapping[str, str]) -> IssuerKeys:
    """The keys of `issuer`, with the cache directory and HTTP timeout the environment sets."""
    return IssuerKeys(issuer, KeyCache(default_cache_dir(environ), issuer), timeout=timeout_from_env(environ))


def fetch_bound(timeout: float) -> float:
    """Seconds a lookup may take: enough for every attempt at `timeout`, never more than MAX_FETCH_SECONDS."""
    return min(ATTEMPTS * (timeout + 1.0), MAX_FETCH_SECONDS)


def timeout_from_env(environ: Mapping[str, str]) -> float:
    try:
        value = float(environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        value = DEFAULT_TIMEOUT
    if not math.isfinite(value):
        value = DEFAULT_TIMEOUT
    return min(max(value, 0.1), 60.0)


def fetch_keyset(issuer: str, timeout: float = DEFAULT_TIMEOUT, deadline: float | None = None) -> KeySet:
    """Discovery (whose `issuer` must equal ours exactly), then its https `jwks_uri`, by `deadline`."""
    from . import network  # only a cold run pays for httpx

    if deadline is None:
        deadline = time.monotonic() + fetch_bound(timeout)
    with network.session(timeout) as client:
        discovery, _ = _get_json(client, issuer + "/.well-known/openid-configuration", timeout, deadline)
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
        jwks, headers = _get_json(client, jwks_uri, timeout, deadline)
    keys = valid_keys(jwks)
    if keys is None:
        raise KeyFetchFailed(
            f"{quoted(jwks_uri)} did not return a non-empty JSON Web Key Set; the issuer may be misconfigured"
        )
    return KeySet(issuer, jwks_uri, keys, time.time(), max_age(headers.get("cache-control", "")))


_MAX_AGE = re.compile(r"\s*max-age\s*=\s*\"?([0-9]{1,10})\"?\s*", re.IGNORECASE)


def max_age(cache_control: str) -> float:
    for part in cache_control.split(","):
        match = _MAX_AGE.fullmatch(part)
        if match:
            return float(min(max(int(match[1]), MAX_AGE_MIN), MAX_AGE_MAX))
    return float(MAX_AGE_DEFAULT)


def _get_json(client: Any, url: str, timeout: float, deadline: float) -> tuple[Any, Mapping[str, str]]:
    """The JSON body of a 200 answer, or KeyFetchFailed naming the URL and what to check."""
    from . import network

    try:
        response = network.get(client, url, timeout=timeout, deadline=deadline, attempts=ATTEMPTS)
    except network.Unanswered as exc:
        raise KeyFetchFailed(
            f"could not fetch {quoted(url)}: {exc.reason} after {exc.attempts} attempt(s); "
            "check the issuer is reachable from this runner, then retry the job"
        ) from None
    except network.TooLarge:
        raise KeyFetchFailed(
            f"{quoted(url)} sent more than {network.MAX_BODY_BYTES} bytes; is the issuer URL a GitLab instance?"
        ) from None
    if response.status != 200:
        raise KeyFetchFailed(f'{quoted(url)} answered HTTP {response.status}; check the query key "issuer"')
    try:
        return json.loads(response.body), response.headers
    except (ValueError, RecursionError):
        raise KeyFetchFailed(f"{quoted(url)} did not return JSON; is the issuer URL a GitLab instance?") from None
