"""The validated query, with what the environment adds to it (environment.py), as one frozen value the
rest of the program reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .environment import DEFAULT_HTTP, DEFAULT_TOKEN_ENV, Http, http_from, locate
from .errors import QueryError, quoted

DEFAULT_ISSUER = "https://gitlab.com"
DEFAULT_LEEWAY = 60
MAX_LEEWAY = 300
MAX_MIN_VALIDITY = 86400
MAX_GLOB_LENGTH = 1024  # longer than any claim GitLab sets; bench/globs.py times globs up to this

# Query keys that bind one claim each: query key -> claim name.
NAMED_BOUND_CLAIMS = {
    "subject": "sub",
    **{key: key for key in ("project_path", "namespace_path", "ref", "ref_type", "ref_protected", "environment")},
}
# Claims that name the project (or its group): a query must bind one, or say allow_any_project = "true".
PROJECT_CLAIMS = ("project_path", "namespace_path", "sub", "project_id", "namespace_id")
SUB_PREFIX = "project_path:"  # GitLab's `sub`: project_path:GROUP/PROJECT:ref_type:TYPE:ref:REF


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
    http: Http = DEFAULT_HTTP
    cache_dir: Path | None = None  # where the issuer's keys are cached; None: no disk cache
    cache_where: str = ""  # a line saying where that is, or why there is none (doctor shows it)
    cache_fix: str = ""  # what to do when there is none


def from_query(query: Mapping[str, str], environ: Mapping[str, str]) -> Settings:
    """Apply defaults and the checks a schema cannot express; `query` is already schema-valid. The
    environment is read here, once: everything below takes these values."""
    issuer, issuer_source = issuer_of(query, environ)
    check_issuer(issuer, issuer_source)

    bound = [BoundClaim(claim, (query[key],), key) for key, claim in NAMED_BOUND_CLAIMS.items() if key in query]
    if "bound_claims" in query:
        bound.extend(parse_bound_claims(query["bound_claims"]))
    if query.get("allow_any_project") != "true" and not binds_project(bound):
        raise QueryError(
            "the query binds no project, so a token of any GitLab project with this audience would pass",
            'set the query key "project_path" (e.g. "my-org/authress-configuration"), the query key '
            '"namespace_path" or the query key "subject" with the top-level group in full (no "*" or "?" in '
            'it), or set the query key "allow_any_project" to "true" if any project may really use it',
        )
    http = http_from(environ)
    cache_dir, cache_where, cache_fix = locate(environ)

    leeway = int(query.get("leeway_seconds", DEFAULT_LEEWAY))
    if leeway > MAX_LEEWAY:
        raise QueryError(
            f'query key "leeway_seconds" is "{leeway}", more than {MAX_LEEWAY}',
            "a large leeway accepts expired tokens, fix the runner's clock instead",
        )
    min_validity = int(query.get("min_validity_seconds", 0))
    if min_validity > MAX_MIN_VALIDITY:
        raise QueryError(
            f'query key "min_validity_seconds" is "{min_validity}", more than {MAX_MIN_VALIDITY}',
            "GitLab ID tokens live as long as the job timeout",
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
        http=http,
        cache_dir=cache_dir,
        cache_where=cache_where,
        cache_fix=cache_fix,
    )


def issuer_of(query: Mapping[str, str], environ: Mapping[str, str]) -> tuple[str, str]:
    """The issuer the query names, else $CI_SERVER_URL, else gitlab.com; and where it came from."""
    issuer = query.get("issuer")
    if issuer is not None:
        return issuer, 'query key "issuer"'
    if environ.get("CI_SERVER_URL"):
        return environ["CI_SERVER_URL"], "CI_SERVER_URL"
    return DEFAULT_ISSUER, "the default issuer"


def binds_project(bound: list[BoundClaim]) -> bool:
    """Whether a bound claim pins the project to groups someone owns: every glob of it must (a list
    passes when any glob matches, so one loose glob opens it all)."""
    return any(b.claim in PROJECT_CLAIMS and all(glob_binds(b.claim, g) for g in b.globs) for b in bound)


def glob_binds(claim: str, glob: str) -> bool:
    """Whether `glob` names the top-level group in full, without `*` or `?`. Anyone on the instance can
    create a group of an unclaimed name, and any project, subgroup or ref inside it, so a wildcard there
    (`*`, `*/*`, `?*`, `my-org*/x`) lets another owner's token match. IDs are bound only when exact."""
    if claim in ("project_id", "namespace_id"):
        return not any(c in glob for c in "*?")
    if claim == "sub":
        if not glob.startswith(SUB_PREFIX):
            return False
        glob = glob[len(SUB_PREFIX) :]
        if "/" not in glob:  # `project_path:my-org*` or `project_path:*:...`: the group is open
            return False
    group = glob.split("/", 1)[0]
    return bool(group) and not any(c in group for c in "*?")


def ref_type_advice(settings: Settings) -> tuple[str, str] | None:
    """`ref = "main"` alone also passes a tag named main, which anyone who may push a tag can create:
    what is wrong and what to do."""
    claims = {b.claim: b for b in settings.bound_claims}
    if "ref" not in claims or "ref_type" in claims or "ref_path" in claims:
        return None
    refs = " or ".join(quoted(g) for g in claims["ref"].globs)
    return (
        f"ref is bound to {refs} but ref_type is not, so a tag of that name would match too",
        'set "ref_type" to "branch" (or "tag")',
    )


def check_issuer(issuer: str, source: str) -> None:
    """Keys are fetched from the issuer, so it must be a plain https origin (and path) we can trust."""
    problem = _issuer_problem(issuer)
    if problem:
        raise QueryError(
            f"{source} is {quoted(issuer)}, which {problem}",
            'set the query key "issuer" to the exact `iss` of your GitLab ID tokens, e.g. "https://gitlab.com"',
        )


def _issuer_problem(issuer: str) -> str | None:
    if any(c.isspace() or not c.isprintable() for c in issuer):
        # urlsplit drops tabs and newlines silently; the URL later requested would differ from this one
        return "holds whitespace or a control character"
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
        raise QueryError('query key "bound_claims" is not JSON', f"{hint}") from None
    if not isinstance(value, dict) or not value:
        raise QueryError('query key "bound_claims" is not a non-empty JSON object', f"{hint}")
    bound = []
    for claim, globs in value.items():
        if isinstance(globs, str):
            globs = [globs]
        if not claim or not isinstance(globs, list) or not globs or not all(isinstance(g, str) and g for g in globs):
            raise QueryError(
                f"bound_claims[{quoted(claim)}] must be a non-empty string or a non-empty list of non-empty strings",
                f"{hint}",
            )
        if any(len(g) > MAX_GLOB_LENGTH for g in globs):
            raise QueryError(
                f"bound_claims[{quoted(claim)}] holds a glob longer than {MAX_GLOB_LENGTH} characters",
                "no GitLab claim is that long: shorten it with `*`",
            )
        bound.append(BoundClaim(claim, tuple(globs), "bound_claims"))
    return bound
