"""Binding means binding: a project glob must pin the top-level group, whatever its spelling; a list
binds only when every glob in it does; globs are case-sensitive; a bound `ref_protected` is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authress_gitlab_token.settings import glob_binds
from authress_gitlab_token.verify import glob_match
from tests.fixtures import ci_inputs
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

COMPONENT = Path(__file__).resolve().parents[2] / "templates" / "authress-token.yml"
# project_path globs of the GROUP/PROJECT shape the component takes: (glob, binds a project?)
PROJECT_GLOBS = [
    ("my-org/authress-configuration", True),
    ("my-org/*", True),
    ("my-org/infra/*", True),
    ("my-org/**", True),
    ("my-org/?uthress-configuration", True),
    ("*/*", False),
    ("**/**", False),
    ("?*/*", False),
    ("*/authress-configuration", False),
    ("my-org*/authress-configuration", False),
    ("?y-org/authress-configuration", False),
    ("my-*/*", False),
]
UNBOUND = [
    {},
    {"ref": "main"},
    {"bound_claims": json.dumps({"pipeline_source": "push"})},
    {"project_path": "*"},
    {"project_path": "?*"},
    *({"project_path": glob} for glob, binds in PROJECT_GLOBS if not binds),
    {"namespace_path": "*"},
    {"namespace_path": "?*"},
    {"namespace_path": "my-*"},
    {"subject": "*"},
    {"subject": "project_path:*"},
    {"subject": "project_path:*:ref_type:branch:ref:main"},
    {"subject": "*my-org/*"},
    {"subject": "*project_path:my-org/authress-configuration:ref_type:branch:ref:main"},  # open before the prefix
    {"subject": "project_path:my-org:ref_type:branch:ref:main"},  # no project path: no group named
    {"bound_claims": json.dumps({"project_path": [PROJECT, "*"]})},
    {"bound_claims": json.dumps({"sub": ["project_path:my-org/*", "project_path:*"]})},
    {"bound_claims": json.dumps({"project_id": "2*"})},
    {"bound_claims": json.dumps({"project_id": "2?"})},
]
BOUND = [
    {"project_path": "my-org/*"},
    {"namespace_path": "my-org"},
    {"subject": "project_path:my-org/*:ref_type:branch:ref:main"},
    {"subject": "project_path:my-org/*"},
    {"bound_claims": json.dumps({"project_path": [PROJECT, "my-org/other"]})},
    {"bound_claims": json.dumps({"project_id": "20"})},
]


def component_takes(project_path: str) -> bool:
    """Whether GitLab's input rules let the component be included with this `project_path`."""
    inputs = {"audience": AUDIENCE, "project_path": project_path, "helper_repository": "pypi"}
    try:
        ci_inputs.render(COMPONENT.read_text(encoding="utf-8"), inputs)
    except ci_inputs.InputError:
        return False
    return True


@pytest.mark.parametrize(("glob", "binds"), PROJECT_GLOBS)
def test_the_helper_and_the_component_agree_on_which_project_globs_bind(glob: str, binds: bool) -> None:
    assert glob_binds("project_path", glob) is binds
    assert component_takes(glob) is binds


@pytest.mark.parametrize("extra", UNBOUND, ids=lambda e: json.dumps(e))
def test_a_query_whose_project_glob_can_match_another_owners_project_is_refused(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, extra: dict[str, str]
) -> None:
    """The token comes from a project an attacker made in a group of their own."""
    attack = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, project_path="evil/authress-configuration"))
    helper.external({"audience": AUDIENCE, "issuer": issuer.url, **extra}, attack).refused(
        "the query binds no project", "top-level group in full", '"allow_any_project" to "true"', code=2
    )
    assert issuer.requests == []


def test_allow_any_project_true_is_the_one_way_to_bind_none(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """Any project on the instance can ask GitLab for a token with our audience: only a "true" allows it."""
    unbound = {"audience": AUDIENCE, "issuer": issuer.url}
    helper.external({**unbound, "allow_any_project": "false"}, token).refused("binds no project", code=2)
    run = helper.external({**unbound, "allow_any_project": "true"}, token)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("extra", BOUND, ids=lambda e: json.dumps(e))
def test_a_query_that_pins_the_group_accepts_its_own_project_and_refuses_another(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, token: str, extra: dict[str, str]
) -> None:
    query = {"audience": AUDIENCE, "issuer": issuer.url, **extra}
    run = helper.external(query, token)
    assert run.returncode == 0, run.stderr
    attack = gitlab_claims(issuer.url, AUDIENCE, project_path="evil/authress-configuration", project_id="666")
    assert helper.external(query, mint(signing_key, attack)).returncode == 1


paths = st.lists(st.text("ab-", min_size=1, max_size=3), min_size=2, max_size=4).map("/".join)


@given(st.text("ab/*?-", min_size=1, max_size=10), paths)
def test_a_glob_that_binds_matches_no_project_outside_its_group(glob: str, path: str) -> None:
    if glob_binds("project_path", glob) and glob_match(glob, path):
        assert path.split("/")[0] == glob.split("/")[0]


def test_globs_are_case_sensitive(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """GitLab paths and refs are compared as written; a case-blind match would widen every binding."""
    assert not glob_match("My-Org/*", PROJECT) and not glob_match("MAIN", "main") and not glob_match("m*N", "main")
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": "My-Org/Authress-Configuration"}
    helper.external(query, token).refused('claim "project_path" is "my-org/authress-configuration"')
    helper.external({**query, "project_path": PROJECT, "ref": "Main"}, token).refused('claim "ref" is "main"')


@pytest.mark.parametrize("protected", ["false", False])
def test_a_bound_ref_protected_refuses_a_job_on_an_unprotected_ref(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, protected: str | bool
) -> None:
    """The component binds ref_protected to "true": a job on any unprotected branch is refused."""
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT, "ref_protected": "true"}
    unprotected = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref_protected=protected))  # type: ignore[arg-type]
    helper.external(query, unprotected).refused('claim "ref_protected" is "false", expected "true"')
    run = helper.external(query, mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref_protected=True)))  # type: ignore[arg-type]
    assert run.returncode == 0 and run.result["ref_protected"] == "true", run.stderr
