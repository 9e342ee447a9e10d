"""`setup` without --plan or --apply, run as installed: the guide says what to enter in Authress and
GitLab (the user ID, the trusted identity, the job's `id_tokens:`, the module), takes its defaults from
the GitLab job, and refuses what the module would refuse, naming the flag."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

import pytest

from authress_gitlab_token import __version__
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, PROJECT, SUB, Flag, Helper, guide, query
from tests.fixtures.issuer import LocalIssuer


def guide_json(helper: Helper, env: Mapping[str, str] | None = None, **flags: Flag) -> dict[str, Any]:
    run = helper.run([*guide(**flags), "--json"], env=env)
    assert run.returncode == 0, run.stderr
    value: dict[str, Any] = json.loads(run.stdout)
    return value


def test_setup_prints_the_user_id_that_authress_then_accepts(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    """Following setup's output literally makes the pre-flight check pass for a token of that project and branch."""
    printed = guide_json(helper, issuer=issuer.url)
    assert printed["access_record_user_id"] == SUB
    identity = printed["trusted_identity"]
    authress.trust(identity["issuer"], identity["audience"])
    authress.grant(printed["access_record_user_id"])
    run = helper.external(query(issuer, check="authress", api_url=authress.url), token)
    assert run.returncode == 0, run.stderr
    assert printed["id_tokens_yaml"] == f'id_tokens:\n  AUTHRESS_ID_TOKEN:\n    aud: "{AUDIENCE}"\n'
    assert 'token_env    = "AUTHRESS_ID_TOKEN"' in printed["module_hcl"]
    assert f'audience     = "{AUDIENCE}"' in printed["module_hcl"]
    assert 'ref          = "main"' in printed["module_hcl"]
    assert "  access_key    = module.authress_token.access_token\n" in printed["module_hcl"]
    assert 'token_env    = "AUTHRESS_ID_TOKEN"' in printed["module_hcl"]
    assert "//terraform/ephemeral?ref=" in printed["module_hcl"]
    assert "  custom_domain = module.authress_token.api_url\n" in printed["module_hcl"]


def test_setup_takes_its_defaults_from_the_gitlab_job(helper: Helper) -> None:
    env = {
        "CI_PROJECT_PATH": "grp/sub/infra",
        "CI_COMMIT_REF_NAME": "v1.2.0",
        "CI_COMMIT_TAG": "v1.2.0",
        "CI_SERVER_URL": "https://gitlab.example.com",
    }
    printed = guide_json(helper, env, project=None, branch=None)
    assert printed["access_record_user_id"] == "project_path:grp/sub/infra:ref_type:tag:ref:v1.2.0"
    assert printed["trusted_identity"] == {"issuer": "https://gitlab.example.com", "audience": AUDIENCE}
    assert 'issuer       = "https://gitlab.example.com"' in printed["module_hcl"]


def test_setup_human_output_lists_the_steps(helper: Helper) -> None:
    run = helper.run(guide(project="my-org/infra", branch=None, tag="v1"))
    assert run.returncode == 0
    assert "Connections -> OIDC trusted identities" in run.stdout
    assert "       project_path:my-org/infra:ref_type:tag:ref:v1\n" in run.stdout
    assert "issuer:   https://gitlab.com" in run.stdout


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"project": None}, "pass --project GROUP/PROJECT"),
        ({"branch": None}, "pass --branch NAME or --tag NAME"),
        ({"audience": None}, "pass --audience"),
        ({"issuer": "http://gitlab"}, "not an https URL"),
        ({"project": PROJECT + "\n"}, '--project is "my-org/authress-configuration\\n"'),
        ({"audience": "http://acc-1a2b3c.api.authress.io"}, '--audience is "http://acc-1a2b3c.api.authress.io", not'),
        ({"audience": "acc-1a2b3c.api.authress.io"}, '--audience is "acc-1a2b3c.api.authress.io", not an https URL'),
        ({"audience": "https://a b"}, '--audience is "https://a b", not an https URL'),
    ],
    ids=["no-project", "no-ref", "no-audience", "http-issuer", "newline", "http-audience", "bare-host", "space"],
)
def test_setup_names_the_flag_that_is_missing_or_refused(helper: Helper, flags: dict[str, Flag], fragment: str) -> None:
    helper.run(guide(**flags)).refused(fragment, code=2)


def test_setup_warns_about_an_audience_the_provider_refuses(helper: Helper) -> None:
    run = helper.run(guide(audience="https://api.authress.io"))
    assert run.returncode == 0
    assert run.stderr.startswith("authress-gitlab-token: warning: ") and run.stderr.count("\n") == 1
    assert ACCOUNT_ID not in run.stdout


def test_the_doctor_command_setup_prints_passes_in_the_job_it_describes(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """setup's last step must bind what the module binds, or doctor refuses the query it is given."""
    job = {"CI_SERVER_URL": issuer.url, "CI_PROJECT_PATH": PROJECT, "CI_COMMIT_REF_NAME": "main"}
    printed = helper.run(guide(project=None, branch=None), env=job)
    command = shlex.split(printed.stdout.rstrip().splitlines()[-1])
    assert command[:2] == ["authress-gitlab-token", "doctor"]
    run = helper.run([*command[1:], "--check", "none"], env={**job, "AUTHRESS_ID_TOKEN": token})
    assert run.returncode == 0, run.stdout
    assert "[pass] signature and claims" in run.stdout and "[warn]" not in run.stdout


@pytest.mark.parametrize("env", [{}, {"CI_SERVER_URL": "https://gitlab.example.com"}], ids=["flag", "CI_SERVER_URL"])
def test_setup_for_a_self_managed_issuer_never_mentions_gitlab_com(env: dict[str, str], helper: Helper) -> None:
    args = guide(project="my-org/infra", issuer=None if env else "https://gitlab.example.com")
    for extra in ([], ["--json"]):
        run = helper.run([*args, *extra], env=env)
        assert run.returncode == 0, run.stderr
        assert "gitlab.com" not in run.stdout
        assert f"git+https://gitlab.example.com/YOUR_GROUP/authress-gitlab-token.git@{__version__}" in run.stdout
        if not extra:  # the placeholder is explained where it stands: the include and the module
            assert run.stdout.count("# YOUR_GROUP: the group of your mirror of authress-gitlab-token") == 2

    repo = "https://gitlab.example.com/platform/tools/authress-gitlab-token.git"
    run = helper.run([*args, "--helper-repository", repo], env=env)
    assert run.returncode == 0, run.stderr
    assert "YOUR_GROUP" not in run.stdout and "gitlab.com" not in run.stdout
    assert f'pip install "authress-gitlab-token @ git+{repo}@{__version__}"' in run.stdout
    assert f"component: $CI_SERVER_FQDN/platform/tools/authress-gitlab-token/authress-token@{__version__}" in run.stdout
    assert f'"git::{repo}//terraform/ephemeral?ref={__version__}"' in run.stdout


def test_setup_for_gitlab_com_names_the_canonical_repository(helper: Helper) -> None:
    """No placeholder where the helper's home is known: install, include and module source name it."""
    canonical = "https://gitlab.com/authress-gitlab-token/authress-gitlab-token"
    run = helper.run(guide(project="my-org/infra"))
    assert run.returncode == 0, run.stderr
    assert "YOUR_GROUP" not in run.stdout
    assert f'pip install "authress-gitlab-token @ git+{canonical}.git@{__version__}"' in run.stdout
    component = f"$CI_SERVER_FQDN/authress-gitlab-token/authress-gitlab-token/authress-token@{__version__}"
    assert f"component: {component}\n" in run.stdout
    assert f'"git::{canonical}.git//terraform/ephemeral?ref={__version__}"' in run.stdout


def test_the_guide_reads_only_the_jobs_variables_so_what_only_requests_need_cannot_refuse_it(helper: Helper) -> None:
    """A guide calls nothing: a timeout typo or an oversized AUTHRESS_KEY is for --plan/--apply to refuse."""
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "5s", "AUTHRESS_KEY": "x" * 20_000}
    assert helper.run(guide(), env=env).returncode == 0
    helper.run(guide("--plan", role="ro_terraform"), env=env).refused("AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT is", code=2)
