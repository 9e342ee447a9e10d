"""`setup --plan` / `--apply` / `--destroy` / `--list`: the trusted identity and each pipeline's access
record, read from the account, planned (setup/plan.py, which also judges the inputs, before any
request) and made so; a role the account lacks is named before anything is written."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import interrupts, service_client
from ..authress import account_from_audience, audience_warning, target
from ..errors import HelperError, QueryError, TokenMalformed, quoted
from ..network import session
from .admin_api import AdminApi, AdminError, BodyRefused, Conflict
from .guide import Guide
from .plan import (
    NOT_OURS,
    RECORD_ID_PREFIX,
    TOOL,
    Change,
    Desired,
    body_limits,
    desired_state,
    destroy_change,
    identity_change,
    ours,
    record_change,
    summary,
)

if TYPE_CHECKING:
    from ..environment import SetupEnv


@dataclass(frozen=True)
class Request:
    """What one `setup --plan/--apply` run is asked to do."""

    roles: tuple[str, ...]
    resource: str
    api_url: str
    apply: bool = False
    destroy: bool = False
    allow_missing_roles: bool = False


class PartiallyApplied(HelperError):
    """A write failed after others succeeded; the message lists what was made."""


class MissingRoles(HelperError):
    """`--apply` would grant a role the account does not have."""


def run(guides: Sequence[Guide], request: Request, env: SetupEnv) -> tuple[str, list[Change]]:
    """Inputs checked, the account read, the changes planned, and with `apply` made: the API URL called
    and the changes as they ended."""
    wanted = [desired_state(g, request.roles, request.resource, destroy=request.destroy) for g in guides]
    with _connect(guides[0].audience, request.api_url, env) as api:
        if request.destroy:
            changes = [destroy_change(d, api.record(d.record_id)) for d in wanted]
        else:
            changes = [identity_change(guides[0].issuer, guides[0].audience, api.identities())]
            changes += [
                Change("problem", "role", {"role_id": r, "account_id": api.account_id})
                for r in wanted[0].roles
                if not api.role_exists(r)
            ]
            changes += [record_change(d, api.record(d.record_id)) for d in wanted]
        if request.apply:
            missing = [c.fields["role_id"] for c in changes if c.kind == "role"]
            if missing and not request.allow_missing_roles:
                raise MissingRoles(
                    f"{', '.join('role ' + quoted(r) for r in missing)} does not exist in account "
                    f"{quoted(api.account_id)}, so the grant would give nothing; create it first, or pass "
                    "--allow-missing-roles when a pipeline creates it later (nothing was changed)"
                )
            changes = make(api, {d.record_id: d for d in wanted}, changes)
    return api.api_url, changes


def listing(issuer: str, audience: str, api_url: str, env: SetupEnv) -> dict[str, Any]:
    """`setup --list`: the trusted identities for the issuer, every ACTIVE record this tool made (its ID
    and its marker), and apart, those under its ID without the marker."""
    with _connect(audience, api_url, env) as api:
        identities = api.identities()
        found, complete = api.records(TOOL)
    return list_value(api.api_url, issuer, identities, found, complete)


def list_value(
    api_url: str,
    issuer: str,
    identities: Mapping[tuple[str, str], str],
    found: Sequence[Mapping[str, Any]],
    complete: bool,
) -> dict[str, Any]:
    """What `--list` prints, from what was read: a record under setup's ID prefix is setup's only with
    its marker (plan.ours); found by the marker's words in its name or description but without the tag,
    it is listed apart, never as made by this tool."""
    under_our_id = [r for r in found if str(r.get("recordId") or "").startswith(RECORD_ID_PREFIX)]
    records = [{"record_id": r.get("recordId"), "name": r.get("name"), **summary(r)} for r in under_our_id if ours(r)]
    not_ours = [
        {"record_id": r.get("recordId"), "name": r.get("name"), **summary(r), "note": NOT_OURS}
        for r in under_our_id
        if not ours(r)
    ]
    return {
        "api_url": api_url,
        "trusted_identities": [
            {"issuer": i, "audience": a, "user_id_expression": e} for (i, a), e in identities.items() if i == issuer
        ],
        "access_records": sorted(records, key=lambda r: str(r["record_id"])),
        "not_setups": sorted(not_ours, key=lambda r: str(r["record_id"])),
        "complete": complete,
    }


def make(api: AdminApi, wanted: Mapping[str, Desired], changes: Sequence[Change]) -> list[Change]:
    """Make each change in order; when one fails after another was made, say which were made. Returns
    the changes as they ended: one another run made meanwhile (409) is re-read and, when it is what was
    wanted, `unchanged` (concurrent applies for other pipelines share the trusted identity)."""
    made: list[Change] = []
    ended = list(changes)
    for at, change in enumerate(changes):
        try:
            if not change.pending:
                continue
            interrupts.say_if_interrupted(_interrupted(made, change))
            try:
                _write(api, wanted, change)
            except Conflict:
                meanwhile = _reread(api, wanted, change)
                if meanwhile is None:
                    raise
                ended[at] = meanwhile
                continue
        except HelperError as exc:
            desired = wanted.get(change.fields.get("record_id", ""))
            fix = body_limits(desired) if isinstance(exc, BodyRefused) and desired else exc.fix
            if not made:
                raise AdminError(exc.problem, fix) if fix != exc.fix else exc from None
            raise PartiallyApplied(f"{exc.problem}; setup --apply had first {_tally(made)}", fix) from None
        made.append(change)
    interrupts.say_if_interrupted(_interrupted(made, None))
    return ended


def _write(api: AdminApi, wanted: Mapping[str, Desired], change: Change) -> None:
    if change.kind == "trusted_identity":
        api.link_identity(change.fields["issuer"], change.fields["audience"])
        return
    desired = wanted[change.fields["record_id"]]
    if change.action == "delete":
        api.delete_record(desired.record_id)
    elif change.action == "create":
        api.create_record(desired.record())
    else:
        api.update_record(desired.record_id, desired.record())


def _reread(api: AdminApi, wanted: Mapping[str, Desired], change: Change) -> Change | None:
    """After a 409 on a create: the thing as it is now, when it exists (None: the conflict stands). The
    same as wanted is `unchanged`; an identity with another userIdExpression is the `!` problem."""
    if change.action != "create":
        return None
    if change.kind == "trusted_identity":
        issuer, audience = change.fields["issuer"], change.fields["audience"]
        now = identity_change(issuer, audience, api.identities())
        if now.action == "create":
            return None
        note = "linked meanwhile by another run"
    else:
        desired = wanted[change.fields["record_id"]]
        found = api.record(desired.record_id)
        if found is None:
            return None
        now = record_change(desired, found)
        note = "created meanwhile by another run"
        if now.action not in ("unchanged", "problem"):
            return None  # made meanwhile, but otherwise: the conflict stands (plan again)
    return replace(now, note=note) if now.action == "unchanged" else now


def _interrupted(made: Sequence[Change], doing: Change | None) -> str:
    """What an interrupt says: how many changes of each kind were made, and the write under way (which
    may be made too)."""
    doing_too = f"; {doing.action[:-1]}ing one more {doing.kind.replace('_', ' ')} was under way" if doing else ""
    return f"setup --apply had {_tally(made) or 'made no change'}{doing_too}; run it again to finish"


def _tally(made: Sequence[Change]) -> str:
    """ "created 1 trusted identity and 2 access records, updated 1 access record": short, for one line."""
    kinds: dict[str, Counter[str]] = {}
    for change in made:
        kinds.setdefault(change.action, Counter())[change.kind.replace("_", " ")] += 1
    return ", ".join(
        f"{action}d " + " and ".join(f"{n} {kind}{'s' * (n > 1)}" for kind, n in tally.items())
        for action, tally in kinds.items()
    )


@contextmanager
def _connect(audience: str, api_url: str, env: SetupEnv) -> Iterator[AdminApi]:
    """The account's admin API, called with a token minted from the admin key; every refusal of the
    inputs before any request."""
    if api_url:
        parts = urlsplit(api_url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise QueryError(f"--api-url is {quoted(api_url)}; pass the https base URL of the Authress API")
    problem = audience_warning(audience, api_url)
    if problem:
        raise QueryError(problem)
    account, url = target(audience, api_url.rstrip("/"))
    if not url:
        raise QueryError(
            f"the audience {quoted(audience)} names no Authress API URL; pass --api-url with your "
            "account's API URL or custom domain"
        )
    key_env = env.key_env
    key = admin_key(env.admin_key, key_env)
    named = account or account_from_audience(url)[0]
    if named and named != key.account_id:
        raise QueryError(
            f"the admin key in ${key_env} is for account {quoted(key.account_id)}, but the audience names account "
            f"{quoted(named)}; export a key of a service client of account {quoted(named)}"
        )
    who = f"service client {quoted(key.client_id)} (key from ${key_env})"
    token = service_client.mint(key, url).token
    with session(env.http) as client:
        yield AdminApi(client, url, token, who, env.http.timeout, key.account_id)


def admin_key(raw: str | None, name: str) -> service_client.AccessKey:
    """The service-client key ($`name` as the environment holds it) that may change the account; a GitLab
    ID token never can."""
    from ..sources import read_variable

    fix = (
        f"export {name} with the access key of an Authress service client that has the account's admin "
        "permissions (Authress -> Service clients -> Create access key)"
    )
    value = None if raw is None else read_variable({name: raw}, name)
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
