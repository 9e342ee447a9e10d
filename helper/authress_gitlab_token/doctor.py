"""`doctor`: the same steps as `external`, one at a time, each reported, ending with the one fix to make.
The token itself is never part of the report; its claims are."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from . import sources
from .errors import HelperError, quoted
from .report import KINDS, Report, Step, without_personal
from .settings import DEFAULT_TOKEN_ENV, Settings

PLACEHOLDER_AUDIENCE = "https://ACCOUNT_ID.api.authress.io"
FIRST_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf")


class _Steps:
    """Collects steps; `run` records a pass, or the error's message as a failure."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, name: str, status: str, detail: str) -> None:
        self.steps.append(Step(name, status, detail))

    def run(self, name: str, action: Any) -> Any:
        try:
            value, detail = action()
        except HelperError as exc:
            self.add(name, "fail", str(exc))
            return None
        self.add(name, "pass", detail)
        return value


def diagnose(
    query: Mapping[str, str], environ: Mapping[str, str], now: float | None = None, show_personal: bool = False
) -> Report:
    """Every step `external` takes, reported one by one; stops at the first failure that blocks the rest."""
    now = time.time() if now is None else now
    steps = _Steps()
    name = query.get("token_env", DEFAULT_TOKEN_ENV)
    credential = steps.run(
        "token",
        lambda: _found(sources.find_credential(environ, name, query.get("audience", PLACEHOLDER_AUDIENCE))),
    )
    if credential is None:
        return Report(f"${name}", "", {}, tuple(steps.steps), now)
    claims = _claims(credential)
    query = dict(query)
    if "audience" not in query:
        query["audience"] = _audience_guess(credential, claims, steps)
    settings = steps.run("options", lambda: _settings(query, environ))
    if settings is not None:
        _audience_sanity(settings, steps)
        _ref_type_sanity(settings, steps)
        if credential.kind == sources.SERVICE_CLIENT_KEY:
            outcome = steps.run("service-client token", lambda: _minted(credential, settings, now))
        else:
            outcome = _verified(credential, claims, settings, environ, now, steps)
        _check(outcome, settings, "check" in query, environ, steps)
    passed = {s.name for s in steps.steps if s.status == "pass"}
    verified = bool(passed & {"signature and claims", "service-client token"})
    report = Report(credential.origin, credential.kind, claims, tuple(steps.steps), now, verified)
    return report if show_personal else without_personal(report)


def _found(credential: sources.Credential) -> tuple[sources.Credential, str]:
    return credential, f"{credential.origin} holds {KINDS[credential.kind]}"


def _claims(credential: sources.Credential) -> dict[str, Any]:
    """What the credential says, unverified, for the table: a JWT's claims, or a key's ids."""
    if credential.kind == sources.SERVICE_CLIENT_KEY:
        client_id, key_id, account_id, _ = credential.value.split(".")
        return {"client_id": client_id, "key_id": key_id, "account_id": account_id}
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(credential.value, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    ordered = {k: claims[k] for k in FIRST_CLAIMS if k in claims}
    ordered.update(sorted((k, v) for k, v in claims.items() if k not in ordered))
    return ordered


def _audience_guess(credential: sources.Credential, claims: Mapping[str, Any], steps: _Steps) -> str:
    if credential.kind == sources.SERVICE_CLIENT_KEY:
        return f"https://{claims['account_id']}.api.authress.io"
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if isinstance(aud, str) and aud:
        steps.add("audience", "warn", f"taken from the token ({quoted(aud)}); pass --audience to check it")
        return aud
    steps.add("audience", "fail", "the token's aud is not one string; pass --audience with the one to check")
    return PLACEHOLDER_AUDIENCE


def _settings(query: Mapping[str, str], environ: Mapping[str, str]) -> tuple[Settings, str]:
    from .settings import from_query

    settings = from_query(query, environ)
    return settings, f"issuer {quoted(settings.issuer)}, audience {quoted(settings.audience)}"


def _audience_sanity(settings: Settings, steps: _Steps) -> None:
    from .authress import audience_warning

    warning = audience_warning(settings.audience, settings.api_url)
    if warning:
        steps.add("audience", "warn", warning)


def _ref_type_sanity(settings: Settings, steps: _Steps) -> None:
    from .settings import ref_type_warning

    warning = ref_type_warning(settings)
    if warning:
        steps.add("ref_type", "warn", warning)


def _minted(credential: sources.Credential, settings: Settings, now: float) -> tuple[Any, str]:
    from .flow import from_service_client

    outcome = from_service_client(credential, settings, now)
    return outcome, f"minted for client {quoted(outcome.result['user_id'])}, expires {outcome.result['expires_at']}"


def _verified(
    credential: sources.Credential,
    claims: Mapping[str, Any],
    settings: Settings,
    environ: Mapping[str, str],
    now: float,
    steps: _Steps,
) -> Any:
    from . import keys, verify
    from .flow import Outcome
    from .keycache import locate
    from .result import gitlab_result

    directory, where = locate(environ)
    steps.add("key cache", "pass" if directory else "warn", where)
    issuer_keys = keys.issuer_keys(settings.issuer, environ)
    kid = _kid(credential.value)
    if kid:  # without one, the next step says what is wrong with the header
        found = steps.run(
            "issuer keys", lambda: (issuer_keys.jwk(kid), f"key {quoted(kid, 60)} from {quoted(settings.issuer)}")
        )
        if found is None:
            return None
    plain = dataclasses.replace(settings, bound_claims=(), min_validity_seconds=0)
    verified = steps.run(
        "signature and claims",
        lambda: (verify.verify(credential.value, plain, issuer_keys, now), "RS256 signature, iss, aud, exp, iat"),
    )
    if verified is None:
        return None
    for bound in settings.bound_claims:
        detail = f"{quoted(bound.claim)} is {quoted(verified.get(bound.claim))} (from {bound.source})"
        if steps.run(f"bound {bound.source}", lambda b=bound, d=detail: (_bound(verified, b), d)) is None:
            return None

    def lifetime() -> tuple[int, str]:
        left = verify.check_lifetime(verified, settings.min_validity_seconds, now)
        return left, f"{left} s left"

    if steps.run("lifetime", lifetime) is None:
        return None
    return Outcome(credential, verified, gitlab_result(credential.value, verified, settings, now))


def _bound(claims: Mapping[str, Any], bound: Any) -> bool:
    from .verify import check_bound_claim

    check_bound_claim(claims, bound)
    return True


def _kid(token: str) -> str:
    import jwt

    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return ""
    return kid if isinstance(kid, str) else ""


def _check(outcome: Any, settings: Settings, asked: bool, environ: Mapping[str, str], steps: _Steps) -> None:
    """doctor runs the Authress check unless told `--check none`, and skips it when it cannot be placed."""
    from .flow import check

    if outcome is None:
        steps.add("authress", "skip", "needs a verified token")
    elif asked and settings.check == "none":
        steps.add("authress", "skip", "--check none")
    elif not outcome.result["api_url"] or not outcome.result["account_id"]:
        status = "fail" if asked else "skip"
        steps.add("authress", status, "the audience names no Authress account; pass --api-url to check")
    else:
        steps.run("authress", lambda: (None, check(outcome, environ)))
