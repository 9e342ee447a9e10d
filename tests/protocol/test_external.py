"""The helper as Terraform's data "external" runs it: a verified ID token in, the result out."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import jwt
import pytest

from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

OUTPUT_KEYS = {
    "access_token",
    "token_type",
    "expires_at",
    "expires_in",
    "user_id",
    "issuer",
    "audience",
    "account_id",
    "api_url",
    "project_path",
    "project_id",
    "namespace_path",
    "ref",
    "ref_type",
    "ref_protected",
    "environment",
    "pipeline_id",
    "job_id",
}


def test_verified_token_is_returned_as_the_authress_access_token(
    process: Helper, issuer: LocalIssuer, token: str
) -> None:
    helper = process  # Terraform's contract: the installed console script, as a process
    run = helper.external(query(issuer, project_path="my-org/authress-configuration", ref="main"), token)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    out = run.result
    assert set(out) == OUTPUT_KEYS
    assert out["access_token"] == token
    assert out["token_type"] == "Bearer"
    assert out["user_id"] == "project_path:my-org/authress-configuration:ref_type:branch:ref:main"
    assert out["account_id"] == "acc-1a2b3c"
    assert out["api_url"] == "https://acc-1a2b3c.api.authress.io"
    assert out["issuer"] == issuer.url
    assert out["audience"] == AUDIENCE
    assert 290 <= int(out["expires_in"]) <= 300
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert out["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    assert (out["project_path"], out["namespace_path"], out["ref"], out["ref_type"], out["ref_protected"]) == (
        "my-org/authress-configuration",
        "my-org",
        "main",
        "branch",
        "true",
    )
    assert (out["project_id"], out["pipeline_id"], out["job_id"], out["environment"]) == ("20", "574", "302", "")


def test_stdout_is_exactly_one_compact_json_object(process: Helper, issuer: LocalIssuer, token: str) -> None:
    helper = process  # Terraform's contract: the installed console script, as a process
    run = helper.external(query(issuer), token)
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("}\n") and run.stdout.count("\n") == 1
    assert json.JSONDecoder().raw_decode(run.stdout)[1] == len(run.stdout) - 1


def test_keys_are_fetched_once_then_served_from_the_disk_cache(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    assert helper.external(query(issuer), token).returncode == 0
    # Discovery and the JWKS are asked for at once (keys/lookup.py): in either order.
    assert sorted(issuer.requests) == ["/.well-known/openid-configuration", "/oauth/discovery/keys"]
    assert helper.external(query(issuer), token).returncode == 0
    assert len(issuer.requests) == 2


def test_python_dash_m_runs_the_same_program(process: Helper, issuer: LocalIssuer, token: str) -> None:
    helper = process  # Terraform's contract: the installed console script, as a process
    stdin = json.dumps(query(issuer), separators=(",", ":"), sort_keys=True).encode()
    done = subprocess.run(
        [sys.executable, "-m", "authress_gitlab_token", "external"],
        input=stdin,
        env={**helper.env, "AUTHRESS_KEY": token},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["access_token"] == token


def test_list_audience_that_holds_ours_is_accepted(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, ["https://vault.example.com", AUDIENCE]))
    run = helper.external(query(issuer), token)
    assert run.returncode == 0, run.stderr
    assert run.result["audience"] == AUDIENCE


def test_issuer_defaults_to_ci_server_url(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.external({"audience": AUDIENCE, "project_path": PROJECT}, token, env={"CI_SERVER_URL": issuer.url})
    assert run.returncode == 0, run.stderr
    assert run.result["issuer"] == issuer.url


def test_token_env_names_the_variable(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.external(query(issuer, token_env="GITLAB_OIDC_TOKEN"), env={"GITLAB_OIDC_TOKEN": token})
    assert run.returncode == 0, run.stderr
    assert run.result["access_token"] == token


def test_token_with_a_trailing_newline_is_stripped_and_accepted(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    run = helper.external(query(issuer), f" {token}\n")
    assert run.returncode == 0, run.stderr
    assert run.result["access_token"] == token


def test_globs_and_bound_claims_accept_a_matching_token(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, environment="production"))
    run = helper.external(
        query(
            issuer,
            subject="project_path:my-org/*:ref_type:branch:ref:main",
            namespace_path="my-?rg",
            ref_type="branch",
            ref_protected="true",
            environment="prod*",
            bound_claims=json.dumps({"pipeline_source": ["web", "push"], "runner_id": "1"}),
        ),
        token,
    )
    assert run.returncode == 0, run.stderr
    assert run.result["environment"] == "production"


def test_environment_output_is_the_claim_when_the_job_has_one(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, environment="staging"))
    assert helper.external(query(issuer), token).result["environment"] == "staging"


# --- no token: the line says where to put it -------------------------------------------------------


def test_missing_token_outside_gitlab_says_which_variable(process: Helper, issuer: LocalIssuer) -> None:
    helper = process  # Terraform's contract: the installed console script, as a process
    helper.external(query(issuer)).refused("no token in $AUTHRESS_KEY", "id_tokens")


def test_missing_token_in_a_gitlab_job_says_to_add_id_tokens(helper: Helper, issuer: LocalIssuer) -> None:
    helper.external(query(issuer), env={"GITLAB_CI": "true"}).refused(
        "$AUTHRESS_KEY is not set in this GitLab job", f'id_tokens: {{ AUTHRESS_KEY: {{ aud: "{AUDIENCE}" }} }}'
    )


# --- the audience: what the Authress provider will make of it --------------------------------------


@pytest.mark.parametrize("audience", ["https://api.authress.io", "https://gitlab.com", "acc-1a2b3c.api.authress.io"])
def test_an_audience_the_provider_refuses_is_a_warning_not_a_failure(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, audience: str
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    run = helper.external({"audience": audience, "issuer": issuer.url, "project_path": PROJECT}, token)
    assert run.returncode == 0
    assert run.result["audience"] == audience
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("authress-gitlab-token: warning: ")
    assert f'audience "{audience}" is not an Authress account API URL' in lines[0]


def test_an_account_api_audience_passes_silently(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.external({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}, token)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.result["api_url"] == AUDIENCE


@pytest.mark.parametrize(
    ("audience", "api_url"),
    [
        ("https://acc-1a2b3c.api-eu-west.authress.io", None),
        ("https://auth.example.com", "https://auth.example.com"),
    ],
    ids=["regional", "custom domain"],
)
def test_a_regional_or_custom_domain_audience_warns_that_only_provider_2_0_39_takes_it(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, audience: str, api_url: str | None
) -> None:
    """The newest authress/authress provider takes its API URL from `aud` and accepts only
    https://ACCOUNT.api.authress.TLD; 2.0.39 takes `custom_domain` and any audience Authress trusts."""
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    run = helper.external(
        {"audience": audience, "issuer": issuer.url, "project_path": PROJECT, "api_url": api_url}, token
    )
    assert run.returncode == 0, run.stderr
    assert run.result["api_url"] == (api_url or audience)
    assert run.stderr == (
        f'authress-gitlab-token: warning: the token\'s aud "{audience}" works with authress/authress 2.0.39 '
        "(custom_domain) only: the newest provider takes its API URL from aud and refuses any but "
        "https://ACCOUNT.api.authress.io (no api-REGION, custom domain or service-client token); "
        'keep version = "2.0.39" for this token\n'
    )


def test_an_audience_that_is_no_url_beside_an_api_url_only_warns(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, "https://["))
    run = helper.external(query(issuer, audience="https://[", api_url="https://auth.example.com"), token)
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith('authress-gitlab-token: warning: audience "https://[" is not')
    assert run.stderr.count("\n") == 1


def test_an_audience_with_a_trailing_newline_names_no_account_and_is_warned_about(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = AUDIENCE + "\n"
    run = helper.external(query(issuer, audience=audience), mint(signing_key, gitlab_claims(issuer.url, audience)))
    assert run.returncode == 0, run.stderr
    assert (run.result["account_id"], run.result["api_url"]) == ("", "")
    assert run.stderr.startswith('authress-gitlab-token: warning: audience "https://acc-1a2b3c.api.authress.io\\n"')
