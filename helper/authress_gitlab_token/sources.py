"""Where a credential comes from. One detector per source: None when it is not there, an error
that says what to add when it should be there but is not usable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import TokenMalformed, TokenNotFound

MAX_TOKEN_BYTES = 16 * 1024  # GitLab ID tokens are about 1-2 KB
# A compact JWS is base64url parts joined by dots; a base64 decoder would skip anything else silently.
_NOT_JWS = re.compile(r"[^A-Za-z0-9_.-]")
GITLAB_ID_TOKEN = "gitlab-id-token"
SERVICE_CLIENT_KEY = "service-client-key"


@dataclass(frozen=True)
class Credential:
    """A secret and where it came from; `value` never appears in a repr."""

    kind: str  # GITLAB_ID_TOKEN or SERVICE_CLIENT_KEY
    origin: str  # e.g. "$AUTHRESS_KEY"
    value: str = field(repr=False)


def read_variable(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value with surrounding whitespace stripped (a pasted or `cat`-ed token often
    ends in a newline; the signature covers only the compact JWS, so stripping loses nothing)."""
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if len(value) > MAX_TOKEN_BYTES:
        raise TokenMalformed(
            f"${name} holds {len(value)} bytes, more than a token ever needs ({MAX_TOKEN_BYTES})",
            "set it to the job's ID token from `id_tokens:`",
        )
    return value


def gitlab_id_token(environ: Mapping[str, str], name: str, audience: str) -> Credential | None:
    """The job's ID token, from the variable its `id_tokens:` entry names."""
    value = read_variable(environ, name)
    if value is None:
        component_token = environ.get("AUTHRESS_TOKEN_VARIABLE")  # set by the CI/CD component's job
        if component_token and component_token != name:
            # Its token is in another variable on purpose: only its verified export sets this one.
            raise TokenNotFound(
                f"${name} is not set: the CI/CD component's before_script did not run in this job",
                "put `- !reference [.authress-gitlab-token, before_script]` first in the job's before_script",
            )
        if environ.get("GITLAB_CI") == "true":
            raise TokenNotFound(
                f"${name} is not set in this GitLab job",
                f'add to the job: id_tokens: {{ {name}: {{ aud: "{audience}" }} }} (GitLab >= 15.7)',
            )
        return None
    if value.count(".") != 2:
        return None
    stray = _NOT_JWS.search(value)
    if stray:
        what = "whitespace" if stray[0].isspace() else "a character outside base64url"
        raise TokenMalformed(
            f"${name} holds {what} at position {stray.start()} inside the token",
            "a JWT has none: pass the job's ID token from `id_tokens:` unchanged (surrounding whitespace is stripped)",
        )
    return Credential(GITLAB_ID_TOKEN, f"${name}", value)


def service_client_key(environ: Mapping[str, str], name: str) -> Credential | None:
    """An Authress service-client access key (CLIENT_ID.KEY_ID.ACCOUNT_ID.PRIVATE_KEY), for runs outside
    GitLab: a laptop or another CI. Its private key must load, or the error says to copy it again."""
    value = read_variable(environ, name)
    if value is None or value.count(".") != 3:
        return None
    from . import service_client

    if not service_client.looks_like_access_key(value):
        return None
    service_client.parse(value, f"${name}")
    return Credential(SERVICE_CLIENT_KEY, f"${name}", value)


def find_credential(environ: Mapping[str, str], name: str, audience: str) -> Credential:
    """The first source that is present; an error that names the variable when none is."""
    credential = gitlab_id_token(environ, name, audience) or service_client_key(environ, name)
    if credential is not None:
        return credential
    if read_variable(environ, name) is not None:
        raise TokenMalformed(
            f"${name} is set but holds neither a JWT (three dot-separated parts) nor an Authress "
            "service-client access key (four parts)",
            "in GitLab set it from the job's `id_tokens:` entry",
        )
    raise TokenNotFound(
        f"no token in ${name}",
        f'in the GitLab job add id_tokens: {{ {name}: {{ aud: "{audience}" }} }}, '
        f"or outside GitLab export {name} with a GitLab ID token",
    )
