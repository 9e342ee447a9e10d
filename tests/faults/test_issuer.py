"""The issuer misbehaving, with the helper run as Terraform runs it: refused connections, hangs, errors,
rate limits, malformed or foreign documents, redirects, key rotation; and the lines that tell the truth
when time runs short (a wait for another run's fetch, an expiry dated by the clock that judged it).

Each test states the outcome and a bound on the time taken. The bounds are loose ceilings that show the
fault handling ends by itself (conftest sets a 2 s HTTP timeout, so a lookup ends within
fetch_bound(2) = 12 s); they are not speed targets, which live in the benchmark.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import threading
import time

import pytest

from authress_gitlab_token import __version__
from authress_gitlab_token.keys.lookup import fetch_bound
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, HTTP_TIMEOUT, STARTUP, Helper, Run, age_cache, cache_file, query, timed
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply, running_issuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the issuer misbehaving ------------------------------------------------------------------------------


@pytest.mark.slow
def test_issuer_refusing_connections_fails_within_the_bound(helper: Helper, signing_key: SigningKey) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    token = mint(signing_key, gitlab_claims(url, AUDIENCE))
    run, elapsed = timed(helper.external, query(url), token)
    run.refused(f'could not fetch "{url}/.well-known/openid-configuration": connection failed', "after 4 attempt(s)")
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + STARTUP


@pytest.mark.slow
def test_issuer_hanging_past_the_timeout_once_is_retried(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(DISCOVERY_PATH, Reply(hang=HTTP_TIMEOUT + 2))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(DISCOVERY_PATH) == 2
    assert HTTP_TIMEOUT <= elapsed < HTTP_TIMEOUT + 1 + STARTUP


@pytest.mark.slow
def test_issuer_hanging_every_time_fails_within_the_bound(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(DISCOVERY_PATH, *[Reply(hang=3.0)] * 4)
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "0.5"}
    run, elapsed = timed(helper.external, query(issuer.url), token, env=env)
    run.refused('openid-configuration": timed out waiting for "127.0.0.1" to answer after 4 attempt(s)')
    assert elapsed < fetch_bound(0.5) + STARTUP


def test_issuer_answering_500_then_200_is_retried(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    issuer.script(JWKS_PATH, Reply(status=500, body=b"oops"), Reply(status=503, body=b"busy"))
    run, elapsed = timed(helper.external, query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 3
    assert elapsed < 2 + STARTUP


@pytest.mark.slow
def test_issuer_answering_500_every_time_fails_within_the_bound(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    issuer.script(JWKS_PATH, *[Reply(status=502, body=b"bad gateway")] * 4)
    run, elapsed = timed(helper.external, query(issuer.url), token)
    run.refused('oauth/discovery/keys": HTTP 502 after 4 attempt(s)', "retry the job")
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + STARTUP


@pytest.mark.slow
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

    age_cache(cache_file(helper, issuer.url), 31)  # what waiting out the 30 s cooldown does
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
    age_cache(cache_file(helper, issuer.url), 31)
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
    assert not cache_file(helper, issuer.url).exists()
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
    # Only GitLab's usual JWKS URL, asked for alongside discovery (keys/lookup.py) and then left unused.
    assert issuer.requests.count(JWKS_PATH) == 1 and len(issuer.requests) == 2


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_discovery_naming_a_jwks_uri_that_is_not_https_is_refused(
    helper: Helper, issuer: LocalIssuer, token: str, scheme: str
) -> None:
    uri = f"{scheme}://{issuer.url.removeprefix('https://')}{JWKS_PATH}"
    issuer.discovery_overrides = {"jwks_uri": uri}
    helper.external(query(issuer.url), token).refused(f'names jwks_uri "{uri}", expected an https URL')
    # Only GitLab's usual https JWKS URL, asked for alongside discovery (keys/lookup.py) and then left unused.
    assert issuer.requests.count(JWKS_PATH) == 1 and len(issuer.requests) == 2


def test_redirects_are_not_followed(helper: Helper, issuer: LocalIssuer, ca: LocalCA, token: str) -> None:
    with running_issuer(ca, []) as elsewhere:
        issuer.script(JWKS_PATH, Reply(status=302, headers={"Location": elsewhere.url + JWKS_PATH}))
        helper.external(query(issuer.url), token).refused('oauth/discovery/keys" answered HTTP 302')
        assert elsewhere.requests == []


def test_requests_name_the_product_and_version(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    assert helper.external(query(issuer.url), token).returncode == 0
    assert issuer.user_agents == [f"authress-gitlab-token/{__version__}"] * 2


# --- messages that tell the truth when time runs short -------------------------------------------------


@pytest.mark.slow
def test_a_run_that_waited_for_another_runs_fetch_in_vain_says_so(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """The other run (this test, holding the fetch lock) lets go just before our deadline: too late for a
    fetch of our own, so the message names the wait, not "no time was left after 0 attempt(s)" nor a
    timeout of a request that barely started. (A 3 s timeout: our start-up may take up to 3 s, the
    least time a fetch of our own is begun with, and still leave it too late.)"""
    issuer.delay = 2.5
    lock_path = cache_file(helper, issuer.url).with_suffix(".lock")
    lock_path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    runs: list[Run] = []
    started = time.monotonic()
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "3"}
    thread = threading.Thread(target=lambda: runs.append(helper.external(query(issuer.url), token, env=env)))
    thread.start()
    try:
        time.sleep(fetch_bound(3) - 0.05)  # the run's deadline starts a little after its process
    finally:
        os.close(fd)
    thread.join()
    runs[0].refused(f'another run has been fetching the keys of "{issuer.url}" for 16 s without a result')
    assert "attempt(s)" not in runs[0].stderr
    assert issuer.requests == []
    assert time.monotonic() - started < fetch_bound(3) + 5


@pytest.mark.slow
def test_a_token_that_expires_during_a_slow_fetch_is_dated_by_the_clock_that_judged_it(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    issuer.delay = 4.5  # within the 5 s timeout set below: one slow answer, no retry
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3))
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "5"}
    run = helper.external(query(issuer.url, leeway_seconds="0"), token, env=env)
    run.refused("token expired at", "leeway 0 s")
    ago = re.search(r"\((-?\d+) s ago", run.stderr)
    assert ago is not None and int(ago[1]) >= 1, run.stderr
