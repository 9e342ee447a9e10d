"""Defaults and the checks on the query that a schema cannot express."""

from __future__ import annotations

from pathlib import Path

import pytest

from authress_gitlab_token.errors import QueryError
from authress_gitlab_token.settings import BoundClaim, from_query
from authress_gitlab_token.verify import glob_match

ANY = {"allow_any_project": "true"}  # for the tests of other keys


def test_issuer_is_gitlab_com_outside_a_gitlab_job() -> None:
    assert from_query({"audience": "a", **ANY}, {}).issuer == "https://gitlab.com"


def test_query_issuer_wins_over_ci_server_url() -> None:
    config = from_query(
        {"audience": "a", "issuer": "https://gitlab.example.com", **ANY}, {"CI_SERVER_URL": "https://gitlab.com"}
    )
    assert config.issuer == "https://gitlab.example.com"


def test_defaults_are_written_down() -> None:
    config = from_query({"audience": "a", **ANY}, {})
    assert (config.token_env, config.leeway_seconds, config.min_validity_seconds, config.bound_claims) == (
        "AUTHRESS_KEY",
        60,
        0,
        (),
    )


@pytest.mark.parametrize(
    "issuer",
    [
        "https://gitlab.com/",
        "http://gitlab.com",
        "https://gitlab.com?x=1",
        "https://gitlab.com#f",
        "https://user@gitlab.com",
        "gitlab.com",
        "https://",
    ],
)
def test_issuer_that_is_not_a_plain_https_url_is_refused(issuer: str) -> None:
    with pytest.raises(QueryError, match='query key "issuer"'):
        from_query({"audience": "a", "issuer": issuer}, {})


def test_named_keys_and_bound_claims_both_apply() -> None:
    config = from_query({"audience": "a", "ref": "main", "bound_claims": '{"ref": ["ma*"], "sha": "abc"}', **ANY}, {})
    assert config.bound_claims == (
        BoundClaim("ref", ("main",), "ref"),
        BoundClaim("ref", ("ma*",), "bound_claims"),
        BoundClaim("sha", ("abc",), "bound_claims"),
    )


@pytest.mark.parametrize("text", ["[]", "{}", '{"ref": []}', '{"ref": 1}', '{"ref": [""]}', '{"": "x"}', "nope"])
def test_malformed_bound_claims_are_refused(text: str) -> None:
    with pytest.raises(QueryError, match="bound_claims"):
        from_query({"audience": "a", "bound_claims": text}, {})


@pytest.mark.parametrize(
    ("glob", "value", "matches"),
    [
        ("main", "main", True),
        ("main", "main2", False),
        ("release/*", "release/1.2", True),
        ("release/*", "releases/1", False),
        ("v?.0", "v1.0", True),
        ("v?.0", "v10.0", False),
        ("my-org/[ab]", "my-org/a", False),  # brackets are literal, not a class
        ("my-org/[ab]", "my-org/[ab]", True),
        ("a.c", "abc", False),  # regex characters are literal
        ("*", "", True),
    ],
)
def test_globs_match_the_whole_value_with_star_and_question_mark_only(glob: str, value: str, matches: bool) -> None:
    assert glob_match(glob, value) is matches


def test_only_the_command_entry_reads_the_process_environment() -> None:
    """Everything below `cli.main` takes the values it was handed (settings.Settings, environment.SetupEnv):
    an in-process run, a test or a library caller decides the environment a run sees."""
    import authress_gitlab_token

    package = Path(authress_gitlab_token.__file__).parent
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "os.environ" in path.read_text() or "getenv(" in path.read_text()
    )
    assert readers == ["cli.py"]
