"""The outcome of a run: a usable access token and what a pipeline reads about it, typed; `to_external()`
makes the data source's string map (named as the README's output table says) only where it is printed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .authress import target
from .settings import Settings
from .sources import GITLAB_ID_TOKEN, SERVICE_CLIENT_KEY
from .verify import rfc3339

# The job's claims the result carries beside the token (README, the module's outputs).
GITLAB_CLAIMS = tuple(
    "project_path project_id namespace_path ref ref_type ref_protected environment pipeline_id job_id".split()
)


def as_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Outcome:
    """The verified (or minted) token, never in a repr, and what the result says about it."""

    token: str = field(repr=False)
    kind: str  # sources.GITLAB_ID_TOKEN or sources.SERVICE_CLIENT_KEY
    user_id: str
    issuer: str
    audience: str
    account_id: str  # "" when the audience names no Authress account
    api_url: str
    expires_at: float  # the token's `exp`
    claims: Mapping[str, Any] = field(repr=False)
    at: float  # when it was verified or minted: `expires_in` counts from here

    def to_external(self) -> dict[str, str]:
        """Terraform's result: every value a string."""
        result = {
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_at": rfc3339(self.expires_at),
            "expires_in": str(max(0, int(self.expires_at - self.at))),
            "user_id": self.user_id,
            "issuer": self.issuer,
            "audience": self.audience,
            "account_id": self.account_id,
            "api_url": self.api_url,
        }
        result.update({name: as_string(self.claims.get(name)) for name in GITLAB_CLAIMS})
        return result


def gitlab_outcome(token: str, claims: Mapping[str, Any], settings: Settings, now: float) -> Outcome:
    """The verified token is the Authress access token itself; the rest is what a pipeline reads."""
    account_id, api_url = target(settings.audience, settings.api_url)
    issuer, audience, user_id = settings.issuer, settings.audience, as_string(claims["sub"])
    return Outcome(token, GITLAB_ID_TOKEN, user_id, issuer, audience, account_id, api_url, claims["exp"], claims, now)


def service_client_outcome(token: str, claims: Mapping[str, Any], api_url: str, now: float) -> Outcome:
    """A minted service-client token: the client is the user; it has no GitLab claims, so those are ""."""
    account_id = str(claims["aud"]).split(".", 1)[0]
    api_url = api_url or f"https://{account_id}.api.authress.io"
    issuer, audience, user_id = str(claims["iss"]), str(claims["aud"]), as_string(claims["sub"])
    return Outcome(
        token, SERVICE_CLIENT_KEY, user_id, issuer, audience, account_id, api_url, claims["exp"], claims, now
    )
