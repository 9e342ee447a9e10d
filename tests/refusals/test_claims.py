"""The token's claims, each attack and each near miss through the real helper as Terraform runs it: an
issuer or audience that only resembles ours, a missing or future-dated claim, a lifetime out of bounds,
a bound claim that does not match, and claims shaped to confuse the parser. Every refusal is one line
naming the claim, with expected and got, nothing on stdout and no token on stderr (`Run.refused`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.helper import AUDIENCE, Helper, doctor, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


@pytest.fixture
def claims(issuer: LocalIssuer) -> dict[str, Any]:
    return gitlab_claims(issuer.url, AUDIENCE)


# --- registered claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda url: url + "/",
        lambda url: url[:-1],
        lambda url: url + "0",
        lambda url: url + ".evil.example",
        lambda url: "http://" + url.removeprefix("https://"),
        lambda url: url.upper(),
        lambda url: "https://gitlab.example.com",
    ],
    ids=["trailing-slash", "prefix", "suffix-digit", "suffix-host", "other-scheme", "case", "another-issuer"],
)
def test_iss_that_is_not_ours_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, mangle: Any
) -> None:
    iss = mangle(issuer.url)
    token = mint(signing_key, gitlab_claims(iss, AUDIENCE))
    helper.external(query(issuer), token).refused(f'claim "iss" is "{iss}", expected "{issuer.url}"')


@pytest.mark.parametrize(
    "aud",
    [
        ["https://vault.example.com", "https://other.api.authress.io"],
        AUDIENCE + "/",
        AUDIENCE.upper(),
        "https://acc-1a2b3c.api.authress.io.evil.example",
        "https://api.authress.io",
    ],
    ids=["list-without-ours", "trailing-slash", "case", "suffix", "another-api"],
)
def test_aud_that_is_not_ours_is_refused_with_expected_and_got(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, aud: Any
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, aud))
    got = f'claim "aud" is "{aud}"' if isinstance(aud, str) else 'claim "aud" is'
    helper.external(query(issuer), token).refused(got, f'expected "{AUDIENCE}"')


@pytest.mark.parametrize("aud", [[], ""], ids=["empty-list", "empty-string"])
def test_empty_aud_counts_as_missing_and_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, aud: Any
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, aud))
    helper.external(query(issuer), token).refused('token has no "aud" claim')


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "aud", "iss"])
def test_token_missing_a_required_claim_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any], claim: str
) -> None:
    del claims[claim]
    token = mint(signing_key, claims)
    helper.external(query(issuer), token).refused(f'token has no "{claim}" claim')


def test_token_expired_beyond_the_leeway_is_refused_and_within_it_accepted(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    now = int(time.time())
    late = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=now - 300, lifetime=300 - 90))
    helper.external(query(issuer), late).refused("token expired at", "leeway 60 s")  # the default leeway
    within = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=now - 300, lifetime=300 - 30))
    run = helper.external(query(issuer, leeway_seconds="60"), within)
    assert run.returncode == 0, run.stderr
    assert run.result["expires_in"] == "0"  # accepted after `exp`: no time left, never a negative count
    run = helper.external(query(issuer, leeway_seconds="0"), within)
    run.refused("token expired at", "leeway 0 s")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_valid_only_in_the_future_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any], claim: str
) -> None:
    claims[claim] = int(time.time()) + 600
    token = mint(signing_key, claims)
    helper.external(query(issuer), token).refused(
        f'token is not valid yet: claim "{claim}"', "check the runner's clock"
    )


def test_token_expiring_sooner_than_min_validity_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=120))
    helper.external(query(issuer, min_validity_seconds="600"), token).refused(
        "less than min_validity_seconds 600", "job's `timeout:`"
    )


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", lambda now: str(now + 300)),  # a number as a JSON string, which PyJWT reads as a number
        ("nbf", lambda now: str(now - 5)),
        ("iat", lambda now: str(now)),
        ("exp", lambda now: 1e20),
        ("exp", lambda now: 10**30),
        ("nbf", lambda now: -1),
        ("nbf", lambda now: True),  # Python's bool is an int: 1, a date in 1970 that PyJWT would take
    ],
    ids=["exp-string", "nbf-string", "iat-string", "exp-1e20", "exp-huge-int", "nbf-negative", "nbf-true"],
)
def test_a_time_claim_that_is_not_a_plain_date_is_refused_by_name(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claim: str, value: Callable[[int], Any]
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, **{claim: value(int(time.time()))}))
    helper.external(query(issuer), token).refused(f'claim "{claim}" is ', "expected seconds since 1970")
    diagnosis = doctor(helper, token, text=True, **query(issuer, check="none"))
    assert diagnosis.run.returncode == 1 and "internal error" not in diagnosis.text + diagnosis.run.stderr
    assert "[fail] signature and claims" in diagnosis.text and f'claim "{claim}" is ' in diagnosis.text


# --- bound claims: the query's globs ----------------------------------------------------------------


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


# --- claims shaped to confuse ---------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["", "   "])
def test_an_empty_subject_is_refused(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, sub: str) -> None:
    """Authress takes `sub` as the user ID: an empty one must not become `user_id = ""`."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, sub=sub))
    helper.external(query(issuer), token).refused('claim "sub" is empty')


def test_a_boolean_claim_matches_and_is_returned_as_lowercase_true(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """GitLab sends "true" as a string today; a JSON true must read the same, never Python's `True`."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref_protected=True, pipeline_source=False))
    run = helper.external(query(issuer, ref_protected="true", bound_claims='{"pipeline_source": "false"}'), token)
    assert run.returncode == 0, run.stderr
    assert run.result["ref_protected"] == "true"
    helper.external(query(issuer, ref_protected="True"), token).refused(
        'claim "ref_protected" is "true", expected "True"'
    )


def test_a_claim_as_long_as_the_token_allows_is_cut_short_in_the_message(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="x" * 2000))
    helper.external(query(issuer, ref="main"), token).refused('claim "ref" is "xxxx', '..."')  # under MAX_LINE
