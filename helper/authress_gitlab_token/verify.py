"""Verification of a GitLab ID token: header, signature, registered claims, then bound claims."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import jwt

from .errors import TokenMalformed, VerificationFailed, quoted
from .jwk_policy import public_key
from .settings import BoundClaim, Settings

# GitLab signs ID tokens with RS256 only. Never taken from the token; never HS* or none.
PINNED_ALGORITHMS = ("RS256",)
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat")


class KeySource(Protocol):
    def jwk(self, kid: str) -> Mapping[str, Any]: ...


def verify(token: str, settings: Settings, keys: KeySource, now: float | None = None) -> dict[str, Any]:
    """The token's claims, once every check has passed; otherwise an error naming the check."""
    now = time.time() if now is None else now
    header = _header(token)
    key = public_key(keys.jwk(header["kid"]), header["kid"])
    claims = _decode(token, key, settings, now)
    for bound in settings.bound_claims:
        check_bound_claim(claims, bound)
    check_lifetime(claims, settings.min_validity_seconds, now)
    return claims


def check_lifetime(claims: Mapping[str, Any], min_validity_seconds: int, now: float) -> int:
    """Seconds the token has left; an error when that is less than a minimum the user asked for."""
    left = int(claims["exp"] - now)
    # Only when asked for: with no minimum, a token past `exp` but within the leeway is accepted.
    if min_validity_seconds and left < min_validity_seconds:
        raise VerificationFailed(
            f"token expires in {left} s, less than min_validity_seconds {min_validity_seconds}; "
            "an ID token lives as long as the job timeout: raise the job's `timeout:` or lower the minimum"
        )
    return left


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenMalformed(
            f"the token is not a well-formed JWT ({_reason(exc)}); pass the job's ID token from `id_tokens:` unchanged"
        ) from None
    except jwt.InvalidTokenError as exc:  # PyJWT >= 2.12 checks `crit` while reading the header
        raise VerificationFailed(
            f"token header is refused ({_reason(exc)}); GitLab ID tokens carry no critical extensions"
        ) from None
    alg = header.get("alg")
    if alg not in PINNED_ALGORITHMS:
        raise VerificationFailed(
            f"token header alg is {quoted(alg, 40)}, expected "
            f"{' or '.join(map(quoted, PINNED_ALGORITHMS))}; GitLab ID tokens are RS256"
        )
    if "crit" in header:
        raise VerificationFailed(
            f"token header has crit {quoted(header['crit'], 80)}; GitLab never sets it "
            "and this helper supports no critical extensions"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VerificationFailed("token header has no kid; GitLab ID tokens name their key by kid")
    return header


def _decode(token: str, key: Any, settings: Settings, now: float) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(PINNED_ALGORITHMS),
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
        )
        return claims
    except jwt.InvalidSignatureError:
        raise VerificationFailed(
            f"token signature does not verify with issuer {quoted(settings.issuer)}'s "
            "key; the token was altered or not issued by this issuer"
        ) from None
    except jwt.PyJWTError as exc:
        unverified = _unverified(token)
        raise VerificationFailed(_claim_problem(exc, unverified, settings, now)) from None


def _claim_problem(exc: jwt.PyJWTError, claims: dict[str, Any], settings: Settings, now: float) -> str:
    leeway = f"leeway {settings.leeway_seconds} s"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has no {quoted(exc.claim)} claim; GitLab ID tokens always carry it"
    if isinstance(exc, jwt.InvalidIssuerError):
        return (
            f'claim "iss" is {quoted(claims.get("iss"))}, expected {quoted(settings.issuer)}; '
            'set the query key "issuer" to your GitLab instance\'s issuer'
        )
    if isinstance(exc, jwt.InvalidAudienceError):
        return (
            f'claim "aud" is {quoted(claims.get("aud"))}, expected {quoted(settings.audience)}; the job\'s '
            '`id_tokens:` aud and the query key "audience" must be the same string'
        )
    if isinstance(exc, jwt.ExpiredSignatureError):
        exp = claims.get("exp", 0)
        return (
            f"token expired at {rfc3339(exp)} ({int(now - exp)} s ago, {leeway}); an ID token lives as "
            "long as the job: run the job again, and do not apply a plan saved by an earlier job"
        )
    if isinstance(exc, jwt.ImmatureSignatureError):
        claim = "nbf" if "nbf" in str(exc) else "iat"
        at = claims.get(claim, 0)
        return (
            f"token is not valid yet: claim {quoted(claim)} is {rfc3339(at)}, {int(at - now)} s from now "
            f"({leeway}); check the runner's clock"
        )
    if isinstance(exc, jwt.DecodeError):
        return f"the token is not a well-formed JWT ({_reason(exc)})"
    return f"token refused: {_reason(exc)}"


def _unverified(token: str) -> dict[str, Any]:
    """Claims for an error message only, after verification already failed."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        return claims
    except jwt.PyJWTError:
        return {}


def _reason(exc: Exception) -> str:
    # PyJWT's messages describe the structure, never echo the token; cut them short anyway.
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


def check_bound_claim(claims: Mapping[str, Any], bound: BoundClaim) -> None:
    """The claim must exist and one glob must match its whole value (booleans as "true"/"false")."""
    expected = " or ".join(quoted(g) for g in bound.globs)
    value = claims.get(bound.claim)
    if value is None:
        raise VerificationFailed(
            f"token has no claim {quoted(bound.claim)}, expected {expected} "
            f"(from {bound.source}); GitLab sets it only in some jobs"
        )
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise VerificationFailed(f"claim {quoted(bound.claim)} is not a string or number, expected {expected}")
    if not any(glob_regex(g).fullmatch(value) for g in bound.globs):
        raise VerificationFailed(
            f"claim {quoted(bound.claim)} is {quoted(value)}, expected {expected} "
            f"(from {bound.source}); this token is for another project, ref or job"
        )


@lru_cache(maxsize=256)
def glob_regex(glob: str) -> re.Pattern[str]:
    """`*` any run of characters (also `/` and `:`), `?` one character; everything else literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob), re.DOTALL)


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
