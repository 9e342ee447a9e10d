"""Which of the issuer's keys may verify a token: the JWKS's shape, then each key's type and use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import VerificationFailed, quoted


def valid_keys(jwks: Any) -> tuple[Mapping[str, Any], ...] | None:
    """The keys of a well-formed, non-empty JWKS, else None (such a set is never cached)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return None
    keys = jwks["keys"]
    if not all(isinstance(k, dict) and isinstance(k.get("kty"), str) for k in keys):
        return None
    return tuple(keys)


def public_key(jwk: Mapping[str, Any], kid: str) -> Any:
    """The RSA public key of an RS256 signing JWK; an error naming the key otherwise."""
    import jwt

    if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        raise VerificationFailed(
            f"the issuer's key {quoted(kid, 80)} is not an RS256 signing key "
            f"(kty {quoted(jwk.get('kty'))}, alg {quoted(jwk.get('alg'))})"
        )
    try:
        return jwt.PyJWK(dict(jwk), algorithm="RS256").key
    except jwt.PyJWTError:
        raise VerificationFailed(f"the issuer's key {quoted(kid, 80)} is malformed") from None
