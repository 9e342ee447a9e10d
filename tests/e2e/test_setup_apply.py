"""Two commands from an empty Authress account to a working pipeline: `setup --apply` with a service-client
admin key, then the pipeline's `terraform apply`, which creates a role with the real authress/authress
provider (2.0.39, built from its upstream source); a second `setup --apply` sends no write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from authress_gitlab_token.setup.plan import record_id
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_admin import add_role
from tests.fixtures.authress_roles import add_role_routes
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy, running_proxy
from tests.fixtures.helper import SUB, Helper, Run, leaks
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.service_clients import ServiceClientKey
from tests.fixtures.tokens import MINTED, SigningKey, gitlab_claims, mint

from .toolchain import ACCOUNT_ID, API_HOST, AUDIENCE, CLIS, Terraform, Toolchain, init, routed, variables

pytestmark = pytest.mark.e2e
RECORD = record_id(SUB)


@pytest.fixture
def admin() -> ServiceClientKey:
    return ServiceClientKey.generate(client_id="sc_admin", key_id="key-ad01", account_id=ACCOUNT_ID)


@pytest.fixture
def empty_account(ca: LocalCA, admin: ServiceClientKey) -> Iterator[tuple[AuthressStandIn, ConnectProxy]]:
    """Account acc-1a2b3c with no trusted identity and no record for the pipeline: only the admin's
    service client, reached as https://acc-1a2b3c.api.authress.test through the CONNECT proxy. Roles are
    created with 200, the only status authress/authress 2.0.39 accepts (tests/e2e/toolchain.py)."""
    stand_in = AuthressStandIn(ca, ACCOUNT_ID, hostnames=[API_HOST]).start()
    try:
        with running_proxy(API_HOST, stand_in.port) as proxy:
            add_role_routes(stand_in, create_status=200)
            add_role(stand_in, "ro_terraform")  # the role setup grants; the pipeline creates another
            stand_in.add_client(admin.client_id, admin.key_id, admin.public)
            stand_in.grant(admin.client_id)
            yield stand_in, proxy
    finally:
        stand_in.stop()


@pytest.fixture(params=CLIS)
def role(request: pytest.FixtureRequest, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    return init(request.param, "tests/e2e/configs/authress_role", toolchain, ca, tmp_path, "authress/authress@2.0.39")


def setup_apply(helper: Helper, issuer: LocalIssuer, stand_in: AuthressStandIn, proxy: ConnectProxy, key: str) -> Run:
    args = ["setup", "--apply", "--project", "my-org/authress-configuration", "--branch", "main"]
    args += ["--audience", AUDIENCE, "--api-url", AUDIENCE, "--issuer", issuer.url, "--role", "ro_terraform"]
    run = helper.run(args, env=routed(proxy, key))
    MINTED.update(stand_in.tokens_seen())  # the admin's minted token: never in any output either
    return run


def test_setup_apply_then_terraform_apply_creates_a_role_from_an_empty_account_and_a_rerun_writes_nothing(
    helper: Helper,
    role: Terraform,
    empty_account: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
    admin: ServiceClientKey,
) -> None:
    stand_in, proxy = empty_account
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    query = {"audience": AUDIENCE, "issuer": issuer.url, "check": "authress", "api_url": AUDIENCE}
    query.update(project_path="my-org/authress-configuration", ref="main")
    helper.external(query, token, env=routed(proxy, token)).refused("answered 401", "OIDC trusted identities")
    assert role("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token)).returncode != 0
    assert list(stand_in.roles) == ["ro_terraform"]

    first = setup_apply(helper, issuer, stand_in, proxy, admin.value)
    assert first.returncode == 0, first.stderr
    assert [line[:8] for line in first.stdout.splitlines()] == ["+ create", "+ create", "Applied:"]
    assert f'user "{SUB}"' in first.stdout

    passed = helper.external(query, token, env=routed(proxy, token))
    assert passed.returncode == 0, passed.stderr

    stand_in.requests.clear()
    apply = role.ok("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token))
    assert not leaks(apply.output), "terraform printed a token"
    assert list(stand_in.roles) == ["ro_terraform", "ro_terraform-deployer"]
    assert [(r.method, r.path, r.status) for r in stand_in.requests] == [("POST", "/v1/roles", 200)]
    assert stand_in.tokens_seen() == [token], "the provider did not call Authress with the pipeline's token"

    stand_in.requests.clear()
    again = setup_apply(helper, issuer, stand_in, proxy, admin.value)
    assert again.returncode == 0, again.stderr
    assert [line[:11] for line in again.stdout.splitlines()] == ["= unchanged", "= unchanged", "Nothing to "]
    assert stand_in.writes() == [], "the second setup --apply sent a write"
    assert [r.path for r in stand_in.requests] == ["/v1/identities", "/v1/roles/ro_terraform", f"/v1/records/{RECORD}"]
    assert set(proxy.tunnels) == {f"{API_HOST}:443"} and not proxy.refused
