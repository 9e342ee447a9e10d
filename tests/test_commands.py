"""The commands for people: `env` (the token for a job script), `doctor` (what works, what to fix) and
`setup` (what to enter in Authress and GitLab), run as installed, against the local issuer and Authress."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, PROJECT, SUB, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

BOUND = ("--project-path", PROJECT)  # every query binds the project


# --- env ------------------------------------------------------------------------------------------


def test_env_prints_an_export_line_that_a_shell_sources_into_authress_key(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    # The job's ID token lives under another name; the provider reads AUTHRESS_KEY.
    run = helper.run(
        [
            "env",
            *BOUND,
            "--audience",
            AUDIENCE,
            "--issuer",
            issuer.url,
            "--token-env",
            "GITLAB_OIDC_TOKEN",
            "--ref",
            "main",
        ],
        env={"GITLAB_OIDC_TOKEN": token},
    )
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
    run = helper.run(
        ["env", *BOUND, "--audience", AUDIENCE, "--issuer", issuer.url, "--format", "dotenv"],
        env={"AUTHRESS_KEY": token},
    )
    assert run.returncode == 0, run.stderr
    name, _, value = run.stdout.rstrip("\n").partition("=")
    assert (name, value == token) == ("AUTHRESS_KEY", True)


def test_env_refuses_what_external_refuses_and_prints_nothing(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.run(
        ["env", *BOUND, "--audience", AUDIENCE, "--issuer", issuer.url, "--ref", "release/*"],
        env={"AUTHRESS_KEY": token},
    )
    run.refused('claim "ref" is "main", expected "release/*"')


def test_env_requires_the_audience(helper: Helper, token: str) -> None:
    run = helper.run(["env"], env={"AUTHRESS_KEY": token})
    assert run.returncode == 2 and "--audience" in run.stderr and run.stdout == ""


def test_env_flags_are_checked_like_query_keys(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    run = helper.run(["env", *BOUND, "--audience", AUDIENCE, "--leeway-seconds", "soon"], env={"AUTHRESS_KEY": token})
    run.refused('--leeway-seconds is "soon"', code=2)


def test_env_runs_the_authress_check_when_asked(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    authress.trust(issuer.url, AUDIENCE)
    args = [
        "env",
        *BOUND,
        "--audience",
        AUDIENCE,
        "--issuer",
        issuer.url,
        "--check",
        "authress",
        "--api-url",
        authress.url,
    ]
    helper.run(args, env={"AUTHRESS_KEY": token}).refused("answered 404", f'exactly "{SUB}"')
    authress.grant(SUB)
    assert helper.run(args, env={"AUTHRESS_KEY": token}).returncode == 0


# --- doctor ---------------------------------------------------------------------------------------


def doctor(helper: Helper, token: str | None, *args: str, env: dict[str, str] | None = None) -> dict:
    extra = dict(env or {})
    if token is not None:
        extra["AUTHRESS_KEY"] = token
    run = helper.run(["doctor", "--json", *BOUND, *args], env=extra)
    report = json.loads(run.stdout)
    assert run.returncode == (0 if report["ok"] else 1)
    return report


def statuses(report: dict) -> dict[str, str]:
    return {step["name"]: step["status"] for step in report["steps"]}


def test_doctor_in_a_ready_job_passes_every_step_and_shows_the_claims(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    authress.trust(issuer.url, AUDIENCE)
    authress.grant(SUB)
    run = helper.run(
        [
            "doctor",
            *BOUND,
            "--audience",
            AUDIENCE,
            "--issuer",
            issuer.url,
            "--api-url",
            authress.url,
            "--ref",
            "main",
            "--ref-type",
            "branch",
        ],
        env={"AUTHRESS_KEY": token},
    )
    assert run.returncode == 0, run.stdout
    assert "holds a GitLab ID token (never shown)" in run.stdout
    assert f"  sub                 {SUB}" in run.stdout
    for line in ("[pass] issuer keys", "[pass] signature and claims", "[pass] bound ref", "[pass] authress"):
        assert line in run.stdout
    assert run.stdout.rstrip().endswith("OK: nothing: the token is ready for Terraform")
    assert authress.requests[0].token == token


def test_doctor_without_a_token_says_to_add_id_tokens(helper: Helper) -> None:
    report = doctor(helper, None, "--audience", AUDIENCE, env={"GITLAB_CI": "true"})
    assert statuses(report) == {"token": "fail"}
    assert "id_tokens" in report["fix"] and AUDIENCE in report["fix"]


def test_doctor_names_the_failing_bound_claim_and_skips_authress(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    report = doctor(
        helper, token, "--audience", AUDIENCE, "--issuer", issuer.url, "--api-url", authress.url, "--ref", "prod"
    )
    assert statuses(report)["bound ref"] == "fail"
    assert statuses(report)["authress"] == "skip"
    assert report["fix"] == "this token is for another project, ref or job"
    assert report["claims"]["ref"] == "main"
    assert authress.requests == []


def test_doctor_reports_an_untrusted_token_with_the_identity_to_create(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    report = doctor(helper, token, "--audience", AUDIENCE, "--issuer", issuer.url, "--api-url", authress.url)
    assert statuses(report)["signature and claims"] == "pass"
    assert statuses(report)["authress"] == "fail"
    assert f'issuer "{issuer.url}" and audience "{AUDIENCE}"' in report["fix"]


def test_doctor_reports_keys_it_cannot_fetch(helper: Helper, token: str) -> None:
    report = doctor(helper, token, "--audience", AUDIENCE, "--issuer", "https://127.0.0.1:1")
    assert statuses(report)["issuer keys"] == "fail"
    assert "check the issuer is reachable" in report["fix"]


def test_doctor_takes_the_audience_from_the_token_and_says_so(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    report = doctor(helper, token, "--issuer", issuer.url, "--check", "none")
    assert report["ok"] is True
    assert statuses(report)["audience"] == "warn"
    assert statuses(report)["authress"] == "skip"
    assert report["fix"] == "pass --audience to check it"


def test_doctor_skips_authress_when_the_audience_names_no_account(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = "https://api.authress.io"
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    report = doctor(helper, token, "--audience", audience, "--issuer", issuer.url)
    assert report["ok"] is True
    assert statuses(report)["authress"] == "skip"
    assert "newest Authress Terraform provider refuses such tokens" in report["fix"]


def test_doctor_reports_an_expired_token(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=1_700_000_000))
    report = doctor(helper, token, "--audience", AUDIENCE, "--issuer", issuer.url)
    assert statuses(report)["signature and claims"] == "fail"
    assert "run the job again" in report["fix"]


def test_doctor_judges_the_lifetime_as_external_does(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=120))
    args = ("--audience", AUDIENCE, "--issuer", issuer.url, "--check", "none")
    assert statuses(doctor(helper, token, *args))["lifetime"] == "pass"
    report = doctor(helper, token, *args, "--min-validity-seconds", "600")
    assert statuses(report)["lifetime"] == "fail"
    assert "raise the job's `timeout:`" in report["fix"]
    # Past `exp` but within the leeway, and no minimum asked for: accepted, as `external` accepts it.
    late = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=int(time.time()) - 330))
    assert statuses(doctor(helper, late, *args))["lifetime"] == "pass"
    helper.external({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}, late).result  # noqa: B018 -- must parse


# --- setup ----------------------------------------------------------------------------------------


def setup(helper: Helper, *args: str, env: dict[str, str] | None = None) -> dict:
    run = helper.run(["setup", "--json", *args], env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_setup_prints_the_user_id_that_authress_then_accepts(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    """Following setup's output literally makes the pre-flight check pass for a token of that project and branch."""
    guide = setup(
        helper,
        "--project",
        "my-org/authress-configuration",
        "--branch",
        "main",
        "--audience",
        AUDIENCE,
        "--issuer",
        issuer.url,
    )
    assert guide["access_record_user_id"] == SUB
    identity = guide["trusted_identity"]
    authress.trust(identity["issuer"], identity["audience"])
    authress.grant(guide["access_record_user_id"])
    run = helper.external(
        {
            "audience": AUDIENCE,
            "issuer": issuer.url,
            "project_path": PROJECT,
            "check": "authress",
            "api_url": authress.url,
        },
        token,
    )
    assert run.returncode == 0, run.stderr
    assert guide["id_tokens_yaml"] == f'id_tokens:\n  AUTHRESS_KEY:\n    aud: "{AUDIENCE}"\n'
    assert f'audience     = "{AUDIENCE}"' in guide["module_hcl"]
    assert 'ref          = "main"' in guide["module_hcl"]
    assert "  access_key    = module.authress_token.access_token\n" in guide["module_hcl"]
    assert "  custom_domain = module.authress_token.api_url\n" in guide["module_hcl"]


def test_setup_takes_its_defaults_from_the_gitlab_job(helper: Helper) -> None:
    env = {
        "CI_PROJECT_PATH": "grp/sub/infra",
        "CI_COMMIT_REF_NAME": "v1.2.0",
        "CI_COMMIT_TAG": "v1.2.0",
        "CI_SERVER_URL": "https://gitlab.example.com",
    }
    guide = setup(helper, "--audience", AUDIENCE, env=env)
    assert guide["access_record_user_id"] == "project_path:grp/sub/infra:ref_type:tag:ref:v1.2.0"
    assert guide["trusted_identity"] == {"issuer": "https://gitlab.example.com", "audience": AUDIENCE}
    assert 'issuer       = "https://gitlab.example.com"' in guide["module_hcl"]


def test_setup_human_output_lists_the_steps(helper: Helper) -> None:
    run = helper.run(["setup", "--project", "my-org/infra", "--tag", "v1", "--audience", AUDIENCE])
    assert run.returncode == 0
    assert "Connections -> OIDC trusted identities" in run.stdout
    assert "       project_path:my-org/infra:ref_type:tag:ref:v1\n" in run.stdout
    assert "issuer:   https://gitlab.com" in run.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--branch", "main", "--audience", AUDIENCE], "pass --project GROUP/PROJECT"),
        (["--project", "my-org/x", "--audience", AUDIENCE], "pass --branch NAME or --tag NAME"),
        (["--project", "my-org/x", "--branch", "main"], "pass --audience"),
        (
            ["--project", "my-org/x", "--branch", "main", "--audience", AUDIENCE, "--issuer", "http://gitlab"],
            "not an https URL",
        ),
    ],
)
def test_setup_says_which_flag_is_missing(helper: Helper, args: list[str], fragment: str) -> None:
    helper.run(["setup", *args]).refused(fragment, code=2)


def test_setup_warns_about_an_audience_the_provider_refuses(helper: Helper) -> None:
    run = helper.run(["setup", "--project", "my-org/x", "--branch", "main", "--audience", "https://api.authress.io"])
    assert run.returncode == 0
    assert run.stderr.startswith("authress-gitlab-token: warning: ") and run.stderr.count("\n") == 1
    assert ACCOUNT_ID not in run.stdout
