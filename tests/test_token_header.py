"""The token's header names its key: a token without a usable kid is refused before any key is looked
up, even when the issuer's key set holds a key that would match it."""

from __future__ import annotations

from tests.fixtures.helper import AUDIENCE, Helper, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


def test_an_empty_kid_is_refused_even_when_the_issuer_publishes_a_key_under_it(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """A key set with `"kid": ""` (a misconfigured issuer) must not make an empty kid a key name."""
    unnamed = SigningKey(signing_key.private, "")
    issuer.reset(keys=[unnamed])
    token = mint(unnamed, gitlab_claims(issuer.url, AUDIENCE))
    helper.external(query(issuer), token).refused("token header has no kid; GitLab ID tokens name their key by kid")
