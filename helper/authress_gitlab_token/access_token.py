"""The access token from settings and a credential: the GitLab ID token verified, or a token minted
from a service-client key; then the optional Authress check. `external` and `env` run it whole;
`doctor` runs its parts one by one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import sources
from .errors import VerificationFailed, quoted
from .settings import Settings

if TYPE_CHECKING:
    from .outcome import Outcome


def obtain(settings: Settings, credential: sources.Credential, now: float | None = None) -> Outcome:
    """The verified (or minted) token and the result; then the Authress check when asked for."""
    if credential.kind == sources.SERVICE_CLIENT_KEY:
        outcome = from_service_client(credential, settings, time.time() if now is None else now)
    else:
        outcome = from_gitlab(credential, settings, now)
    if settings.check == "authress":
        check(outcome, settings)
    return outcome


def from_gitlab(credential: sources.Credential, settings: Settings, now: float | None) -> Outcome:
    """`now` None: the clock, read once the keys are found (a fetch can take seconds). The key fetch a
    cold run needs starts before verify imports jwt, so the two overlap."""
    from .keys.lookup import IssuerKeys

    issuer_keys = IssuerKeys.of(settings).start()
    from . import verify
    from .outcome import gitlab_outcome

    claims = verify.verify(credential.value, settings, issuer_keys.jwk, now)
    return gitlab_outcome(credential.value, claims, settings, time.time() if now is None else now)


def from_service_client(credential: sources.Credential, settings: Settings, now: float) -> Outcome:
    """A service-client key never passes GitLab verification, so it cannot satisfy bound claims: a
    laptop's key must not quietly stand in for `ref = "main"`. It must be for the audience's account."""
    from . import service_client
    from .authress import target
    from .outcome import service_client_outcome

    if settings.bound_claims:
        keys_named = ", ".join(dict.fromkeys(quoted(b.source) for b in settings.bound_claims))
        raise VerificationFailed(
            f"{credential.origin} holds an Authress service-client key, which has no GitLab claims to match "
            f"{keys_named}",
            "outside GitLab leave the bound claims null, or run in the GitLab job with `id_tokens:`",
        )
    key = service_client.parse(credential.value, credential.origin)
    account_id, api_url = target(settings.audience, settings.api_url)
    if account_id and account_id != key.account_id:
        raise VerificationFailed(
            f"{credential.origin} holds a service-client key for account {quoted(key.account_id)}, but the "
            f"audience names account {quoted(account_id)}",
            "use a key from that account",
        )
    lifetime = max(service_client.LIFETIME, settings.min_validity_seconds + 60)
    minted = service_client.mint(key, settings.api_url, lifetime, now)
    return service_client_outcome(minted.token, minted.claims, api_url, now)


def check(outcome: Outcome, settings: Settings) -> str:
    """The live Authress check for this outcome; what passed, or AuthressCheckFailed with the fix."""
    from . import authress

    caller = authress.Caller(outcome.kind, outcome.user_id, outcome.issuer, outcome.audience)
    token, api_url, account_id = outcome.token, outcome.api_url, outcome.account_id
    return authress.check(token, api_url, account_id, caller, settings.http)
