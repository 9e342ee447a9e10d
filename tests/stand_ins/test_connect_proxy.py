"""The e2e test's routing: the Authress account host reaches the local stand-in through the CONNECT
proxy over end-to-end TLS, and the proxy lets nothing else through."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.authress import AuthressStandIn, running_authress
from tests.fixtures.authress_roles import add_role_routes
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy, running_proxy
from tests.fixtures.helper import SUB
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

ACCOUNT = "acc-1a2b3c"
HOST = f"{ACCOUNT}.api.authress.test"
API = f"https://{HOST}"
ROLE = {
    "roleId": "ro_terraform-deployer",
    "name": "Terraform deployer",
    "description": "Managed by Terraform",
    "permissions": [{"action": "documents:read", "allow": True, "grant": False, "delegate": False}],
}


@pytest.fixture
def stand_in(ca: LocalCA, issuer: LocalIssuer) -> Iterator[AuthressStandIn]:
    with running_authress(ca, ACCOUNT, hostnames=[HOST]) as server:
        server.trust(issuer.url, API)
        yield add_role_routes(server)


@pytest.fixture
def proxy(stand_in: AuthressStandIn) -> Iterator[ConnectProxy]:
    with running_proxy(HOST, stand_in.port) as server:
        yield server


@pytest.fixture
def api_token(issuer: LocalIssuer, signing_key: SigningKey) -> str:
    return mint(signing_key, gitlab_claims(issuer.url, API))


def client(ca: LocalCA, proxy: ConnectProxy, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=API,
        proxy=proxy.url,
        verify=ssl.create_default_context(cafile=str(ca.ca_path)),
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_the_account_host_reaches_the_stand_in_through_the_proxy(
    stand_in: AuthressStandIn, proxy: ConnectProxy, ca: LocalCA, api_token: str
) -> None:
    stand_in.grant(SUB)
    with client(ca, proxy, api_token) as http:
        response = http.get(f"/v1/accounts/{ACCOUNT}")
    assert response.status_code == 200
    assert response.json()["accountId"] == ACCOUNT
    assert proxy.tunnels == [f"{HOST}:443"]
    assert stand_in.tokens_seen() == [api_token]


def test_the_proxy_refuses_any_other_host_and_plain_requests(proxy: ConnectProxy) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    for request in (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        f"CONNECT {HOST}:8443 HTTP/1.1\r\n\r\n".encode(),
        f"GET http://{HOST}/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode(),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            assert sock.recv(1024).startswith(b"HTTP/1.1 403 ")
    assert len(proxy.refused) == 3 and proxy.tunnels == []


def test_roles_are_created_read_updated_and_deleted_as_the_provider_calls_them(
    stand_in: AuthressStandIn, proxy: ConnectProxy, ca: LocalCA, api_token: str
) -> None:
    stand_in.grant(SUB)
    path = f"/v1/roles/{ROLE['roleId']}"
    with client(ca, proxy, api_token) as http:
        assert http.get(path).status_code == 404
        created = http.post("/v1/roles", json=ROLE)
        assert (created.status_code, created.json()) == (201, ROLE)
        assert http.post("/v1/roles", json=ROLE).status_code == 409
        assert http.get(path).json() == ROLE
        assert [r["roleId"] for r in http.get("/v1/roles").json()["roles"]] == [ROLE["roleId"]]
        renamed = dict(ROLE, name="Deployer")
        assert http.put(path, json=renamed).json()["name"] == "Deployer"
        assert http.delete(path).status_code == 204
        assert http.delete(path).status_code == 404
    assert stand_in.roles == {}


def test_a_role_body_outside_the_openapi_schema_is_refused(
    stand_in: AuthressStandIn, proxy: ConnectProxy, ca: LocalCA, api_token: str
) -> None:
    stand_in.grant(SUB)
    with client(ca, proxy, api_token) as http:
        assert http.post("/v1/roles", json={**ROLE, "colour": "blue"}).status_code == 400
        assert http.post("/v1/roles", json={k: v for k, v in ROLE.items() if k != "name"}).status_code == 400
    assert stand_in.roles == {}


def test_roles_need_an_access_record_for_the_tokens_sub(
    stand_in: AuthressStandIn, proxy: ConnectProxy, ca: LocalCA, api_token: str
) -> None:
    with client(ca, proxy, api_token) as http:
        assert http.post("/v1/roles", json=ROLE).status_code == 403
    assert stand_in.roles == {}
