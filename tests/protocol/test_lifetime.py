"""A token's remaining lifetime, at the boundary, with a fixed clock: `min_validity_seconds` left is
enough, one second less is not; and the time left is never reported as negative."""

from __future__ import annotations

import time
from typing import Any

import pytest

from authress_gitlab_token.errors import VerificationFailed
from authress_gitlab_token.outcome import gitlab_outcome
from authress_gitlab_token.settings import from_query
from authress_gitlab_token.verify import check_lifetime, verify
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

ISSUER = "https://gitlab.example.com"
EXP = 1_800_000_300


@pytest.mark.parametrize(("now", "accepted"), [(EXP - 300, True), (EXP - 299.5, False), (EXP - 299, False)])
def test_exactly_min_validity_seconds_left_is_enough_and_less_is_not(now: float, accepted: bool) -> None:
    claims = {"exp": EXP}
    if accepted:
        assert check_lifetime(claims, 300, now) == 300
    else:
        with pytest.raises(VerificationFailed, match="token expires in 299 s, less than min_validity_seconds 300"):
            check_lifetime(claims, 300, now)


def test_verify_applies_the_minimum_at_its_clock(signing_key: SigningKey) -> None:
    """The whole verification with an injected clock: the boundary is the one above."""
    now = int(time.time())
    token = mint(signing_key, gitlab_claims(ISSUER, AUDIENCE, now=now, lifetime=600))
    settings = from_query(
        {"audience": AUDIENCE, "issuer": ISSUER, "project_path": PROJECT, "min_validity_seconds": "600"}, {}
    )

    def jwk(kid: str) -> dict[str, Any]:
        return signing_key.public_jwk()

    assert verify(token, settings, jwk, now=now)["exp"] == now + 600
    with pytest.raises(VerificationFailed, match="expires in 599 s"):
        verify(token, settings, jwk, now=now + 1)


def test_the_cli_refuses_a_token_short_of_the_minimum_and_takes_one_with_room(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3600))
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}
    run = helper.external({**query, "min_validity_seconds": "3500"}, token)
    assert run.returncode == 0 and 3500 <= int(run.result["expires_in"]) <= 3600, run.stderr
    helper.external({**query, "min_validity_seconds": "3601"}, token).refused("less than min_validity_seconds 3601")


def test_a_token_past_exp_within_the_leeway_has_zero_seconds_left() -> None:
    claims = gitlab_claims(ISSUER, AUDIENCE, now=EXP - 300, lifetime=300)
    settings = from_query({"audience": AUDIENCE, "issuer": ISSUER, "project_path": PROJECT}, {})
    assert gitlab_outcome("t", claims, settings, EXP + 30).to_external()["expires_in"] == "0"
    assert gitlab_outcome("t", claims, settings, EXP - 30).to_external()["expires_in"] == "30"


def test_the_outcome_never_shows_its_token_in_a_repr() -> None:
    claims = gitlab_claims(ISSUER, AUDIENCE, now=EXP - 300, lifetime=300)
    settings = from_query({"audience": AUDIENCE, "issuer": ISSUER, "project_path": PROJECT}, {})
    outcome = gitlab_outcome("secret-token-value", claims, settings, EXP - 30)
    assert "secret-token-value" not in repr(outcome) and outcome.user_id in repr(outcome)
    assert outcome.to_external()["access_token"] == "secret-token-value"
