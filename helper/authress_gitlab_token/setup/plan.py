"""`setup --plan`: the access records and trusted identity wanted for each pipeline, compared field by
field with what the account holds, from inputs judged here first. Pure values in and out;
setup/account.py does the calls."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import QueryError, quoted
from .guide import Guide
from .resource_uri import resource_uri_valid

TOOL = "authress-gitlab-token"
# The description's recordId allows ^[a-zA-Z0-9-_:|~]+$, 1 to 100 characters, and a `sub` holds "/" and
# "." at least; so the ID is this prefix and the first 32 hex digits of SHA-256 over the sub's UTF-8.
RECORD_ID_PREFIX = "gitlab-ci-"
MARKER = {"managed-by": TOOL}  # AccessRecord.tags: how every mode knows a record is this tool's (ours())
NAME_SUFFIX = f" (managed by {TOOL})"
NAME_MAX = 128  # AccessRecord.name maxLength
DESCRIPTION_MAX = 1024  # AccessRecord.description maxLength
USER_ID_MAX = 128  # User.userId maxLength in the 2024 SDK (the 2023 description says 64)
DEFAULT_EXPRESSION = "{sub}"  # Identity.userIdExpression default (2024 SDK)
PENDING = ("create", "update", "delete")
_ROLE = re.compile(r"^[a-zA-Z0-9-._:@]{1,64}$")  # Statement.roles items
# User.userId in the 2024 SDK: ^[a-zA-Z0-9+._|\/~:@\s-]+$ (the 2023 description had no "+" and no space).
_USER_ID_STRAY = re.compile(r"[^a-zA-Z0-9+._|/~:@\s-]")
_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "unchanged": "=", "absent": "=", "problem": "!"}


def record_id(user_id: str) -> str:
    """The same ID for the same `sub` on every run, so a rerun finds the record it made."""
    return RECORD_ID_PREFIX + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def record_name(guide: Guide) -> str:
    """Within AccessRecord.name's 128 characters, the marker suffix always whole."""
    head = f"GitLab CI {guide.project} {guide.ref_type} {guide.ref}"
    room = NAME_MAX - len(NAME_SUFFIX)
    return (head if len(head) <= room else head[: room - 3] + "...") + NAME_SUFFIX


def ours(record: Mapping[str, Any]) -> bool:
    """Setup's own, for every mode (plan, apply, destroy, list): its marker tag. The ID is derived from
    the `sub` and the name is text anyone may type, so neither says who made the record; a record under
    setup's ID without the marker is shown with `!` and never written."""
    tags = record.get("tags")
    return isinstance(tags, dict) and tags.get("managed-by") == TOOL


NOT_OURS = (
    f"it has this tool's ID but not its marker (tag managed-by: {TOOL}), so setup never writes it; delete it "
    f"in the portal, or add that tag to hand it to setup"
)


@dataclass(frozen=True)
class Desired:
    """What the account should have for one pipeline (one project and one ref)."""

    guide: Guide
    roles: tuple[str, ...]
    resource: str

    @property
    def record_id(self) -> str:
        return record_id(self.guide.user_id)

    def record(self) -> dict[str, Any]:
        """The access record as createRecord and updateRecord take it: every field this tool owns, the
        ones it wants empty sent empty, so a PUT takes back what was added in the portal."""
        g = self.guide
        return {
            "recordId": self.record_id,
            "name": record_name(g),
            "description": (
                f"Grants the GitLab CI ID token whose sub is {g.user_id} (issuer {g.issuer}). Managed by "
                f"`{TOOL} setup --apply`: a rerun puts back what is changed here."
            )[:DESCRIPTION_MAX],
            "users": [{"userId": g.user_id}],
            "admins": [],
            "groups": [],
            "statements": [{"roles": list(self.roles), "resources": [{"resourceUri": self.resource}]}],
            "tags": dict(MARKER),
        }

    def fields(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "user_id": self.guide.user_id,
            "roles": list(self.roles),
            "resource": self.resource,
        }


def desired_state(guide: Guide, roles: Sequence[str], resource: str, *, destroy: bool = False) -> Desired:
    if not roles and not destroy:
        raise QueryError("no role to grant; pass --role ROLE_ID (repeatable) with --plan and --apply")
    for role in roles:
        if not _ROLE.match(role):
            raise QueryError(
                f"--role is {quoted(role)}; Authress role IDs are 1 to 64 of a-z A-Z 0-9 - . _ : @ (Statement.roles)"
            )
    if not resource_uri_valid(resource):  # Resource.resourceUri
        raise QueryError(
            f"--resource is {quoted(resource)}, not an Authress resource URI (Resource.resourceUri); "
            'pass "*" for every resource, or a path like "/documents/*"'
        )
    stray = _USER_ID_STRAY.search(guide.user_id)
    if stray:
        raise QueryError(
            f"the pipeline's user ID {quoted(guide.user_id)} holds {quoted(stray[0])}, which Authress user IDs "
            "may not (User.userId allows a-z A-Z 0-9 + - . _ | / ~ : @); apply from a branch or tag without it"
        )
    return Desired(guide, tuple(dict.fromkeys(roles)), resource)


def user_id_warning(guide: Guide) -> str | None:
    """A `sub` over User.userId's 128 characters cannot be stored; GitLab lets a project shorten it."""
    if len(guide.user_id) <= USER_ID_MAX:
        return None
    return (
        f"the pipeline's user ID {quoted(guide.user_id, 80)} is {len(guide.user_id)} characters, over the "
        f"{USER_ID_MAX} Authress accepts (User.userId): Authress will refuse its record; shorten the sub with "
        "GitLab's per-project ID token sub claim components (Settings -> CI/CD -> ID token sub claim, or the "
        "API's ci_id_token_sub_claim_components), then use the user_id `doctor` shows"
    )


def body_limits(desired: Desired) -> str:
    """Which field of the record a 400 is about: each one over the published limit, else all of them."""
    record, user_id = desired.record(), desired.guide.user_id
    sizes = [
        ("AccessRecord.name", len(record["name"]), NAME_MAX),
        ("AccessRecord.description", len(record["description"]), DESCRIPTION_MAX),
        ("User.userId", len(user_id), USER_ID_MAX),
    ]
    over = [f"{name} is {size} characters, over {limit}" for name, size, limit in sizes if size > limit]
    if over:
        return "; ".join(over) + "; shorten it (GitLab can customise the sub per project)"
    within = ", ".join(f"{name} {size}/{limit}" for name, size, limit in sizes)
    return (
        f"every field is within the published limits ({within} characters; user ID {quoted(user_id, 200)}); "
        "the account may allow less: report it with the command you ran"
    )


@dataclass(frozen=True)
class Change:
    action: str  # "create", "update", "delete", "unchanged", "absent" or "problem"
    kind: str  # "trusted_identity", "access_record" or "role"
    fields: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None
    note: str = ""  # a problem's explanation

    @property
    def pending(self) -> bool:
        return self.action in PENDING

    def line(self) -> str:
        f = self.fields
        if self.kind == "role":
            return f"! role {quoted(f['role_id'])} does not exist in account {quoted(f['account_id'])}"
        if self.kind == "trusted_identity":
            what = f"trusted identity issuer {quoted(f['issuer'])} audience {quoted(f['audience'])}"
        else:
            what = f"access record {quoted(f['record_id'])} user {quoted(f['user_id'], 200)}"
            if "roles" in f:
                what += f" roles {_list(f['roles'])} on {quoted(f['resource'])}"
            if self.before is not None:
                what += f" (was: {_describe(self.before)})"
        if self.action == "problem":
            return f"! {what}: {self.note}"
        return f"{_SYMBOLS[self.action]} {self.action} {what}" + (f" ({self.note})" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        value = {"action": self.action, "kind": self.kind, **self.fields}
        if self.note:
            value["note"] = self.note
        return value if self.before is None else {**value, "before": self.before}


def identity_change(issuer: str, audience: str, identities: Mapping[tuple[str, str], str]) -> Change:
    """The trusted identity for the issuer and audience; one whose userIdExpression is not `{sub}` makes
    every record by `sub` useless, so it is a problem to show."""
    fields = {"issuer": issuer, "audience": audience}
    expression = identities.get((issuer, audience))
    if expression is None:
        return Change("create", "trusted_identity", fields)
    if expression != DEFAULT_EXPRESSION:
        note = (
            f"its userIdExpression is {quoted(expression)}, not {quoted(DEFAULT_EXPRESSION)}, so Authress does not "
            "take the `sub` as the user ID and the records below grant nothing; set it back to "
            f"{quoted(DEFAULT_EXPRESSION)} in the portal (Connections -> OIDC trusted identities)"
        )
        return Change("problem", "trusted_identity", {**fields, "user_id_expression": expression}, note=note)
    return Change("unchanged", "trusted_identity", fields)


def record_change(desired: Desired, record: Mapping[str, Any] | None) -> Change:
    """Create, update (with what it was) or leave the record found under the desired ID."""
    if record is None:
        return Change("create", "access_record", desired.fields())
    if not ours(record):
        return Change("problem", "access_record", _who(desired), note=NOT_OURS)
    if owned(record) == owned(desired.record()):
        return Change("unchanged", "access_record", desired.fields())
    return Change("update", "access_record", desired.fields(), summary(record))


def destroy_change(desired: Desired, record: Mapping[str, Any] | None) -> Change:
    """Delete the record only when it is setup's (its marker, under its ID) and still ACTIVE."""
    if record is None or record.get("status") == "DELETED":
        return Change("absent", "access_record", _who(desired))
    if not ours(record):
        return Change("problem", "access_record", _who(desired), note=NOT_OURS)
    return Change("delete", "access_record", _who(desired), summary(record))


def _who(desired: Desired) -> dict[str, Any]:
    return {"record_id": desired.record_id, "user_id": desired.guide.user_id}


def owned(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Every field setup owns, order-insensitive, an absent list the same as an empty one, and whether it
    is DELETED (deleteRecord keeps the record with that status)."""
    statements = sorted(
        (
            _sorted(s.get("roles"), None),
            _sorted(s.get("resources"), "resourceUri"),
            _sorted(s.get("users"), "userId"),
            _sorted(s.get("groups"), "groupId"),
        )
        for s in record.get("statements") or []
        if isinstance(s, dict)
    )
    return (
        record.get("name"),
        record.get("description") or "",
        _sorted(record.get("users"), "userId"),
        _sorted(record.get("admins"), "userId"),
        _sorted(record.get("groups"), "groupId"),
        tuple(statements),
        tuple(sorted((str(k), str(v)) for k, v in (record.get("tags") or {}).items())),
        record.get("status") == "DELETED",
    )


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a record grants, as a plan line and --list show it."""
    _, _, users, admins, groups, statements, _, deleted = owned(record)
    value = {"status": "DELETED" if deleted else "ACTIVE", "users": list(users), **_some(admins=admins, groups=groups)}
    value["statements"] = [
        {"roles": list(roles), "resources": list(resources), **_some(users=s_users, groups=s_groups)}
        for roles, resources, s_users, s_groups in statements
    ]
    return value


def _some(**lists: tuple[str, ...]) -> dict[str, Any]:
    """The lists that are not empty: a summary shows what widens a grant, nothing more."""
    return {name: list(items) for name, items in lists.items() if items}


def _sorted(items: Any, key: str | None) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    if key is None:
        return tuple(sorted(map(str, items)))
    return tuple(sorted(str(i.get(key)) for i in items if isinstance(i, dict)))


def _describe(before: Mapping[str, Any]) -> str:
    parts = []
    for s in before["statements"]:
        text = f"roles {_list(s['roles'])} on {_list(s['resources'])}"
        text += "".join(f" {k} {_list(s[k])}" for k in ("users", "groups") if s.get(k))
        parts.append(text)
    deleted = "DELETED, " if before["status"] == "DELETED" else ""
    widened = "".join(f"{k} {_list(before[k])}, " for k in ("admins", "groups") if before.get(k))
    return f"{deleted}users {_list(before['users'])}, {widened}" + ("; ".join(parts) or "no statements")


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(quoted(v) for v in values) + "]"
