"""The issuer misbehaving, and the key cache damaged or planted, with the helper run as Terraform runs it.

Each test states the outcome and a bound on the time taken. The bounds are loose ceilings that show the
fault handling ends by itself (conftest sets a 2 s HTTP timeout, so a lookup ends within
fetch_bound(2) = 12 s); they are not speed targets, which live in the benchmark.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token import __version__
from authress_gitlab_token.keys.lookup import KeyCache, fetch_bound
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, Helper, Run, query
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply, running_issuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

TIMEOUT = 2.0  # AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT in conftest
STARTUP = 5.0  # slack for starting Python (and the runs before the one timed) on a busy 2-core machine


def timed(call: Callable[..., Run], *args: Any, **kwargs: Any) -> tuple[Run, float]:
    started = time.monotonic()
    run = call(*args, **kwargs)
    return run, time.monotonic() - started


def cache_path(helper: Helper, issuer_url: str) -> Path:
    return KeyCache(helper.cache_dir, issuer_url).path


def age_cache(path: Path, seconds: float) -> None:
    """Move the cache's fetch time into the past, as waiting `seconds` would (keeps the file private)."""
    data = json.loads(path.read_text())
    data["fetched_at"] -= seconds
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the issuer misbehaving ------------------------------------------------------------------------------


def test_issuer_refusing_connections_fails_within_the_bound(helper: Helper, signing_key: SigningKey) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    token = mint(signing_key, gitlab_claims(url, AUDIENCE))
    run, elapsed = timed(helper.external, query(url), token)
    run.refused(f'could not fetch "{url}/.well-known/openid-configuration": connection failed', "after 4 attempt(s)")
    assert elapsed < fetch_bound(TIMEOUT) + STARTUP


def test_issuer_hanging_past_the_timeout_once_is_retried(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(DISCOVERY_PATH, Reply(hang=TIMEOUT + 2))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(DISCOVERY_PATH) == 2
    assert TIMEOUT <= elapsed < TIMEOUT + 1 + STARTUP


def test_issuer_hanging_every_time_fails_within_the_bound(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(DISCOVERY_PATH, *[Reply(hang=3.0)] * 4)
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "0.5"}
    run, elapsed = timed(helper.external, query(issuer.url), token, env=env)
    run.refused('openid-configuration": timed out after 4 attempt(s)')
    assert elapsed < fetch_bound(0.5) + STARTUP


def test_issuer_answering_500_then_200_is_retried(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(JWKS_PATH, Reply(status=500, body=b"oops"), Reply(status=503, body=b"busy"))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 3
    assert elapsed < 2 + STARTUP


def test_issuer_answering_500_every_time_fails_within_the_bound(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    issuer.script(JWKS_PATH, *[Reply(status=502, body=b"bad gateway")] * 4)
    run, elapsed = timed(helper.external, query(issuer.url), token)
    run.refused('oauth/discovery/keys": HTTP 502 after 4 attempt(s)', "retry the job")
    assert elapsed < fetch_bound(TIMEOUT) + STARTUP


def test_issuer_answering_429_is_retried_after_retry_after(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(JWKS_PATH, Reply(status=429, body=b"{}", headers={"Retry-After": "1.5"}))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 2
    assert 1.5 <= elapsed < 1.5 + STARTUP


def test_retry_after_beyond_the_bound_fails_at_once(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(JWKS_PATH, Reply(status=429, body=b"{}", headers={"Retry-After": "3600"}))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    run.refused("HTTP 429 after 1 attempt(s)")
    assert elapsed < STARTUP


def test_key_rotation_is_picked_up_once_the_cooldown_allows_a_refetch(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey
) -> None:
    """GitLab publishes a new key; a token signed with it arrives before our cache knows the key."""
    assert helper.external(query(issuer.url), mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))).returncode == 0
    issuer.keys = [signing_key, other_key]  # rotation: the issuer now serves the new key too
    rotated = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))

    run, elapsed = timed(helper.external, query(issuer.url), rotated)
    assert issuer.hits(JWKS_PATH) == 1, "the cached keys were fetched just now: no refetch within the cooldown"
    run.refused(f'token kid "{other_key.kid}" is not among the keys', "s ago")

    age_cache(cache_path(helper, issuer.url), 31)  # what waiting out the 30 s cooldown does
    run, elapsed = timed(helper.external, query(issuer.url), rotated)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 2
    assert elapsed < 2 + STARTUP


def test_jwks_without_our_kid_then_with_it(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey, token: str
) -> None:
    issuer.script(JWKS_PATH, Reply(body=json.dumps({"keys": [other_key.public_jwk()]}).encode()))
    run = helper.external(query(issuer.url), token)
    run.refused(f'token kid "{signing_key.kid}" is not among the keys', f'known: "{other_key.kid}"')
    age_cache(cache_path(helper, issuer.url), 31)
    run, elapsed = timed(helper.external, query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert elapsed < 2 + STARTUP


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"keys": [', "did not return JSON"),
        (b"<html>Sign in</html>", "did not return JSON"),
        (b"[" * 100_000, "did not return JSON"),
        (b'{"keys": []}', "did not return a non-empty JSON Web Key Set"),
        (b'{"keys": [{"kid": "x"}]}', "did not return a non-empty JSON Web Key Set"),
        (b'{"keys": "none"}', "did not return a non-empty JSON Web Key Set"),
        (b"{}", "did not return a non-empty JSON Web Key Set"),
        (b" " * (1024 * 1024 + 1), "sent more than 1048576 bytes"),
        (b'{"keys": [' + b",".join([b'{"kty": "RSA"}'] * 10_000) + b"]}", "returned more than 10000 values"),
    ],
    ids=[
        "truncated",
        "html",
        "deeply-nested",
        "empty-keys",
        "key-without-kty",
        "keys-not-a-list",
        "no-keys",
        "huge",
        "too-many-values",
    ],
)
def test_malformed_jwks_is_refused_and_never_cached(
    helper: Helper, issuer: LocalIssuer, token: str, body: bytes, message: str
) -> None:
    issuer.script(JWKS_PATH, Reply(body=body))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    run.refused(message)
    assert not cache_path(helper, issuer.url).exists()
    assert elapsed < STARTUP
    assert helper.external(query(issuer.url), token).returncode == 0  # the next run fetches afresh


def test_malformed_discovery_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(DISCOVERY_PATH, Reply(body=b"not json"))
    helper.external(query(issuer.url), token).refused('openid-configuration" did not return JSON')
    issuer.script(DISCOVERY_PATH, Reply(body=b"[]"))
    helper.external(query(issuer.url), token).refused("discovery document", "is not a JSON object")


def test_discovery_naming_another_issuer_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.discovery_overrides = {"issuer": issuer.url + "/"}
    helper.external(query(issuer.url), token).refused(
        f'discovery at "{issuer.url}" names issuer "{issuer.url}/", expected "{issuer.url}"'
    )
    # Only GitLab's usual JWKS URL, asked for alongside discovery (keys/fetch.py) and then left unused.
    assert issuer.requests.count(JWKS_PATH) == 1 and len(issuer.requests) == 2


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_discovery_naming_a_jwks_uri_that_is_not_https_is_refused(
    helper: Helper, issuer: LocalIssuer, token: str, scheme: str
) -> None:
    uri = f"{scheme}://{issuer.url.removeprefix('https://')}{JWKS_PATH}"
    issuer.discovery_overrides = {"jwks_uri": uri}
    helper.external(query(issuer.url), token).refused(f'names jwks_uri "{uri}", expected an https URL')
    # Only GitLab's usual https JWKS URL, asked for alongside discovery (keys/fetch.py) and then left unused.
    assert issuer.requests.count(JWKS_PATH) == 1 and len(issuer.requests) == 2


def test_redirects_are_not_followed(helper: Helper, issuer: LocalIssuer, ca: LocalCA, token: str) -> None:
    with running_issuer(ca, []) as elsewhere:
        issuer.script(JWKS_PATH, Reply(status=302, headers={"Location": elsewhere.url + JWKS_PATH}))
        helper.external(query(issuer.url), token).refused('oauth/discovery/keys" answered HTTP 302')
        assert elsewhere.requests == []


def test_requests_name_the_product_and_version(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    assert helper.external(query(issuer.url), token).returncode == 0
    assert issuer.user_agents == [f"authress-gitlab-token/{__version__}"] * 2


# --- the key cache ---------------------------------------------------------------------------------------


def test_stale_keys_are_served_while_the_issuer_is_down(helper: Helper, ca: LocalCA, signing_key: SigningKey) -> None:
    with running_issuer(ca, [signing_key]) as gone:
        token = mint(signing_key, gitlab_claims(gone.url, AUDIENCE))
        assert helper.external(query(gone.url), token).returncode == 0
    path = cache_path(helper, gone.url)
    age_cache(path, 86400 + 60)  # past the JWKS's max-age (one day), within the stale bound
    run, elapsed = timed(helper.external, query(gone.url), token)
    assert run.returncode == 0, run.stderr
    assert elapsed < fetch_bound(TIMEOUT) + STARTUP

    age_cache(path, 86400)  # past max-age + the one-day stale bound
    run, elapsed = timed(helper.external, query(gone.url), token)
    run.refused("could not fetch", "connection failed")
    assert elapsed < fetch_bound(TIMEOUT) + STARTUP


@pytest.mark.parametrize(
    "content",
    [b"\x00garbage", b'{"version": 1, "jwks": ', b"[" * 200_000, b""],
    ids=["binary", "truncated", "deeply-nested", "empty"],
)
def test_corrupt_cache_file_is_ignored_and_replaced(
    helper: Helper, issuer: LocalIssuer, token: str, content: bytes
) -> None:
    path = cache_path(helper, issuer.url)
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    run = helper.external(query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 1
    assert KeyCache(helper.cache_dir, issuer.url).load() is not None


def test_cache_file_writable_by_others_is_not_trusted(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey, token: str
) -> None:
    """Someone who can write the cache plants their own key in it: only a private file is trusted."""
    assert helper.external(query(issuer.url), token).returncode == 0
    path = cache_path(helper, issuer.url)
    planted = json.loads(path.read_text())
    planted["jwks"] = {"keys": [other_key.public_jwk()]}
    path.write_text(json.dumps(planted))
    forged = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))

    os.chmod(path, 0o666)
    helper.external(query(issuer.url), forged).refused(f'token kid "{other_key.kid}" is not among the keys')
    assert issuer.hits(JWKS_PATH) == 2  # the planted file was ignored and the issuer asked again

    # The control: the same keys in a file only we can write are ours, and trusted as such.
    path.write_text(json.dumps(planted))
    os.chmod(path, 0o600)
    assert helper.external(query(issuer.url), forged).returncode == 0


def test_twenty_parallel_cold_runs_share_one_fetch(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """Parallel data sources and jobs on one runner: one process fetches while the others wait for it."""
    issuer.script(JWKS_PATH, Reply(hang=1.0))  # a slow first fetch, so the others pile up behind it
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        runs = list(pool.map(lambda _: helper.external(query(issuer.url), token), range(20)))
    elapsed = time.monotonic() - started
    assert [r.returncode for r in runs] == [0] * 20, [r.stderr for r in runs if r.returncode]
    assert (issuer.hits(DISCOVERY_PATH), issuer.hits(JWKS_PATH)) == (1, 1), "one fetch for 20 runs"
    # Mostly the cost of starting 20 Pythons on 2 cores; a retry storm or serial refetches would exceed it.
    assert elapsed < fetch_bound(TIMEOUT) + 20 * 2.5
