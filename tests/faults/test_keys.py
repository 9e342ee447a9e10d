"""Key lookup rules that a subprocess cannot reach in reasonable time: cooldowns, stale bounds, the
lock shared by parallel runs, and parsing of what the issuer sends. The fetch and the clock are injected."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token.environment import Http
from authress_gitlab_token.errors import KeyFetchFailed, VerificationFailed
from authress_gitlab_token.keys.cache import (
    MAX_AGE_DEFAULT,
    MAX_AGE_MAX,
    MAX_AGE_MIN,
    STALE_GRACE,
    KeyCache,
    KeySet,
    max_age,
)
from authress_gitlab_token.keys.lookup import MAX_FETCH_SECONDS, UNKNOWN_KID_COOLDOWN, IssuerKeys, fetch_bound
from authress_gitlab_token.keys.policy import valid_keys
from authress_gitlab_token.network import retry_after

ISSUER = "https://gitlab.example.com"
T0 = 1_800_000_000.0


def keyset(*kids: str, fetched_at: float = T0, age: float = 3600) -> KeySet:
    keys: tuple[Mapping[str, Any], ...] = tuple({"kty": "RSA", "kid": kid, "n": "x", "e": "AQAB"} for kid in kids)
    return KeySet(ISSUER, ISSUER + "/oauth/discovery/keys", keys, fetched_at, age)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Issuer:
    """An injected fetch: answers with `serves` (a KeySet, or an error to raise) and counts calls."""

    def __init__(self, clock: Clock, *kids: str) -> None:
        self.clock, self.kids, self.calls, self.deadlines = clock, kids, 0, []
        self.down = False

    def __call__(self, issuer: str, deadline: float) -> KeySet:
        assert issuer == ISSUER
        self.calls += 1
        self.deadlines.append(deadline)
        if self.down:
            raise KeyFetchFailed("could not fetch: connection failed")
        return keyset(*self.kids, fetched_at=self.clock())


@pytest.fixture
def cache(tmp_path: Path) -> KeyCache:
    return KeyCache(tmp_path / "cache", ISSUER)


def test_fresh_cached_keys_are_used_without_a_fetch(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 - 100))
    fetch = Issuer(clock, "a")
    assert IssuerKeys(ISSUER, cache, fetch, clock).jwk("a")["kid"] == "a"
    assert fetch.calls == 0


def test_unknown_kid_within_the_cooldown_is_refused_without_a_fetch(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 - (UNKNOWN_KID_COOLDOWN - 1)))
    fetch = Issuer(clock, "a", "b")
    with pytest.raises(VerificationFailed, match='token kid "b" is not among the keys'):
        IssuerKeys(ISSUER, cache, fetch, clock).jwk("b")
    assert fetch.calls == 0


def test_unknown_kid_after_the_cooldown_refetches_once_and_caches_the_rotated_keys(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 - UNKNOWN_KID_COOLDOWN))
    fetch = Issuer(clock, "a", "b")
    keys = IssuerKeys(ISSUER, cache, fetch, clock)
    assert keys.jwk("b")["kid"] == "b"
    assert keys.jwk("b")["kid"] == "b"
    assert fetch.calls == 1
    assert [k["kid"] for k in cache.load().keys] == ["a", "b"]  # type: ignore[union-attr]


def test_expired_keys_are_refetched(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 - 3601, age=3600))
    fetch = Issuer(clock, "a")
    assert IssuerKeys(ISSUER, cache, fetch, clock).jwk("a")["kid"] == "a"
    assert fetch.calls == 1


def test_last_good_keys_are_served_while_the_issuer_is_down_until_the_stale_bound(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 - 3600 - STALE_GRACE + 1, age=3600))
    fetch = Issuer(clock, "a")
    fetch.down = True
    assert IssuerKeys(ISSUER, cache, fetch, clock).jwk("a")["kid"] == "a"
    clock.now += 2  # now past max_age + STALE_GRACE
    with pytest.raises(KeyFetchFailed, match="connection failed"):
        IssuerKeys(ISSUER, cache, fetch, clock).jwk("a")
    assert fetch.calls == 2


def test_stale_keys_never_answer_for_a_kid_they_do_not_hold(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 - 7200, age=3600))
    fetch = Issuer(clock, "a")
    fetch.down = True
    with pytest.raises(KeyFetchFailed):
        IssuerKeys(ISSUER, cache, fetch, clock).jwk("b")


def test_keys_dated_in_the_future_are_not_trusted_as_fresh(cache: KeyCache) -> None:
    clock = Clock()
    cache.store(keyset("a", fetched_at=T0 + 86400))
    fetch = Issuer(clock, "a")
    IssuerKeys(ISSUER, cache, fetch, clock).jwk("a")
    assert fetch.calls == 1


@contextmanager
def another_run_fetching(cache: KeyCache, then: Callable[[], None] = lambda: None) -> Iterator[threading.Event]:
    """Another run holding the fetch lock until the event given is set; then it does `then` (the lock still
    held, as a fetch ends by storing its keys) and lets go."""
    holding, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with cache.fetch_lock(time.monotonic() + 10):
            holding.set()
            release.wait(10)
            then()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert holding.wait(5), "the other run never took the lock"
        yield release
    finally:
        release.set()
        thread.join(5)


def test_a_run_waiting_for_a_parallel_fetch_uses_its_keys(cache: KeyCache) -> None:
    """The other run stores keys fetched after this run started waiting: they are fresh, not a reason to fetch."""
    fetch = Issuer(Clock(), "a")

    def store_fresh_keys() -> None:
        time.sleep(0.05)  # keys fetched strictly after the waiter read its clock
        cache.store(keyset("a", fetched_at=time.time()))

    with another_run_fetching(cache, then=store_fresh_keys) as release:
        threading.Timer(0.1, release.set).start()
        assert IssuerKeys(ISSUER, cache, fetch).jwk("a")["kid"] == "a"
    assert fetch.calls == 0


def test_waiting_for_a_stuck_parallel_fetch_ends_by_the_deadline(cache: KeyCache) -> None:
    fetch = Issuer(Clock(), "a")
    with another_run_fetching(cache):
        keys = IssuerKeys(ISSUER, cache, fetch)
        keys.bound = 0.3
        started = time.monotonic()
        with pytest.raises(KeyFetchFailed, match="another run has been fetching the keys"):
            keys.jwk("a")
        assert time.monotonic() - started < 2.0
        cache.store(keyset("a", fetched_at=time.time() - 7200, age=3600))  # stale, within the grace
        assert keys.jwk("a")["kid"] == "a"
        assert fetch.calls == 0


def test_the_fetch_is_given_the_lookups_deadline() -> None:
    fetch = Issuer(Clock(), "a")
    keys = IssuerKeys(ISSUER, None, fetch, http=Http(timeout=2.0))
    before = time.monotonic()
    keys.jwk("a")
    assert before + fetch_bound(2.0) - 1 <= fetch.deadlines[0] <= time.monotonic() + fetch_bound(2.0)


@pytest.mark.parametrize(("timeout", "bound"), [(0.5, 6.0), (2.0, 12.0), (5.0, 24.0), (60.0, MAX_FETCH_SECONDS)])
def test_a_lookup_is_bounded_well_under_a_minute_whatever_the_timeout(timeout: float, bound: float) -> None:
    assert fetch_bound(timeout) == bound


# --- what the cache trusts -------------------------------------------------------------------------------


def test_cache_round_trips_and_is_private(cache: KeyCache) -> None:
    cache.store(keyset("a"))
    assert cache.load() == keyset("a")
    assert os.stat(cache.path).st_mode & 0o777 == 0o600
    assert os.stat(cache.directory).st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff garbage",
        b"[" * 100_000,
        b'{"version": 1}',
        json.dumps({**keyset("a").to_json(), "version": 2}).encode(),
        json.dumps({**keyset("a").to_json(), "issuer": "https://evil.example"}).encode(),
        json.dumps({**keyset("a").to_json(), "jwks": {"keys": []}}).encode(),
        json.dumps({**keyset("a").to_json(), "fetched_at": "soon"}).encode(),
    ],
    ids=["empty", "binary", "deeply-nested", "partial", "version", "other-issuer", "empty-keys", "bad-time"],
)
def test_corrupt_or_foreign_cache_file_is_ignored(cache: KeyCache, content: bytes) -> None:
    cache.store(keyset("a"))
    cache.path.write_bytes(content)
    assert cache.load() is None


def test_cache_file_others_can_write_is_ignored(cache: KeyCache) -> None:
    cache.store(keyset("a"))
    os.chmod(cache.path, 0o620)
    assert cache.load() is None
    os.chmod(cache.path, 0o600)
    assert cache.load() == keyset("a")


def test_cache_file_owned_by_another_user_is_ignored(cache: KeyCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another local user could plant keys; running as someone else than the file's owner shows it."""
    cache.store(keyset("a"))
    owner = os.stat(cache.path).st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    assert cache.load() is None
    monkeypatch.setattr(os, "getuid", lambda: owner)
    assert cache.load() == keyset("a")


def test_symlinked_cache_file_is_ignored(cache: KeyCache, tmp_path: Path) -> None:
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(keyset("attacker").to_json()))
    os.chmod(planted, 0o600)
    cache.directory.mkdir(mode=0o700)
    cache.path.symlink_to(planted)
    assert cache.load() is None


@pytest.mark.parametrize(
    "jwks",
    [None, [], {}, {"keys": []}, {"keys": {}}, {"keys": ["x"]}, {"keys": [{"kid": "a"}]}, {"keys": [{"kty": 1}]}],
)
def test_empty_or_malformed_key_sets_are_never_accepted(jwks: Any) -> None:
    assert valid_keys(jwks) is None


# --- what the issuer sends --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("", MAX_AGE_DEFAULT),
        ("no-store", MAX_AGE_DEFAULT),
        ("public, max-age=7200", 7200),
        ('max-age="7200"', 7200),
        ("MAX-AGE = 7200", 7200),
        ("max-age=0", MAX_AGE_MIN),
        ("max-age=99999999", MAX_AGE_MAX),
        ("max-age=-5", MAX_AGE_DEFAULT),
        ("max-age=\u00b2", MAX_AGE_DEFAULT),  # a digit to str.isdigit, not to int()
        ("max-age=" + "9" * 5000, MAX_AGE_DEFAULT),  # more digits than int() converts
        ("s-maxage=10, max-age=600", 600),
    ],
)
def test_cache_lifetime_comes_from_max_age_within_bounds(header: str, seconds: int) -> None:
    assert max_age(header) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 0),
        ("", 0),
        ("2", 2),
        ("1.5", 1.5),
        ("-3", 0),
        ("nan", 0),
        ("inf", 0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0),
    ],
)
def test_retry_after_is_read_as_seconds_and_nonsense_ignored(value: str | None, seconds: float) -> None:
    assert retry_after(value) == seconds
