"""The issuer's signing keys for a `kid`: the disk cache first (keys/cache.py), then the network
(keys/fetch.py), with one deadline, a lock shared by parallel runs, and the last good keys while the
issuer is down. The warm path reads one small file and never imports httpx."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..background import Background
from ..errors import KeyFetchFailed, VerificationFailed, listed, quoted
from ..settings import DEFAULT_HTTP, Http, Settings
from .cache import KeyCache, KeySet
from .fetch import WORDING, fetch_bound, fetch_keyset, too_late, waited_in_vain

UNKNOWN_KID_COOLDOWN = 30  # a refetch for an unknown kid at most this often


Fetch = Callable[[str, float], KeySet]  # (issuer, monotonic deadline) -> keys, or KeyFetchFailed


class IssuerKeys:
    """Finds the public key for a `kid` of the configured issuer: cache first, then the network.

    `start()` reads the cache once and, unless its keys are fresh, begins the fetch in a thread: a cold
    run's requests go out while it imports jwt. The fetch takes the cache's lock, so parallel runs share
    one. Everything a lookup does, waiting for a parallel run's fetch included, ends by one deadline."""

    def __init__(
        self,
        issuer: str,
        cache: KeyCache | None,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        http: Http = DEFAULT_HTTP,
    ) -> None:
        self.issuer = issuer
        self.cache = cache
        self.bound = fetch_bound(http.timeout)
        self.timeout = http.timeout
        self._fetch = fetch
        self._http = http
        self._clock = clock
        self._started = False
        self._cached: KeySet | None = None  # the newest keys this run has seen
        self._job: Background[KeySet] | None = None  # a fetch under way: the issuer's keys, or a parallel run's
        self._deadline = 0.0  # the job's, time.monotonic()

    @classmethod
    def of(cls, settings: Settings) -> IssuerKeys:
        """The keys of the settings' issuer, cached where the settings say."""
        cache = KeyCache(settings.cache_dir, settings.issuer) if settings.cache_dir is not None else None
        return cls(settings.issuer, cache, http=settings.http)

    def start(self) -> IssuerKeys:
        """Read the cache and, unless its keys are fresh, begin fetching (once; a lookup does it too)."""
        if self._started:
            return self
        self._started = True
        held = contextlib.ExitStack()  # the lock of a run that fetches; the job releases it
        # Locked before reading: a parallel run cannot finish a fetch between the read and the lock.
        locked = held.enter_context(self.cache.fetch_lock(0.0)) if self.cache else True
        self._cached = self.cache.load() if self.cache else None
        if self._cached is not None and self._cached.fresh(self._clock()):
            held.close()  # a warm run: no request, no httpx
        else:
            self._begin(held, locked)
        return self

    def _begin(self, held: contextlib.ExitStack, locked: bool) -> None:
        """The fetch, in a thread; `locked`: `held` holds the lock, else the job waits for it."""
        self._deadline = time.monotonic() + self.bound
        if not locked:
            held.close()
        client = None
        if locked and self._fetch is None:
            # httpx is imported and the client made here, before the thread starts, so the thread sends at
            # once instead of sharing the GIL with the main thread's imports.
            with contextlib.suppress(Exception):  # the job meets it again, and the lookup reports it
                from .. import network

                client = held.enter_context(network.session(self._http))
        previous = self._cached
        self._job = Background(lambda: self._run(held, locked, client, previous), "authress-gitlab-token keys")

    def _run(self, held: contextlib.ExitStack, locked: bool, client: Any, previous: KeySet | None) -> KeySet:
        """Fetch and cache the keys; or, having waited for a parallel run's fetch, its keys."""
        with held:
            lock = self.cache.fetch_lock(self._deadline) if self.cache and not locked else contextlib.nullcontext(True)
            with lock as got:
                if not locked and self.cache:
                    again = self.cache.load()  # the parallel run may have fetched while we waited
                    newer = again is not None and (previous is None or again.fetched_at > previous.fetched_at)
                    if newer and again is not None and again.fresh(self._clock()):
                        return again
                    if not got or too_late(self._deadline, self.timeout):  # it left no time to fetch again
                        raise waited_in_vain(self.issuer, self.bound)
                if self._fetch is None:
                    keyset = fetch_keyset(self.issuer, self._http, self._deadline, client)
                else:
                    keyset = self._fetch(self.issuer, self._deadline)
                if self.cache:
                    self.cache.store(keyset)
                return keyset

    def jwk(self, kid: str) -> Mapping[str, Any]:
        """The key for `kid`: from fresh keys at hand, else from the fetch (begun now if need be)."""
        self.start()
        if self._job is None:
            found = self._fresh(kid, self._cached, self._clock())
            if found is not None:
                return found
            self._begin(contextlib.ExitStack(), locked=False)  # an unknown kid, past the cooldown
        job, self._job = self._job, None
        assert job is not None
        try:
            keyset = job.result(self._deadline, self._overdue)
        except KeyFetchFailed as exc:
            return self._stale(kid, exc)
        self._cached = keyset
        found = keyset.find(kid)
        if found is None:
            raise self._unknown(kid, keyset, self._clock())
        return found

    def _fresh(self, kid: str, keyset: KeySet | None, now: float) -> Mapping[str, Any] | None:
        """The key from fresh keys; None when a fetch is due; an error for an unknown kid in the cooldown."""
        if keyset is None or not keyset.fresh(now):
            return None
        found = keyset.find(kid)
        if found is None and now - keyset.fetched_at < UNKNOWN_KID_COOLDOWN:
            raise self._unknown(kid, keyset, now)
        return found

    def _stale(self, kid: str, failure: KeyFetchFailed) -> Mapping[str, Any]:
        """The last good keys while the issuer is down, within STALE_GRACE; else the failure. The cache is
        read again: a parallel run may have left keys there meanwhile."""
        previous = self.cache.load() if self.cache else None
        if previous and previous.usable_when_issuer_down(self._clock()):
            found = previous.find(kid)
            if found is not None:
                return found
        raise failure

    def _overdue(self) -> KeyFetchFailed:
        return KeyFetchFailed(
            f"could not fetch the keys of {quoted(self.issuer)} within {self.bound:.0f} s",
            WORDING.reach,
        )

    def _unknown(self, kid: str, keyset: KeySet, now: float) -> VerificationFailed:
        known = listed([k.get("kid") for k in keyset.keys])  # the issuer's list, cut
        return VerificationFailed(
            f"token kid {quoted(kid, 48)} is not among the keys of issuer {quoted(self.issuer, 60)} "
            f"(known: {known}, fetched {int(now - keyset.fetched_at)} s ago)",
            'the token was not signed by this issuer: check the query key "issuer"',
        )
