"""`env`, run as installed: the verified token as an export line a job script sources into AUTHRESS_KEY
(or a dotenv line), the query's checks as flags, and nothing printed when it refuses."""

from __future__ import annotations

import os
import subprocess

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.helper import AUDIENCE, SUB, Helper, argv, query
from tests.fixtures.issuer import LocalIssuer


def test_env_prints_an_export_line_that_a_shell_sources_into_authress_key(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    # The job's ID token lives under another name; the provider reads AUTHRESS_KEY.
    args = argv("env", **query(issuer, token_env="GITLAB_OIDC_TOKEN", ref="main"))
    run = helper.run(args, env={"GITLAB_OIDC_TOKEN": token})
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout.startswith("export AUTHRESS_KEY=") and run.stdout.count("\n") == 1
    sourced = subprocess.run(
        ["sh", "-c", 'eval "$EXPORTS"; test "$AUTHRESS_KEY" = "$EXPECTED"'],
        env={"PATH": os.environ["PATH"], "EXPORTS": run.stdout, "EXPECTED": token},
        check=False,
    )
    assert sourced.returncode == 0, "the export line did not set AUTHRESS_KEY to the verified token"


def test_env_dotenv_format_is_one_assignment(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.run(argv("env", "--format", "dotenv", **query(issuer)), env={"AUTHRESS_KEY": token})
    assert run.returncode == 0, run.stderr
    name, _, value = run.stdout.rstrip("\n").partition("=")
    assert (name, value == token) == ("AUTHRESS_KEY", True)


def test_env_refuses_what_external_refuses_and_prints_nothing(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.run(argv("env", **query(issuer, ref="release/*")), env={"AUTHRESS_KEY": token})
    run.refused('claim "ref" is "main", expected "release/*"')


def test_env_requires_the_audience(helper: Helper, token: str) -> None:
    run = helper.run(["env"], env={"AUTHRESS_KEY": token})
    assert run.returncode == 2 and "--audience" in run.stderr and run.stdout == ""


def test_env_flags_are_checked_like_query_keys(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.run(argv("env", **query(issuer, leeway_seconds="soon")), env={"AUTHRESS_KEY": token})
    run.refused('--leeway-seconds is "soon"', code=2)


def test_env_runs_the_authress_check_when_asked(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    authress.trust(issuer.url, AUDIENCE)
    args = argv("env", **query(issuer, check="authress", api_url=authress.url))
    helper.run(args, env={"AUTHRESS_KEY": token}).refused("answered 404", f'exactly "{SUB}"')
    authress.grant(SUB)
    assert helper.run(args, env={"AUTHRESS_KEY": token}).returncode == 0
