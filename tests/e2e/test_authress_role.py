"""The real authress/authress provider (2.0.39, built from its upstream source) manages an `authress_role`
on the Authress stand-in over TLS with the helper's token: create, no drift, update, delete. The
stand-in judges every Bearer token as Authress does (trusted identity, signature, access record)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import leaks, safe
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

from .conftest import (
    API_HOST,
    AUDIENCE,
    CLIS,
    EXTERNAL_VERSIONS,
    Terraform,
    Toolchain,
    init,
    routed,
    selected,
    variables,
)

pytestmark = pytest.mark.e2e

AUTHRESS = "authress/authress@2.0.39"
ROLE_ID = "ro_terraform-deployer"
ROLE_PATH = f"/v1/roles/{ROLE_ID}"
READ = {"action": "documents:read", "allow": True, "grant": False, "delegate": False}
WRITE = {"action": "documents:write", "allow": False, "grant": False, "delegate": False}


def role_config(cli: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path, external: str = "2.4.0") -> Terraform:
    tf = init(cli, "tests/e2e/configs/authress_role", toolchain, ca, tmp_path, AUTHRESS, external=external)
    assert selected(tf.workdir, "authress/authress") == "2.0.39"
    return tf


@pytest.fixture(params=[(cli, external) for cli in CLIS for external in EXTERNAL_VERSIONS], ids="-".join)
def lifecycle(request: pytest.FixtureRequest, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    cli, external = request.param
    return role_config(cli, toolchain, ca, tmp_path, external)


@pytest.fixture(params=CLIS)
def role(request: pytest.FixtureRequest, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    return role_config(request.param, toolchain, ca, tmp_path)


def seen(stand_in: AuthressStandIn, token: str) -> list[tuple[str, str, int]]:
    """The requests since the last call, each checked to carry exactly `token` as Bearer."""
    requests = list(stand_in.requests)
    stand_in.requests.clear()
    assert all(r.token == token for r in requests), "a request did not carry exactly the helper's token as Bearer"
    return [(r.method, r.path, r.status) for r in requests]


def test_the_provider_creates_reads_updates_and_deletes_the_role_with_the_helpers_token(
    lifecycle: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    stand_in, proxy = authress_api
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    env = routed(proxy, token)
    args = variables(AUDIENCE, issuer)

    apply = lifecycle.ok("apply", "-auto-approve", *args, env=env)
    assert not leaks(apply.output), "terraform printed the token"
    assert stand_in.roles == {
        ROLE_ID: {
            "roleId": ROLE_ID,
            "name": "Terraform deployer",
            "description": "Managed by Terraform from GitLab CI",
            "permissions": [READ],
        }
    }
    assert seen(stand_in, token) == [("POST", "/v1/roles", 200)]

    plan = lifecycle("plan", "-detailed-exitcode", *args, env=env)
    assert plan.returncode == 0, f"the second plan found changes:\n{safe(plan.output)}"
    assert seen(stand_in, token) == [("GET", ROLE_PATH, 200)]

    change = 'permissions={"documents:read"={allow=true},"documents:write"={allow=false}}'
    lifecycle.ok("apply", "-auto-approve", *args, "-var", change, env=env)
    # The provider sends the permissions map in Go's map order: compare them by action.
    assert sorted(stand_in.roles[ROLE_ID]["permissions"], key=lambda p: p["action"]) == [READ, WRITE]
    assert seen(stand_in, token) == [("GET", ROLE_PATH, 200), ("PUT", ROLE_PATH, 200)]

    lifecycle.ok("destroy", "-auto-approve", *args, "-var", change, env=env)
    assert stand_in.roles == {}
    assert seen(stand_in, token) == [("GET", ROLE_PATH, 200), ("DELETE", ROLE_PATH, 204)]
    assert set(proxy.tunnels) == {f"{API_HOST}:443"} and not proxy.refused


@pytest.mark.parametrize(
    ("case", "claims", "audience", "message"),
    [
        (
            "token for another branch",
            {"ref": "feature/x"},
            AUDIENCE,
            'authress-gitlab-token: claim "ref" is "feature/x", expected "main" (from ref); '
            "this token is for another project, ref or job",
        ),
        ("expired token", {"now": int(time.time()) - 3600}, AUDIENCE, "authress-gitlab-token: token expired at "),
        (
            "wrong audience",
            {},
            "https://other-acc.api.authress.test",
            f'authress-gitlab-token: claim "aud" is "{AUDIENCE}", expected "https://other-acc.api.authress.test"',
        ),
    ],
)
def test_a_token_the_module_refuses_fails_apply_and_authress_sees_no_request(
    case: str,
    claims: dict[str, object],
    audience: str,
    message: str,
    role: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    stand_in, proxy = authress_api
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, **claims))
    run = role("apply", "-auto-approve", *variables(audience, issuer), env=routed(proxy, token))
    assert run.returncode != 0, f"{case}: apply succeeded"
    assert message in run.flat(), f"{case}: the helper's error is not in Terraform's output:\n{safe(run.output)}"
    assert not leaks(run.output), f"{case}: terraform printed the token"
    assert stand_in.requests == [] and proxy.tunnels == [], f"{case}: a refused token was sent to Authress"
    assert stand_in.roles == {}


@pytest.mark.parametrize(
    ("case", "setup", "status"),
    [
        ("no trusted identity for this issuer and audience", "untrusted", 401),
        ("no access record for the token's sub", "no_record", 403),
    ],
)
def test_authress_judges_the_token_the_provider_sends(
    case: str,
    setup: str,
    status: int,
    role: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    stand_in, proxy = authress_api
    if setup == "untrusted":
        stand_in.identities.clear()
    else:
        stand_in.records.clear()
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    run = role("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token))
    assert run.returncode != 0, f"{case}: apply succeeded"
    assert f"Could not create role, unexpected error: status: {status}, body:" in run.flat(), safe(run.output)
    assert seen(stand_in, token) == [("POST", "/v1/roles", status)]
    assert stand_in.roles == {}
    assert not leaks(run.output), f"{case}: terraform printed the token"


@pytest.mark.parametrize("create_status", [201])
def test_a_201_answer_to_create_fails_apply_with_the_providers_own_error(
    role: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    """Authress's OpenAPI description says createRole answers 201; authress/authress 2.0.39 accepts only
    200. The limitation is the provider's: it reports the created role as an error."""
    stand_in, proxy = authress_api
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    run = role("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token))
    assert run.returncode != 0, "apply succeeded on a 201"
    assert "Authress API Response: Attempted to create role:" in run.flat(), safe(run.output)
    assert "Could not create role, unexpected error: status: 201, body: {" in run.flat(), safe(run.output)
    assert seen(stand_in, token) == [("POST", "/v1/roles", 201)]
    assert ROLE_ID in stand_in.roles, "the stand-in did not create the role it answered 201 for"
    assert not leaks(run.output), "terraform printed the token"


def test_the_newest_provider_creates_the_role_with_only_access_key(
    toolchain: Toolchain,
    ca: LocalCA,
    tmp_path: Path,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    """The newest generation: no custom_domain, the API URL from the token's aud. It cannot be built here
    (tests/e2e/configs/authress_call emulates its first call), so this skips with the build's reason."""
    toolchain.provider("authress/authress@newest", obtainable=False)
    stand_in, proxy = authress_api
    tf = init("terraform", "tests/e2e/configs/authress_role_newest", toolchain, ca, tmp_path)
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    tf.ok("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token))
    assert ROLE_ID in stand_in.roles
    assert set(stand_in.tokens_seen()) == {token}
