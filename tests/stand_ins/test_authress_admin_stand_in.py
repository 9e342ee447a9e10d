"""The stand-in's /v1/identities and /v1/records follow the OpenAPI description, only an admin's service-client
token may call them, and what they store is what the stand-in then enforces."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authress_gitlab_token import service_client
from tests.fixtures.authress import LINKS_JSON, AuthressStandIn
from tests.fixtures.authress_admin import IDENTITY_COLLECTION, RECORD_RESPONSE, valid
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, SUB
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.service_clients import ServiceClientKey
from tests.fixtures.tokens import MINTED

ACCOUNT = f"/v1/accounts/{ACCOUNT_ID}"


def call(
    stand_in: AuthressStandIn, ca: LocalCA, method: str, path: str, token: str, body: Any = None
) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca.ca_path)), timeout=5) as client:
        return client.request(method, stand_in.url + path, headers={"Authorization": f"Bearer {token}"}, json=body)


def admin_token(stand_in: AuthressStandIn, key: ServiceClientKey) -> str:
    token = service_client.mint(service_client.parse(key.value, "key"), stand_in.url).token
    MINTED.add(token)
    return token


@pytest.fixture
def admin(authress: AuthressStandIn) -> str:
    key = ServiceClientKey.generate(client_id="sc_admin")
    authress.add_client(key.client_id, key.key_id, key.public)
    authress.grant(key.client_id)
    return admin_token(authress, key)


def record(**extra: Any) -> dict[str, Any]:
    return {
        "recordId": "rec-1",
        "name": "pipeline",
        "users": [{"userId": SUB}],
        "statements": [{"roles": ["ro_terraform"], "resources": [{"resourceUri": "*"}]}],
        **extra,
    }


def test_an_identity_linked_through_the_api_is_what_the_stand_in_then_trusts(
    authress: AuthressStandIn, ca: LocalCA, issuer: LocalIssuer, admin: str, token: str
) -> None:
    authress.grant(SUB)
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 401
    other = {"issuer": issuer.url, "preferredAudience": "https://other.api.authress.io"}
    assert call(authress, ca, "POST", "/v1/identities", admin, other).status_code == 201
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 401, "another audience was trusted"
    ours = {"issuer": issuer.url, "preferredAudience": AUDIENCE}
    assert call(authress, ca, "POST", "/v1/identities", admin, ours).status_code == 201
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 200
    listed = call(authress, ca, "GET", "/v1/identities", admin)
    assert listed.headers["content-type"] == LINKS_JSON and valid(IDENTITY_COLLECTION, listed.json())
    assert {"issuer": issuer.url, "audience": AUDIENCE, "userIdExpression": "{sub}"} in listed.json()["identities"]


def test_linking_an_identity_twice_is_409_and_of_concurrent_links_exactly_one_is_made(
    authress: AuthressStandIn, ca: LocalCA, issuer: LocalIssuer, admin: str
) -> None:
    """What concurrent `setup --apply` runs meet: the first link is made, every other one is 409."""
    from concurrent.futures import ThreadPoolExecutor

    ours = {"issuer": issuer.url, "preferredAudience": AUDIENCE}
    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(
            pool.map(lambda _: call(authress, ca, "POST", "/v1/identities", admin, ours).status_code, range(6))
        )
    assert statuses == [201] + [409] * 5
    assert [(i.issuer, i.audience) for i in authress.identities] == [(issuer.url, AUDIENCE)]
    authress.identities[0] = type(authress.identities[0])(issuer.url, AUDIENCE, "{email}")
    assert call(authress, ca, "POST", "/v1/identities", admin, ours).status_code == 409, (
        "another expression is no new link"
    )


def test_a_record_created_through_the_api_grants_its_user_until_it_is_deleted(
    authress: AuthressStandIn, ca: LocalCA, issuer: LocalIssuer, admin: str, token: str
) -> None:
    authress.trust(issuer.url, AUDIENCE)
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 404
    created = call(authress, ca, "POST", "/v1/records", admin, record())
    assert created.status_code == 201 and valid(RECORD_RESPONSE, created.json())
    assert created.json()["account"] == {"accountId": ACCOUNT_ID} and created.json()["status"] == "ACTIVE"
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 200
    assert call(authress, ca, "POST", "/v1/records", admin, record()).status_code == 409
    assert call(authress, ca, "DELETE", "/v1/records/rec-1", admin).status_code == 204
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 404
    assert call(authress, ca, "GET", "/v1/records/rec-1", admin).json()["status"] == "DELETED"
    assert call(authress, ca, "PUT", "/v1/records/rec-1", admin, record()).status_code == 202
    assert call(authress, ca, "GET", ACCOUNT, token).status_code == 200
    assert call(authress, ca, "PUT", "/v1/records/rec-2", admin, record(recordId="rec-2")).status_code == 404


@pytest.mark.parametrize(
    ("case", "method", "path", "body"),
    [
        ("record without statements", "POST", "/v1/records", record(statements=[])),
        ("users on the record and a statement", "POST", "/v1/records", record(statements=[
            {"roles": ["r"], "resources": [{"resourceUri": "*"}], "users": [{"userId": "u"}]}
        ])),
        ("user ID with a hash", "POST", "/v1/records", record(users=[{"userId": "a#b"}])),
        ("user ID over 128 characters", "POST", "/v1/records", record(users=[{"userId": "a" * 129}])),
        ("record ID with a slash", "POST", "/v1/records", record(recordId="a/b")),
        ("read-only status sent", "POST", "/v1/records", record(status="ACTIVE")),
        ("role ID with a space", "POST", "/v1/records", record(statements=[
            {"roles": ["a b"], "resources": [{"resourceUri": "*"}]}
        ])),
        ("identity by jwt, not served", "POST", "/v1/identities", {"jwt": "x.y.z"}),
        ("identity with an unknown property", "POST", "/v1/identities", {"issuer": "https://i", "aud": "x"}),
    ],
)  # fmt: skip
def test_bodies_the_description_does_not_allow_get_400_and_change_nothing(
    case: str, method: str, path: str, body: Any, authress: AuthressStandIn, ca: LocalCA, admin: str
) -> None:
    assert call(authress, ca, method, path, admin, body).status_code == 400, case
    assert authress.identities == [] and authress.access_records == {}


def test_only_the_admins_verified_key_with_permission_may_write(
    authress: AuthressStandIn, ca: LocalCA, issuer: LocalIssuer, admin: str, token: str
) -> None:
    """A token minted with another private key under the admin's client and key ID is refused (401); a
    GitLab token with an access record but no admin permission gets 403."""
    forged_key = ServiceClientKey("sc_admin", "key-7f3a", ACCOUNT_ID, Ed25519PrivateKey.generate())
    MINTED.add(forged_key.value)
    forged = admin_token(authress, forged_key)
    assert call(authress, ca, "POST", "/v1/records", forged, record()).status_code == 401
    authress.trust(issuer.url, AUDIENCE)
    authress.grant(SUB, ["documents:read"])
    assert call(authress, ca, "POST", "/v1/records", token, record()).status_code == 403
    assert call(authress, ca, "POST", "/v1/identities", token, {"issuer": "https://evil.example"}).status_code == 403
    assert authress.access_records == {} and len(authress.identities) == 1
