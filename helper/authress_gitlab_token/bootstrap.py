"""`setup --plan` / `--apply`: the trusted identity and the pipeline's access record that the guide
describes, compared with what the account has, then made so. Inputs are refused before any request."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import entry, service_client, settings
from .authress import account_from_audience, audience_warning, target
from .errors import HelperError, QueryError, TokenMalformed, quoted
from .setup_guide import Guide

if TYPE_CHECKING:
    from .admin_api import AdminApi

TOOL = "authress-gitlab-token"
# The description's recordId allows ^[a-zA-Z0-9-_:|~]+$, 1 to 100 characters, and a `sub` holds "/" and
# "." at least; so the ID is this prefix and the first 32 hex digits of SHA-256 over the sub's UTF-8.
RECORD_ID_PREFIX = "gitlab-ci-"
_ROLE = re.compile(r"^[a-zA-Z0-9-._:@]{1,64}$")  # Statement.roles items
_RESOURCE = re.compile(  # Resource.resourceUri
    r"^([*]|[/]?((([a-zA-Z0-9-_.+=~|@]{1,128}|[*])(:([a-zA-Z0-9-_.+=~|@]{1,128}|[*]|))*)/?){0,15}([/][*]|[/]|))$"
)


def record_id(user_id: str) -> str:
    """The same ID for the same `sub` on every run, so a rerun finds the record it made."""
    return RECORD_ID_PREFIX + hashlib.sha256(user_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Desired:
    """What the account should have for one pipeline."""

    guide: Guide
    roles: tuple[str, ...]
    resource: str

    @property
    def record_id(self) -> str:
        return record_id(self.guide.user_id)

    def record(self) -> dict[str, Any]:
        """The access record as createRecord and updateRecord take it: users on the record, one statement."""
        g = self.guide
        name = f"GitLab CI {g.project} {g.ref_type} {g.ref} (managed by {TOOL})"
        return {
            "recordId": self.record_id,
            "name": name if len(name) <= 128 else name[:100] + f"... (managed by {TOOL})",
            "description": (
                f"Grants the GitLab CI ID token whose sub is {g.user_id} (issuer {g.issuer}). Managed by "
                f"`{TOOL} setup --apply`: a rerun puts back what is changed here."
            )[:1024],
            "users": [{"userId": g.user_id}],
            "statements": [{"roles": list(self.roles), "resources": [{"resourceUri": self.resource}]}],
        }


_SYMBOLS = {"create": "+", "update": "~", "unchanged": "="}  # Terraform's plan symbols


@dataclass(frozen=True)
class Change:
    action: str  # "create", "update" or "unchanged"
    kind: str  # "trusted_identity" or "access_record"
    fields: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None

    def line(self) -> str:
        f = self.fields
        if self.kind == "trusted_identity":
            what = f"trusted identity issuer {quoted(f['issuer'])} audience {quoted(f['audience'])}"
        else:
            what = (
                f"access record {quoted(f['record_id'])} user {quoted(f['user_id'], 200)} "
                f"roles {_list(f['roles'])} on {quoted(f['resource'])}"
            )
            if self.before is not None:
                what += f" (was: {_describe(self.before)})"
        return f"{_SYMBOLS[self.action]} {self.action} {what}"

    def to_json(self) -> dict[str, Any]:
        value = {"action": self.action, "kind": self.kind, **self.fields}
        return value if self.before is None else {**value, "before": self.before}


def run(
    guide: Guide,
    roles: Sequence[str],
    resource: str,
    api_url: str,
    key_env: str,
    environ: Mapping[str, str],
    *,
    apply: bool,
) -> tuple[str, list[Change]]:
    """(the API URL called, the changes): inputs checked, the account read, and with `apply` changed."""
    from . import admin_api

    wanted = desired_state(guide, roles, resource)
    admin = admin_target(guide, api_url, environ, key_env)
    token = service_client.mint(admin.key, admin.api_url).token
    with admin_api.connect(admin.api_url, token, admin.who, settings.http_timeout(environ)) as api:
        changes = plan(wanted, api.identities(), api.record(wanted.record_id))
        if apply:
            make(api, wanted, changes)
    return admin.api_url, changes


class PartiallyApplied(HelperError):
    """A write failed after others succeeded; the message lists what was made."""


def plan(desired: Desired, identities: Sequence[tuple[str, str]], record: Mapping[str, Any] | None) -> list[Change]:
    """What to do, given the account's identities and the record found under the desired ID (or None)."""
    g = desired.guide
    identity = {"issuer": g.issuer, "audience": g.audience}
    changes = [Change("unchanged" if (g.issuer, g.audience) in identities else "create", "trusted_identity", identity)]
    fields = {
        "record_id": desired.record_id,
        "user_id": g.user_id,
        "roles": list(desired.roles),
        "resource": desired.resource,
    }
    if record is None:
        changes.append(Change("create", "access_record", fields))
    elif _normal(record) == _normal(desired.record()):
        changes.append(Change("unchanged", "access_record", fields))
    else:
        changes.append(Change("update", "access_record", fields, _summary(record)))
    return changes


def make(api: AdminApi, desired: Desired, changes: Sequence[Change]) -> None:
    """Make each change in order; when one fails after another was made, say which were made."""
    made: list[Change] = []
    for change in changes:
        try:
            if change.action == "unchanged":
                continue
            entry.say_if_interrupted(_interrupted(made, change))
            if change.kind == "trusted_identity":
                api.link_identity(change.fields["issuer"], change.fields["audience"])
            elif change.action == "create":
                api.create_record(desired.record())
            else:
                api.update_record(desired.record_id, desired.record())
        except HelperError as exc:
            if not made:
                raise
            done = "; ".join(c.line() for c in made)
            raise PartiallyApplied(f"{exc}. Already made before this failure: {done}") from None
        made.append(change)
        entry.say_if_interrupted(_interrupted(made, None))


def _interrupted(made: Sequence[Change], doing: Change | None) -> str:
    """What an interrupt says: what was made, and the write under way (which may be made too)."""
    done = " and ".join(f"{c.action}d the {c.kind.replace('_', ' ')}" for c in made) or "made no change"
    doing_too = f"; {doing.action[:-1]}ing the {doing.kind.replace('_', ' ')} was under way" if doing else ""
    return f"setup --apply had {done}{doing_too}; run it again to finish"


def _normal(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """What setup manages in a record: its name, users and statements (order-insensitive), and that it
    is not DELETED (deleteRecord keeps the record with that status)."""
    users = sorted(str(u.get("userId")) for u in record.get("users") or [] if isinstance(u, dict))
    statements = sorted(
        (
            tuple(sorted(map(str, s.get("roles") or []))),
            tuple(sorted(str(r.get("resourceUri")) for r in s.get("resources") or [] if isinstance(r, dict))),
            tuple(sorted(str(u.get("userId")) for u in s.get("users") or [] if isinstance(u, dict))),
        )
        for s in record.get("statements") or []
        if isinstance(s, dict)
    )
    return record.get("name"), tuple(users), tuple(statements), record.get("status") == "DELETED"


def _summary(record: Mapping[str, Any]) -> dict[str, Any]:
    name, users, statements, deleted = _normal(record)
    return {
        "name": name,
        "status": "DELETED" if deleted else "ACTIVE",
        "users": list(users),
        "statements": [{"roles": list(r), "resources": list(res)} for r, res, _ in statements],
    }


def _describe(before: Mapping[str, Any]) -> str:
    parts = [f"roles {_list(s['roles'])} on {_list(s['resources'])}" for s in before["statements"]]
    deleted = "DELETED, " if before["status"] == "DELETED" else ""
    return f"{deleted}users {_list(before['users'])}, " + ("; ".join(parts) or "no statements")


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(quoted(v) for v in values) + "]"


# -- inputs, refused before any request ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    api_url: str
    key: service_client.AccessKey
    who: str  # the admin, as messages name it


def desired_state(guide: Guide, roles: Sequence[str], resource: str) -> Desired:
    if not roles:
        raise QueryError("no role to grant; pass --role ROLE_ID (repeatable) with --plan and --apply")
    for role in roles:
        if not _ROLE.match(role):
            raise QueryError(
                f"--role is {quoted(role)}; Authress role IDs are 1 to 64 of a-z A-Z 0-9 - . _ : @ (Statement.roles)"
            )
    if not _RESOURCE.match(resource) or len(resource) > 512:
        raise QueryError(
            f"--resource is {quoted(resource)}, not an Authress resource URI (Resource.resourceUri); "
            'pass "*" for every resource, or a path like "/documents/*"'
        )
    stray = re.search(r"[^a-zA-Z0-9\-._|/~:@]", guide.user_id)
    if stray:
        raise QueryError(
            f"the pipeline's user ID {quoted(guide.user_id)} holds {quoted(stray[0])}, which Authress user IDs "
            "may not (User.userId allows a-z A-Z 0-9 - . _ | / ~ : @); apply from a branch or tag without it"
        )
    return Desired(guide, tuple(dict.fromkeys(roles)), resource)


def admin_target(guide: Guide, api_url: str, environ: Mapping[str, str], key_env: str) -> Target:
    """The API to call and the admin key to call it with; every refusal before any request."""
    if api_url:
        parts = urlsplit(api_url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise QueryError(f"--api-url is {quoted(api_url)}; pass the https base URL of the Authress API")
    problem = audience_warning(guide.audience, api_url)
    if problem:
        raise QueryError(problem)
    account, url = target(guide.audience, api_url.rstrip("/"))
    if not url:
        raise QueryError(
            f"the audience {quoted(guide.audience)} names no Authress API URL; pass --api-url with your "
            "account's API URL or custom domain"
        )
    key = admin_key(environ, key_env)
    named = account or account_from_audience(url)[0]
    if named and named != key.account_id:
        raise QueryError(
            f"the admin key in ${key_env} is for account {quoted(key.account_id)}, but the audience names account "
            f"{quoted(named)}; export a key of a service client of account {quoted(named)}"
        )
    return Target(url, key, f"service client {quoted(key.client_id)} (key from ${key_env})")


def admin_key(environ: Mapping[str, str], name: str) -> service_client.AccessKey:
    """The service-client key that may change the account; a GitLab ID token never can."""
    from .sources import read_variable

    fix = (
        f"export {name} with the access key of an Authress service client that has the account's admin "
        "permissions (Authress -> Service clients -> Create access key)"
    )
    value = read_variable(environ, name)
    if value is None:
        raise QueryError(f"no admin key in ${name}; {fix}")
    if value.count(".") == 2:
        raise QueryError(
            f"${name} holds a JWT (a GitLab ID token?), not an admin key: the pipeline's token is accepted only "
            "once the trusted identity and its access record exist, so it cannot make them; " + fix
        )
    if not service_client.looks_like_access_key(value):
        raise QueryError(f"${name} holds no Authress service-client access key (CLIENT.KEY.ACCOUNT.PRIVATE); {fix}")
    try:
        return service_client.parse(value, f"${name}")
    except TokenMalformed as exc:
        raise QueryError(str(exc)) from None
