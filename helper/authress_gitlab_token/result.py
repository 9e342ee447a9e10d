"""The data source's result: every value a string, named as the README's output table says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .authress import target
from .settings import Settings
from .verify import rfc3339

GITLAB_CLAIMS = (
    "project_path",
    "project_id",
    "namespace_path",
    "ref",
    "ref_type",
    "ref_protected",
    "environment",
    "pipeline_id",
    "job_id",
)


def as_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def gitlab_result(token: str, claims: Mapping[str, Any], settings: Settings, now: float) -> dict[str, str]:
    """The verified token is the Authress access token itself; the rest is what a pipeline reads."""
    account_id, api_url = target(settings.audience, settings.api_url)
    return _result(token, claims, settings.issuer, settings.audience, account_id, api_url, now)


def service_client_result(token: str, claims: Mapping[str, Any], api_url: str, now: float) -> dict[str, str]:
    """A minted service-client token: the client is the user; it has no GitLab claims, so those are ""."""
    account_id = str(claims["aud"]).split(".", 1)[0]
    api_url = api_url or f"https://{account_id}.api.authress.io"
    return _result(token, claims, str(claims["iss"]), str(claims["aud"]), account_id, api_url, now)


def _result(
    token: str, claims: Mapping[str, Any], issuer: str, audience: str, account_id: str, api_url: str, now: float
) -> dict[str, str]:
    result = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_at": rfc3339(claims["exp"]),
        "expires_in": str(max(0, int(claims["exp"] - now))),
        "user_id": as_string(claims["sub"]),
        "issuer": issuer,
        "audience": audience,
        "account_id": account_id,
        "api_url": api_url,
    }
    result.update({name: as_string(claims.get(name)) for name in GITLAB_CLAIMS})
    return result
