"""The issuer's signing keys for a `kid`: the disk cache first (keycache.py), then the network
(keyfetch.py), with one deadline, a lock shared by parallel runs, and the last good keys while the
issuer is down. The warm path reads one small file and never imports httpx."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import KeyFetchFailed, VerificationFailed, listed, quoted
from .keycache import KeyCache, KeySet
from .keyfetch import fetch_bound, fetch_keyset, too_late, waited_in_vain
from .settings import DEFAULT_HTTP_TIMEOUT, Settings

if TYPE_CHECKING:
    from .prefetch import KeyPrefetch

__all__ = ["IssuerKeys", "KeyCache", "KeySet", "fetch_bound", "fetch_keyset", "issuer_keys"]

UNKNOWN_KID_COOLDOWN = 30  # a refetch for an unknown kid at most this often


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
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        ahead: KeyPrefetch | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.cache = cache
        self.bound = fetch_bound(timeout)
        self.timeout = timeout
        self._fetch = fetch or (lambda iss, deadline: fetch_keyset(iss, timeout, deadline, ca_file=ca_file))
        self._clock = clock
        self._ahead = ahead  # a fetch this run started early (prefetch.py): the first fetch is its outcome
        self._found: dict[str, Mapping[str, Any]] = {}  # a second lookup in one run asks nothing again

    def jwk(self, kid: str) -> Mapping[str, Any]:
        if kid not in self._found:
            self._found[kid] = self._lookup(kid)
        return self._found[kid]

    def _lookup(self, kid: str) -> Mapping[str, Any]:
        deadline = time.monotonic() + self.bound
        if self._ahead:
            self._ahead.wait()  # its keys are in the cache now, unless it failed or could not write there
            deadline = self._ahead.deadline
        cached = self.cache.load() if self.cache else None
        found = self._cached(kid, cached, self._clock())
        if found is not None:
            return found
        if self.cache is None or self._ahead:  # the early fetch took the lock, or waited for it, already
            return self._fetched(kid, cached, deadline)
        with self.cache.fetch_lock(deadline) as locked:
            again = self.cache.load()  # another process may have fetched while we waited
            if again and (cached is None or again.fetched_at > cached.fetched_at):
                # The clock is read again: the other process's keys are newer than our start.
                found = self._cached(kid, again, self._clock())
                if found is not None:
                    return found
                cached = again
            if not locked or too_late(deadline, self.timeout):  # the other run left no time to fetch again
                return self._stale(kid, cached, waited_in_vain(self.issuer, self.bound))
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
            keyset = self._ahead.take() if self._ahead else None
            if keyset is None:
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
        known = listed([k.get("kid") for k in keyset.keys])  # the issuer's list, cut
        return VerificationFailed(
            f"token kid {quoted(kid, 48)} is not among the keys of issuer {quoted(self.issuer, 60)} "
            f"(known: {known}, fetched {int(now - keyset.fetched_at)} s ago); the token was not "
            'signed by this issuer: check the query key "issuer"'
        )


def issuer_keys(settings: Settings, ahead: KeyPrefetch | None = None) -> IssuerKeys:
    """The keys of the settings' issuer, cached where the settings say, and the fetch this run started
    early for the same issuer, if any."""
    timeout = settings.http_timeout
    if ahead is not None and ahead.issuer == settings.issuer:
        return IssuerKeys(settings.issuer, ahead.cache, timeout=timeout, ahead=ahead, ca_file=settings.ca_file)
    cache = KeyCache(settings.cache_dir, settings.issuer) if settings.cache_dir is not None else None
    return IssuerKeys(settings.issuer, cache, timeout=timeout, ca_file=settings.ca_file)
