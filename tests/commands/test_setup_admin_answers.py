"""`setup` against admin API answers other than the plain ones, run as installed: concurrent `--apply`
runs that meet each other's trusted identity (409), and answers whose shape Authress does not send (a
proxy or a login page answering JSON), each one line naming the URL and what was wrong."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authress_gitlab_token.calls import Answer
from authress_gitlab_token.cli import setup_list
from authress_gitlab_token.setup import admin_api
from authress_gitlab_token.setup.account import list_value
from authress_gitlab_token.setup.guide import build_all
from authress_gitlab_token.setup.plan import Desired, destroy_change, identity_change, ours, record_change, record_id
from tests.fixtures.authress import AuthressStandIn, Reply
from tests.fixtures.authress_admin import gathered_identity_reads, put_record
from tests.fixtures.helper import AUDIENCE, SUB, AdminSetup, Helper, guide
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.service_clients import ServiceClientKey

PIPELINES = [f"my-org/infra-{n}" for n in range(5)]


def test_five_concurrent_applies_for_five_pipelines_all_succeed(
    helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, admin: ServiceClientKey
) -> None:
    """Each run reads "no trusted identity" before any links it (the stand-in holds the reads until all
    five have asked): one link is made, four get 409, and each of those re-reads and goes on."""
    args = [guide("--apply", project=p, issuer=issuer.url, api_url=empty.url, role="ro_terraform") for p in PIPELINES]
    with gathered_identity_reads(empty, len(PIPELINES)):
        children = [helper.start(a, env={"AUTHRESS_KEY": admin.value}) for a in args]
        runs = [helper.finish(c, a) for c, a in zip(children, args, strict=True)]

    assert [r.returncode for r in runs] == [0] * 5, [r.stderr for r in runs]
    links = [r.status for r in empty.writes() if r.path == "/v1/identities"]
    assert sorted(links) == [201] + [409] * 4, "the race was not run: every apply must have read no identity"
    assert [(i.issuer, i.audience) for i in empty.identities] == [(issuer.url, AUDIENCE)]
    subs = {f"project_path:{p}:ref_type:branch:ref:main" for p in PIPELINES}
    assert {u["userId"] for r in empty.access_records.values() for u in r["users"]} == subs
    firsts = sorted(r.stdout.splitlines()[0] for r in runs)
    identity = f'trusted identity issuer "{issuer.url}" audience "{AUDIENCE}"'
    assert firsts == [f"+ create {identity}"] + [f"= unchanged {identity} (linked meanwhile by another run)"] * 4
    assert sorted(r.stdout.splitlines()[-1] for r in runs) == ["Applied: 1 change(s)."] * 4 + ["Applied: 2 change(s)."]


def test_an_identity_linked_meanwhile_with_another_expression_is_one_problem_line(
    admin_setup: AdminSetup, empty: AuthressStandIn, issuer: LocalIssuer
) -> None:
    """Another run (or a person) linked it between this run's read and its link, mapping user IDs from
    `{email}`: this run's records would grant nothing, which it says with `!`, and exits 1."""
    empty.script("GET", "/v1/identities", Reply(200, {"identities": []}))  # the read before the link
    empty.trust(issuer.url, AUDIENCE, user_id_expression="{email}")
    run = admin_setup("--apply")
    assert run.returncode == 1, run.stderr
    first, record, last = run.stdout.splitlines()
    assert first.startswith(f'! trusted identity issuer "{issuer.url}"') and '"{email}"' in first
    assert record.startswith("+ create access record")
    assert last == "Applied: 1 change(s); 1 problem(s) to fix (the lines starting with !)."
    assert [(r.method, r.path, r.status) for r in empty.writes()] == [
        ("POST", "/v1/identities", 409),
        ("POST", "/v1/records", 201),
    ]


def test_a_conflict_on_the_identity_that_is_still_absent_stops_with_the_conflict(
    admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    empty.script("POST", "/v1/identities", Reply(409))
    admin_setup("--apply").refused(f'answered 409 to POST "{empty.url}/v1/identities" (conflict)')
    assert [r.path for r in empty.writes()] == ["/v1/identities"] and empty.access_records == {}


def test_a_record_created_meanwhile_as_wanted_is_taken_as_done(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    """Two applies for the same pipeline: the one whose create meets 409 re-reads the record and goes on."""
    assert admin_setup("--apply").returncode == 0
    made = empty.access_records[record_id(SUB)]
    empty.script("GET", f"/v1/records/{record_id(SUB)}", Reply(404))  # its read came before the other's create
    empty.requests.clear()
    run = admin_setup("--apply")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1].endswith("(created meanwhile by another run)")
    assert [(r.method, r.status) for r in empty.writes()] == [("POST", 409)]
    assert empty.access_records[record_id(SUB)] == made


# --- answers of a shape Authress does not send ---------------------------------------------------------

RECORD_BODY = {
    "recordId": record_id(SUB),
    "name": "GitLab CI (managed by authress-gitlab-token)",
    "users": [{"userId": SUB}],
    "statements": [{"roles": ["ro_terraform"], "resources": [{"resourceUri": "*"}]}],
    "tags": {"managed-by": "authress-gitlab-token"},
}
LISTING = {"project": None, "branch": None, "role": None}


def listed(**extra: Any) -> dict[str, Any]:
    return {"records": [RECORD_BODY], "links": {"self": {"href": "x"}}, **extra}


@pytest.mark.parametrize(
    ("mode", "path", "body", "what"),
    [
        ("--list", "/v1/records", listed(pagination="next"), "pagination is a string, not an object"),
        ("--list", "/v1/records", listed(pagination={"next": []}), "pagination.next is a list, not an object"),
        (
            "--list",
            "/v1/records",
            {"records": [{**RECORD_BODY, "tags": ["managed-by"]}]},
            "records[0].tags is a list, not an object",
        ),
        ("--list", "/v1/records", {"records": {"0": RECORD_BODY}}, "records is an object, not a list"),
        (
            "--list",
            "/v1/identities",
            {"identities": [{"issuer": 1, "audience": AUDIENCE}]},
            "identities[0].issuer is a number, not a string",
        ),
        ("--plan", "/v1/identities", ["identities"], "the body is a list, not an object"),
        ("--plan", "/v1/identities", {"identities": ["x"]}, "identities[0] is a string, not an object"),
        ("--plan", "/v1/identities", {"data": []}, 'the body has no "identities"'),
        ("--plan", f"/v1/records/{record_id(SUB)}", {**RECORD_BODY, "tags": ["x"]}, "tags is a list, not an object"),
        (
            "--plan",
            f"/v1/records/{record_id(SUB)}",
            {**RECORD_BODY, "statements": [{"roles": "ro_terraform", "resources": []}]},
            "statements[0].roles is a string, not a list",
        ),
        ("--plan", f"/v1/records/{record_id(SUB)}", {**RECORD_BODY, "users": [{}]}, 'users[0] has no "userId"'),
        ("--plan", f"/v1/records/{record_id(SUB)}", "<html>login</html>", "the body is a string, not an object"),
        ("--plan", "/v1/roles/ro_terraform", [], "the body is a list, not an object"),
    ],
)
def test_an_answer_authress_does_not_send_is_one_line_naming_the_url_and_what_is_wrong(
    mode: str, path: str, body: Any, what: str, admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    empty.script("GET", path, Reply(200, body))
    run = admin_setup(mode, **(LISTING if mode == "--list" else {}))  # type: ignore[arg-type]
    run.refused(f'"{empty.url}{path}" answered JSON that Authress does not send: {what}', "check that --api-url")
    assert "internal error" not in run.stderr and empty.writes() == []


def test_an_odd_record_found_by_apply_stops_it_before_any_write(
    admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    put_record(empty, {k: v for k, v in RECORD_BODY.items() if k != "tags"})
    empty.script("GET", f"/v1/records/{record_id(SUB)}", Reply(200, {**RECORD_BODY, "tags": "managed-by"}))
    admin_setup("--apply").refused("tags is a string, not an object")
    assert empty.writes() == []


def test_the_stand_ins_own_answers_pass_the_same_check(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    """The check refuses what Authress does not send, not what it does: every mode over the stand-in."""
    assert admin_setup("--apply").returncode == 0
    assert admin_setup("--plan", "--detailed-exitcode").returncode == 0
    value = json.loads(admin_setup("--list", "--json", **LISTING).stdout)  # type: ignore[arg-type]
    assert [r["record_id"] for r in value["access_records"]] == [record_id(SUB)]
    assert admin_setup("--apply", "--destroy", role=None).returncode == 0


# --- in process: any JSON in any field is an AdminError or a plan, never another exception -------------

_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _or_any(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the shape Authress sends, at times anything: the odd field among good ones."""
    return st.one_of(good, good, _ANY)


def _object(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return _or_any(st.fixed_dictionaries({}, optional={k: _or_any(v) for k, v in fields.items()}))


_TEXT = st.text(max_size=6)
_USERS = st.lists(_object(userId=st.sampled_from([SUB, "user|x"])), max_size=2)
_RECORD = _object(
    recordId=st.sampled_from([record_id(SUB), "rec_portal"]),
    name=_TEXT,
    description=_TEXT,
    status=st.sampled_from(["ACTIVE", "DELETED"]),
    users=_USERS,
    admins=_USERS,
    groups=st.lists(_object(groupId=_TEXT), max_size=2),
    statements=st.lists(
        _object(
            roles=st.lists(_or_any(_TEXT), max_size=2),
            resources=st.lists(_object(resourceUri=st.just("*")), max_size=2),
            users=_USERS,
        ),
        max_size=2,
    ),
    tags=st.dictionaries(st.sampled_from(["managed-by", "x"]), _or_any(st.just("authress-gitlab-token")), max_size=2),
)
_BODIES = {
    "identities": _object(
        identities=st.lists(_object(issuer=_TEXT, audience=_TEXT, userIdExpression=_TEXT), max_size=3)
    ),
    "records": _object(
        records=st.lists(_RECORD, max_size=3),
        pagination=_object(next=_object(cursor=st.sampled_from(["", "2"]))),
    ),
    "record": _RECORD,
    "role": _or_any(st.fixed_dictionaries({"roleId": _TEXT})),
}


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(body=st.one_of(*(st.tuples(st.just(k), v) for k, v in _BODIES.items())))
def test_any_answer_of_any_shape_is_read_and_planned_or_refused_in_one_line(body: tuple[str, Any]) -> None:
    which, answer = body
    api = admin_api.AdminApi(None, "https://acc-1a2b3c.api.authress.io", "", "the admin", 1.0, "acc-1a2b3c")  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(admin_api, "call_json", lambda *_a, **_k: Answer(200, {}, copy.deepcopy(answer)))
        try:
            if which == "identities":
                identities = api.identities()
                assert all(isinstance(k, str) for pair in identities for k in pair)
                identity_change("https://gitlab.com", AUDIENCE, identities).line()
            elif which == "records":
                found, _ = api.records("authress-gitlab-token")
                value = list_value(api.api_url, "https://gitlab.com", {}, found, True)
                with contextlib.redirect_stdout(io.StringIO()):
                    setup_list(value, as_json=False)
                json.dumps(value)
            elif which == "record":
                record = api.record(record_id(SUB))
                desired = Desired(
                    build_all(["my-org/authress-configuration"], ["main"], [], AUDIENCE, None)[0], ("r",), "*"
                )
                for change in (record_change(desired, record), destroy_change(desired, record)):
                    assert change.action != "update" or ours(record or {})
                    change.line()
                    json.dumps(change.to_json())
            else:
                assert api.role_exists("ro_terraform") is True
        except admin_api.AdminError as exc:
            assert "answered JSON that Authress does not send: " in exc.problem, exc.problem
            assert len(str(exc).splitlines()) == 1
