"""What Authress needs beside the token: the account ID and API URL, the audience sanity check, and the
live pre-flight check that names the missing setup step."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .calls import Budget, CallFailed, Wording, call_json
from .environment import Http
from .errors import AuthressCheckFailed, QueryError, quoted
from .sources import SERVICE_CLIENT_KEY

# https://ACCOUNT.api.authress.io or https://ACCOUNT.api-REGION.authress.io (a trailing slash tolerated).
_ACCOUNT_API = re.compile(r"^https://(?P<account>[a-z0-9][a-z0-9-]*)\.(?P<api>api(?:-[a-z0-9-]+)?)\.authress\.io/?\Z")
# An account API host, api-REGION included: where an audience or api_url names the account.
_PROVIDER_AUDIENCE = re.compile(r"^https://(?P<account>[^./\s]+)\.api(?:-[a-z0-9-]+)?\.authress\.[^/\s]+\Z")
# The newest authress/authress provider's own rule for the token's `aud`, its API URL (Go's `$` is \Z):
# no api-REGION, no custom domain, no service-client token (aud ACCOUNT.accounts.authress.io).
_NEWEST_PROVIDER_AUDIENCE = re.compile(r"^https://[^.]+\.api\.authress\.[^/]+\Z")
ATTEMPTS = 3  # the check's GET, retried on connection errors, timeouts, 429 and 5xx
OK = (200,)  # the account, readable: the check passes (401, 403 and 404 each name their fix)
WORDING = Wording(
    lead="could not check the token with Authress at",
    reach='check the query key "api_url" and that this machine can reach it',
    down="Authress may be down: retry the job later",
    not_ours='check that the query key "api_url" names the Authress API',
    url_fix='check the query key "api_url"',
)


def account_from_audience(audience: str) -> tuple[str, str]:
    """(account_id, api_url) for an Authress account API audience; ("", "") for anything else."""
    match = _ACCOUNT_API.match(audience)
    if match is None:
        return "", ""
    account = match["account"]
    return account, f"https://{account}.{match['api']}.authress.io"


def target(audience: str, api_url: str) -> tuple[str, str]:
    """(account_id, api_url): a named api_url wins; the account ID comes from the audience, else from an
    api_url host of the form ACCOUNT.api[-REGION].authress.*; "" where neither names it."""
    account, derived = account_from_audience(audience)
    if not api_url:
        return account, derived
    if not account:
        match = _PROVIDER_AUDIENCE.match(api_url)
        account = match["account"] if match else ""
    return account, api_url


def audience_warning(audience: str, api_url: str) -> str | None:
    """audience_advice as one line."""
    advice = audience_advice(audience, api_url)
    return "; ".join(advice) if advice else None


def audience_advice(audience: str, api_url: str) -> tuple[str, str] | None:
    """Why the audience names no Authress API (neither an account API URL nor the `api_url` custom domain),
    and what to do; or None when it names one."""
    if _PROVIDER_AUDIENCE.match(audience):
        return None
    try:
        if api_url and urlsplit(audience.rstrip("/"))[:2] == urlsplit(api_url)[:2]:
            return None  # the custom domain the user named
    except ValueError:  # not a URL at all (e.g. "https://["): the warning below says what to use
        pass
    return (
        f"audience {quoted(audience)} is not an Authress account API URL (https://ACCOUNT.api.authress.io) "
        'nor the custom domain in the query key "api_url"',
        "the newest Authress Terraform provider refuses such tokens: "
        "use your account's API URL as the job's `id_tokens:` aud and as the trusted identity's audience",
    )


def newest_provider_warning(token_audience: str) -> str | None:
    """Why the newest provider refuses a token whose `aud` provider 2.0.39 accepts, or None when it does not."""
    if _NEWEST_PROVIDER_AUDIENCE.match(token_audience):
        return None
    return (
        f"the token's aud {quoted(token_audience)} works with authress/authress 2.0.39 (custom_domain) only: the "
        "newest provider takes its API URL from aud and refuses any but https://ACCOUNT.api.authress.io (no "
        'api-REGION, custom domain or service-client token); keep version = "2.0.39" for this token'
    )


@dataclass(frozen=True)
class Caller:
    """Who the token says it is, for the diagnosis; nothing here is secret."""

    kind: str  # sources.GITLAB_ID_TOKEN or sources.SERVICE_CLIENT_KEY
    user_id: str
    issuer: str
    audience: str


def check(token: str, api_url: str, account_id: str, caller: Caller, http: Http) -> str:
    """GET /v1/accounts/{accountId} with the token as Bearer, as the provider does first. Returns what
    passed; raises AuthressCheckFailed with the one setup step to fix (never the token)."""
    if not api_url or not account_id:
        raise QueryError(
            f"the Authress check needs the account's API URL, and the audience {quoted(caller.audience)} names none",
            'set the query key "api_url" to "https://ACCOUNT_ID.api.authress.io"',
        )
    url = f"{api_url}/v1/accounts/{quote(account_id, safe='')}"
    status, body = _get(url, token, http)
    where = f"Authress at {quoted(url)}"
    if status in OK:
        if not isinstance(body, Mapping) or body.get("accountId") != account_id:
            raise AuthressCheckFailed(
                f"{where} answered 200 without account {quoted(account_id)}",
                'check that the query key "api_url" names the Authress API of that account',
            )
        return f"account {quoted(account_id)} is readable by user ID {quoted(caller.user_id)}"
    if status == 401:
        problem, fix = _untrusted(caller, account_id)
        raise AuthressCheckFailed(f"{where} answered 401: {problem}", fix)
    if status in (403, 404):
        # Short words and the API URL without its path: with the user ID cut to errors.KEEP_QUOTED, both
        # sentences fit output.MAX_LINE whole, however long the branch name (never cut in the middle).
        missing = ", or no such account (check the audience)" if status == 404 else " (trusted token)"
        raise AuthressCheckFailed(
            f"Authress at {quoted(api_url)} answered {status}: the user has no access to account "
            f"{quoted(account_id)}{missing}",
            f"in Authress create an access record (Access records -> "
            f"Create) whose user is exactly {quoted(caller.user_id)}, with the roles Terraform needs",
        )
    raise AuthressCheckFailed(
        f"{where} answered HTTP {status}, expected {'/'.join(map(str, OK))}",
        'check that the query key "api_url" names the Authress API (no proxy or login page in between)',
    )


def _untrusted(caller: Caller, account_id: str) -> tuple[str, str]:
    if caller.kind == SERVICE_CLIENT_KEY:
        return (
            f"Authress does not accept the token minted for service client {quoted(caller.user_id)}",
            "check that "
            f"the client and its access key still exist in account {quoted(account_id)} (Authress -> Service "
            "clients), or create a new access key",
        )
    return (
        "Authress does not trust this token",
        "in Authress add an OIDC trusted identity (Connections -> OIDC "
        f"trusted identities) with issuer {quoted(caller.issuer)} and audience {quoted(caller.audience)}, "
        "the same string as the job's `id_tokens:` aud",
    )


def _get(url: str, token: str, http: Http) -> tuple[int, Any]:
    """One GET (retried within its budget); the status and, for an accepted one, the JSON body if any."""
    from . import network

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        # No redirects (network.py): the Bearer token goes to the configured API URL and nowhere else.
        with network.session(http) as client:
            budget = Budget(ATTEMPTS, http.timeout)
            answer = call_json(client, "GET", url, WORDING, budget, accepted=OK, headers=headers)
    except CallFailed as exc:
        raise AuthressCheckFailed(exc.problem, exc.fix) from None
    return answer.status, answer.json
