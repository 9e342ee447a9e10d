"""Which of the issuer's keys may verify a token: the JWKS's shape, then each key's type, use and size.

A key that fails is refused with a message naming it, before any library sees it: PyJWT would accept
a short RSA key with only a warning on stderr, and ignores `key_ops`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import VerificationFailed, quoted

MIN_RSA_BITS = 2048  # NIST SP 800-131A; GitLab's keys are 2048 or 4096 bits
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")  # RFC 7518 6.3.2: never in a public JWKS


def valid_keys(jwks: Any) -> tuple[Mapping[str, Any], ...] | None:
    """The keys of a well-formed, non-empty JWKS, else None (such a set is never cached)."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return None
    keys = jwks["keys"]
    if not all(isinstance(k, dict) and isinstance(k.get("kty"), str) for k in keys):
        return None
    return tuple(keys)


def public_key(jwk: Mapping[str, Any], kid: str) -> Any:
    """The RSA public key of an RS256 signing JWK of at least MIN_RSA_BITS; an error naming the key otherwise."""
    import jwt

    name = f"the issuer's key {quoted(kid, 80)}"
    if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        raise VerificationFailed(
            f"{name} is not an RS256 signing key (kty {quoted(jwk.get('kty'))}, use {quoted(jwk.get('use'))}, "
            f"alg {quoted(jwk.get('alg'))})",
            "only RSA keys for signatures verify GitLab ID tokens",
        )
    private = [m for m in PRIVATE_MEMBERS if m in jwk]
    if private:
        raise VerificationFailed(
            f"{name} carries private members ({', '.join(map(quoted, private))})",
            "the issuer is publishing a "
            "private key: tell its administrators to rotate it, and trust no token signed with it",
        )
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise VerificationFailed(
            f'{name} has key_ops {quoted(ops, 80)}, which does not allow "verify"',
            "the issuer does not publish it for checking signatures",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a library's warning must never reach stderr
            key = jwt.PyJWK(dict(jwk), algorithm="RS256").key
    except (jwt.PyJWTError, ValueError, TypeError):
        raise VerificationFailed(f"{name} is malformed", "the issuer may be misconfigured") from None
    bits = getattr(key, "key_size", 0)
    if bits < MIN_RSA_BITS:
        raise VerificationFailed(
            f"{name} is a {bits}-bit RSA key, shorter than {MIN_RSA_BITS} bits",
            "such a key can be factored, so no token signed with it is trusted",
        )
    return key
