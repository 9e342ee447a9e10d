"""The Authress stand-in judges Bearer tokens the way Authress does, so tests against it mean something."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import httpx
import pytest

from tests.fixtures.authress import LINKS_JSON, AuthressStandIn, Call, Reply, running_authress
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, SUB
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


def get(stand_in: AuthressStandIn, ca: LocalCA, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca.ca_path)), timeout=5) as client:
        return client.get(stand_in.url + path, headers=headers)


@pytest.fixture
def trusted(authress: AuthressStandIn, issuer: LocalIssuer) -> AuthressStandIn:
    authress.trust(issuer.url, AUDIENCE)
    return authress


ACCOUNT = f"/v1/accounts/{ACCOUNT_ID}"


def test_a_trusted_token_with_an_access_record_reads_the_account(
    trusted: AuthressStandIn, ca: LocalCA, token: str
) -> None:
    trusted.grant(SUB)
    response = get(trusted, ca, ACCOUNT, token)
    assert response.status_code == 200
    assert response.headers["content-type"] == LINKS_JSON
    account = response.json()
    assert account["accountId"] == ACCOUNT_ID
    assert {"accountId", "company", "createdTime", "features", "links"} <= set(account)
    assert account["links"]["self"]["href"].endswith(ACCOUNT)
    assert trusted.requests[-1].token == token and trusted.requests[-1].status == 200


def test_a_list_audience_holding_the_trusted_one_is_accepted(
    trusted: AuthressStandIn, ca: LocalCA, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    trusted.grant(SUB)
    token = mint(signing_key, gitlab_claims(issuer.url, ["https://other.example", AUDIENCE]))
    assert get(trusted, ca, ACCOUNT, token).status_code == 200


@pytest.mark.parametrize(
    "case",
    ["no token", "not a JWT", "untrusted audience", "untrusted issuer", "wrong key", "expired", "no identity"],
)
def test_tokens_authress_would_not_accept_get_401(
    authress: AuthressStandIn,
    ca: LocalCA,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    other_key: SigningKey,
    case: str,
) -> None:
    if case != "no identity":
        authress.trust(issuer.url, AUDIENCE)
    authress.grant(SUB)
    claims: dict[str, Any] = gitlab_claims(issuer.url, AUDIENCE)
    key = signing_key
    if case == "untrusted audience":
        claims["aud"] = "https://api.authress.io"
    elif case == "untrusted issuer":
        claims["iss"] = "https://gitlab.example"
    elif case == "wrong key":
        key = SigningKey(other_key.private, signing_key.kid)
    elif case == "expired":
        claims.update(iat=int(time.time()) - 900, exp=int(time.time()) - 60)
    token = {"no token": None, "not a JWT": "not-a-jwt"}.get(case, mint(key, claims))
    response = get(authress, ca, ACCOUNT, token)
    assert response.status_code == 401
    assert response.content == b""


def test_a_trusted_token_without_an_access_record_gets_the_accounts_no_access_status(
    trusted: AuthressStandIn, ca: LocalCA, token: str
) -> None:
    trusted.grant("project_path:my-org/authress-configuration:ref_type:branch:ref:other")
    assert get(trusted, ca, ACCOUNT, token).status_code == 404


def test_another_account_id_is_not_found(trusted: AuthressStandIn, ca: LocalCA, token: str) -> None:
    trusted.grant(SUB)
    assert get(trusted, ca, "/v1/accounts/acc-someone-else", token).status_code == 404


def test_added_routes_are_judged_first_and_answer_403_without_access(
    trusted: AuthressStandIn, ca: LocalCA, token: str
) -> None:
    def list_roles(call: Call) -> tuple[int, Any]:
        return 200, {"roles": list(call.stand_in.roles.values()), "links": {"self": {"href": call.path}}}

    trusted.route("GET", "/v1/roles", list_roles, permission="authress:roles:read")
    trusted.roles["admin"] = {"roleId": "admin", "name": "Admin", "permissions": []}
    assert get(trusted, ca, "/v1/roles", token).status_code == 403
    trusted.grant(SUB, ["authress:accounts:read"])
    assert get(trusted, ca, "/v1/roles", token).status_code == 403
    trusted.grant(SUB, ["authress:roles:*"])
    response = get(trusted, ca, "/v1/roles", token)
    assert response.status_code == 200
    assert [r["roleId"] for r in response.json()["roles"]] == ["admin"]


def test_scripted_faults_answer_before_judging(trusted: AuthressStandIn, ca: LocalCA, token: str) -> None:
    trusted.grant(SUB)
    trusted.script("GET", ACCOUNT, Reply(503), Reply(429, headers={"Retry-After": "1"}))
    assert get(trusted, ca, ACCOUNT, token).status_code == 503
    reply = get(trusted, ca, ACCOUNT, token)
    assert (reply.status_code, reply.headers["retry-after"]) == (429, "1")
    assert get(trusted, ca, ACCOUNT, token).status_code == 200


def test_the_certificate_is_valid_for_an_account_host_routed_to_loopback(ca: LocalCA) -> None:
    host = "acc-1a2b3c.api.authress.test"
    with running_authress(ca, hostnames=[host]) as stand_in:
        assert stand_in.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(ca.ca_path))
        for name in (host, "localhost"):
            with socket.create_connection(("127.0.0.1", stand_in.port), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname=name) as tls:
                    assert tls.version() is not None
        with socket.create_connection(("127.0.0.1", stand_in.port), timeout=5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                context.wrap_socket(raw, server_hostname="acc-other.api.authress.test")
