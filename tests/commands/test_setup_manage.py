"""`setup` over many pipelines, run as installed against the Authress stand-in: every project x ref in one
plan and apply, plan exit codes, `--list`, `--destroy` that never touches a hand-made record, missing
roles, records widened in the portal, and Authress's length limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import pytest

from authress_gitlab_token.setup.guide import build_all
from authress_gitlab_token.setup.plan import NAME_MAX, record_id, record_name
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_admin import put_record
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, AdminSetup, Helper, Run
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

PROJECTS = ("my-org/infra-a", "my-org/infra-b")
BRANCHES = ("main", "release+2026")  # git and Authress (2024) allow "+"


def sub(project: str, ref: str, ref_type: str = "branch") -> str:
    return f"project_path:{project}:ref_type:{ref_type}:ref:{ref}"


SUBS = [sub(p, b) for p in PROJECTS for b in BRANCHES]
Setup = Callable[..., Run]


@pytest.fixture
def setup_many(admin_setup: AdminSetup) -> Setup:
    """`setup` for every project and branch of PROJECTS x BRANCHES, unless a test names others."""
    return partial(admin_setup, project=PROJECTS, branch=BRANCHES)


def portal_record(user_id: str, record_id: str = "rec_portal") -> dict[str, object]:
    """A record someone made in the portal for the same pipeline: another ID, no marker."""
    statements = [{"roles": ["ro_audit"], "resources": [{"resourceUri": "/logs/*"}]}]
    return {"recordId": record_id, "name": "hand-made grant", "users": [{"userId": user_id}], "statements": statements}


def test_one_apply_grants_every_project_and_branch_and_the_exit_code_says_whether_changes_are_pending(
    setup_many: Setup, helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, signing_key: SigningKey
) -> None:
    plan = setup_many("--plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0] == f'+ create trusted identity issuer "{issuer.url}" audience "{AUDIENCE}"'
    assert lines[1:5] == [
        f'+ create access record "{record_id(s)}" user "{s}" roles ["ro_terraform"] on "*"' for s in SUBS
    ]
    assert lines[5:] == ["Plan: 5 change(s); run with --apply to make them."]
    assert empty.writes() == []

    apply = setup_many("--apply")
    assert apply.returncode == 0, apply.stderr
    assert apply.stdout.splitlines()[-1] == "Applied: 5 change(s)."
    assert [r.path for r in empty.writes()] == ["/v1/identities"] + ["/v1/records"] * 4
    assert sorted(u["userId"] for r in empty.access_records.values() for u in r["users"]) == sorted(SUBS)

    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, project_path=PROJECTS[1], ref=BRANCHES[1]))
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECTS[1], "ref": BRANCHES[1]}
    assert helper.external({**query, "check": "authress", "api_url": empty.url}, token).returncode == 0

    empty.requests.clear()
    again = setup_many("--plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "Nothing to change."
    assert [line[:11] for line in again.stdout.splitlines()[:-1]] == ["= unchanged"] * 5
    assert empty.writes() == []
    assert setup_many("--plan").returncode == 0


def test_a_refusal_under_detailed_exitcode_is_1_never_2(setup_many: Setup) -> None:
    """2 means "changes pending" to a pipeline gate, so a refused input must not exit 2 there."""
    setup_many("--plan", "--detailed-exitcode", project=("no-group",)).refused("pass --project GROUP/PROJECT", code=1)


def test_list_shows_what_setup_made_and_no_hand_made_record(
    setup_many: Setup, issuer: LocalIssuer, empty: AuthressStandIn
) -> None:
    assert setup_many("--apply").returncode == 0
    put_record(empty, portal_record(SUBS[0]))
    empty.requests.clear()

    text = setup_many("--list", project=(), branch=(), role=())
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f'trusted identity issuer "{issuer.url}" audience "{AUDIENCE}" userIdExpression "{{sub}}"'
    assert sorted(lines[1:5]) == sorted(
        f'access record "{record_id(s)}" users ["{s}"] roles ["ro_terraform"] on ["*"]' for s in SUBS
    )
    assert lines[5:] == ["4 access record(s) made by this tool."]
    assert "rec_portal" not in text.stdout

    listed = json.loads(setup_many("--list", "--json", project=(), branch=(), role=()).stdout)
    assert listed["trusted_identities"] == [{"issuer": issuer.url, "audience": AUDIENCE, "user_id_expression": "{sub}"}]
    assert {r["record_id"]: r["users"] for r in listed["access_records"]} == {record_id(s): [s] for s in SUBS}
    assert listed["complete"] is True
    assert empty.writes() == [] and {r.method for r in empty.requests} == {"GET"}


def test_destroy_removes_exactly_the_named_pipeline_and_never_a_hand_made_record_for_it(
    setup_many: Setup, empty: AuthressStandIn
) -> None:
    assert setup_many("--apply").returncode == 0
    hand_made = put_record(empty, portal_record(SUBS[0]))
    one = {"project": PROJECTS[:1], "branch": BRANCHES[:1], "role": ()}

    plan = setup_many("--plan", "--destroy", "--detailed-exitcode", **one)  # type: ignore[arg-type]
    assert plan.returncode == 2, plan.stderr
    assert plan.stdout.splitlines() == [
        f'- delete access record "{record_id(SUBS[0])}" user "{SUBS[0]}" '
        f'(was: users ["{SUBS[0]}"], roles ["ro_terraform"] on ["*"])',
        "Plan: 1 change(s); run with --apply to make them.",
    ]
    empty.requests.clear()
    apply = setup_many("--apply", "--destroy", **one)  # type: ignore[arg-type]
    assert apply.returncode == 0, apply.stderr
    assert [(r.method, r.path) for r in empty.writes()] == [("DELETE", f"/v1/records/{record_id(SUBS[0])}")]
    statuses = {
        u["userId"]: r["status"]
        for r in empty.access_records.values()
        for u in r["users"]
        if r["name"] != "hand-made grant"
    }
    assert statuses == {SUBS[0]: "DELETED", **{s: "ACTIVE" for s in SUBS[1:]}}
    assert empty.access_records["rec_portal"] == hand_made, "a hand-made record was changed"
    assert len(empty.identities) == 1, "the trusted identity was removed without being asked"

    again = setup_many("--apply", "--destroy", **one)  # type: ignore[arg-type]
    assert again.stdout.splitlines() == [
        f'= absent access record "{record_id(SUBS[0])}" user "{SUBS[0]}"',
        "Nothing to change.",
    ]


def test_a_record_under_the_tools_id_without_its_marker_is_left_alone(
    setup_many: Setup, empty: AuthressStandIn
) -> None:
    put_record(empty, portal_record(SUBS[0], record_id=record_id(SUBS[0])))
    one = {"project": PROJECTS[:1], "branch": BRANCHES[:1], "role": ()}
    run = setup_many("--apply", "--destroy", **one)  # type: ignore[arg-type]
    assert run.returncode == 1, run.stderr  # the grant asked to be taken back is still there: a problem
    assert run.stdout.splitlines()[0].startswith(f'! access record "{record_id(SUBS[0])}"')
    assert "not its marker" in run.stdout and empty.writes() == []


def test_destroying_the_trusted_identity_is_refused_with_the_portal_step(
    setup_many: Setup, empty: AuthressStandIn
) -> None:
    run = setup_many("--apply", "--destroy", "--destroy-trusted-identity", role=())
    run.refused("no call that removes a trusted identity", "Connections -> OIDC trusted identities", code=2)
    assert empty.requests == []


def test_a_missing_role_is_named_and_apply_grants_it_only_when_allowed(
    setup_many: Setup, empty: AuthressStandIn
) -> None:
    roles = ("ro_terraform", "ro_deployer")
    plan = setup_many("--plan", role=roles)
    assert plan.returncode == 1, plan.stderr  # a problem to fix, not a plan to pass
    assert f'! role "ro_deployer" does not exist in account "{ACCOUNT_ID}"' in plan.stdout.splitlines()
    assert '! role "ro_terraform"' not in plan.stdout

    setup_many("--apply", role=roles).refused(
        f'role "ro_deployer" does not exist in account "{ACCOUNT_ID}"', "--allow-missing-roles"
    )
    assert empty.writes() == []

    allowed = setup_many("--apply", "--allow-missing-roles", role=roles)
    assert allowed.returncode == 0, allowed.stderr
    assert len(empty.writes()) == 5


def test_a_record_widened_in_the_portal_is_shown_and_put_back(setup_many: Setup, empty: AuthressStandIn) -> None:
    one = {"project": PROJECTS[:1], "branch": BRANCHES[:1]}
    assert setup_many("--apply", **one).returncode == 0  # type: ignore[arg-type]
    stored = empty.access_records[record_id(SUBS[0])]
    stored["admins"] = [{"userId": "user|mallory"}]
    stored["groups"] = [{"groupId": "grp_everyone"}]
    stored["statements"][0]["groups"] = [{"groupId": "grp_contractors"}]

    plan = setup_many("--plan", "--detailed-exitcode", **one)  # type: ignore[arg-type]
    assert plan.returncode == 2
    assert plan.stdout.splitlines()[1].endswith(
        f'(was: users ["{SUBS[0]}"], admins ["user|mallory"], groups ["grp_everyone"], '
        'roles ["ro_terraform"] on ["*"] groups ["grp_contractors"])'
    )
    assert setup_many("--apply", **one).returncode == 0  # type: ignore[arg-type]
    put_back = empty.access_records[record_id(SUBS[0])]
    assert put_back["admins"] == [] and put_back["groups"] == []
    assert put_back["statements"] == [{"roles": ["ro_terraform"], "resources": [{"resourceUri": "*"}]}]


def test_the_record_name_keeps_within_128_characters_and_whole_when_it_fits() -> None:
    exact = build_all(["my-org/" + "p" * 64], ["main"], [], AUDIENCE, None)[0]
    assert len(f"GitLab CI {exact.project} branch main") == 93  # + the 35-character marker = 128
    assert record_name(exact) == f"GitLab CI {exact.project} branch main (managed by authress-gitlab-token)"
    assert len(record_name(exact)) == NAME_MAX
    longer = build_all(["my-org/" + "p" * 65], ["main"], [], AUDIENCE, None)[0]
    assert len(record_name(longer)) == NAME_MAX and "...(managed by" not in record_name(longer)
    assert record_name(longer).endswith("... (managed by authress-gitlab-token)")


def test_a_long_project_path_and_branch_apply_within_authress_limits(setup_many: Setup, empty: AuthressStandIn) -> None:
    project, branch = "my-org/" + "platform-" * 7 + "infra", "feature/" + "x" * 11  # user ID of 128
    assert len(sub(project, branch)) == 128
    run = setup_many("--apply", project=(project,), branch=(branch,))
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert [u["userId"] for r in empty.access_records.values() for u in r["users"]] == [sub(project, branch)]


def test_a_body_authress_refuses_names_the_field_not_the_api_url(setup_many: Setup) -> None:
    project = "my-org/" + "platform-" * 7 + "infra"
    run = setup_many("--apply", project=(project,), branch=("feature/" + "x" * 12,))
    assert run.returncode == 1 and run.stdout == ""
    warning, error = run.stderr.splitlines()
    assert "is 129 characters, over the 128 Authress accepts" in warning and "sub claim" in warning
    assert "answered 400 to POST" in error and "User.userId is 129 characters, over 128" in error
    assert "--api-url" not in error
    assert "; setup --apply had first created 1 trusted identity; User.userId is 129 characters" in error


def test_an_identity_that_maps_user_ids_otherwise_is_flagged(
    setup_many: Setup, issuer: LocalIssuer, empty: AuthressStandIn
) -> None:
    empty.trust(issuer.url, AUDIENCE, user_id_expression="{project_id}")
    plan = setup_many("--plan")
    first = plan.stdout.splitlines()[0]
    assert first.startswith(f'! trusted identity issuer "{issuer.url}"')
    assert 'userIdExpression is "{project_id}", not "{sub}"' in first


def test_list_reads_every_page_of_records(setup_many: Setup, empty: AuthressStandIn) -> None:
    """getRecords gives at most 20 a page: the listing follows the cursor."""
    subs = [sub(f"my-org/p{i}", "main") for i in range(23)]
    for s in subs:
        put_record(
            empty,
            {
                "recordId": record_id(s),
                "name": f"GitLab CI {s} (managed by authress-gitlab-token)",
                "users": [{"userId": s}],
                "statements": [{"roles": ["ro_terraform"], "resources": [{"resourceUri": "*"}]}],
                "tags": {"managed-by": "authress-gitlab-token"},
            },
        )
    run = setup_many("--list", "--json", project=(), branch=(), role=())
    listed = json.loads(run.stdout)
    assert sorted(u for r in listed["access_records"] for u in r["users"]) == sorted(subs)
    assert [r.path for r in empty.requests if r.path == "/v1/records"] == ["/v1/records"] * 2
