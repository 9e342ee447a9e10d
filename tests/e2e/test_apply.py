"""`terraform apply` for real: the Terraform CLI (and OpenTofu) runs the helper through hashicorp/external
from the local mirror, with a GitLab-shaped token from the local issuer, and the token goes to the
Authress stand-in as Bearer, the way the Authress provider sends it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import leaks, safe
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

from .conftest import (
    ACCOUNT_ID,
    API_HOST,
    AUDIENCE,
    CLIS,
    EXTERNAL_VERSIONS,
    SUB,
    Terraform,
    Toolchain,
    init,
    routed,
    variables,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[(cli, external) for cli in CLIS for external in EXTERNAL_VERSIONS], ids="-".join)
def module_outputs(request: pytest.FixtureRequest, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    """The module under each CLI with each hashicorp/external: 2.4.0 (what users get) and 1.2.0 (its lower bound)."""
    cli, external = request.param
    return init(cli, "tests/e2e/configs/module_outputs", toolchain, ca, tmp_path, external=external)


@pytest.fixture(params=CLIS)
def authress_call(request: pytest.FixtureRequest, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    return init(request.param, "tests/e2e/configs/authress_call", toolchain, ca, tmp_path, "hashicorp/http@1.2.0")


def test_apply_hands_the_verified_token_and_its_claims_to_terraform(
    module_outputs: Terraform, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = f"https://{ACCOUNT_ID}.api.authress.io"
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    apply = module_outputs.ok("apply", "-auto-approve", *variables(audience, issuer), env={"AUTHRESS_KEY": token})
    assert not leaks(apply.output), "terraform printed the token"
    outputs = json.loads(module_outputs.ok("output", "-json").output)
    assert outputs["access_token"]["sensitive"] is True
    assert outputs["access_token"]["value"] == token, "access_token is not the verified token"
    claims = outputs["claims"]["value"]
    assert datetime.fromisoformat(claims.pop("expires_at").replace("Z", "+00:00")) > datetime.now(UTC)
    assert claims == {
        "user_id": SUB,
        "account_id": ACCOUNT_ID,
        "api_url": audience,
        "project_path": "my-org/authress-configuration",
        "project_id": "20",
        "namespace_path": "my-org",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "environment": "",
        "pipeline_id": "574",
        "job_id": "302",
    }


def test_the_token_is_kept_in_state_as_the_module_readme_warns(
    module_outputs: Terraform, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = f"https://{ACCOUNT_ID}.api.authress.io"
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    module_outputs.ok("apply", "-auto-approve", *variables(audience, issuer), env={"AUTHRESS_KEY": token})
    assert token in (module_outputs.workdir / "terraform.tfstate").read_text(encoding="utf-8")


def test_authress_sees_the_helpers_token_as_bearer_and_answers_it(
    authress_call: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    stand_in, proxy = authress_api
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    apply = authress_call.ok("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token))
    assert not leaks(apply.output), "terraform printed the token"
    outputs = json.loads(authress_call.ok("output", "-json").output)
    assert outputs["authress_account_id"]["value"] == ACCOUNT_ID
    assert [(r.method, r.path, r.status) for r in stand_in.requests] == [("GET", f"/v1/accounts/{ACCOUNT_ID}", 200)]
    assert stand_in.tokens_seen() == [token], "Authress did not get the helper's token as Bearer"
    assert proxy.tunnels == [f"{API_HOST}:443"] and not proxy.refused


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
        (
            "expired token",
            {"now": int(time.time()) - 3600},
            AUDIENCE,
            "authress-gitlab-token: token expired at ",
        ),
        (
            "wrong audience",
            {},
            f"https://other-{ACCOUNT_ID}.api.authress.test",
            f'authress-gitlab-token: claim "aud" is "{AUDIENCE}", expected "https://other-{ACCOUNT_ID}.api.authress.test"',
        ),
    ],
)
def test_apply_fails_with_the_helpers_one_line_error_before_authress_is_called(
    case: str,
    claims: dict[str, object],
    audience: str,
    message: str,
    authress_call: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    stand_in, proxy = authress_api
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, **claims))
    run = authress_call("apply", "-auto-approve", *variables(audience, issuer), env=routed(proxy, token))
    assert run.returncode != 0, f"{case}: apply succeeded"
    assert message in run.flat(), f"{case}: the helper's error is not in Terraform's output:\n{safe(run.output)}"
    assert not leaks(run.output), f"{case}: terraform printed the token"
    assert stand_in.requests == [], f"{case}: a refused token was sent to Authress"
    state = authress_call.workdir / "terraform.tfstate"
    assert not state.exists() or token not in state.read_text(encoding="utf-8"), f"{case}: the token reached state"


@pytest.mark.parametrize(
    ("case", "setup", "status"),
    [
        ("no trusted identity for this issuer and audience", "untrusted", 401),
        ("no access record for the token's sub", "no_record", 404),
    ],
)
def test_apply_fails_when_authress_is_not_set_up_for_the_pipeline(
    case: str,
    setup: str,
    status: int,
    authress_call: Terraform,
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
    run = authress_call("apply", "-auto-approve", *variables(AUDIENCE, issuer), env=routed(proxy, token))
    assert run.returncode != 0, f"{case}: apply succeeded"
    assert f"Response code: {status}" in run.flat(), f"{case}:\n{safe(run.output)}"
    assert [r.status for r in stand_in.requests] == [status]
    assert not leaks(run.output), f"{case}: terraform printed the token"


@pytest.mark.parametrize(
    ("case", "setup", "message"),
    [
        (
            "no trusted identity for this issuer and audience",
            "untrusted",
            "answered 401: Authress does not trust this token; in Authress add an OIDC trusted identity "
            "(Connections -> OIDC trusted identities) with issuer",
        ),
        (
            "no access record for the token's sub",
            "no_record",
            f'in Authress create an access record (Access records -> Create) whose user is exactly "{SUB}"',
        ),
    ],
)
def test_with_the_authress_check_apply_says_which_setup_step_is_missing(
    case: str,
    setup: str,
    message: str,
    authress_call: Terraform,
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
    check = ["-var", "check=authress", "-var", f"api_url={AUDIENCE}"]
    run = authress_call("apply", "-auto-approve", *variables(AUDIENCE, issuer), *check, env=routed(proxy, token))
    assert run.returncode != 0, f"{case}: apply succeeded"
    assert message in run.flat(), f"{case}: the helper's diagnosis is not in Terraform's output:\n{safe(run.output)}"
    assert len(stand_in.requests) == 1, "Terraform went on after the helper's check failed"
    assert not leaks(run.output), f"{case}: terraform printed the token"


def test_with_the_authress_check_a_set_up_pipeline_applies(
    authress_call: Terraform,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
    issuer: LocalIssuer,
    signing_key: SigningKey,
) -> None:
    stand_in, proxy = authress_api
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    check = ["-var", "check=authress", "-var", f"api_url={AUDIENCE}"]
    authress_call.ok("apply", "-auto-approve", *variables(AUDIENCE, issuer), *check, env=routed(proxy, token))
    assert [r.status for r in stand_in.requests] == [200, 200]  # the helper's check, then data "http"
    assert stand_in.tokens_seen() == [token, token]
