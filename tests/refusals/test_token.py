"""The token itself, each attack on the verifier through the real helper as Terraform runs it: the
header (algorithm, key selection, extensions), the signature, the keys that may verify it, and the
token's form in its variable. Claims are refused in test_claims.py, the query in
protocol/test_query.py.

Every test asserts exit != 0, the message that names the check, nothing on stdout and no token on
stderr (`Run.refused`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from authress_gitlab_token.errors import VerificationFailed
from authress_gitlab_token.keys.policy import public_key
from authress_gitlab_token.settings import from_query
from authress_gitlab_token.verify import verify
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, InProcess, query, safe
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply, running_issuer
from tests.fixtures.tokens import SigningKey, forge, gitlab_claims, mint, tampered


@pytest.fixture(scope="module")
def attacker(ca: LocalCA, other_key: SigningKey) -> Iterator[LocalIssuer]:
    """An attacker's key server on loopback, serving the attacker's key; it must never be asked."""
    with running_issuer(ca, [other_key]) as server:
        yield server


@pytest.fixture
def claims(issuer: LocalIssuer) -> dict[str, Any]:
    return gitlab_claims(issuer.url, AUDIENCE)


# --- the header and the signature: algorithm, key selection, extensions ------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_alg_none_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any], alg: str
) -> None:
    token = forge({"alg": alg, "kid": signing_key.kid, "typ": "JWT"}, claims)
    helper.external(query(issuer), token).refused(f'token header alg is "{alg}", expected "RS256"')


def test_hs256_token_keyed_with_the_issuers_public_key_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any]
) -> None:
    """Algorithm confusion: a verifier that let the header pick HMAC would take the public PEM as the secret."""
    for secret in (signing_key.public_pem(), json.dumps(signing_key.public_jwk()).encode()):
        token = forge({"alg": "HS256", "kid": signing_key.kid, "typ": "JWT"}, claims, hmac_secret=secret)
        helper.external(query(issuer), token).refused('token header alg is "HS256", expected "RS256"')


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_token_signed_with_an_algorithm_outside_the_pinned_list_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any], alg: str
) -> None:
    """A real signature by the issuer's own key, but not RS256: GitLab never signs so."""
    token = mint(signing_key, claims, algorithm=alg)
    helper.external(query(issuer), token).refused(f'token header alg is "{alg}", expected "RS256"')


def test_token_without_a_kid_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any]
) -> None:
    token = forge({"alg": "RS256", "typ": "JWT"}, claims, b"\x01" * 256)
    helper.external(query(issuer), token).refused("token header has no kid")


def test_an_empty_kid_is_refused_even_when_the_issuer_publishes_a_key_under_it(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """A key set with `"kid": ""` (a misconfigured issuer) must not make an empty kid a key name."""
    unnamed = SigningKey(signing_key.private, "")
    issuer.reset(keys=[unnamed])
    token = mint(unnamed, gitlab_claims(issuer.url, AUDIENCE))
    helper.external(query(issuer), token).refused("token header has no kid; GitLab ID tokens name their key by kid")


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "' OR '1'='1' --", "/oauth/discovery/keys?kid=x", "kid\u0000\r\nX-Injected: 1"],
    ids=["path", "sql", "url", "control-characters"],
)
def test_kid_with_path_or_sql_content_is_only_looked_up_never_followed(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any], kid: str
) -> None:
    token = mint(signing_key, claims, headers={"kid": kid})
    helper.external(query(issuer), token).refused("is not among the keys of issuer")
    assert set(issuer.requests) <= {DISCOVERY_PATH, JWKS_PATH}


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk"])
def test_key_location_header_pointing_at_an_attackers_key_is_ignored(
    helper: Helper,
    issuer: LocalIssuer,
    attacker: LocalIssuer,
    other_key: SigningKey,
    claims: dict[str, Any],
    header: str,
) -> None:
    """Keys come only from the configured issuer: the attacker signs with their key and says where it is."""
    value: Any = {
        "jku": attacker.url + JWKS_PATH,
        "x5u": attacker.url + "/cert.pem",
        "jwk": other_key.public_jwk(),
    }[header]
    attacker.reset()
    token = mint(other_key, claims, headers={header: value})
    helper.external(query(issuer), token).refused(f'token kid "{other_key.kid}" is not among the keys')
    assert attacker.requests == []


def test_key_location_headers_with_the_issuers_kid_still_need_the_issuers_signature(
    helper: Helper,
    issuer: LocalIssuer,
    attacker: LocalIssuer,
    signing_key: SigningKey,
    other_key: SigningKey,
    claims: dict[str, Any],
) -> None:
    headers = {
        "kid": signing_key.kid,
        "jku": attacker.url + JWKS_PATH,
        "x5u": attacker.url + "/cert.pem",
        "jwk": {**other_key.public_jwk(), "kid": signing_key.kid},
    }
    attacker.reset()
    token = mint(other_key, claims, headers=headers)
    helper.external(query(issuer), token).refused("token signature does not verify")
    assert attacker.requests == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"crit": ["exp"]}, "token header is refused (Unsupported critical extension: exp)"),
        ({"crit": "exp"}, "token header is refused (Invalid 'crit' header"),
        ({"crit": ["b64"], "b64": True}, 'token header has crit ["b64"]'),  # one PyJWT supports; we do not
        # PyJWT 2.12 (the floor) leaves b64 to our crit check; later PyJWT refuses it while reading the header.
        ({"crit": ["b64"], "b64": False}, ("the token is not a well-formed JWT", 'token header has crit ["b64"]')),
    ],
    ids=["unknown-extension", "not-a-list", "b64", "b64-unencoded-payload"],
)
def test_token_with_a_crit_header_is_refused(
    helper: Helper,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    claims: dict[str, Any],
    extra: dict[str, Any],
    message: str | tuple[str, ...],
) -> None:
    token = forge({"alg": "RS256", "kid": signing_key.kid, "typ": "JWT", **extra}, claims, b"\x01" * 256)
    run = helper.external(query(issuer), token)
    run.refused()
    alternatives = (message,) if isinstance(message, str) else message
    assert any(m in run.stderr for m in alternatives), safe(run.stderr)


@pytest.mark.parametrize("kid", [5, ["k1"], {"k": "v"}, None], ids=["number", "list", "object", "null"])
def test_a_kid_that_is_not_a_string_is_refused_by_name(
    helper: Helper, issuer: LocalIssuer, claims: dict[str, Any], kid: object
) -> None:
    token = forge({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, b"\x01" * 256)
    run = helper.external(query(issuer), token)
    run.refused("GitLab ID tokens name their key by kid")
    assert "critical extensions" not in run.stderr


def test_bad_signature_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    helper.external(query(issuer), tampered(token)).refused("signature does not verify")


def test_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(
    helper: Helper, issuer: LocalIssuer, other_key: SigningKey
) -> None:
    token = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    helper.external(query(issuer), token).refused(f'token kid "{other_key.kid}" is not among the keys')


def test_token_signed_by_another_issuers_key_under_our_kid_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey, claims: dict[str, Any]
) -> None:
    token = mint(other_key, claims, headers={"kid": signing_key.kid})
    helper.external(query(issuer), token).refused("token signature does not verify")


# --- the token's form: the variable holds what GitLab sets, nothing else ---------------------------------


def test_variable_holding_something_else_than_a_jwt_is_refused(helper: Helper, issuer: LocalIssuer) -> None:
    helper.external(query(issuer), "glpat-abcdefghijklmnopqrstuvwxyz").refused("holds neither a JWT")


def test_two_dots_only_is_refused(helper: Helper, issuer: LocalIssuer) -> None:
    helper.external(query(issuer), "..").refused("the token is not a well-formed JWT")


def test_huge_garbage_in_the_token_variable_is_refused_by_size(helper: Helper, issuer: LocalIssuer) -> None:
    """127 KiB: Linux refuses any environment string over 128 KiB (MAX_ARG_STRLEN), so a 1 MiB token can
    never reach a subprocess; the next test runs the 1 MiB case through `main()` in process."""
    garbage = ("A" * 40_000 + ".") * 3 + "B" * 10_000
    helper.external(query(issuer), garbage).refused("$AUTHRESS_KEY holds 130003 bytes, more than a token ever needs")


def test_one_mebibyte_of_garbage_is_refused_by_size(in_process: InProcess, issuer: LocalIssuer) -> None:
    garbage = "A.B." + "x" * (1024 * 1024)
    stdin = json.dumps(query(issuer)).encode()
    in_process.run(["external"], stdin, {"AUTHRESS_KEY": garbage}).refused(
        f"$AUTHRESS_KEY holds {len(garbage)} bytes, more than a token ever needs"
    )


@pytest.mark.parametrize(
    ("inside", "part"),
    [("\n", 2), (" ", 0), ("\t", 1), ("\r\n", 2), ("    ", 2)],
    ids=["newline-in-signature", "space-in-header", "tab-in-payload", "crlf-in-signature", "4-spaces-in-signature"],
)
def test_whitespace_inside_the_token_is_refused(
    helper: Helper, issuer: LocalIssuer, token: str, inside: str, part: int
) -> None:
    """Surrounding whitespace is stripped (protocol/test_external.py); inside, base64 decoders would skip it, so the
    helper refuses it rather than hand Authress a token that differs from the one verified. Four spaces
    keep the part's length a multiple of four, which is what a lenient decoder needs to skip them."""
    parts = token.split(".")
    parts[part] = parts[part][:8] + inside + parts[part][8:]
    helper.external(query(issuer), ".".join(parts)).refused("$AUTHRESS_KEY holds whitespace at position")


def test_padding_or_standard_base64_characters_in_the_token_are_refused(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    helper.external(query(issuer), token + "==").refused("a character outside base64url")


# --- the issuer's keys: which JWK may verify a signature ---------------------------------------------------


def published(issuer: LocalIssuer, *jwks: dict[str, Any]) -> None:
    """The issuer's next JWKS answer holds exactly these keys."""
    issuer.script(JWKS_PATH, Reply(body=json.dumps({"keys": list(jwks)}).encode()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use": "enc"}, 'use "enc"'),
        ({"alg": "RSA-OAEP"}, 'alg "RSA-OAEP"'),
        ({"key_ops": ["encrypt", "wrapKey"]}, 'has key_ops ["encrypt", "wrapKey"], which does not allow "verify"'),
        ({"key_ops": "verify"}, 'which does not allow "verify"'),
    ],
    ids=["use-enc", "alg-encryption", "key-ops-without-verify", "key-ops-not-a-list"],
)
def test_a_key_published_for_something_else_than_verifying_signatures_is_refused(
    helper: Helper,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    claims: dict[str, Any],
    change: dict[str, Any],
    message: str,
) -> None:
    """The token is signed with the key's own private half: only the key's stated purpose stops it."""
    published(issuer, {**signing_key.public_jwk(), **change})
    helper.external(query(issuer), mint(signing_key, claims)).refused(f'the issuer\'s key "{signing_key.kid}"', message)


def test_a_key_whose_key_ops_allow_verify_is_used(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any]
) -> None:
    published(issuer, {**signing_key.public_jwk(), "key_ops": ["verify"]})
    run = helper.external(query(issuer), mint(signing_key, claims))
    assert run.returncode == 0, run.stderr


def test_a_published_private_key_is_refused_with_a_message(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any]
) -> None:
    from jwt.algorithms import RSAAlgorithm

    private = json.loads(RSAAlgorithm.to_jwk(signing_key.private))
    private.pop("key_ops", None)
    published(issuer, {**private, "kid": signing_key.kid, "use": "sig", "alg": "RS256"})
    helper.external(query(issuer), mint(signing_key, claims)).refused(
        'carries private members ("d", "p", "q", "dp", "dq", "qi")', "rotate it"
    )


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth"])  # RFC 7518 6.3.2
def test_a_public_key_with_any_private_member_is_refused(signing_key: SigningKey, member: str) -> None:
    jwk = signing_key.public_jwk()
    public_key(jwk, signing_key.kid)  # the key itself is fine
    with pytest.raises(VerificationFailed, match=f'carries private members \\("{member}"\\)'):
        public_key({**jwk, member: "AQAB"}, signing_key.kid)


def test_a_token_signed_by_a_key_published_with_a_private_member_is_not_accepted(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claims: dict[str, Any]
) -> None:
    """Only "qi" of the private key leaked: the public part still loads, so only the policy refuses it."""
    published(issuer, {**signing_key.public_jwk(), "qi": "AQAB"})
    run = helper.external(query(issuer), mint(signing_key, claims))
    run.refused("carries private members")


@pytest.mark.parametrize("alg", ["none", "HS256", "RS384", "RS512", "PS256", "ES256"])
def test_a_token_of_another_algorithm_is_refused_before_any_key_is_looked_up(
    signing_key: SigningKey, claims: dict[str, Any], alg: str
) -> None:
    """The pin is on the header: the key the token names is never even looked up for it."""
    settings = from_query({"audience": AUDIENCE, "issuer": claims["iss"], "project_path": PROJECT}, {})
    token = forge({"alg": alg, "kid": signing_key.kid, "typ": "JWT"}, claims, b"\x01" * 256)
    looked_up: list[str] = []

    class Keys:
        def jwk(self, kid: str) -> dict[str, Any]:
            looked_up.append(kid)
            return signing_key.public_jwk()

    with pytest.raises(VerificationFailed, match=f'alg is "{alg}"'):
        verify(token, settings, Keys().jwk)
    assert looked_up == []
    assert verify(mint(signing_key, claims), settings, Keys().jwk)["sub"] == claims["sub"]
    assert looked_up == [signing_key.kid]


def test_an_rsa_key_under_2048_bits_is_refused_and_no_warning_reaches_stderr(
    helper: Helper, issuer: LocalIssuer, claims: dict[str, Any]
) -> None:
    """PyJWT verifies with a short key and only warns, on stderr, with a source path. The cryptography
    library will not make a 512-bit key; 1024 bits shows the rule the same way."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    short = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=1024), "short-key")
    published(issuer, short.public_jwk())
    with pytest.warns(jwt.InsecureKeyLengthWarning):  # PyJWT warns us, the attacker, while signing
        token = mint(short, claims)
    run = helper.external(query(issuer), token)
    run.refused('the issuer\'s key "short-key" is a 1024-bit RSA key, shorter than 2048 bits')  # one line only
    assert "Warning" not in run.stderr
