"""Service-client access keys: outside GitLab the same HCL works with a key, minted the way Authress's SDKs
mint it, and the result is verified here with the key's public half."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, Helper, argv
from tests.fixtures.service_clients import ServiceClientKey
from tests.fixtures.tokens import MINTED


@pytest.fixture
def key() -> ServiceClientKey:
    return ServiceClientKey.generate()


def minted(run_result: dict[str, str]) -> str:
    token = run_result["access_token"]
    MINTED.add(token)  # from now on the leak check looks for it in every output
    return token


def test_a_service_client_key_becomes_an_eddsa_token_signed_by_that_key(helper: Helper, key: ServiceClientKey) -> None:
    started = int(time.time())
    run = helper.external({"audience": AUDIENCE, "allow_any_project": "true"}, key.value)
    assert run.returncode == 0, run.stderr
    result = run.result
    token = minted(result)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": key.key_id, "typ": "at+jwt"}
    claims = jwt.decode(
        token,
        key.public,
        algorithms=["EdDSA"],
        audience=f"{ACCOUNT_ID}.accounts.authress.io",
        issuer=f"https://{ACCOUNT_ID}.api.authress.io/v1/clients/{key.client_id}",
    )
    assert claims["sub"] == claims["client_id"] == key.client_id
    assert claims["scope"] == "openid"
    assert started <= claims["iat"] <= time.time() and claims["exp"] - claims["iat"] == 3600
    assert result["user_id"] == key.client_id
    assert result["account_id"] == ACCOUNT_ID
    assert result["api_url"] == AUDIENCE
    assert int(result["expires_in"]) > 3500
    assert all(result[k] == "" for k in ("project_path", "ref", "ref_type", "pipeline_id", "job_id"))


def test_a_minted_token_warns_that_only_provider_2_0_39_takes_it(helper: Helper, key: ServiceClientKey) -> None:
    """Its aud, ACCOUNT.accounts.authress.io, is no API URL: the newest authress/authress provider refuses it."""
    run = helper.external({"audience": AUDIENCE, "allow_any_project": "true"}, key.value)
    minted(run.result)
    assert run.returncode == 0
    assert run.stderr.startswith(
        f'authress-gitlab-token: warning: the token\'s aud "{ACCOUNT_ID}.accounts.authress.io" works with '
        "authress/authress 2.0.39 (custom_domain) only: "
    )
    assert run.stderr.count("\n") == 1


def test_a_token_signed_by_another_key_does_not_verify(helper: Helper, key: ServiceClientKey) -> None:
    token = minted(helper.external({"audience": AUDIENCE, "allow_any_project": "true"}, key.value).result)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, ServiceClientKey.generate().public, algorithms=["EdDSA"], options={"verify_aud": False})


def test_a_custom_domain_is_the_issuer_an_authress_host_is_not(helper: Helper, key: ServiceClientKey) -> None:
    custom = helper.external(
        {"audience": AUDIENCE, "allow_any_project": "true", "api_url": "https://auth.example.com"}, key.value
    ).result
    regional = helper.external(
        {"audience": AUDIENCE, "allow_any_project": "true", "api_url": "https://acc-1a2b3c.api-eu-west.authress.io"},
        key.value,
    ).result
    iss = lambda result: jwt.decode(minted(result), options={"verify_signature": False})["iss"]  # noqa: E731
    assert iss(custom) == f"https://auth.example.com/v1/clients/{key.client_id}"
    assert iss(regional) == f"https://{ACCOUNT_ID}.api.authress.io/v1/clients/{key.client_id}"
    assert (custom["api_url"], regional["api_url"]) == (
        "https://auth.example.com",
        "https://acc-1a2b3c.api-eu-west.authress.io",
    )


def test_min_validity_lengthens_the_minted_token(helper: Helper, key: ServiceClientKey) -> None:
    result = helper.external(
        {"audience": AUDIENCE, "allow_any_project": "true", "min_validity_seconds": "7200"}, key.value
    ).result
    assert int(result["expires_in"]) >= 7200
    minted(result)


def test_bound_claims_refuse_a_service_client_key(helper: Helper, key: ServiceClientKey) -> None:
    """A laptop key must not quietly stand in for a token bound to `ref = "main"`."""
    run = helper.external({"audience": AUDIENCE, "ref": "main", "project_path": "my-org/*"}, key.value)
    run.refused("holds an Authress service-client key", '"project_path", "ref"', "leave the bound claims null")


def test_a_key_for_another_account_than_the_audience_is_refused(helper: Helper) -> None:
    other = ServiceClientKey.generate(account_id="acc-9z8y7x")
    helper.external({"audience": AUDIENCE, "allow_any_project": "true"}, other.value).refused(
        'service-client key for account "acc-9z8y7x", but the audience names account "acc-1a2b3c"'
    )


def test_a_key_whose_private_part_is_not_ed25519_is_refused(helper: Helper, key: ServiceClientKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for private in (base64.b64encode(ec_key).decode(), base64.b64encode(b"not a key at all").decode()):
        value = f"{key.client_id}.{key.key_id}.{ACCOUNT_ID}.{private}"
        MINTED.add(value)
        helper.external({"audience": AUDIENCE, "allow_any_project": "true"}, value).refused(
            "looks like an Authress service-client access key", f'client "{key.client_id}"', "copy it whole"
        )


def test_the_authress_check_accepts_a_client_with_an_access_record(
    helper: Helper, authress: AuthressStandIn, key: ServiceClientKey
) -> None:
    authress.add_client(key.client_id, key.key_id, key.public)
    query = {"audience": AUDIENCE, "allow_any_project": "true", "check": "authress", "api_url": authress.url}
    helper.external(query, key.value).refused(
        "answered 404", f'create an access record (Access records -> Create) whose user is exactly "{key.client_id}"'
    )
    authress.grant(key.client_id)
    run = helper.external(query, key.value)
    assert run.returncode == 0, run.stderr
    assert authress.requests[-1].token == minted(run.result)
    assert authress.requests[-1].status == 200


def test_the_authress_check_names_a_revoked_access_key(
    helper: Helper, authress: AuthressStandIn, key: ServiceClientKey
) -> None:
    authress.grant(key.client_id)  # the record exists, the access key does not
    query = {"audience": AUDIENCE, "allow_any_project": "true", "check": "authress", "api_url": authress.url}
    helper.external(query, key.value).refused(
        "answered 401", f'service client "{key.client_id}"', "create a new access key"
    )


def test_doctor_explains_a_service_client_key_without_showing_it(
    helper: Helper, authress: AuthressStandIn, key: ServiceClientKey
) -> None:
    authress.add_client(key.client_id, key.key_id, key.public)
    authress.grant(key.client_id)
    run = helper.run(argv("doctor", allow_any_project="true", api_url=authress.url), env={"AUTHRESS_KEY": key.value})
    assert run.returncode == 0, run.stdout
    assert "holds an Authress service-client key (never shown)" in run.stdout
    assert f"client_id   {key.client_id}" in run.stdout
    assert "[pass] service-client token" in run.stdout and "[pass] authress" in run.stdout
    MINTED.update(authress.tokens_seen())


def test_env_exports_the_minted_token(helper: Helper, key: ServiceClientKey) -> None:
    run = helper.run(argv("env", audience=AUDIENCE, allow_any_project="true"), env={"AUTHRESS_KEY": key.value})
    assert run.returncode == 0, run.stderr
    token = run.stdout.strip().removeprefix("export AUTHRESS_KEY=")
    MINTED.add(token)
    assert jwt.decode(token, key.public, algorithms=["EdDSA"], options={"verify_aud": False})["sub"] == key.client_id


@pytest.mark.parametrize(("asked", "lives"), [(10, 60), (7200, 7200), (86400, 86400), (10**7, 86400)])
def test_a_minted_token_lives_at_least_a_minute_and_at_most_a_day(
    key: ServiceClientKey, asked: int, lives: int
) -> None:
    """The SDKs' own ceiling is 24 h: a longer-lived token in Terraform state would outlast any job."""
    from authress_gitlab_token import service_client

    parsed = service_client.parse(key.value, "AUTHRESS_KEY")
    claims = service_client.mint(parsed, lifetime=asked, now=1_700_000_000).claims
    assert claims["exp"] - claims["iat"] == lives
