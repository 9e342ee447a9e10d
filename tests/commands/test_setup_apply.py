"""`setup --plan` and `setup --apply`, run as installed against the Authress stand-in with a service-client
admin key: from an empty account to a pipeline token Authress accepts, idempotently, and every refusal."""

from __future__ import annotations

import json
import signal
import time

import pytest

from authress_gitlab_token.errors import fit
from authress_gitlab_token.output import MAX_LINE
from authress_gitlab_token.setup import admin_api
from authress_gitlab_token.setup.account import PartiallyApplied, _tally
from authress_gitlab_token.setup.plan import Change, record_id
from tests.fixtures.authress import AuthressStandIn, Reply
from tests.fixtures.authress_admin import add_role
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, SUB, AdminSetup, Flag, Helper, guide, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.service_clients import ServiceClientKey
from tests.fixtures.tokens import MINTED, SigningKey, gitlab_claims, mint

RECORD = record_id(SUB)


def checked(issuer: LocalIssuer, authress: AuthressStandIn) -> dict[str, str | None]:
    """The pipeline's query, with the Authress check."""
    return query(issuer, ref="main", check="authress", api_url=authress.url)


def test_apply_from_an_empty_account_makes_the_pipelines_token_accepted_and_a_rerun_changes_nothing(
    admin_setup: AdminSetup, helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, token: str
) -> None:
    helper.external(checked(issuer, empty), token).refused("answered 401", code=1)

    run = admin_setup("--apply")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        f'+ create trusted identity issuer "{issuer.url}" audience "{AUDIENCE}"',
        f'+ create access record "{RECORD}" user "{SUB}" roles ["ro_terraform"] on "*"',
        "Applied: 2 change(s).",
    ]
    assert [(r.method, r.path, r.status) for r in empty.writes()] == [
        ("POST", "/v1/identities", 201),
        ("POST", "/v1/records", 201),
    ]
    record = empty.access_records[RECORD]
    assert record["users"] == [{"userId": SUB}]
    assert record["statements"] == [{"roles": ["ro_terraform"], "resources": [{"resourceUri": "*"}]}]
    assert "managed by authress-gitlab-token" in record["name"]

    check = helper.external(checked(issuer, empty), token)
    assert check.returncode == 0, check.stderr

    empty.requests.clear()
    again = admin_setup("--apply")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert [line.split(" ", 2)[:2] for line in lines[:-1]] == [["=", "unchanged"], ["=", "unchanged"]]
    assert lines[-1] == "Nothing to change."
    assert empty.writes() == [], "a second --apply sent a write"


def test_plan_shows_the_changes_and_makes_none(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    run = admin_setup("--plan")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line[:8] for line in lines[:2]] == ["+ create", "+ create"]
    assert lines[2] == "Plan: 2 change(s); run with --apply to make them."
    assert [(r.method, r.path) for r in empty.requests] == [
        ("GET", "/v1/identities"),
        ("GET", "/v1/roles/ro_terraform"),
        ("GET", f"/v1/records/{RECORD}"),
    ]
    assert empty.identities == [] and empty.access_records == {}


def test_a_changed_role_list_updates_the_record_and_says_what_it_was(
    admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    assert admin_setup("--apply").returncode == 0
    run = admin_setup("--apply", role=("ro_terraform", "ro_audit"))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[2] == "Applied: 1 change(s)."
    assert lines[0].startswith("= unchanged trusted identity")
    assert lines[1] == (
        f'~ update access record "{RECORD}" user "{SUB}" roles ["ro_terraform", "ro_audit"] on "*" '
        f'(was: users ["{SUB}"], roles ["ro_terraform"] on ["*"])'
    )
    assert empty.writes()[-1].method == "PUT" and empty.writes()[-1].status == 202
    assert empty.access_records[RECORD]["statements"][0]["roles"] == ["ro_terraform", "ro_audit"]


def test_a_deleted_record_is_planned_as_an_update_and_apply_brings_the_pipeline_back(
    admin_setup: AdminSetup, helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, token: str
) -> None:
    """deleteRecord keeps the record as DELETED: a plan that compared only roles would call it unchanged."""
    assert admin_setup("--apply").returncode == 0
    empty.access_records[RECORD]["status"] = "DELETED"
    helper.external(checked(issuer, empty), token).refused("answered 404")
    plan = admin_setup("--plan")
    assert plan.stdout.splitlines()[1].endswith(f'(was: DELETED, users ["{SUB}"], roles ["ro_terraform"] on ["*"])')
    assert admin_setup("--apply").returncode == 0
    assert helper.external(checked(issuer, empty), token).returncode == 0


def test_json_output_lists_each_change(admin_setup: AdminSetup, issuer: LocalIssuer, empty: AuthressStandIn) -> None:
    run = admin_setup("--plan", "--json")
    assert run.returncode == 0, run.stderr
    value = json.loads(run.stdout)
    assert value["mode"] == "plan" and value["api_url"] == empty.url
    assert value["changes"] == [
        {"action": "create", "kind": "trusted_identity", "issuer": issuer.url, "audience": AUDIENCE},
        {
            "action": "create",
            "kind": "access_record",
            "record_id": RECORD,
            "user_id": SUB,
            "roles": ["ro_terraform"],
            "resource": "*",
        },
    ]


def test_the_record_id_is_derived_from_the_sub_within_the_characters_authress_allows() -> None:
    assert RECORD == record_id(SUB) and RECORD != record_id(SUB.replace("main", "prod"))
    assert RECORD.startswith("gitlab-ci-") and len(RECORD) == 42
    assert all(c.isalnum() or c in "-_:|~" for c in RECORD)


# --- refusals before any request (exit 2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "change", "fragment"),
    [
        ("project without a group", {"project": "authress-configuration"}, "pass --project GROUP/PROJECT"),
        ("project with a space", {"project": "my org/x"}, "pass --project GROUP/PROJECT"),
        ("ref with a space", {"branch": "my branch"}, 'which holds " "; GitLab refuses such a name'),
        ("ref with ..", {"branch": "a..b"}, 'holds "..", "@{" or "//"'),
        ("ref ending in .lock", {"branch": "main.lock"}, 'ends with ".lock"'),
        ("ref with a colon", {"branch": "a:b"}, 'which holds ":"'),
        ("ref git allows but Authress user IDs do not", {"branch": "fix#1"}, 'holds "#", which Authress user IDs'),
        (
            "audience that is not an Authress API URL",
            {"audience": "https://api.authress.io"},
            "not an Authress account API URL",
        ),
        ("http issuer", {"issuer": "http://gitlab.example.com"}, "not an https URL"),
        ("role ID with a space", {"role": "ro terraform"}, "Authress role IDs are 1 to 64"),
        ("resource URI with a space", {"resource": "/a b"}, "not an Authress resource URI"),
        ("api url over http", {"api_url": "http://127.0.0.1:1"}, "pass the https base URL"),
        (
            "provider-shaped audience that names no API URL",
            {"audience": "https://acc-1a2b3c.api.authress.test", "api_url": None},
            "names no Authress API URL; pass --api-url",
        ),
    ],
)
def test_invalid_inputs_are_refused_before_any_request(
    case: str, change: dict[str, Flag], fragment: str, admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    admin_setup("--apply", **change).refused(fragment, code=2)
    assert empty.requests == [], f"{case}: a request was made"


def test_a_gitlab_id_token_is_refused_as_the_admin_credential_with_why(
    admin_setup: AdminSetup, empty: AuthressStandIn, token: str
) -> None:
    admin_setup("--apply", key=token).refused(
        "holds a JWT (a GitLab ID token?), not an admin key",
        "cannot make them",
        "export AUTHRESS_KEY with the access key of an Authress service client",
        code=2,
    )
    assert empty.requests == []


@pytest.mark.parametrize(
    ("key", "roles", "fragment"),
    [
        pytest.param("", ("ro_terraform",), "no admin key in $AUTHRESS_KEY", id="no key"),
        pytest.param(None, (), "no role to grant; pass --role", id="no role"),  # None: the admin's good key
        pytest.param(
            "hunter2-hunter2", ("ro_terraform",), "holds no Authress service-client access key", id="not a key at all"
        ),
        pytest.param(
            "sc_a.key-1.acc-1a2b3c.bm90LWEta2V5",
            ("ro_terraform",),
            "is not a base64 PKCS#8 key",
            id="a key whose private part is not a key",
        ),
    ],
)
def test_a_missing_or_malformed_key_or_a_missing_role_is_refused(
    key: str | None, roles: tuple[str, ...], fragment: str, admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    admin_setup("--plan", key=key, role=roles).refused(fragment, code=2)
    assert empty.requests == []


def test_a_custom_domain_given_as_api_url_may_be_the_audience(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    run = admin_setup("--plan", audience=empty.url)
    assert run.returncode == 0, run.stderr
    assert f'audience "{empty.url}"' in run.stdout.splitlines()[0]


def test_admin_flags_without_plan_or_apply_are_refused(helper: Helper) -> None:
    helper.run(guide(role="ro_terraform")).refused("--role takes effect only with --plan or --apply", code=2)


def test_a_key_of_another_account_is_refused(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    other = ServiceClientKey.generate(account_id="acc-other")
    admin_setup("--plan", key=other.value).refused(
        'is for account "acc-other", but the audience names account "acc-1a2b3c"', code=2
    )
    assert empty.requests == []


# --- Authress refuses (exit 1) -----------------------------------------------------------------------


def test_an_admin_key_authress_does_not_know_gets_401_explained(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn
) -> None:
    unknown = ServiceClientKey.generate(client_id="sc_gone")
    AdminSetup(helper, issuer, authress, unknown.value)("--plan").refused(
        f'Authress answered 401 to getAccountIdentities at "{authress.url}": the admin key is not valid; check that',
        'service client "sc_gone"',
    )


def test_a_write_refused_after_another_succeeded_says_what_was_made(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, admin: ServiceClientKey
) -> None:
    """403 names the operation refused; the identity linked before it is counted, and a rerun finishes the job."""
    authress.add_client(admin.client_id, admin.key_id, admin.public)
    add_role(authress, "ro_terraform")
    authress.grant(admin.client_id, ["authress:identities:*", "authress:records:read", "authress:roles:read"])
    admin_setup = AdminSetup(helper, issuer, authress, admin.value)
    admin_setup("--apply").refused(
        'Authress answered 403: service client "sc_admin" (key from $AUTHRESS_KEY) may not call createRecord at '
        f'"{authress.url}"; setup --apply had first created 1 trusted identity; grant the service client admin '
        "permissions (Authress -> Access records), then run `setup --plan`"
    )
    authress.grant(admin.client_id)
    run = admin_setup("--apply")
    assert [line[:11] for line in run.stdout.splitlines()] == ["= unchanged", "+ create ac", "Applied: 1 "]


@pytest.mark.parametrize("status", [401, 403, 409, 412, 500])
def test_a_refused_write_after_other_changes_is_one_whole_line_with_long_values(status: int) -> None:
    """A custom-domain API URL, a long client ID and key variable, a write refused after the identity and
    five records (or five deletes): the line says what was made and ends with the step to take, nothing
    cut from its middle (errors.fit may shorten a quoted value, never the words)."""
    who = f'service client "sc_{"x" * 22}" (key from $AUTHRESS_ADMIN_KEY)'
    api = admin_api.AdminApi(None, f"https://{'a' * 24}.example.com", "", who, 2.0, "acc")
    applied = [Change("create", "trusted_identity")] + [Change("create", "access_record")] * 3
    applied += [Change("update", "access_record")] * 2
    for op in (admin_api.CREATE_RECORD, admin_api.UPDATE_RECORD, admin_api.DELETE_RECORD):  # the identity is first
        refused = api._refused(op, f"{api.api_url}{op.path.format(recordId=record_id(SUB))}", status)
        for made in (applied, [Change("delete", "access_record")] * 5):
            line = fit(
                str(PartiallyApplied(f"{refused.problem}; setup --apply had first {_tally(made)}", refused.fix)),
                MAX_LINE - 24,
            )
            assert " ... " not in line and line.endswith(refused.fix), line
    assert "; setup --apply had first deleted 5 access records; " in line


@pytest.mark.parametrize(
    ("status", "fragment"),
    [(409, "answered 409 to POST"), (503, "HTTP 503 after 1 attempt(s)"), (302, "answered 302 to POST")],
)
def test_a_conflict_or_server_error_names_the_url_and_no_secret(
    status: int, fragment: str, admin_setup: AdminSetup, empty: AuthressStandIn, admin: ServiceClientKey
) -> None:
    empty.script("POST", "/v1/identities", Reply(status))
    run = admin_setup("--apply")
    run.refused(fragment, f'"{empty.url}/v1/identities"')
    if status == 302:  # the statuses delegateAuthentication is accepted with, all of them
        run.refused(f'"{empty.url}/v1/identities", expected 200/201;')
    assert admin.value.split(".")[-1] not in run.stderr
    assert [r.method for r in empty.writes()] == ["POST"], "a POST was retried or setup went on"


def test_the_stand_in_enforces_what_setup_stored(
    admin_setup: AdminSetup, helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, signing_key: SigningKey
) -> None:
    """Another branch's token is trusted (same issuer and audience) but has no record: Authress says 404."""
    assert admin_setup("--apply").returncode == 0
    other = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="feature/x"))
    run = helper.external({**checked(issuer, empty), "ref": "feature/x"}, other)
    run.refused("answered 404", "project_path:my-org/authress-configuration:ref_type:branch:ref:feature/x")
    assert ACCOUNT_ID in run.stderr


def test_an_update_is_retried_after_a_server_error_as_replacing_twice_is_harmless(
    admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    assert admin_setup("--apply").returncode == 0
    empty.requests.clear()
    empty.script("PUT", f"/v1/records/{RECORD}", Reply(503))
    run = admin_setup("--apply", role="ro_audit")
    assert run.returncode == 0, run.stderr
    assert [(r.method, r.status) for r in empty.writes()] == [("PUT", 503), ("PUT", 202)]
    assert empty.access_records[RECORD]["statements"][0]["roles"] == ["ro_audit"]


def test_an_api_whose_certificate_does_not_verify_is_refused_without_retrying(
    admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    """With only certifi's public CAs, the stand-in's test certificate does not verify: nothing reaches it."""
    import certifi

    run = admin_setup("--plan", env={"SSL_CERT_FILE": certifi.where()})
    run.refused('the TLS certificate of "127.0.0.1" did not verify', "check --api-url")
    assert empty.requests == []


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_apply_interrupted_between_writes_says_what_it_had_made(
    sent: signal.Signals, helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, admin: ServiceClientKey
) -> None:
    """The trusted identity is made, the record's request is in flight (it may land): the one line says so."""
    empty.script("POST", "/v1/records", Reply(hang=30))
    args = guide("--apply", issuer=issuer.url, api_url=empty.url, role="ro_terraform")
    child = helper.start(args, env={"AUTHRESS_KEY": admin.value})
    deadline = time.monotonic() + 30
    while ("POST", "/v1/records") not in [(r.method, r.path) for r in empty.writes()] and child.poll() is None:
        assert time.monotonic() < deadline, "setup never asked to create the record"
        time.sleep(0.02)
    child.send_signal(sent)
    run = helper.finish(child, args)
    MINTED.update(empty.tokens_seen())
    run.refused(
        "authress-gitlab-token: interrupted; setup --apply had created 1 trusted identity; creating one more access "
        "record was under way; run it again to finish",
        code=128 + sent,
    )
    assert len(empty.identities) == 1
