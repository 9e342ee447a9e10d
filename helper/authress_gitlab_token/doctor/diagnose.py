"""`doctor`: the same steps as `external`, one at a time, each reported, ending with the one fix to make.
The token itself is never part of the report; its claims are."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .. import sources
from ..errors import HelperError, quoted
from ..settings import DEFAULT_TOKEN_ENV, Settings
from .report import KINDS, Report, Step, without_personal

if TYPE_CHECKING:
    from ..outcome import Outcome
    from ..verify import Check, Verification

T = TypeVar("T")

PLACEHOLDER_AUDIENCE = "https://ACCOUNT_ID.api.authress.io"
FIRST_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf")


class _Steps:
    """Collects steps; `run` records a pass, or the error's problem and fix as a failure."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, name: str, status: str, problem: str, fix: str = "") -> None:
        """`problem` and `fix` shown on one line, as the error is printed; the fix kept apart."""
        self.steps.append(Step(name, status, f"{problem}; {fix}" if fix else problem, fix))

    def run(self, name: str, action: Callable[[], tuple[T, str]]) -> T | None:
        """`action`'s value, its detail recorded as a pass; None, its error recorded as a failure."""
        try:
            value, detail = action()
        except HelperError as exc:
            self.add(name, "fail", exc.problem, exc.fix)
            return None
        self.add(name, "pass", detail)
        return value


def diagnose(
    query: Mapping[str, str], environ: Mapping[str, str], now: float | None = None, show_personal: bool = False
) -> Report:
    """Every step `external` takes, reported one by one; stops at the first failure that blocks the rest.
    `now`: a fixed clock; by default the clock is read when each step needs it (a fetch takes time)."""
    fixed = now
    steps = _Steps()
    name = query.get("token_env", DEFAULT_TOKEN_ENV)
    credential = steps.run(
        "token",
        lambda: _found(sources.find_credential(environ, name, query.get("audience", PLACEHOLDER_AUDIENCE))),
    )
    if credential is None:
        return Report(f"${name}", "", {}, tuple(steps.steps), time.time() if fixed is None else fixed)
    claims = _claims(credential)
    query = dict(query)
    if "audience" not in query:
        query["audience"] = _audience_guess(credential, claims, steps)
    settings, bound = steps.run("options", lambda: _settings(query, environ)) or (None, True)
    if not bound:
        steps.add("binding", "fail", *_unbound(credential.kind, claims))
    if settings is not None:
        _audience_sanity(settings, steps)
        _ref_type_sanity(settings, steps)
        if credential.kind == sources.SERVICE_CLIENT_KEY:
            minted_at = time.time() if fixed is None else fixed
            outcome = steps.run("service-client token", lambda: _minted(credential, settings, minted_at))
        else:
            outcome = _verified(credential, settings, fixed, steps)
        _check(outcome, settings, "check" in query, steps)
    passed = {s.name for s in steps.steps if s.status == "pass"}
    verified = bool(passed & {"signature and claims", "service-client token"})
    now = time.time() if fixed is None else fixed
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
        steps.add("audience", "warn", f"taken from the token ({quoted(aud)})", "pass --audience to check it")
        return aud
    steps.add("audience", "fail", "the token's aud is not one string", "pass --audience with the one to check")
    return PLACEHOLDER_AUDIENCE


def _settings(query: Mapping[str, str], environ: Mapping[str, str]) -> tuple[tuple[Settings, bool], str]:
    """The settings, and whether they bind a project. Lacking only that binding, the token is still
    verified (with any project allowed) and the missing binding reported as a failure of its own."""
    from ..settings import binds_project, from_query

    try:
        settings = from_query(query, environ)
    except HelperError:
        if query.get("allow_any_project") == "true":
            raise
        try:
            anyone = from_query({**query, "allow_any_project": "true"}, environ)
        except HelperError:
            anyone = None
        if anyone is None or binds_project(list(anyone.bound_claims)):
            raise
        return (anyone, False), f"issuer {quoted(anyone.issuer)}, audience {quoted(anyone.audience)}"
    return (settings, True), f"issuer {quoted(settings.issuer)}, audience {quoted(settings.audience)}"


def _unbound(kind: str, claims: Mapping[str, Any]) -> tuple[str, str]:
    """The missing project binding in doctor's terms: the flags to pass, the token's own project as example."""
    wrong = "the options bind no project, so a token of any GitLab project with this audience would pass"
    if kind == sources.SERVICE_CLIENT_KEY:  # it has no GitLab claims to bind
        return wrong, "a service-client key has no project: pass --allow-any-project true to use it"
    project = claims.get("project_path")
    example = project if isinstance(project, str) and project else "my-org/authress-configuration"
    return (
        wrong,
        f"pass --project-path {quoted(example)} (or --namespace-path, or --subject), or "
        "--allow-any-project true if any project may really use it",
    )


def _audience_sanity(settings: Settings, steps: _Steps) -> None:
    from ..authress import audience_advice

    advice = audience_advice(settings.audience, settings.api_url)
    if advice:
        steps.add("audience", "warn", *advice)


def _ref_type_sanity(settings: Settings, steps: _Steps) -> None:
    from ..settings import ref_type_advice

    advice = ref_type_advice(settings)
    if advice:
        steps.add("ref_type", "warn", *advice)


def _minted(credential: sources.Credential, settings: Settings, now: float) -> tuple[Outcome, str]:
    from ..access_token import from_service_client
    from ..verify import rfc3339

    outcome = from_service_client(credential, settings, now)
    return outcome, f"minted for client {quoted(outcome.user_id)}, expires {rfc3339(outcome.expires_at)}"


def _verified(credential: sources.Credential, settings: Settings, fixed: float | None, steps: _Steps) -> Outcome | None:
    """verify's checks, each recorded, to the first failure; the clock read after the keys are found."""
    from ..keys.lookup import IssuerKeys
    from ..outcome import gitlab_outcome
    from ..verify import Verification, checks

    steps.add("key cache", "pass" if settings.cache_dir else "warn", settings.cache_where, settings.cache_fix)
    verification = Verification(credential.value, settings, IssuerKeys.of(settings), fixed)
    for check in checks(settings):
        if steps.run(check.name, partial(_passed, check, verification)) is None:
            return None
    now = time.time() if verification.now is None else verification.now
    return gitlab_outcome(credential.value, verification.claims, settings, now)


def _passed(check: Check, verification: Verification) -> tuple[bool, str]:
    return True, check.run(verification)


def _check(outcome: Outcome | None, settings: Settings, asked: bool, steps: _Steps) -> None:
    """doctor runs the Authress check unless told `--check none`, and skips it when it cannot be placed."""
    from ..access_token import check

    if outcome is None:
        steps.add("authress", "skip", "needs a verified token")
    elif asked and settings.check == "none":
        steps.add("authress", "skip", "--check none")
    elif not outcome.api_url or not outcome.account_id:
        status = "fail" if asked else "skip"
        steps.add("authress", status, "the audience names no Authress account", "pass --api-url to check")
    else:
        steps.run("authress", lambda: (True, check(outcome, settings)))
