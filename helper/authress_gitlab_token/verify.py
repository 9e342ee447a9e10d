"""Verification of a GitLab ID token: one ordered list of named checks (issuer keys, signature and
claims, each bound claim, lifetime). `verify` runs them to the first failure; doctor records each."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

import jwt

from .errors import TokenMalformed, VerificationFailed, quoted
from .keys.policy import public_key
from .settings import BoundClaim, Settings

# GitLab signs ID tokens with RS256 only. Never taken from the token; never HS* or none.
PINNED_ALGORITHMS = ("RS256",)
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat")
TIME_CLAIMS = ("exp", "iat", "nbf")
FindKey = Callable[[str], Mapping[str, Any]]  # the issuer's key for a kid (IssuerKeys.jwk)
LAST_DATE = 253402300799  # 9999-12-31T23:59:59Z: the last second a date can be shown for


@dataclass
class Verification:
    """One token on its way through the checks: what each check found, for the checks after it."""

    token: str = field(repr=False)
    settings: Settings
    jwk: FindKey
    now: float | None = None  # None: the clock, read once the keys are found (a fetch can take seconds)
    key: Any = None
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """A named step: `run` returns what passed, or raises the HelperError that says what to fix."""

    name: str
    run: Callable[[Verification], str]


def checks(settings: Settings) -> list[Check]:
    """Every check a GitLab ID token must pass, in order."""
    bound = [Check(f"bound {b.source}", partial(_bound_claim, b)) for b in settings.bound_claims]
    return [
        Check("issuer keys", _issuer_keys),
        Check("signature and claims", _signature),
        *bound,
        Check("lifetime", _lifetime),
    ]


def verify(token: str, settings: Settings, jwk: FindKey, now: float | None = None) -> dict[str, Any]:
    """The token's claims, once every check has passed; otherwise the error of the first that failed."""
    verification = Verification(token, settings, jwk, now)
    for check in checks(settings):
        check.run(verification)
    return verification.claims


def _issuer_keys(v: Verification) -> str:
    header = _header(v.token)
    v.key = public_key(v.jwk(header["kid"]), header["kid"])
    return f"key {quoted(header['kid'], 60)} from {quoted(v.settings.issuer)}"


def _signature(v: Verification) -> str:
    """PyJWT judges `exp` by the clock too, so the clock is read after the keys are found."""
    v.now = time.time() if v.now is None else v.now
    v.claims = _decode(v.token, v.key, v.settings, v.now)
    problem = time_claim_problem(v.claims)
    if problem:
        raise problem
    if not v.claims["sub"].strip():  # PyJWT has checked that it is a string
        raise VerificationFailed(
            'claim "sub" is empty',
            "Authress takes it as the user ID, and GitLab always names the project "
            "and ref in it: pass the job's ID token from `id_tokens:` unchanged",
        )
    return "RS256 signature, iss, aud, exp, iat"


def _bound_claim(bound: BoundClaim, v: Verification) -> str:
    check_bound_claim(v.claims, bound)
    return f"{quoted(bound.claim)} is {quoted(v.claims.get(bound.claim))} (from {bound.source})"


def _lifetime(v: Verification) -> str:
    now = time.time() if v.now is None else v.now  # set by the signature check
    return f"{check_lifetime(v.claims, v.settings.min_validity_seconds, now)} s left"


def check_lifetime(claims: Mapping[str, Any], min_validity_seconds: int, now: float) -> int:
    """Seconds the token has left; an error when that is less than a minimum the user asked for."""
    left = int(claims["exp"] - now)
    # Only when asked for: with no minimum, a token past `exp` but within the leeway is accepted.
    if min_validity_seconds and left < min_validity_seconds:
        raise VerificationFailed(
            f"token expires in {left} s, less than min_validity_seconds {min_validity_seconds}",
            "an ID token lives as long as the job timeout: raise the job's `timeout:` or lower the minimum",
        )
    return left


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenMalformed(
            f"the token is not a well-formed JWT ({_reason(exc)})",
            "pass the job's ID token from `id_tokens:` unchanged",
        ) from None
    except jwt.InvalidTokenError as exc:  # PyJWT checks `crit` and the kid's type while reading the header
        kid = _raw_header(token).get("kid", "")
        if not isinstance(kid, str):
            raise VerificationFailed(
                f"token header kid is {quoted(kid, 60)}, not a string", "GitLab ID tokens name their key by kid"
            ) from None
        raise VerificationFailed(
            f"token header is refused ({_reason(exc)})", "GitLab ID tokens carry no critical extensions"
        ) from None
    alg = header.get("alg")
    if alg not in PINNED_ALGORITHMS:
        raise VerificationFailed(
            f"token header alg is {quoted(alg, 40)}, expected {' or '.join(map(quoted, PINNED_ALGORITHMS))}",
            "GitLab ID tokens are RS256",
        )
    if "crit" in header:
        raise VerificationFailed(
            f"token header has crit {quoted(header['crit'], 80)}",
            "GitLab never sets it and this helper supports no critical extensions",
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VerificationFailed("token header has no kid", "GitLab ID tokens name their key by kid")
    return header


def _raw_header(token: str) -> dict[str, Any]:
    """The header PyJWT refused, as JSON, to say what in it was wrong ({} when it is not an object)."""
    with contextlib.suppress(ValueError):
        value = json.loads(jwt.utils.base64url_decode(token.split(".", 1)[0]))
        return value if isinstance(value, dict) else {}
    return {}


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
            f"token signature does not verify with issuer {quoted(settings.issuer)}'s key",
            "the token was altered or not issued by this issuer",
        ) from None
    except jwt.PyJWTError as exc:
        raise _claim_problem(exc, unverified_claims(token), settings, now) from None


def time_claim_problem(claims: Mapping[str, Any]) -> VerificationFailed | None:
    """PyJWT takes `"123"` (a string) for a time claim and any size of number; a message for those."""
    for claim in TIME_CLAIMS:
        if claim in claims and not is_numeric_date(claims[claim]):
            return VerificationFailed(
                f"claim {quoted(claim)} is {quoted(claims[claim], 60)}, expected seconds since 1970 as a JSON "
                "number (up to year 9999)",
                "GitLab ID tokens carry numbers: pass the job's ID token unchanged",
            )
    return None


def is_numeric_date(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= LAST_DATE


def _claim_problem(exc: jwt.PyJWTError, claims: dict[str, Any], settings: Settings, now: float) -> VerificationFailed:
    leeway = f"leeway {settings.leeway_seconds} s"
    problem = time_claim_problem(claims)
    if problem:
        return problem
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return VerificationFailed(f"token has no {quoted(exc.claim)} claim", "GitLab ID tokens always carry it")
    if isinstance(exc, jwt.InvalidIssuerError):
        return VerificationFailed(
            f'claim "iss" is {quoted(claims.get("iss"))}, expected {quoted(settings.issuer)}',
            'set the query key "issuer" to your GitLab instance\'s issuer',
        )
    if isinstance(exc, jwt.InvalidAudienceError):
        return VerificationFailed(
            f'claim "aud" is {quoted(claims.get("aud"))}, expected {quoted(settings.audience)}',
            'the job\'s `id_tokens:` aud and the query key "audience" must be the same string',
        )
    if isinstance(exc, jwt.ExpiredSignatureError):
        exp = claims.get("exp", 0)
        return VerificationFailed(
            f"token expired at {rfc3339(exp)} ({int(now - exp)} s ago, {leeway})",
            "an ID token lives as long as the job: run the job again, and do not apply a plan saved by an earlier job",
        )
    if isinstance(exc, jwt.ImmatureSignatureError):
        claim = "nbf" if "nbf" in str(exc) else "iat"
        at = claims.get(claim, 0)
        return VerificationFailed(
            f"token is not valid yet: claim {quoted(claim)} is {rfc3339(at)}, {int(at - now)} s from now ({leeway})",
            "check the runner's clock",
        )
    if isinstance(exc, jwt.DecodeError):
        return VerificationFailed(f"the token is not a well-formed JWT ({_reason(exc)})")
    return VerificationFailed(f"token refused: {_reason(exc)}")


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims as the token states them, for a message or doctor's table only ({} if unreadable)."""
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
            f"token has no claim {quoted(bound.claim)}, expected {expected} (from {bound.source})",
            "GitLab sets it only in some jobs",
        )
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise VerificationFailed(f"claim {quoted(bound.claim)} is not a string or number, expected {expected}")
    if not any(glob_match(g, value) for g in bound.globs):
        raise VerificationFailed(
            f"claim {quoted(bound.claim)} is {quoted(value)}, expected {expected} (from {bound.source})",
            "this token is for another project, ref or job",
        )


def glob_match(glob: str, value: str) -> bool:
    """Whether `glob` matches the whole of `value`: `*` any run of characters (also `/` and `:`), `?` one
    character, everything else itself. The parts between stars have fixed lengths; each is taken at its
    leftmost place, which leaves the most room for the parts after it, so nothing is ever retried and the
    time grows with len(value) x the longest part. (A backtracking regex took 80 s for `*/*/*/*/*/main`
    against a 255-character ref, and the claim value is chosen by whoever names the branch.)"""
    parts = _glob_parts(glob)
    (first_size, first), (last_size, last) = parts[0], parts[-1]
    if len(parts) == 1:
        return len(value) == first_size and first.match(value) is not None
    end = len(value) - last_size
    if end < first_size or first.match(value) is None or last.match(value, end) is None:
        return False
    start = first_size
    for _, part in parts[1:-1]:
        found = part.search(value, start, end)
        if found is None:
            return False
        start = found.end()
    return True


@lru_cache(maxsize=256)
def _glob_parts(glob: str) -> tuple[tuple[int, re.Pattern[str]], ...]:
    """Each part between stars as (its length, a pattern of literals and `.{n}` for n `?`): no repetition."""
    parts = []
    for part in glob.split("*"):
        runs = re.findall(r"\?+|[^?]+", part)
        pattern = "".join(f".{{{len(run)}}}" if run[0] == "?" else re.escape(run) for run in runs)
        parts.append((len(part), re.compile(pattern, re.DOTALL)))
    return tuple(parts)


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
