"""The validated query and environment, as one frozen value the rest of the program reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import QueryError, quoted

DEFAULT_ISSUER = "https://gitlab.com"
DEFAULT_TOKEN_ENV = "AUTHRESS_KEY"
DEFAULT_LEEWAY = 60
MAX_LEEWAY = 300
MAX_MIN_VALIDITY = 86400

# Query keys that bind one claim each: query key -> claim name.
NAMED_BOUND_CLAIMS = {
    "subject": "sub",
    "project_path": "project_path",
    "namespace_path": "namespace_path",
    "ref": "ref",
    "ref_type": "ref_type",
    "ref_protected": "ref_protected",
    "environment": "environment",
}


@dataclass(frozen=True)
class BoundClaim:
    """The claim must be present and match one of the globs (`*`, `?`) as a whole."""

    claim: str
    globs: tuple[str, ...]
    source: str  # the query key that asked for it, for messages


@dataclass(frozen=True)
class Settings:
    audience: str
    issuer: str
    token_env: str
    bound_claims: tuple[BoundClaim, ...]
    leeway_seconds: int
    min_validity_seconds: int
    check: str = "none"  # "none" | "authress": the live check after verification
    api_url: str = ""  # the Authress API base URL when the query names one; "" = derived from the audience


def from_query(query: Mapping[str, str], environ: Mapping[str, str]) -> Settings:
    """Apply defaults and the checks a schema cannot express; `query` is already schema-valid."""
    issuer, issuer_source = issuer_of(query, environ)
    check_issuer(issuer, issuer_source)

    bound = [BoundClaim(claim, (query[key],), key) for key, claim in NAMED_BOUND_CLAIMS.items() if key in query]
    if "bound_claims" in query:
        bound.extend(parse_bound_claims(query["bound_claims"]))

    leeway = int(query.get("leeway_seconds", DEFAULT_LEEWAY))
    if leeway > MAX_LEEWAY:
        raise QueryError(
            f'query key "leeway_seconds" is "{leeway}", more than {MAX_LEEWAY}; '
            "a large leeway accepts expired tokens, fix the runner's clock instead"
        )
    min_validity = int(query.get("min_validity_seconds", 0))
    if min_validity > MAX_MIN_VALIDITY:
        raise QueryError(
            f'query key "min_validity_seconds" is "{min_validity}", '
            f"more than {MAX_MIN_VALIDITY}; GitLab ID tokens live as long as the job timeout"
        )
    return Settings(
        audience=query["audience"],
        issuer=issuer,
        token_env=query.get("token_env", DEFAULT_TOKEN_ENV),
        bound_claims=tuple(bound),
        leeway_seconds=leeway,
        min_validity_seconds=min_validity,
        check=query.get("check", "none"),
        api_url=query.get("api_url", "").rstrip("/"),
    )


def issuer_of(query: Mapping[str, str], environ: Mapping[str, str]) -> tuple[str, str]:
    """The issuer the query names, else $CI_SERVER_URL, else gitlab.com; and where it came from."""
    issuer = query.get("issuer")
    if issuer is not None:
        return issuer, 'query key "issuer"'
    if environ.get("CI_SERVER_URL"):
        return environ["CI_SERVER_URL"], "CI_SERVER_URL"
    return DEFAULT_ISSUER, "the default issuer"


def check_issuer(issuer: str, source: str) -> None:
    """Keys are fetched from the issuer, so it must be a plain https origin (and path) we can trust."""
    problem = _issuer_problem(issuer)
    if problem:
        raise QueryError(
            f'{source} is {quoted(issuer)}, which {problem}; set the query key "issuer" '
            'to the exact `iss` of your GitLab ID tokens, e.g. "https://gitlab.com"'
        )


def _issuer_problem(issuer: str) -> str | None:
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL (host or port)"
    if parts.scheme != "https":
        return "is not an https URL"
    if not parts.hostname or parts.username or parts.password:
        return "has no host, or has user info"
    if parts.query or parts.fragment or issuer.endswith("/"):
        return "has a query, a fragment or a trailing slash"
    return None


def parse_bound_claims(text: str) -> list[BoundClaim]:
    """`bound_claims`: a JSON object from claim name to a glob or a non-empty list of globs."""
    hint = 'expected a JSON object such as {"pipeline_source": ["push", "web"]}'
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise QueryError(f'query key "bound_claims" is not JSON; {hint}') from None
    if not isinstance(value, dict) or not value:
        raise QueryError(f'query key "bound_claims" is not a non-empty JSON object; {hint}')
    bound = []
    for claim, globs in value.items():
        if isinstance(globs, str):
            globs = [globs]
        if not claim or not isinstance(globs, list) or not globs or not all(isinstance(g, str) and g for g in globs):
            raise QueryError(
                f"bound_claims[{quoted(claim)}] must be a non-empty string or a non-empty "
                f"list of non-empty strings; {hint}"
            )
        bound.append(BoundClaim(claim, tuple(globs), "bound_claims"))
    return bound
