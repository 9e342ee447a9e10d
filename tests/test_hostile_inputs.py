"""Inputs that once ended in "internal error", a hang or a silent default (issue 12): each now ends in the
one-line message and the documented exit status. The helper runs as Terraform runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.helper import AUDIENCE, PROGRAM, PROJECT, RUNS, Helper, Run, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


def shell_run(helper: Helper, script: str, args: list[str], env: dict[str, str], stdin: bytes = b"") -> Run:
    """The installed program run from `sh -c script`, for what subprocess cannot set up (a closed fd)."""
    program = shutil.which(PROGRAM, path=helper.env["PATH"])
    assert program
    done = subprocess.run(
        ["sh", "-c", script, program, *args],
        input=stdin,
        env={**helper.env, **env},
        capture_output=True,
        timeout=60,
        check=False,
    )
    run = Run(tuple(args), done.returncode, done.stdout.decode(), done.stderr.decode())
    RUNS.append(run)
    return run


# --- globs ------------------------------------------------------------------------------------------


def test_a_glob_with_many_stars_against_a_long_branch_name_answers_at_once(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """Whoever names the branch chooses the claim: a backtracking matcher took 80 s here (5 stars,
    255 characters); this one takes about 10 microseconds (bench/globs.py). The bound is the wait."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="/" * 1000))
    started = time.monotonic()
    run = helper.external(query(issuer, ref="*/*/*/*/*/*/*/*/main"), token)
    run.refused('claim "ref" is "//////')
    assert time.monotonic() - started < 20


def test_a_glob_longer_than_any_claim_is_refused(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    helper.external(query(issuer, ref="a*" * 600), token).refused(
        'query key "ref" is longer than 1024 characters', code=2
    )
    bound = '{"ref": ["main", "' + "?" * 1025 + '"]}'
    helper.external(query(issuer, bound_claims=bound), token).refused("longer than 1024 characters", code=2)


# --- claims a token may carry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", lambda now: str(now + 300)),  # a number as a JSON string, which PyJWT reads as a number
        ("nbf", lambda now: str(now - 5)),
        ("iat", lambda now: str(now)),
        ("exp", lambda now: 1e20),
        ("exp", lambda now: 10**30),
        ("nbf", lambda now: -1),
        ("nbf", lambda now: True),  # Python's bool is an int: 1, a date in 1970 that PyJWT would take
    ],
    ids=["exp-string", "nbf-string", "iat-string", "exp-1e20", "exp-huge-int", "nbf-negative", "nbf-true"],
)
def test_a_time_claim_that_is_not_a_plain_date_is_refused_by_name(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, claim: str, value: Callable[[int], Any]
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, **{claim: value(int(time.time()))}))
    helper.external(query(issuer), token).refused(f'claim "{claim}" is ', "expected seconds since 1970")
    args = ["doctor", "--audience", AUDIENCE, "--issuer", issuer.url, "--project-path", PROJECT, "--check", "none"]
    doctor = helper.run(args, env={"AUTHRESS_KEY": token})
    assert doctor.returncode == 1 and "internal error" not in doctor.stdout + doctor.stderr
    assert "[fail] signature and claims" in doctor.stdout and f'claim "{claim}" is ' in doctor.stdout


@pytest.mark.parametrize("sub", ["", "   "])
def test_an_empty_subject_is_refused(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, sub: str) -> None:
    """Authress takes `sub` as the user ID: an empty one must not become `user_id = ""`."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, sub=sub))
    helper.external(query(issuer), token).refused('claim "sub" is empty')


def test_a_boolean_claim_matches_and_is_returned_as_lowercase_true(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """GitLab sends "true" as a string today; a JSON true must read the same, never Python's `True`."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref_protected=True, pipeline_source=False))
    run = helper.external(query(issuer, ref_protected="true", bound_claims='{"pipeline_source": "false"}'), token)
    assert run.returncode == 0, run.stderr
    assert run.result["ref_protected"] == "true"
    helper.external(query(issuer, ref_protected="True"), token).refused(
        'claim "ref_protected" is "true", expected "True"'
    )


def test_a_claim_as_long_as_the_token_allows_is_cut_short_in_the_message(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="x" * 2000))
    run = helper.external(query(issuer, ref="main"), token)
    run.refused('claim "ref" is "xxxx', '..."')
    assert len(run.stderr) < 400


@pytest.mark.parametrize(("minimum", "accepted"), [("600", False), ("100", True)])
def test_min_validity_refuses_only_a_token_that_expires_sooner(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, minimum: str, accepted: bool
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=300))
    run = helper.external(query(issuer, min_validity_seconds=minimum), token)
    if accepted:
        assert run.returncode == 0, run.stderr
    else:
        run.refused(f"less than min_validity_seconds {minimum}")


# --- the query ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suffix"),
    [("issuer", "\n"), ("issuer", "\t"), ("api_url", "\n"), ("leeway_seconds", "\n"), ("token_env", "\n")],
)
def test_a_query_value_with_a_trailing_newline_or_tab_is_refused(
    helper: Helper, issuer: LocalIssuer, token: str, key: str, suffix: str
) -> None:
    """JSON Schema patterns are searched, and Python's `$` matches before a final newline."""
    values = {"issuer": issuer.url, "api_url": "https://auth.example.com", "leeway_seconds": "60"}
    value = values.get(key, "AUTHRESS_KEY") + suffix
    helper.external({**query(issuer), key: value}, token).refused(f'"{key}" is "', code=2)
    assert issuer.requests == []


def test_an_audience_that_is_no_url_beside_an_api_url_only_warns(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, "https://["))
    run = helper.external(query(issuer, audience="https://[", api_url="https://auth.example.com"), token)
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith('authress-gitlab-token: warning: audience "https://[" is not')
    assert run.stderr.count("\n") == 1


def test_an_audience_with_a_trailing_newline_names_no_account_and_is_warned_about(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = AUDIENCE + "\n"
    run = helper.external(query(issuer, audience=audience), mint(signing_key, gitlab_claims(issuer.url, audience)))
    assert run.returncode == 0, run.stderr
    assert (run.result["account_id"], run.result["api_url"]) == ("", "")
    assert run.stderr.startswith('authress-gitlab-token: warning: audience "https://acc-1a2b3c.api.authress.io\\n"')


def test_a_query_that_binds_no_project_is_refused_unless_it_allows_any(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """Any project on the instance can ask GitLab for a token with our audience."""
    unbound = {"audience": AUDIENCE, "issuer": issuer.url}
    for extra in ({}, {"ref": "main"}, {"project_path": "*"}, {"bound_claims": '{"pipeline_source": "push"}'}):
        helper.external({**unbound, **extra}, token).refused(
            "the query binds no project", '"allow_any_project" to "true"', code=2
        )
    assert issuer.requests == []
    for extra in (
        {"allow_any_project": "true"},
        {"namespace_path": "my-org"},
        {"subject": "project_path:my-org/*"},
        {"bound_claims": '{"project_id": "20"}'},
    ):
        run = helper.external({**unbound, **extra}, token)
        assert run.returncode == 0, (extra, run.stderr)
    helper.external({**unbound, "allow_any_project": "false"}, token).refused("binds no project", code=2)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "61", "5s"])
def test_an_http_timeout_that_is_not_a_number_of_seconds_is_refused(
    helper: Helper, issuer: LocalIssuer, token: str, value: str
) -> None:
    run = helper.external(query(issuer), token, env={"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": value})
    run.refused(f'AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT is "{value}", expected seconds from 0.1 to 60', code=2)
    assert issuer.requests == []


# --- stdin, stdout, signals ---------------------------------------------------------------------


def test_closed_stdin_is_a_missing_query(helper: Helper, token: str) -> None:
    shell_run(helper, 'exec "$0" "$@" <&-', ["external"], {"AUTHRESS_KEY": token}).refused(
        "stdin is closed, so there is no query", code=2
    )


@pytest.mark.parametrize("args", [["external"], ["setup", "--json"]])
def test_closed_stdout_is_named(helper: Helper, issuer: LocalIssuer, token: str, args: list[str]) -> None:
    env = {"AUTHRESS_KEY": token, "CI_PROJECT_PATH": PROJECT, "CI_COMMIT_REF_NAME": "main"}
    run = shell_run(helper, 'exec "$0" "$@" >&-', [*args], env, stdin=b"{}")
    run.refused("stdout is closed")


@pytest.mark.parametrize("command", ["setup", "external"])
def test_a_reader_that_went_away_is_one_line_not_a_traceback(
    helper: Helper, issuer: LocalIssuer, token: str, command: str
) -> None:
    """`setup --json | true`, made certain: the pipe's reading end is closed before the helper writes."""
    import json

    args = {"setup": ["setup", "--json", "--project", PROJECT, "--branch", "main", "--audience", AUDIENCE]}
    argv = args.get(command, ["external"])
    read_end, write_end = os.pipe()
    os.close(read_end)
    program = shutil.which(PROGRAM, path=helper.env["PATH"])
    assert program
    try:
        done = subprocess.run(
            [program, *argv],
            input=json.dumps(query(issuer)).encode(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**helper.env, "AUTHRESS_KEY": token},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    run = Run(tuple(argv), done.returncode, "", done.stderr.decode())
    RUNS.append(run)
    run.refused("stdout was closed before the output was written")
