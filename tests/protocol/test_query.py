"""The query on stdin and the answer's channel: what is not a query, or not one the helper takes, is
refused with exit 2 before the token is looked at or anything is fetched, and a closed or vanished
stdin or stdout ends in one line. The checks of each key's value need no process and run in-process;
the helper runs as Terraform runs it wherever the exit status and the line are the point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from authress_gitlab_token.environment import http_timeout
from authress_gitlab_token.errors import QueryError
from authress_gitlab_token.external import parse_query
from authress_gitlab_token.settings import Settings, from_query
from tests.fixtures.helper import AUDIENCE, PROGRAM, PROJECT, RUNS, Helper, Run, guide, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import tampered

ISSUER = "https://gitlab.example.com"


def settings_of(given: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
    """The query read from its JSON text and resolved, as `external` does both."""
    return from_query(parse_query(json.dumps(given).encode()), environ or {})


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


# --- through the helper: exit 2, one line, nothing fetched --------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "no query on stdin; set stdin = jsonencode({...})"),
        (b" \n", "no query on stdin; set stdin = jsonencode({...})"),
        (b"audience=x", "the query on stdin is not JSON"),
        (b'{"audience": "x"', "the query on stdin is not JSON"),
        (b"\xff\xfe{}", "the query on stdin is not"),
        (b'["audience", "x"]', "the query on stdin is a JSON array, expected an object"),
        (b'"audience"', "the query on stdin is a JSON string, expected an object"),
        (b"null", "the query on stdin is a JSON null, expected an object"),
        (b'{"audience": {"value": "x"}}', 'query key "audience" must be a string, got a JSON object'),
        (b'{"audience": ["x"]}', 'query key "audience" must be a string, got a JSON array'),
        (b'{"audience": true}', 'query key "audience" must be a string, got a JSON boolean'),
        (b'{"audience": null}', 'query key "audience" must be a string, got a JSON null'),
        (b'{"audience":"x","leeway_seconds":60}', 'query key "leeway_seconds" must be a string'),
        (b"[" * 50_000 + b"]" * 10_000, "the query on stdin is nested too deeply"),
        (b'{"audience": "x", "ref": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested too deeply"),
        (b'{"audience": "' + b"a" * (64 * 1024) + b'"}', "the query on stdin is larger than 65536 bytes"),
    ],
    ids=[
        "empty",
        "whitespace",
        "not-json",
        "truncated-json",
        "not-utf8",
        "array",
        "string",
        "null",
        "nested-object-value",
        "nested-array-value",
        "boolean-value",
        "null-value",
        "number-value",
        "deeply-nested",
        "deeply-nested-value",
        "over-64-KiB",
    ],
)
def test_stdin_that_is_not_a_query_is_refused_with_exit_2(
    helper: Helper, token: str, stdin: bytes, message: str
) -> None:
    helper.run(["external"], stdin, {"AUTHRESS_KEY": token}).refused(message, code=2)


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ({"leeway_seconds": "900"}, {}, "more than 300"),
        ({"issuer": "{url}\n"}, {}, '"issuer" is "'),
        ({"access_token": "x"}, {}, 'unknown query key "access_token"'),
        ({}, {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "abc"}, 'AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT is "abc"'),
    ],
    ids=["query-key", "trailing-newline", "unknown-key", "environment"],
)
def test_a_refused_query_or_setting_wins_over_a_refused_token_and_nothing_is_fetched(
    helper: Helper, issuer: LocalIssuer, token: str, extra: dict[str, str], env: dict[str, str], message: str
) -> None:
    given = {**query(issuer), **{key: value.format(url=issuer.url) for key, value in extra.items()}}
    helper.external(given, tampered(token), env=env).refused(message, code=2)
    assert issuer.requests == []


# --- each key's value, in-process ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "environ", "message"),
    [
        ({"audience": "a", "access_token": "x"}, {}, 'unknown query key "access_token"'),
        ({"issuer": ISSUER}, {}, 'query key "audience" is required'),
        ({"audience": AUDIENCE, "issuer": "http://gitlab.example.com"}, {}, "is not an https URL"),
        ({"audience": AUDIENCE}, {"CI_SERVER_URL": "http://gitlab.local"}, 'CI_SERVER_URL is "http://gitlab.local"'),
        ({"audience": AUDIENCE, "issuer": ISSUER, "leeway_seconds": "900"}, {}, "more than 300"),
        ({"audience": AUDIENCE, "ref": "a*" * 600}, {}, 'query key "ref" is longer than 1024 characters'),
        ({"audience": AUDIENCE, "bound_claims": '{"ref": ["main", "' + "?" * 1025 + '"]}'}, {}, "longer than 1024"),
        ({"audience": AUDIENCE, "check": "yes"}, {}, 'query key "check" is "yes", expected one of "none", "authress"'),
        ({"audience": AUDIENCE, "api_url": "http://127.0.0.1:1"}, {}, 'query key "api_url"'),
    ],
    ids=[
        "unknown-key",
        "no-audience",
        "http-issuer",
        "http-ci-server-url",
        "leeway-cap",
        "long-glob",
        "long-bound",
        "unknown-check",
        "http-api-url",
    ],
)
def test_a_query_key_the_helper_cannot_take_is_refused_by_name(
    given: dict[str, str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(QueryError) as refused:
        settings_of({"project_path": PROJECT, **given}, environ)
    assert message in str(refused.value)
    if "CI_SERVER_URL" in environ:
        assert 'query key "issuer"' in str(refused.value)  # the fix names the key that overrides it


@pytest.mark.parametrize(
    ("key", "suffix"),
    [("issuer", "\n"), ("issuer", "\t"), ("api_url", "\n"), ("leeway_seconds", "\n"), ("token_env", "\n")],
)
def test_a_query_value_with_a_trailing_newline_or_tab_is_refused(key: str, suffix: str) -> None:
    """JSON Schema patterns are searched, and Python's `$` matches before a final newline."""
    values = {"issuer": ISSUER, "api_url": "https://auth.example.com", "leeway_seconds": "60"}
    with pytest.raises(QueryError, match=f'"{key}" is "'):
        settings_of({**query(ISSUER), key: values.get(key, "AUTHRESS_KEY") + suffix})


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "61", "5s"])
def test_an_http_timeout_that_is_not_a_number_of_seconds_is_refused(value: str) -> None:
    expected = f'AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT is "{value}", expected seconds from 0.1 to 60'
    with pytest.raises(QueryError) as refused:
        http_timeout({"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": value})
    assert expected in str(refused.value)
    assert http_timeout({"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": " 0.5 "}) == 0.5  # the control


# --- stdin and stdout closed or gone --------------------------------------------------------------------


def test_closed_stdin_is_a_missing_query(helper: Helper, token: str) -> None:
    shell_run(helper, 'exec "$0" "$@" <&-', ["external"], {"AUTHRESS_KEY": token}).refused(
        "stdin is closed, so there is no query", code=2
    )


@pytest.mark.parametrize("args", [["external"], ["setup", "--json"]])
def test_closed_stdout_is_named(helper: Helper, token: str, args: list[str]) -> None:
    env = {"AUTHRESS_KEY": token, "CI_PROJECT_PATH": PROJECT, "CI_COMMIT_REF_NAME": "main"}
    run = shell_run(helper, 'exec "$0" "$@" >&-', [*args], env, stdin=b"{}")
    run.refused("stdout is closed")


@pytest.mark.parametrize("command", ["setup", "external"])
def test_a_reader_that_went_away_is_one_line_not_a_traceback(
    helper: Helper, issuer: LocalIssuer, token: str, command: str
) -> None:
    """`setup --json | true`, made certain: the pipe's reading end is closed before the helper writes."""
    argv = [*guide(), "--json"] if command == "setup" else ["external"]
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
