"""The helper as Terraform's data "external" runs it: a verified ID token in, the result out."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import jwt

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
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
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


def test_stdout_is_exactly_one_compact_json_object(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.external(query(issuer), token)
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("}\n") and run.stdout.count("\n") == 1
    assert json.JSONDecoder().raw_decode(run.stdout)[1] == len(run.stdout) - 1


def test_keys_are_fetched_once_then_served_from_the_disk_cache(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    assert helper.external(query(issuer), token).returncode == 0
    # Discovery and the JWKS are asked for at once (keys/fetch.py): in either order.
    assert sorted(issuer.requests) == ["/.well-known/openid-configuration", "/oauth/discovery/keys"]
    assert helper.external(query(issuer), token).returncode == 0
    assert len(issuer.requests) == 2


def test_python_dash_m_runs_the_same_program(helper: Helper, issuer: LocalIssuer, token: str) -> None:
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


# --- refusals: one line on stderr, the fix in it, never the token -------------------------------


def test_token_for_another_branch_is_refused(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="feature/x"))
    helper.external(query(issuer, ref="main"), token).refused('claim "ref" is "feature/x", expected "main"')


def test_token_for_another_project_is_refused(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, project_path="evil/authress-configuration"))
    helper.external(query(issuer, project_path="my-org/*"), token).refused(
        'claim "project_path" is "evil/authress-configuration", expected "my-org/*"'
    )


def test_glob_must_match_the_whole_claim(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="main-hotfix"))
    helper.external(query(issuer, ref="main"), token).refused('"main-hotfix"')


def test_bound_claim_the_token_lacks_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    helper.external(query(issuer, environment="production"), token).refused(
        'token has no claim "environment", expected "production"'
    )


def test_bound_claims_list_where_none_matches_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    bound = json.dumps({"pipeline_source": ["web", "schedule"]})
    helper.external(query(issuer, bound_claims=bound), token).refused(
        'claim "pipeline_source" is "push", expected "web" or "schedule"'
    )


def test_wrong_audience_is_refused_with_expected_and_got(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, "https://api.authress.io"))
    helper.external(query(issuer), token).refused(
        'claim "aud" is "https://api.authress.io", expected "https://acc-1a2b3c.api.authress.io"'
    )


def test_token_from_another_issuer_is_refused(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims("https://gitlab.example.com", AUDIENCE))
    helper.external(query(issuer), token).refused(
        f'claim "iss" is "https://gitlab.example.com", expected "{issuer.url}"'
    )


def test_expired_token_is_refused(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=int(time.time()) - 900))
    helper.external(query(issuer), token).refused("token expired at", "leeway 60 s")


def test_token_expiring_sooner_than_min_validity_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=120))
    helper.external(query(issuer, min_validity_seconds="600"), token).refused(
        "less than min_validity_seconds 600", "job's `timeout:`"
    )


def test_bad_signature_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'BBBBBB'}"
    helper.external(query(issuer), tampered).refused("signature does not verify")


def test_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(
    helper: Helper, issuer: LocalIssuer, other_key: SigningKey
) -> None:
    token = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    helper.external(query(issuer), token).refused(f'token kid "{other_key.kid}" is not among the keys')


def test_missing_token_outside_gitlab_says_which_variable(helper: Helper, issuer: LocalIssuer) -> None:
    helper.external(query(issuer)).refused("no token in $AUTHRESS_KEY", "id_tokens")


def test_missing_token_in_a_gitlab_job_says_to_add_id_tokens(helper: Helper, issuer: LocalIssuer) -> None:
    helper.external(query(issuer), env={"GITLAB_CI": "true"}).refused(
        "$AUTHRESS_KEY is not set in this GitLab job", f'id_tokens: {{ AUTHRESS_KEY: {{ aud: "{AUDIENCE}" }} }}'
    )


def test_variable_holding_something_else_than_a_jwt_is_refused(helper: Helper, issuer: LocalIssuer) -> None:
    helper.external(query(issuer), "glpat-abcdefghijklmnopqrstuvwxyz").refused("holds neither a JWT")


# --- the query ------------------------------------------------------------------------------------


def test_unknown_query_key_is_refused_by_name(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    helper.external(query(issuer, access_token="x"), token).refused('unknown query key "access_token"', code=2)


def test_missing_audience_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    helper.external({"issuer": issuer.url}, token).refused('query key "audience" is required', code=2)


def test_non_string_query_value_is_refused(helper: Helper, token: str) -> None:
    run = helper.run(["external"], b'{"audience":"x","leeway_seconds":60}', {"AUTHRESS_KEY": token})
    run.refused('query key "leeway_seconds" must be a string', code=2)


def test_http_issuer_is_refused(helper: Helper, token: str) -> None:
    helper.external({"audience": AUDIENCE, "issuer": "http://gitlab.example.com"}, token).refused(
        "is not an https URL", code=2
    )


def test_http_ci_server_url_is_refused_naming_the_variable(helper: Helper, token: str) -> None:
    helper.external({"audience": AUDIENCE}, token, env={"CI_SERVER_URL": "http://gitlab.local"}).refused(
        'CI_SERVER_URL is "http://gitlab.local"', 'query key "issuer"', code=2
    )


def test_leeway_above_the_cap_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    helper.external(query(issuer, leeway_seconds="900"), token).refused("more than 300", code=2)
