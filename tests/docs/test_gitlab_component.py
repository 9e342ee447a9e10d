"""The CI/CD component (templates/authress-token.yml), rendered with inputs the way GitLab renders it
(tests/fixtures/ci_inputs.py), is a configuration GitLab's CI schema accepts; GitLab's input rules
refuse what the component must not take; and the job it gives runs the pinned helper's checks."""

from __future__ import annotations

import os
import random
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token import __version__
from authress_gitlab_token.setup import guide as setup_guide
from tests.docs.test_gitlab_example import check_gitlab_ci
from tests.fixtures import ci_inputs
from tests.fixtures.ci_inputs import InputError
from tests.fixtures.helper import Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "templates" / "authress-token.yml"
REQUIRED = {
    "audience": "https://acc-1a2b3c.api.authress.io",
    "project_path": "my-org/authress-configuration",
    "helper_repository": "https://gitlab.example.com/platform/authress-gitlab-token.git",
}


def render(**given: Any) -> dict[str, Any]:
    config: dict[str, Any] = ci_inputs.render(COMPONENT.read_text(encoding="utf-8"), {**REQUIRED, **given})
    return config


def pipeline_with(config: dict[str, Any], tmp_path: Path) -> Path:
    """The rendered component in a pipeline whose one job extends the hidden job."""
    job = {"extends": ".authress-gitlab-token", "image": "python:3.12-slim", "script": ["terraform apply"]}
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(ci_inputs.dump(ci_inputs.resolve_extends({**config, "apply": job})), encoding="utf-8")
    return path


# Renderings GitLab accepts; tests/e2e/test_gitlab_ci_local_render.py renders them with a real engine too.
ACCEPTED = pytest.mark.parametrize(
    "given",
    [
        {},
        {"route": "data-source", "check": "none", "protected_only": "false"},
        {"token_variable": "GITLAB_OIDC_TOKEN", "issuer": "https://gitlab.example.com", "ref": "release/*"},
        {"helper_repository": "pypi"},
        {"route": "ephemeral", "token_variable": "AUTHRESS_KEY_ID_TOKEN"},
    ],
    ids=["defaults", "data-source route", "own names", "from pypi", "ephemeral route"],
)
# Refusals both renderers make, with ci_inputs' message.
REFUSED = pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"audience": None}, "`audience` input: required value has not been provided"),
        ({"route": "both"}, "`route` input: provided value 'both' cannot be used because it is not in the list"),
        ({"audience": "http://acc-1a2b3c.api.authress.io"}, "does not match required RegEx pattern"),
        # The provider reads AUTHRESS_KEY: the raw token there would reach it before anything verified it.
        ({"token_variable": "AUTHRESS_KEY"}, "`token_variable` input: provided value"),
    ],
    ids=["missing input", "not an option", "regex", "token_variable AUTHRESS_KEY"],
)


def job_of(config: dict[str, Any]) -> dict[str, Any]:
    """The job a pipeline runs when it extends the component's hidden job."""
    job = {"extends": ".authress-gitlab-token", "script": ["terraform apply"]}
    resolved: dict[str, Any] = ci_inputs.resolve_extends({**config, "apply": job})["apply"]
    return resolved


@ACCEPTED
def test_the_rendered_component_matches_gitlabs_ci_schema(given: dict[str, Any], tmp_path: Path) -> None:
    done = check_gitlab_ci(pipeline_with(render(**given), tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_rendering_gitlab_would_refuse(tmp_path: Path) -> None:
    broken = render()
    broken[".authress-gitlab-token"]["id_tokens"]["AUTHRESS_KEY"] = {"audience": REQUIRED["audience"]}
    assert check_gitlab_ci(pipeline_with(broken, tmp_path)).returncode != 0


def test_the_job_asks_for_the_token_with_the_audience_it_verifies() -> None:
    job = render(token_variable="GITLAB_OIDC_TOKEN")[".authress-gitlab-token"]
    assert job["id_tokens"] == {"GITLAB_OIDC_TOKEN": {"aud": REQUIRED["audience"]}}
    assert render()[".authress-gitlab-token"]["id_tokens"] == {"AUTHRESS_ID_TOKEN": {"aud": REQUIRED["audience"]}}, (
        "the provider reads AUTHRESS_KEY: the raw token must arrive elsewhere"
    )
    assert job["variables"]["AUTHRESS_AUDIENCE"] == REQUIRED["audience"]
    assert job["variables"]["AUTHRESS_TOKEN_VARIABLE"] == "GITLAB_OIDC_TOKEN"
    assert job["variables"]["AUTHRESS_PROTECTED_ONLY"] == "true"


def test_defaults_are_the_instance_issuer_the_default_branch_and_this_release() -> None:
    variables = render()[".authress-gitlab-token"]["variables"]
    assert variables["AUTHRESS_ISSUER"] == "$CI_SERVER_URL"
    assert variables["AUTHRESS_REF"] == "$CI_DEFAULT_BRANCH"
    assert variables["AUTHRESS_HELPER_VERSION"] == __version__, "the component does not pin this release"
    assert variables["AUTHRESS_ROUTE"] == "env"


def test_inputs_reach_the_shell_only_as_variables() -> None:
    """No input value is pasted into script text, where it could run as shell code."""
    given = {"ref": "main;touch${IFS}pwned", "issuer": "https://gitlab.example.com/$(id)"}
    job = render(**given)[".authress-gitlab-token"]
    script = "\n".join(job["before_script"])
    for value in {**REQUIRED, **given}.values():
        assert value not in script
    assert job["variables"]["AUTHRESS_REF"] == given["ref"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"audience": None}, "`audience` input: required value has not been provided"),
        ({"project_path": None}, "`project_path` input: required value has not been provided"),
        ({"helper_repository": None}, "`helper_repository` input: required value has not been provided"),
        ({"route": "both"}, "`route` input: provided value 'both' cannot be used because it is not in the list"),
        ({"check": "always"}, "`check` input: provided value 'always' cannot be used"),
        ({"ref_type": "branches"}, "`ref_type` input: provided value 'branches' cannot be used"),
        ({"audience": "https://ACCOUNT_ID.api.authress.io/"}, "`audience` input: provided value"),
        ({"audience": "http://acc-1a2b3c.api.authress.io"}, "does not match required RegEx pattern"),
        ({"project_path": "authress-configuration"}, "`project_path` input: provided value"),
        ({"project_path": "$CI_PROJECT_PATH"}, "`project_path` input: provided value"),
        ({"issuer": "https://gitlab.com/"}, "`issuer` input: provided value"),
        ({"token_variable": "AUTHRESS-KEY"}, "`token_variable` input: provided value"),
        ({"token_variable": "AUTHRESS_KEY"}, "`token_variable` input: provided value"),
        ({"helper_version": "latest"}, "`helper_version` input: provided value"),
        ({"helper_repository": "git@gitlab.com:g/authress-gitlab-token.git"}, "`helper_repository` input"),
        ({"protected_only": True}, "`protected_only` input: provided value True is not a string"),
        ({"protected_only": "yes"}, "`protected_only` input: provided value 'yes' cannot be used"),
        ({"audiences": "x"}, "unknown input arguments: audiences"),
    ],
)
def test_gitlab_refuses_a_missing_or_invalid_input(given: dict[str, Any], message: str) -> None:
    inputs = {k: v for k, v in {**REQUIRED, **given}.items() if v is not None}
    with pytest.raises(InputError) as refused:
        ci_inputs.render(COMPONENT.read_text(encoding="utf-8"), inputs)
    assert message in str(refused.value)


def test_every_default_passes_its_own_input_rules() -> None:
    """GitLab refuses the whole component when a default breaks its own options, regex or type."""
    inputs, _ = ci_inputs.load(COMPONENT.read_text(encoding="utf-8"))
    assert {name for name, spec in inputs.items() if "default" not in spec} == set(REQUIRED)
    ci_inputs.resolve(inputs, REQUIRED)  # raises on a bad default


def test_the_renderer_refuses_what_gitlab_refuses() -> None:
    """The renderer is only as good as its refusals: each rule, shown on a small spec."""
    spec = "spec:\n  inputs:\n    env:\n      options: [a, b]\n      default: c\n---\njob:\n  script: [x]\n"
    with pytest.raises(InputError, match="default value 'c' cannot be used"):
        ci_inputs.render(spec, {})
    spec = "spec:\n  inputs:\n    n:\n      type: number\n      regex: ^1$\n---\njob:\n  script: [x]\n"
    with pytest.raises(InputError, match="regex can only be used with string inputs"):
        ci_inputs.render(spec, {"n": 1})
    spec = "spec:\n  inputs:\n    a:\n      default: x\n---\njob:\n  script: ['$[[ inputs.b ]]']\n"
    with pytest.raises(InputError, match="unknown interpolation key"):
        ci_inputs.render(spec, {})
    spec = "spec:\n  inputs:\n    on:\n      type: boolean\n      default: true\n---\n"
    spec += "job:\n  a: $[[ inputs.on ]]\n  b: x-$[[ inputs.on ]]\n"
    assert ci_inputs.render(spec, {}) == {"job": {"a": True, "b": "x-true"}}


@pytest.mark.parametrize(
    ("cached", "installs"),
    [
        (None, True),
        ("authress-gitlab-token VERSION", False),
        ("authress-gitlab-token 0.0.1", True),
        ("another Python", True),
        ("broken", True),
    ],
    ids=["empty cache", "this release", "another release", "another Python", "broken venv"],
)
def test_the_cached_venv_is_used_only_when_it_runs_the_pinned_release_with_the_jobs_python(
    cached: str | None, installs: bool, tmp_path: Path
) -> None:
    """The component's install step, run in bash on a restored cache; the install itself is replaced by
    a line that says it would install (tests/e2e installs for real)."""
    job = render()[".authress-gitlab-token"]
    install = 'set -- install --quiet --disable-pip-version-check --no-input "$requirement"'
    (block,) = [line for line in job["before_script"] if install in line]
    venv = tmp_path / ".cache" / "authress-gitlab-token" / "venv"
    if cached is not None:
        # Made by the `python3` the job runs, as the job that filled the cache did (not pytest's own Python).
        python3 = shutil.which("python3") or sys.executable
        subprocess.run([python3, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        script = venv / "bin" / "authress-gitlab-token"
        version = f"authress-gitlab-token {__version__}" if cached == "another Python" else cached
        version = version.replace("VERSION", __version__)
        script.write_text("#!/bin/false\n" if cached == "broken" else f'#!/bin/sh\necho "{version}"\n')
        script.chmod(0o755)
        if cached == "another Python":
            (venv / "bin" / "python").unlink()
            (venv / "bin" / "python").write_text('#!/bin/sh\necho "3.0.0 (elsewhere)"\n')
            (venv / "bin" / "python").chmod(0o755)
    variables = {k: str(v) for k, v in job["variables"].items() if k.startswith("AUTHRESS_HELPER_")}
    env = {**variables, "CI_PROJECT_DIR": str(tmp_path), "PATH": os.environ["PATH"]}
    script_text = block.replace(install, 'echo "would install $requirement"; exit 0')
    done = subprocess.run(["bash", "-e", "-c", script_text], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("would install authress-gitlab-token @ git+" in done.stdout) is installs, done.stdout
    if installs:
        assert not venv.exists(), "a venv that failed the check was kept"
    else:
        assert done.stdout.splitlines()[-1] == f"authress-gitlab-token {__version__}"


def test_a_job_without_the_components_lines_is_told_to_keep_them_not_to_add_id_tokens(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """The raw token waits in AUTHRESS_ID_TOKEN; adding an `id_tokens: AUTHRESS_KEY` entry would hand it
    to the provider unverified, so the module's data source says what does fix it."""
    variables = {k: str(v) for k, v in render()[".authress-gitlab-token"]["variables"].items()}
    token = mint(signing_key, gitlab_claims(issuer.url, REQUIRED["audience"]))
    env = {**variables, "GITLAB_CI": "true", variables["AUTHRESS_TOKEN_VARIABLE"]: token}
    query = {"audience": REQUIRED["audience"], "issuer": issuer.url, "project_path": REQUIRED["project_path"]}
    helper.external(query, env=env).refused(
        "$AUTHRESS_KEY is not set: the CI/CD component's before_script did not run in this job",
        "!reference [.authress-gitlab-token, before_script]",
    )
    assert issuer.requests == [], "the helper fetched keys for a token it must not read"


def test_token_variable_takes_every_variable_name_but_authress_key() -> None:
    """The input's regex spells out "not AUTHRESS_KEY" for RE2 (no lookahead): held here against a plain
    rule on every prefix, extension and one-letter change of AUTHRESS_KEY, and on random names."""
    inputs, _ = ci_inputs.load(COMPONENT.read_text(encoding="utf-8"))
    rule = re.compile(inputs["token_variable"]["regex"])
    name = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
    key = "AUTHRESS_KEY"
    letters = string.ascii_letters + string.digits + "_-"
    near = {key[:i] for i in range(len(key) + 1)} | {key + c for c in letters}
    near |= {key[:i] + c + key[i + 1 :] for i in range(len(key)) for c in letters}
    rng = random.Random(29)
    near |= {"".join(rng.choice(letters) for _ in range(rng.randint(1, 14))) for _ in range(5000)}
    wrong = [n for n in sorted(near) if bool(rule.search(n)) != (bool(name.match(n)) and n != key)]
    assert wrong == [], wrong[:10]
    assert not rule.search(key) and rule.search("AUTHRESS_ID_TOKEN") and rule.search("authress_key")


def before_script(route: str = "env") -> str:
    """The component's before_script as one bash script, the install block's pip and git left out."""
    job = render(route=route)[".authress-gitlab-token"]
    return "\n".join(job["before_script"])


def test_an_authress_key_set_before_the_component_runs_stops_the_job_before_anything_is_installed(
    tmp_path: Path,
) -> None:
    """A CI/CD variable or an id_tokens entry named AUTHRESS_KEY would reach the provider unverified in
    any job that drops the component's lines: the component refuses to run beside it."""
    variables = {k: str(v) for k, v in render()[".authress-gitlab-token"]["variables"].items()}
    env = {**variables, "CI_PROJECT_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "AUTHRESS_KEY": "raw-value"}
    done = subprocess.run(["bash", "-e", "-c", before_script()], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("authress-gitlab-token: AUTHRESS_KEY is set before the component verified anything")
    assert "raw-value" not in line and not (tmp_path / ".cache").exists(), "it went on to install the helper"


@pytest.mark.parametrize("verified", ["", "another job"], ids=["before_script dropped", "marker of another job"])
def test_the_script_guard_stops_a_job_whose_before_script_dropped_the_components_lines(verified: str) -> None:
    (guard,) = render()[".authress-gitlab-token-verified"]["script"]
    env = {"PATH": "/usr/bin:/bin", "CI_JOB_ID": "7", **({"AUTHRESS_VERIFIED": verified} if verified else {})}
    done = subprocess.run(["bash", "-e", "-c", guard + "echo terraform"], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "authress-gitlab-token: the CI/CD component's before_script did not run in this job, so nothing verified "
        "its ID token; put - !reference [.authress-gitlab-token, before_script] first in the job's before_script\n"
    )
    ran = subprocess.run(
        ["bash", "-e", "-c", guard + "echo terraform"], env={**env, "AUTHRESS_VERIFIED": "7"}, capture_output=True
    )
    assert (ran.returncode, ran.stdout) == (0, b"terraform\n")


def test_the_id_token_setup_prints_without_the_component_arrives_where_the_component_puts_it() -> None:
    """With or without the component, the ID token is in one variable that is not AUTHRESS_KEY, and the
    module call and doctor command setup prints read it from there."""
    inputs, _ = ci_inputs.load(COMPONENT.read_text(encoding="utf-8"))
    printed = setup_guide.build_all(["GROUP/PROJECT"], ["main"], [], REQUIRED["audience"], None)[0]
    name = inputs["token_variable"]["default"]
    assert name != "AUTHRESS_KEY" and printed.id_tokens_yaml().splitlines()[1] == f"  {name}:"
    assert f'token_env    = "{name}"' in printed.module_hcl()
    assert printed.doctor_command().endswith(f"--token-env {name}")
