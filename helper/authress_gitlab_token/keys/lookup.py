"""The issuer's signing keys for a `kid`: the disk cache first (keys/cache.py), then the network, with
one deadline, a lock shared by parallel runs, and the last good keys while the issuer is down. The
network means the configured issuer's discovery document, then the https `jwks_uri` it names: nothing
in a token chooses where keys come from. The warm path reads one small file and never imports httpx."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..calls import Background, Budget, CallFailed, Wording, call_json
from ..environment import DEFAULT_HTTP, Http
from ..errors import KeyFetchFailed, VerificationFailed, quoted
from ..settings import Settings
from .cache import KeyCache, KeySet, max_age
from .policy import valid_keys

if TYPE_CHECKING:
    from ..network import Session

ATTEMPTS = 4  # per URL; retried on connection errors, timeouts, 429 and 5xx
USUAL_JWKS_PATH = "/oauth/discovery/keys"  # where GitLab serves its JWKS; trusted only once discovery says so
MAX_FETCH_SECONDS = 30.0  # all a run spends on keys (waiting for another run's fetch included), whatever the timeout
OK = (200,)  # the only answer whose body is read
UNKNOWN_KID_COOLDOWN = 30  # a refetch for an unknown kid at most this often
WORDING = Wording(
    lead="could not fetch",
    reach="check the issuer is reachable from this runner, then retry the job",
    not_ours="is the issuer URL a GitLab instance?",
    late="the time for the keys ran out first",
)  # url_fix: each call names its own


def budget(timeout: float) -> Budget:
    """What a lookup may spend: every attempt at `timeout`, never more than MAX_FETCH_SECONDS."""
    return Budget(ATTEMPTS, timeout, MAX_FETCH_SECONDS)


def fetch_bound(timeout: float) -> float:
    """Seconds a lookup may take (its budget's)."""
    return budget(timeout).seconds


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
                    # Too little time left for one attempt of our own: its failure would name a timeout.
                    if not got or self._deadline - time.monotonic() < min(self.timeout, self.bound / 2):
                        raise KeyFetchFailed(
                            f"another run has been fetching the keys of {quoted(self.issuer)} for {self.bound:.0f} s "
                            "without a result",
                            WORDING.reach,
                        )
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
        kids = [k.get("kid") for k in keyset.keys]  # the issuer's list: the first two, then how many more
        known = ", ".join(quoted(k, 48) for k in kids[:2]) + (f" and {len(kids) - 2} more" if len(kids) > 2 else "")
        return VerificationFailed(
            f"token kid {quoted(kid, 48)} is not among the keys of issuer {quoted(self.issuer, 60)} "
            f"(known: {known}, fetched {int(now - keyset.fetched_at)} s ago)",
            'the token was not signed by this issuer: check the query key "issuer"',
        )


def fetch_keyset(
    issuer: str, http: Http = DEFAULT_HTTP, deadline: float | None = None, client: Session | None = None
) -> KeySet:
    """Discovery (whose `issuer` must equal ours exactly), then its https `jwks_uri`, by `deadline`.

    GitLab's JWKS is asked for at its usual place at the same time as discovery, which saves a round
    trip; that answer is used only when discovery names exactly that URL, else the named one is fetched.
    `client`: a network.session the caller opened, else one is opened here (with `http`)."""
    from .. import network  # only a cold run pays for httpx

    timeout, usual_uri = http.timeout, issuer + USUAL_JWKS_PATH
    end = time.monotonic() + fetch_bound(timeout) if deadline is None else deadline
    # Used for the usual URL too: its answer counts only once discovery has named it.
    misconfigured = f"the discovery document of {quoted(issuer)} names it as jwks_uri: the issuer is misconfigured"
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(network.session(http))
        usual = Background(
            lambda: _get_json(client, usual_uri, timeout, end, misconfigured), "authress-gitlab-token jwks"
        )
        try:
            jwks_uri = _discover(client, issuer, timeout, end)
            if jwks_uri == usual_uri:
                jwks, headers = usual.result(end, lambda: _overdue(usual_uri))
            else:
                jwks, headers = _get_json(client, jwks_uri, timeout, end, misconfigured)
        finally:
            usual.wait(end)  # its request ends (by the deadline) before the client closes
    keys = valid_keys(jwks)
    if keys is None:
        raise KeyFetchFailed(
            f"{quoted(jwks_uri)} did not return a non-empty JSON Web Key Set", "the issuer may be misconfigured"
        )
    return KeySet(issuer, jwks_uri, keys, time.time(), max_age(headers.get("cache-control", "")))


def _discover(client: Session, issuer: str, timeout: float, deadline: float) -> str:
    """The https `jwks_uri` of the issuer's discovery document, once it names exactly our issuer."""
    discovery_url = issuer + "/.well-known/openid-configuration"
    discovery, _ = _get_json(client, discovery_url, timeout, deadline, 'check the query key "issuer"')
    if not isinstance(discovery, dict):
        raise KeyFetchFailed(
            f"the discovery document of {quoted(issuer)} is not a JSON object", 'check the query key "issuer"'
        )
    if discovery.get("issuer") != issuer:
        raise KeyFetchFailed(
            f"discovery at {quoted(issuer)} names issuer {quoted(discovery.get('issuer'))}, expected {quoted(issuer)}",
            'set the query key "issuer" to exactly the issuer GitLab names',
        )
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        raise KeyFetchFailed(
            f"discovery at {quoted(issuer)} names jwks_uri {quoted(jwks_uri)}, expected an https URL",
            "keys are only fetched over https",
        )
    return jwks_uri


def _overdue(url: str) -> KeyFetchFailed:
    return KeyFetchFailed(f"could not fetch {quoted(url)}: no answer by the deadline", WORDING.reach)


def _get_json(
    client: Session, url: str, timeout: float, deadline: float, url_fix: str
) -> tuple[Any, Mapping[str, str]]:
    """The JSON body of a 200 answer, or KeyFetchFailed naming the URL and what to check."""
    try:
        wording = dataclasses.replace(WORDING, url_fix=url_fix)
        answer = call_json(client, "GET", url, wording, budget(timeout), accepted=OK, deadline=deadline)
    except CallFailed as exc:
        raise KeyFetchFailed(exc.problem, exc.fix) from None
    if answer.status not in OK:
        raise KeyFetchFailed(f"{quoted(url)} answered HTTP {answer.status}", 'check the query key "issuer"')
    return answer.json, answer.headers
