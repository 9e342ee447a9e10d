"""One ownership rule for every `setup` mode, run as installed against the Authress stand-in: a record
under setup's ID is setup's only when it carries the marker tag; without it the record is shown with `!`
and never written (plan, apply, destroy) nor listed as made by this tool (`--list`). And a plan whose
lines hold a `!` problem does not exit 0 (`--detailed-exitcode` or not)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from authress_gitlab_token.setup.plan import NAME_SUFFIX, record_id
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_admin import put_record
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, SUB, AdminSetup, Run
from tests.fixtures.issuer import LocalIssuer

RECORD = record_id(SUB)
NOT_SETUPS = f'! access record "{RECORD}" user "{SUB}": '  # the start of the `!` line for a record not setup's


def foreign(**extra: Any) -> dict[str, Any]:
    """A record made in the portal under setup's ID, with setup's name suffix but no marker tag: someone
    typed it (or removed the tag), so setup must not take it for its own."""
    return {
        "recordId": RECORD,
        "name": "hand-made grant" + NAME_SUFFIX,
        "users": [{"userId": SUB}, {"userId": "user|alice"}],
        "admins": [{"userId": "user|alice"}],
        "statements": [{"roles": ["ro_audit"], "resources": [{"resourceUri": "/logs/*"}]}],
        **extra,
    }


def untouched(authress: AuthressStandIn, before: dict[str, Any]) -> None:
    assert authress.writes() == [], [(r.method, r.path) for r in authress.writes()]
    assert authress.access_records[RECORD] == before, "a record that is not setup's was changed"


def problem_line(run: Run) -> str:
    [line] = [line for line in run.stdout.splitlines() if line.startswith("! access record")]
    return line


@pytest.mark.parametrize("tags", [None, {}, {"managed-by": "someone-else"}, {"owner": "alice"}])
def test_apply_never_overwrites_a_record_under_setups_id_without_the_marker(
    tags: dict[str, str] | None, admin_setup: AdminSetup, empty: AuthressStandIn, issuer: LocalIssuer
) -> None:
    empty.trust(issuer.url, AUDIENCE)
    before = put_record(empty, foreign(**({} if tags is None else {"tags": tags})))
    empty.requests.clear()

    plan = admin_setup("--plan")
    assert problem_line(plan).startswith(NOT_SETUPS) and "not its marker" in problem_line(plan)
    apply = admin_setup("--apply")
    assert apply.returncode == 1, apply.stderr
    assert problem_line(apply).startswith(NOT_SETUPS)
    untouched(empty, before)


def test_destroy_never_deletes_a_record_whose_marker_was_removed_though_its_name_is_setups(
    admin_setup: AdminSetup, empty: AuthressStandIn
) -> None:
    assert admin_setup("--apply").returncode == 0
    stored = empty.access_records[RECORD]
    assert stored["name"].endswith(NAME_SUFFIX)
    del stored["tags"]  # removed in the portal: the record is someone's now
    before = copy.deepcopy(stored)
    empty.requests.clear()

    for mode in ("--plan", "--apply"):
        run = admin_setup(mode, "--destroy", role=())
        assert run.returncode == 1, run.stderr
        assert problem_line(run).startswith(NOT_SETUPS)
        assert not any(line.startswith("- delete") for line in run.stdout.splitlines())
    untouched(empty, before)
    assert before["status"] == "ACTIVE"


def test_list_shows_a_record_under_setups_id_without_the_marker_only_as_a_problem(
    admin_setup: AdminSetup, empty: AuthressStandIn, issuer: LocalIssuer
) -> None:
    """Its name holds the marker's words, so getRecords' text filter finds it; the tag decides."""
    other_sub = SUB.replace(":main", ":production")
    assert admin_setup("--apply", branch="production").returncode == 0
    put_record(empty, foreign())
    empty.requests.clear()
    listing = {"project": None, "branch": None, "role": None}

    text = admin_setup("--list", **listing)  # type: ignore[arg-type]
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    made = [line for line in lines if line.startswith("access record ")]
    assert made == [f'access record "{record_id(other_sub)}" users ["{other_sub}"] roles ["ro_terraform"] on ["*"]']
    assert problem_line(text).startswith(f'! access record "{RECORD}" users ["{SUB}", "user|alice"]: ')
    assert lines[-1] == "1 access record(s) made by this tool."

    value = json.loads(admin_setup("--list", "--json", **listing).stdout)  # type: ignore[arg-type]
    assert [r["record_id"] for r in value["access_records"]] == [record_id(other_sub)]
    assert [(p["record_id"], p["users"]) for p in value["not_setups"]] == [(RECORD, [SUB, "user|alice"])]
    assert empty.writes() == []


# --- a plan with problems does not exit 0 -------------------------------------------------------------


def test_a_plan_whose_only_lines_are_problems_exits_1_with_and_without_detailed_exitcode(
    admin_setup: AdminSetup, empty: AuthressStandIn, issuer: LocalIssuer
) -> None:
    """Everything exists, but the identity maps user IDs from `{email}`: the trust cannot work, so a
    pipeline gate on `--plan --detailed-exitcode` must not pass it as "nothing to change"."""
    assert admin_setup("--apply").returncode == 0
    audience = empty.identities[0].audience
    empty.identities[0] = type(empty.identities[0])(issuer.url, audience, "{email}")
    for flags in (("--detailed-exitcode",), ()):
        run = admin_setup("--plan", *flags)
        assert run.returncode == 1, (flags, run.stderr)
        lines = run.stdout.splitlines()
        assert lines[0].startswith("! trusted identity") and lines[1].startswith("= unchanged access record")
        assert lines[-1] == "Plan: 0 change(s); 1 problem(s) to fix (the lines starting with !)."
        assert "Nothing to change" not in run.stdout
        assert run.stderr.startswith("authress-gitlab-token: ") and len(run.stderr.splitlines()) == 1
    assert json.loads(admin_setup("--plan", "--json", "--detailed-exitcode").stdout)["problems"] == 1


def test_a_plan_with_changes_and_a_missing_role_exits_1_not_2(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    run = admin_setup("--plan", "--detailed-exitcode", role=("ro_terraform", "ro_missing"))
    assert run.returncode == 1, run.stderr
    assert f'! role "ro_missing" does not exist in account "{ACCOUNT_ID}"' in run.stdout.splitlines()
    assert run.stdout.splitlines()[-1] == "Plan: 2 change(s); 1 problem(s) to fix (the lines starting with !)."
    assert empty.writes() == []


def test_a_foreign_record_under_setups_id_fails_the_plan_gate(admin_setup: AdminSetup, empty: AuthressStandIn) -> None:
    assert admin_setup("--apply").returncode == 0
    del empty.access_records[RECORD]["tags"]
    run = admin_setup("--plan", "--detailed-exitcode")
    assert run.returncode == 1, run.stderr
    assert problem_line(run).startswith(NOT_SETUPS)
