"""A cold run fetches the keys while it starts up, and asks for GitLab's usual JWKS URL alongside
discovery (keys/lookup.py). What that answer may be trusted for, with the attack it must stop."""

from __future__ import annotations

import json
import time

import pytest

from authress_gitlab_token.calls import GRACE, Background
from authress_gitlab_token.errors import KeyFetchFailed
from tests.fixtures.helper import AUDIENCE, Helper, query
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply
from tests.fixtures.service_clients import ServiceClientKey
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

ELSEWHERE = "/-/keys-elsewhere"


def jwks(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [k.public_jwk() for k in keys]}).encode()


def test_keys_at_the_usual_url_are_not_trusted_when_discovery_names_another(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey
) -> None:
    """The usual path serves an attacker's key; discovery names the issuer's real JWKS elsewhere."""
    issuer.keys = [other_key]  # what the usual path /oauth/discovery/keys serves
    issuer.documents[ELSEWHERE] = jwks(signing_key)
    issuer.discovery_overrides = {"jwks_uri": issuer.url + ELSEWHERE}
    forged = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))

    helper.external(query(issuer), forged).refused(
        f'token kid "{other_key.kid}" is not among the keys', f'known: "{signing_key.kid}"'
    )
    assert sorted(issuer.requests) == sorted([DISCOVERY_PATH, JWKS_PATH, ELSEWHERE])
    # The control: the issuer's own token verifies with the keys from the URL discovery named.
    run = helper.external(query(issuer), mint(signing_key, gitlab_claims(issuer.url, AUDIENCE)))
    assert run.returncode == 0, run.stderr


def test_the_usual_url_failing_does_not_matter_when_discovery_names_another(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, token: str
) -> None:
    issuer.script(JWKS_PATH, Reply(status=404, body=b"{}"))
    issuer.documents[ELSEWHERE] = jwks(signing_key)
    issuer.discovery_overrides = {"jwks_uri": issuer.url + ELSEWHERE}
    run = helper.external(query(issuer), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(ELSEWHERE) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "failure", [Reply(status=404, body=b"{}"), Reply(status=503, body=b"busy")], ids=["404", "503"]
)
def test_keys_at_the_usual_url_are_not_a_fallback_when_the_named_jwks_fails(
    helper: Helper, issuer: LocalIssuer, token: str, failure: Reply
) -> None:
    """The usual path serves keys that verify the token, but discovery named another URL, which fails:
    the run fails with that URL's error; the usual answer is never used in its place."""
    issuer.script(ELSEWHERE, *[failure] * 4)
    issuer.discovery_overrides = {"jwks_uri": issuer.url + ELSEWHERE}
    helper.external(query(issuer), token).refused(f'"{issuer.url}{ELSEWHERE}"', f"HTTP {failure.status}")
    assert issuer.hits(JWKS_PATH) == 1 and issuer.hits(ELSEWHERE) == (1 if failure.status == 404 else 4)
    assert helper.external(query(issuer), token).returncode != 0, "nor is it cached for the next run"


@pytest.mark.slow
def test_the_jwks_is_asked_for_while_discovery_is_still_unanswered(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """One round trip instead of two: a serial fetch would ask for the JWKS 1.5 s after discovery."""
    issuer.script(DISCOVERY_PATH, Reply(hang=1.5))  # within the 2 s HTTP timeout of conftest
    run = helper.external(query(issuer), token)
    assert run.returncode == 0, run.stderr
    assert sorted(issuer.requests) == [DISCOVERY_PATH, JWKS_PATH]
    at = dict(zip(issuer.requests, issuer.arrivals, strict=True))
    assert abs(at[JWKS_PATH] - at[DISCOVERY_PATH]) < 0.75


def test_a_service_client_key_asks_the_issuer_nothing(helper: Helper, issuer: LocalIssuer) -> None:
    """Keys are fetched early only for a GitLab ID token: a laptop's service-client key needs none."""
    laptop = {"audience": AUDIENCE, "issuer": issuer.url, "allow_any_project": "true"}  # a key binds no claims
    run = helper.external(laptop, ServiceClientKey.generate().value)
    assert run.returncode == 0, run.stderr
    assert issuer.requests == []


def test_a_failure_in_the_thread_is_raised_where_it_is_collected_never_printed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def fail() -> int:
        raise KeyFetchFailed("could not fetch")

    job = Background(fail, "test")
    with pytest.raises(KeyFetchFailed, match="could not fetch"):
        job.result(time.monotonic() + 5, lambda: AssertionError("not overdue"))
    slow = Background(lambda: time.sleep(GRACE + 1), "test")
    with pytest.raises(TimeoutError):
        slow.result(time.monotonic(), TimeoutError)
    assert capfd.readouterr() == ("", "")
