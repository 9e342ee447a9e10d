"""`terraform apply` for real: the Terraform CLI (and OpenTofu) runs the helper through hashicorp/external
from the local mirror, with a GitLab-shaped token from the local issuer, and the token goes to the
Authress stand-in as Bearer, the way the Authress provider sends it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import SUB, leaks, safe
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

from .toolchain import (
    ACCOUNT_ID,
    API_HOST,
    AUDIENCE,
    CLIS,
    EXTERNAL_VERSIONS,
    NOT_SET_UP,
    REFUSED_TOKENS,
    Pipeline,
    Terraform,
    Toolchain,
    apply_not_set_up,
    assert_refused_before_authress,
    init,
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


def test_authress_sees_the_helpers_token_as_bearer_and_answers_it(authress_call: Terraform, pipeline: Pipeline) -> None:
    stand_in, proxy = pipeline.stand_in, pipeline.proxy
    token, apply = pipeline.apply(authress_call)
    assert apply.returncode == 0, f"apply failed:\n{safe(apply.output)}"
    assert not leaks(apply.output), "terraform printed the token"
    outputs = json.loads(authress_call.ok("output", "-json").output)
    assert outputs["authress_account_id"]["value"] == ACCOUNT_ID
    assert [(r.method, r.path, r.status) for r in stand_in.requests] == [("GET", f"/v1/accounts/{ACCOUNT_ID}", 200)]
    assert stand_in.tokens_seen() == [token], "Authress did not get the helper's token as Bearer"
    assert proxy.tunnels == [f"{API_HOST}:443"] and not proxy.refused


@REFUSED_TOKENS
def test_apply_fails_with_the_helpers_one_line_error_before_authress_is_called(
    claims: dict[str, object], audience: str, message: str, authress_call: Terraform, pipeline: Pipeline
) -> None:
    assert_refused_before_authress(authress_call, pipeline, claims, audience, message)


@pytest.mark.parametrize(("setup", "status"), [("untrusted", 401), ("no_record", 404)], ids=NOT_SET_UP.get)
def test_apply_fails_when_authress_is_not_set_up_for_the_pipeline(
    setup: str, status: int, authress_call: Terraform, pipeline: Pipeline
) -> None:
    _, run = apply_not_set_up(authress_call, pipeline, setup)
    assert f"Response code: {status}" in run.flat(), safe(run.output)
    assert [r.status for r in pipeline.stand_in.requests] == [status]


CHECK = ["-var", "check=authress", "-var", f"api_url={AUDIENCE}"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "untrusted",
            "answered 401: Authress does not trust this token; in Authress add an OIDC trusted identity "
            "(Connections -> OIDC trusted identities) with issuer",
        ),
        (
            "no_record",
            f'in Authress create an access record (Access records -> Create) whose user is exactly "{SUB}"',
        ),
    ],
    ids=NOT_SET_UP.get,
)
def test_with_the_authress_check_apply_says_which_setup_step_is_missing(
    setup: str, message: str, authress_call: Terraform, pipeline: Pipeline
) -> None:
    _, run = apply_not_set_up(authress_call, pipeline, setup, *CHECK)
    assert message in run.flat(), f"the helper's diagnosis is not in Terraform's output:\n{safe(run.output)}"
    assert len(pipeline.stand_in.requests) == 1, "Terraform went on after the helper's check failed"


def test_with_the_authress_check_a_set_up_pipeline_applies(authress_call: Terraform, pipeline: Pipeline) -> None:
    token, run = pipeline.apply(authress_call, *CHECK)
    assert run.returncode == 0, f"apply failed:\n{safe(run.output)}"
    assert [r.status for r in pipeline.stand_in.requests] == [200, 200]  # the helper's check, then data "http"
    assert pipeline.stand_in.tokens_seen() == [token, token]
