"""`doctor`: the same steps as `external`, one at a time, each recorded (diagnose), then shown for a
terminal or as JSON (Report). The token is never part of the report; its claims are, and until the
signature passes they are the attacker's text: escaped, labelled, personal ones hidden."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from . import sources
from .authress import audience_advice
from .environment import DEFAULT_TOKEN_ENV
from .errors import HelperError, printable, quoted
from .settings import Settings, ref_type_advice

if TYPE_CHECKING:
    from .outcome import Outcome

T = TypeVar("T")

PERSONAL_CLAIMS = ("user_email",)  # job logs are public on public projects
HIDDEN = "[hidden; --show-personal shows it]"
KINDS = {sources.GITLAB_ID_TOKEN: "a GitLab ID token", sources.SERVICE_CLIENT_KEY: "an Authress service-client key"}
PLACEHOLDER_AUDIENCE = "https://ACCOUNT_ID.api.authress.io"
FIRST_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf")


@dataclass(frozen=True)
class Step:
    name: str
    status: str  # "pass" | "fail" | "warn" | "skip"
    detail: str  # as the error prints it: "what is wrong; what to do"
    fix: str = ""  # what to do, "" when the message offers no remedy


@dataclass(frozen=True)
class Report:
    origin: str
    kind: str
    claims: dict[str, Any]
    steps: tuple[Step, ...]
    now: float
    verified: bool = False  # the claims passed the signature check (or the key minted a token)

    @property
    def ok(self) -> bool:
        return not any(s.status == "fail" for s in self.steps)

    @property
    def first(self) -> Step | None:
        """The first failure, else the first warning: what the report ends with."""
        return min(
            (s for s in self.steps if s.status in ("fail", "warn")), key=lambda s: s.status != "fail", default=None
        )

    @property
    def fix(self) -> str:
        """What to do about the first failure or warning; "" when its message offers no remedy."""
        step = self.first
        return "nothing: the token is ready for Terraform" if step is None else step.fix

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "credential": {"origin": self.origin, "kind": self.kind},
            "claims": _json_safe(self.claims),
            "claims_verified": self.verified,
            "steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in self.steps],
            "fix": self.fix,
        }

    def render(self) -> str:
        """For a terminal: every value from the token or the query escaped, so none can fake a line."""
        from .verify import TIME_CLAIMS, is_numeric_date, rfc3339

        kind = KINDS.get(self.kind, "nothing usable")
        lines = [f"Token:  {printable(self.origin or 'none')} holds {kind} (never shown)"]
        if self.claims:
            lines.append("Claims:" if self.verified else "Claims, NOT verified (do not trust them):")
            width = max(len(k) for k in self.claims)
            for name, value in self.claims.items():
                text = value if isinstance(value, str) else quoted(value, 200)
                if name in TIME_CLAIMS and is_numeric_date(value):
                    text = f"{rfc3339(value)} ({_relative(value - self.now)})"
                lines.append(f"  {printable(name.ljust(width))}  {printable(text)}")
        lines.append("Checks:")
        width = max(len(s.name) for s in self.steps)
        lines += [f"  [{s.status}] {printable(s.name.ljust(width))}  {printable(s.detail)}" for s in self.steps]
        step = self.first
        if step is not None and not step.fix:  # never a diagnosis dressed up as a fix
            lines.append("Why: " + printable(step.detail))
        else:
            lines.append(("OK: " if self.ok else "Fix: ") + printable(self.fix))
        return "\n".join(lines) + "\n"


def _relative(seconds: float) -> str:
    return f"in {int(seconds)} s" if seconds >= 0 else f"{int(-seconds)} s ago"


def without_personal(report: Report) -> Report:
    """The personal claims' values hidden wherever they appear, in the table and in the steps."""
    values = [v for k, v in report.claims.items() if k in PERSONAL_CLAIMS and isinstance(v, str) and v]
    if not values:
        return report

    def hide(text: str) -> str:
        for value in values:
            text = text.replace(value, HIDDEN).replace(json.dumps(value)[1:-1], HIDDEN)
        return text

    claims = {k: HIDDEN if k in PERSONAL_CLAIMS else v for k, v in report.claims.items()}
    steps = tuple(dataclasses.replace(s, detail=hide(s.detail), fix=hide(s.fix)) for s in report.steps)
    return dataclasses.replace(report, claims=claims, steps=steps)


def _json_safe(value: Any) -> Any:
    """`value` with each NaN or infinite number (a forged claim; Python's json reads them) as its
    name in a string, so that the report stays JSON for any reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


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
        for topic, advice in [
            ("audience", audience_advice(settings.audience, settings.api_url)),
            ("ref_type", ref_type_advice(settings)),
        ]:
            if advice:
                steps.add(topic, "warn", *advice)
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
    from .verify import unverified_claims

    claims = unverified_claims(credential.value)
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
    from .settings import binds_project, from_query

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


def _minted(credential: sources.Credential, settings: Settings, now: float) -> tuple[Outcome, str]:
    from .access_token import from_service_client
    from .verify import rfc3339

    outcome = from_service_client(credential, settings, now)
    return outcome, f"minted for client {quoted(outcome.user_id)}, expires {rfc3339(outcome.expires_at)}"


def _verified(credential: sources.Credential, settings: Settings, fixed: float | None, steps: _Steps) -> Outcome | None:
    """verify's checks, each recorded, to the first failure; the clock read after the keys are found."""
    from .keys.lookup import IssuerKeys
    from .outcome import gitlab_outcome
    from .verify import Verification, checks

    steps.add("key cache", "pass" if settings.cache_dir else "warn", settings.cache_where, settings.cache_fix)
    verification = Verification(credential.value, settings, IssuerKeys.of(settings).jwk, fixed)
    for check in checks(settings):
        try:
            steps.add(check.name, "pass", check.run(verification))
        except HelperError as exc:
            steps.add(check.name, "fail", exc.problem, exc.fix)
            return None
    now = time.time() if verification.now is None else verification.now
    return gitlab_outcome(credential.value, verification.claims, settings, now)


def _check(outcome: Outcome | None, settings: Settings, asked: bool, steps: _Steps) -> None:
    """doctor runs the Authress check unless told `--check none`, and skips it when it cannot be placed."""
    from .access_token import check

    if outcome is None:
        steps.add("authress", "skip", "needs a verified token")
    elif asked and settings.check == "none":
        steps.add("authress", "skip", "--check none")
    elif not outcome.api_url or not outcome.account_id:
        status = "fail" if asked else "skip"
        steps.add("authress", status, "the audience names no Authress account", "pass --api-url to check")
    else:
        steps.run("authress", lambda: (True, check(outcome, settings)))
