"""Redact secrets, not values: in a GitLab job set up as the component sets it, the one line shows the
audience, issuer and URLs it is about, and never the token, the job token, a URL's password or a
variable the user marks. Messages escape control characters and cut what a server lists."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path

import pytest

from authress_gitlab_token import verify
from authress_gitlab_token.errors import VerificationFailed, fit
from authress_gitlab_token.output import secrets_in
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, InProcess, argv, guide, query
from tests.fixtures.issuer import JWKS_PATH, LocalIssuer, Reply
from tests.fixtures.tokens import MINTED, SigningKey, gitlab_claims, mint

JOB_TOKEN = "glcbt-64_Zx8yQ2vN7kLm4pR9sT1wXa"  # CI_JOB_TOKEN's shape; GitLab masks it in job logs
REGIONAL = "https://acc-7f3a9c2e1b4d.api-eu-west.authress.io"  # 43 characters, three dots


def gitlab_job(issuer: LocalIssuer, audience: str, token: str) -> dict[str, str]:
    """The variables of a job that includes the component, as GitLab and the component set them."""
    host = issuer.url.removeprefix("https://")
    return {
        "GITLAB_CI": "true",
        "CI_SERVER_URL": issuer.url,
        "CI_SERVER_HOST": host.split(":")[0],
        "CI_API_V4_URL": f"{issuer.url}/api/v4",
        "CI_PROJECT_PATH": PROJECT,
        "CI_PROJECT_URL": f"{issuer.url}/{PROJECT}",
        "CI_REPOSITORY_URL": f"https://gitlab-ci-token:{JOB_TOKEN}@{host}/{PROJECT}.git",
        "CI_JOB_TOKEN": JOB_TOKEN,
        "CI_REGISTRY_PASSWORD": JOB_TOKEN,
        "CI_COMMIT_REF_NAME": "main",
        "AUTHRESS_AUDIENCE": audience,
        "AUTHRESS_ISSUER": issuer.url,
        "AUTHRESS_PROJECT_PATH": PROJECT,
        "AUTHRESS_TOKEN_VARIABLE": "GITLAB_OIDC_TOKEN",
        "AUTHRESS_API_URL": REGIONAL,
        "GITLAB_OIDC_TOKEN": token,
    }


def component_command(command: str, issuer: LocalIssuer, audience: str) -> list[str]:
    """`command` with the flags the component's before_script passes."""
    flags = query(issuer, audience=audience, token_env="GITLAB_OIDC_TOKEN", ref="main", ref_type="branch")
    return argv(command, **flags, ref_protected="true", check="none")


@pytest.mark.parametrize("audience", [REGIONAL, "https://acc-7f3a9c2e1b4d.api.authress.io"])
def test_in_a_component_job_the_one_line_shows_the_expected_audience(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, audience: str
) -> None:
    """The job's token was asked for with GitLab's default audience instead of the account's."""
    token = mint(signing_key, gitlab_claims(issuer.url, "https://gitlab.com"))
    job = gitlab_job(issuer, audience, token)
    expected = f'claim "aud" is "https://gitlab.com", expected "{audience}"'
    helper.run(component_command("env", issuer, audience), env=job).refused(expected)
    helper.external(query(issuer, audience=audience, token_env="GITLAB_OIDC_TOKEN"), env=job).refused(expected)
    doctor = helper.run(component_command("doctor", issuer, audience), env=job)
    failed = [line for line in doctor.stdout.splitlines() if line.lstrip().startswith("[fail]")]
    assert doctor.returncode == 1 and len(failed) == 1 and expected in failed[0], doctor.stdout
    assert "[redacted]" not in doctor.stdout and issuer.url in doctor.stdout and PROJECT in doctor.stdout
    assert JOB_TOKEN not in doctor.stdout + doctor.stderr


def test_only_secrets_are_chosen_from_a_gitlab_job(issuer: LocalIssuer, token: str) -> None:
    job = gitlab_job(issuer, REGIONAL, token)
    secrets = secrets_in({**job, "VAULT_ID_TOKEN": token, "AUTHRESS_KEY": "short"})
    assert sorted(set(secrets)) == sorted({JOB_TOKEN, token})
    marked = {**job, "MY_PASSWORD": "hunter2-but-longer", "AUTHRESS_GITLAB_TOKEN_SECRET_VARIABLES": "X, MY_PASSWORD"}
    assert "hunter2-but-longer" in secrets_in(marked)


@pytest.mark.parametrize(
    ("given", "env", "shown"),
    [
        ({"issuer": "https://alice:correct-horse-battery@gitlab.example.com"}, {}, "https://[redacted]@gitlab"),
        ({}, {"CI_SERVER_URL": f"https://gitlab-ci-token:{JOB_TOKEN}@gitlab.example.com"}, "CI_SERVER_URL is"),
        ({"api_url": "https://alice:correct-horse-battery@auth.example.com"}, {}, '"api_url" is "https://[redacted]@'),
    ],
)
def test_credentials_in_a_url_are_never_echoed(
    helper: Helper, token: str, given: dict[str, str], env: dict[str, str], shown: str
) -> None:
    run = helper.external({"audience": AUDIENCE, "project_path": PROJECT, **given}, token, env=env)
    run.refused(shown, code=2)
    assert not any(secret in run.stderr for secret in ("alice", "correct-horse", JOB_TOKEN, "gitlab-ci-token"))


def test_setup_never_echoes_credentials_in_a_url(helper: Helper) -> None:
    run = helper.run(guide(issuer="https://a:b@x.io"))
    run.refused('--issuer is "https://[redacted]@x.io"', code=2)


def test_a_variable_the_user_marks_is_redacted_and_unmarked_it_is_shown(helper: Helper, token: str) -> None:
    """The HTTP timeout's message echoes its value: the simplest variable to see the marking work on."""
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "not-seconds-but-a-secret"}
    given = {"audience": AUDIENCE, "project_path": PROJECT}
    helper.external(given, token, env=env).refused('HTTP_TIMEOUT is "not-seconds-but-a-secret"', code=2)
    marked = {**env, "AUTHRESS_GITLAB_TOKEN_SECRET_VARIABLES": "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT"}
    run = helper.external(given, token, env=marked)
    run.refused('HTTP_TIMEOUT is "[redacted]"', code=2)
    assert "not-seconds" not in run.stderr


def unshaped_token(signing_key: SigningKey) -> str:
    """A JWS whose header is not `{"...` (a space first): no shape rule knows it for a token, so only
    the name of its variable can protect it."""
    header = base64.urlsafe_b64encode(b' {"alg":"RS256","kid":"k"}').rstrip(b"=").decode()
    token = header + "." + mint(signing_key, gitlab_claims("https://gitlab.example.com", AUDIENCE)).split(".", 1)[1]
    MINTED.add(token)  # the suite-wide leak scan looks for it too
    return token


@pytest.mark.parametrize("command", ["external", "env"])
def test_the_token_is_redacted_from_the_variable_token_env_names(
    in_process: InProcess,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    monkeypatch: pytest.MonkeyPatch,
    ca: LocalCA,
    tmp_path: Path,
    command: str,
) -> None:
    """Defence in depth for a future bug that puts the token in a message."""

    def careless(jwt: str, *args: object, **kwargs: object) -> dict[str, str]:
        raise VerificationFailed(f"refused {jwt}")

    monkeypatch.setattr(verify, "verify", careless)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_path))  # httpx reads it from the process environment
    token = unshaped_token(signing_key)
    given = query(issuer, token_env="GITLAB_OIDC_TOKEN")
    environ = {"GITLAB_OIDC_TOKEN": token, "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(tmp_path / "cache")}
    if command == "external":
        run = in_process.run(["external"], json.dumps(given).encode(), environ)
    else:
        run = in_process.run(argv(command, **given), b"", environ)
    assert run.returncode == 1 and "refused [redacted]" in run.stdout + run.stderr
    assert token.split(".")[0] not in run.stdout + run.stderr


def test_setup_escapes_a_branch_name_that_would_reorder_the_terminal(helper: Helper) -> None:
    """git allows U+202E (right-to-left override) in a branch name; the user ID to copy must not hide it."""
    env = {"CI_PROJECT_PATH": PROJECT, "CI_COMMIT_REF_NAME": "main\u202egnp.exe"}
    run = helper.run(argv("setup", audience=AUDIENCE), env=env)
    assert run.returncode == 0, run.stderr
    assert "\u202e" not in run.stdout and "main\\u202egnp.exe" in run.stdout
    assert (
        "\u202e"
        in json.loads(helper.run(argv("setup", "--json", audience=AUDIENCE), env=env).stdout)["access_record_user_id"]
    )


def test_an_unknown_kid_lists_the_first_few_of_the_issuers_keys(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey
) -> None:
    keys = [{**signing_key.public_jwk(), "kid": f"{i:043d}"} for i in range(400)]
    issuer.script(JWKS_PATH, Reply(body=json.dumps({"keys": keys}).encode()))
    token = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    helper.external(query(issuer), token).refused(f'(known: "{0:043d}", "{1:043d}" and 398 more, fetched ')


def test_a_long_message_is_cut_to_one_short_line_keeping_the_values_to_copy() -> None:
    user_id = '"project_path:my-org/authress-configuration:ref_type:branch:ref:main"'  # 70: kept whole
    claim = '"' + "x" * 2000 + '"'
    cut = fit(f"claim {claim} is not {user_id}; fix it", 376)
    assert len(cut) <= 376 and cut.endswith(f"is not {user_id}; fix it") and cut.startswith('claim "xxx')
    wordy = "wrong " * 50 + "; " + "do this " * 40
    cut = fit(wordy, 376)
    assert len(cut) == 376 and cut.startswith("wrong wrong") and cut.endswith("do this ") and " ... " in cut
    assert fit("short; fine", 376) == "short; fine"


def test_the_ids_in_an_admin_key_stay_readable_and_its_private_part_is_hidden(helper: Helper) -> None:
    """An account ID of 20 characters is part of the admin key and of the audience a guide shows: only
    the key's private part (and the key whole) is a secret."""
    from tests.fixtures.service_clients import ServiceClientKey

    account = "acc-7f3a9c2e1b4d5e6f"
    key = ServiceClientKey.generate(client_id="sc_terraform_pipelines", account_id=account)
    audience = f"https://{account}.api.authress.io"
    run = helper.run(guide(audience=audience), env={"AUTHRESS_KEY": key.value})
    assert run.returncode == 0, run.stderr
    assert audience in run.stdout and "[redacted]" not in run.stdout
    private = key.value.rsplit(".", 1)[1]
    from authress_gitlab_token.errors import redact

    assert redact(f"key {key.value}; part {private}; {audience}", [key.value]) == (
        f"key [redacted]; part [redacted]; {audience}"
    )


@pytest.mark.parametrize("around", ["{}\n", "  {}\t", "\n{}\r\n"])
def test_a_named_secret_is_hidden_whatever_white_space_its_variable_holds_around_it(token: str, around: str) -> None:
    """CI variables pasted with a trailing newline: the value without it is what a message could show."""
    from authress_gitlab_token.output import fail, name_secret

    name_secret("MY_TOKEN")
    environ = {"MY_TOKEN": around.format(token.replace(".", "-"))}
    assert token.replace(".", "-") in secrets_in(environ)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        fail(f"the value was {token.replace('.', '-')}", 1, environ)
    assert token.replace(".", "-") not in err.getvalue() and "[redacted]" in err.getvalue()
