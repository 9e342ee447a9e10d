"""The pre-flight check: the helper asks the Authress stand-in once and names the setup step that is missing."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from tests.fixtures.authress import AuthressStandIn, Reply
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, PROJECT, SUB, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

ACCOUNT_PATH = f"/v1/accounts/{ACCOUNT_ID}"


def checked(issuer: LocalIssuer, authress: AuthressStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "audience": AUDIENCE,
        "issuer": issuer.url,
        "project_path": PROJECT,
        "check": "authress",
        "api_url": authress.url,
        **extra,
    }


@pytest.fixture
def ready(authress: AuthressStandIn, issuer: LocalIssuer) -> AuthressStandIn:
    """Authress set up as the README says: GitLab trusted for our audience, an access record for the sub."""
    authress.trust(issuer.url, AUDIENCE)
    authress.grant(SUB)
    return authress


def test_check_passes_when_authress_trusts_the_token_and_grants_its_user(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    run = helper.external(checked(issuer, ready), token)
    assert run.returncode == 0, run.stderr
    assert run.result["api_url"] == ready.url
    assert run.result["account_id"] == ACCOUNT_ID
    seen = [(r.method, r.path, r.status) for r in ready.requests]
    assert seen == [("GET", ACCOUNT_PATH, 200)]
    assert ready.requests[0].token == token


def test_no_check_by_default(helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str) -> None:
    run = helper.external(
        {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT, "api_url": ready.url}, token
    )
    assert run.returncode == 0, run.stderr
    assert ready.requests == []


def test_untrusted_token_names_the_trusted_identity_to_create(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    authress.grant(SUB)
    authress.trust(issuer.url, "https://acc-1a2b3c.api-eu-west.authress.io")  # another audience: not ours
    helper.external(checked(issuer, authress), token).refused(
        "answered 401",
        "Connections -> OIDC trusted identities",
        f'issuer "{issuer.url}" and audience "{AUDIENCE}"',
        "the same string as the job's `id_tokens:` aud",
    )


def test_trusted_token_without_access_record_names_the_exact_user_id(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    authress.trust(issuer.url, AUDIENCE)
    authress.grant("project_path:my-org/authress-configuration:ref_type:branch:ref:develop")
    helper.external(checked(issuer, authress), token).refused(
        "answered 404",
        f'has no access to account "{ACCOUNT_ID}"',
        f'create an access record (Access records -> Create) whose user is exactly "{SUB}"',
    )


def test_a_404_for_a_long_branch_is_one_whole_line_with_the_step_to_take(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, signing_key: SigningKey
) -> None:
    """A branch name of 200 characters: the user ID is cut, never the sentences around it."""
    authress.trust(issuer.url, AUDIENCE)
    branch = "feature/" + "x" * 200
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref=branch))
    run = helper.external(checked(issuer, authress, ref="feature/*"), token)
    run.refused("answered 404", f'has no access to account "{ACCOUNT_ID}", or no such account (check the audience); ')
    assert " ... " not in run.stderr and run.stderr.endswith('...", with the roles Terraform needs\n')
    assert len(run.stderr) <= 400


def test_a_403_from_authress_also_names_the_user_id(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    # getAccount lists no 403 in the published description; the live API answers 403 for "trusted, no access"
    # elsewhere (GET /v1/roles), so the helper treats both alike.
    ready.script("GET", ACCOUNT_PATH, Reply(403))
    helper.external(checked(issuer, ready), token).refused(
        "answered 403", f'access record (Access records -> Create) whose user is exactly "{SUB}"'
    )


def test_authress_down_is_reported_with_the_url_after_bounded_retries(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    ready.script("GET", ACCOUNT_PATH, *[Reply(503)] * 5)
    started = time.monotonic()
    run = helper.external(checked(issuer, ready), token)
    run.refused(f'"{ready.url}{ACCOUNT_PATH}"', "HTTP 503 after 3 attempt(s)", "Authress may be down")
    assert len(ready.requests) == 3
    assert time.monotonic() - started < 20


def test_a_429_with_retry_after_is_retried(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    ready.script("GET", ACCOUNT_PATH, Reply(429, headers={"Retry-After": "1"}))
    run = helper.external(checked(issuer, ready), token)
    assert run.returncode == 0, run.stderr
    assert [r.status for r in ready.requests] == [429, 200]


def test_unreachable_authress_is_reported_with_the_url(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{s.getsockname()[1]}"
    helper.external(checked(issuer, ready, api_url=closed), token).refused(
        f'"{closed}{ACCOUNT_PATH}"', "connection failed", "after 3 attempt(s)", 'check the query key "api_url"'
    )


@pytest.mark.slow
def test_a_hanging_authress_times_out_within_the_bound(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    ready.script("GET", ACCOUNT_PATH, *[Reply(200, hang=3)] * 3)
    started = time.monotonic()
    run = helper.external(checked(issuer, ready), token, env={"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "0.5"})
    run.refused('timed out waiting for "127.0.0.1" to answer after 3 attempt(s)')
    assert time.monotonic() - started < 15


def test_a_redirect_is_not_followed_with_the_token(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    ready.script("GET", ACCOUNT_PATH, Reply(302, headers={"Location": f"{ready.url}/elsewhere"}))
    helper.external(checked(issuer, ready), token).refused("answered HTTP 302, expected 200")
    assert [r.path for r in ready.requests] == [ACCOUNT_PATH]


def test_a_200_that_is_not_the_account_is_refused(
    helper: Helper, issuer: LocalIssuer, ready: AuthressStandIn, token: str
) -> None:
    ready.script("GET", ACCOUNT_PATH, Reply(200, body={"accountId": "acc-other"}))
    helper.external(checked(issuer, ready), token).refused(f'answered 200 without account "{ACCOUNT_ID}"')


def test_check_needs_an_api_url_when_the_audience_names_no_account(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = "https://terraform.example.com"
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    run = helper.external(
        {"audience": audience, "issuer": issuer.url, "project_path": PROJECT, "check": "authress"}, token
    )
    run.refused('set the query key "api_url"', code=2)
