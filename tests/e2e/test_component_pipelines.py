"""The CI/CD component and this project's own pipeline, run by gitlab-ci-local in a copy of this
repository hosted on the GitLab stand-in as platform/authress-gitlab-token and tagged as the release:

- the component included as `include: component ...@$CI_COMMIT_SHA` (what GitLab asks a component
  project to test) and as `include: local` with inputs; on each, a job on the env route (the provider
  reads the verified AUTHRESS_KEY) and one on the data-source route (the module verifies again) apply a
  role through authress/authress 2.0.39; the helper is installed from the hosted copy at the release tag;
- the same jobs with their own before_script fail closed, on both routes, with no request to Authress;
- the component's own refusals stop the job before its script: a refused token, an AUTHRESS_KEY set
  before the component ran (a CI/CD variable or an id_tokens entry), and, through the script guard the
  component provides, a job whose before_script dropped the component's lines; the id_tokens block
  `setup` prints "without the component", added to a job without the component's lines, hands the
  provider nothing;
- `route: ephemeral`: the helper verified and on PATH, nothing exported, so a configuration that
  expects the provider to read AUTHRESS_KEY gets no key; with hashicorp/local, the ephemeral
  "local_command" running the helper applies a role and the state holds no token;
- the root pipeline's `self-test` (the component at this commit verifying the job's ID token) and,
  on a release tag, its `dist` job, in a venv of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from authress_gitlab_token import __version__
from authress_gitlab_token.setup import guide as setup_guide
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy
from tests.fixtures.gitlab_server import GitLabStandIn
from tests.fixtures.helper import leaks, safe
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint
from tests.fixtures.venvs import Venv

from .gitlab_ci_local import Engine, JobRun, engine, git, job_environment, release, without_images
from .test_examples import cli_on_path
from .toolchain import AUDIENCE, Toolchain

pytestmark = pytest.mark.e2e

# The line a verified job logs: what was verified, never the token.
VERIFIED = re.compile(
    r"authress-gitlab-token: verified the ID token of my-org/authress-configuration, branch main "
    r"\(protected: true\), valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; route (?P<route>.*)$",
    re.MULTILINE,
)

INCLUDES = {
    "component at $CI_COMMIT_SHA": "component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/authress-token@$CI_COMMIT_SHA",
    "local with inputs": "local: templates/authress-token.yml",
}

# Two routes, then the same jobs with their own before_script (and no !reference to the component's).
PIPELINE = """\
include:
  - {include}
    inputs:
      audience: {audience}
      project_path: my-org/authress-configuration
      helper_repository: {repository}
      check: none

stages: [env, data-source]

.route:
  extends: .authress-gitlab-token
  variables:
    TF_VAR_audience: $AUTHRESS_AUDIENCE
    TF_VAR_issuer: $AUTHRESS_ISSUER
  script:
    - cd "tests/e2e/configs/$CONFIG"
    - terraform init -input=false
    - terraform apply -input=false -auto-approve

env-route:
  extends: .route
  stage: env
  variables:
    CONFIG: authress_role_env

data-source-route:
  extends: .route
  stage: data-source
  variables:
    CONFIG: authress_role

# Their own lines put the helper on PATH, as an image with it installed would.
own-before-script-env:
  extends: env-route
  before_script:
    - export PATH="$CI_PROJECT_DIR/.cache/authress-gitlab-token/venv/bin:$PATH"
    - echo own lines

own-before-script-data-source:
  extends: data-source-route
  stage: env # beside the other: a failed stage stops the next
  before_script:
    - export PATH="$CI_PROJECT_DIR/.cache/authress-gitlab-token/venv/bin:$PATH"
    - echo own lines

# The component's refusals: each must stop the job before its script starts.
refused:
  extends: env-route
  script:
    - echo "the job's script ran"
    - terraform version

# Own lines again, and the guard the component provides as the script's first line.
guarded:
  extends: env-route
  before_script:
    - export PATH="$CI_PROJECT_DIR/.cache/authress-gitlab-token/venv/bin:$PATH"
    - echo own lines
  script:
    - !reference [.authress-gitlab-token-verified, script]
    - echo "the job's script ran"
    - terraform version
"""

# route: ephemeral. The helper is on PATH and nothing is exported: `on-path` says so; `env-config` is a
# configuration written for the env route (the provider reads AUTHRESS_KEY), which gets no key here;
# `ephemeral` runs Terraform's ephemeral "local_command", which runs the helper with the job's ID token.
EPHEMERAL = """\
include:
  - local: templates/authress-token.yml
    inputs:
      audience: {audience}
      project_path: my-org/authress-configuration
      helper_repository: {repository}
      check: none
      route: ephemeral

on-path:
  extends: .authress-gitlab-token
  script:
    - !reference [.authress-gitlab-token-verified, script]
    - test -z "${{AUTHRESS_KEY:-}}"
    - echo "nothing exported; the helper is $(command -v authress-gitlab-token)"

env-config:
  extends: .authress-gitlab-token
  variables:
    TF_VAR_audience: $AUTHRESS_AUDIENCE
  script:
    - cd tests/e2e/configs/authress_role_env
    - terraform init -input=false
    - terraform apply -input=false -auto-approve

ephemeral:
  extends: .authress-gitlab-token
  variables:
    TF_VAR_audience: $AUTHRESS_AUDIENCE
    TF_VAR_issuer: $AUTHRESS_ISSUER
  script:
    - cd ephemeral-config
    - terraform init -input=false
    - terraform apply -input=false -auto-approve
"""

# The ephemeral route in HCL alone (what terraform/ephemeral wraps): the helper's `external` command
# behind hashicorp/local's ephemeral "local_command", reading the ID token from the component's variable.
EPHEMERAL_HCL = """\
terraform {
  required_version = ">= 1.10"
  required_providers {
    authress = {
      source  = "authress/authress"
      version = "2.0.39"
    }
    local = {
      source  = "hashicorp/local"
      version = "LOCAL_VERSION"
    }
  }
}

variable "audience" {
  type = string
}

variable "issuer" {
  type = string
}

ephemeral "local_command" "token" {
  command   = "authress-gitlab-token"
  arguments = ["external"]
  stdin = jsonencode({
    audience = var.audience, issuer = var.issuer, api_url = var.audience, token_env = "AUTHRESS_ID_TOKEN",
    project_path = "my-org/authress-configuration", ref_type = "branch", ref = "main", ref_protected = "true"
  })
}

provider "authress" {
  custom_domain = jsondecode(ephemeral.local_command.token.stdout).api_url
  access_key    = jsondecode(ephemeral.local_command.token.stdout).access_token
}

resource "authress_role" "ephemeral_route" {
  role_id     = "ro_ephemeral_route"
  name        = "Ephemeral route"
  description = "Managed by Terraform from GitLab CI"
  permissions = {
    "documents:read" = { allow = true }
  }
}
"""


@dataclass(frozen=True)
class Project:
    """The hosted copy, checked out as a project whose jobs gitlab-ci-local runs."""

    engine: Engine
    issuer: LocalIssuer
    signing_key: SigningKey
    gitlab: GitLabStandIn

    def run(
        self,
        jobs: list[str],
        *,
        audience: str = AUDIENCE,
        claims: dict[str, str] | None = None,
        file: str | None = None,
        **variables: str,
    ) -> JobRun:
        """The jobs, with a token of the default branch of my-org/authress-configuration (`claims` changed)."""
        token = mint(self.signing_key, gitlab_claims(self.issuer.url, audience, **(claims or {})))
        given = {
            "CI_SERVER_URL": self.issuer.url,
            "CI_API_V4_URL": f"{self.gitlab.url}/api/v4",
            "CI_JOB_TOKEN": self.gitlab.job_token,
            "AUTHRESS_ID_TOKEN": token,
            **variables,
        }
        return self.engine.run(jobs, given, file=file)


@pytest.fixture
def project(
    ca: LocalCA,
    tmp_path: Path,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    toolchain: Toolchain,
    authress_api: tuple[AuthressStandIn, ConnectProxy],
) -> Iterator[Project]:
    launcher = engine()
    toolchain.provider("hashicorp/external@2.4.0")
    toolchain.provider("authress/authress@2.0.39")
    stand_in = GitLabStandIn(ca, tmp_path / "repos", "job-" + tmp_path.name).start()
    try:
        work = tmp_path / "project"
        release(stand_in, work, __version__)
        pipeline = work / ".gitlab-ci.yml"
        pipeline.write_text(without_images(pipeline.read_text(encoding="utf-8")), encoding="utf-8")
        cli_dir = cli_on_path(tmp_path, "terraform", toolchain.cli("terraform"))
        env = job_environment(ca.ca_path, authress_api[1].url, toolchain.cli_config, cli_dir)
        yield Project(Engine(launcher, work, tmp_path / "home", env), issuer, signing_key, stand_in)
    finally:
        stand_in.stop()


@pytest.mark.parametrize("include", INCLUDES.values(), ids=INCLUDES.keys())
def test_the_component_verifies_then_terraform_applies_on_both_routes_and_fails_closed_without_its_lines(
    include: str, project: Project, authress_api: tuple[AuthressStandIn, ConnectProxy]
) -> None:
    stand_in = authress_api[0]
    repository = f"{project.gitlab.url}/platform/authress-gitlab-token.git"
    (project.engine.project / "routes.yml").write_text(
        PIPELINE.format(include=include, audience=AUDIENCE, repository=repository), encoding="utf-8"
    )
    run = project.run(["env-route", "data-source-route"], file="routes.yml")
    assert run.passed("env-route") and run.passed("data-source-route"), safe(run.output)
    assert set(stand_in.roles) == {"ro_env_route", "ro_terraform-deployer"}
    assert not leaks(run.output)
    # One line says what was verified, never the token (both jobs are on the component's default route).
    for job in ("env-route", "data-source-route"):
        verified = VERIFIED.search(run.job(job))
        assert verified and verified["route"] == "env: AUTHRESS_KEY exported", safe(run.job(job))

    bearer = len(stand_in.tokens_seen())
    stand_in.roles.clear()
    run = project.run(["own-before-script-env", "own-before-script-data-source"], file="routes.yml")
    assert run.failed("own-before-script-env") and run.failed("own-before-script-data-source"), safe(run.output)
    assert "own lines" in run.job("own-before-script-env")
    # Terraform wraps the data source's error in a box over several lines: join them to read it.
    said = " ".join(
        re.sub(r"^own-before-script-data-source > |[│╷╵]|\x1b\[[0-9;]*m", " ", line).strip()
        for line in run.job("own-before-script-data-source").splitlines()
    )
    assert "the CI/CD component's before_script did not run in this job" in " ".join(said.split()), safe(said)
    assert len(stand_in.tokens_seen()) == bearer, "a job without the component's lines sent a token to Authress"
    assert stand_in.roles == {} and not leaks(run.output)


def test_the_components_refusals_stop_the_job_before_its_script_and_send_authress_nothing(
    project: Project, authress_api: tuple[AuthressStandIn, ConnectProxy]
) -> None:
    stand_in = authress_api[0]
    repository = f"{project.gitlab.url}/platform/authress-gitlab-token.git"
    pipeline = PIPELINE.format(include=INCLUDES["local with inputs"], audience=AUDIENCE, repository=repository)
    (project.engine.project / "routes.yml").write_text(pipeline, encoding="utf-8")

    # A refused token (another project's) stops the job at the helper's one line: an `|| true` after the
    # assignment would let the script, and Terraform, run.
    run = project.run(["refused"], file="routes.yml", claims={"project_path": "my-org/other"})
    job = run.job("refused")
    assert run.failed("refused"), safe(run.output)
    assert 'authress-gitlab-token: claim "project_path" is "my-org/other"' in job, safe(job)
    assert "the job's script ran" not in job and not VERIFIED.search(job) and "Terraform v" not in job

    # An AUTHRESS_KEY from a CI/CD variable (or an id_tokens entry) would reach the provider unverified in
    # any job without the component's lines: the component stops, before installing anything.
    token = mint(project.signing_key, gitlab_claims(project.issuer.url, AUDIENCE))
    run = project.run(["refused"], file="routes.yml", AUTHRESS_KEY=token)
    job = run.job("refused")
    assert run.failed("refused"), safe(run.output)
    assert "authress-gitlab-token: AUTHRESS_KEY is set before the component verified anything" in job, safe(job)
    assert "the job's script ran" not in job and not VERIFIED.search(job)

    # The block setup prints "without the component", added to a job that dropped the component's lines:
    # GitLab would mint the token under the name the block gives, which the provider must not read.
    printed = setup_guide.build_all(["my-org/authress-configuration"], ["main"], [], AUDIENCE, None)[0]
    (variable,) = YAML(typ="safe").load(printed.id_tokens_yaml())["id_tokens"]
    run = project.run(["own-before-script-env"], file="routes.yml", **{variable: token})
    assert run.failed("own-before-script-env"), f"the provider took the {variable} the block asks for"
    assert "the job's script ran" not in run.job("own-before-script-env")

    # The script guard: a job whose own before_script dropped the component's lines stops with one line.
    run = project.run(["guarded"], file="routes.yml")
    job = run.job("guarded")
    assert run.failed("guarded") and "own lines" in job, safe(run.output)
    assert "authress-gitlab-token: the CI/CD component's before_script did not run in this job" in job, safe(job)
    assert "!reference [.authress-gitlab-token, before_script]" in job
    assert "the job's script ran" not in job and "Terraform v" not in job

    assert stand_in.requests == [] and stand_in.roles == {} and not leaks(run.output)


def test_the_ephemeral_route_puts_the_verified_helper_on_path_and_exports_nothing(
    project: Project, authress_api: tuple[AuthressStandIn, ConnectProxy]
) -> None:
    """Why `env` stays the default: a configuration written for the env route (the provider reads
    AUTHRESS_KEY, as the component promised until now) gets no key once the job switches route."""
    stand_in = authress_api[0]
    repository = f"{project.gitlab.url}/platform/authress-gitlab-token.git"
    pipeline = EPHEMERAL.format(audience=AUDIENCE, repository=repository)
    (project.engine.project / "ephemeral.yml").write_text(pipeline, encoding="utf-8")
    run = project.run(["on-path", "env-config"], file="ephemeral.yml")
    assert run.passed("on-path"), safe(run.output)
    verified = VERIFIED.search(run.job("on-path"))
    assert verified and verified["route"] == "ephemeral: nothing exported, Terraform runs the helper"
    helper = ".cache/authress-gitlab-token/venv/bin/authress-gitlab-token"
    assert f"nothing exported; the helper is {project.engine.project}" in run.job("on-path")
    assert helper in run.job("on-path")
    assert run.failed("env-config"), safe(run.output)
    assert stand_in.roles == {} and not leaks(run.output)


def test_on_the_ephemeral_route_terraform_runs_the_helper_and_the_state_holds_no_token(
    project: Project, toolchain: Toolchain, authress_api: tuple[AuthressStandIn, ConnectProxy]
) -> None:
    stand_in = authress_api[0]
    local = toolchain.provider("hashicorp/local@2.9.0")
    repository = f"{project.gitlab.url}/platform/authress-gitlab-token.git"
    pipeline = EPHEMERAL.format(audience=AUDIENCE, repository=repository)
    (project.engine.project / "ephemeral.yml").write_text(pipeline, encoding="utf-8")
    config = project.engine.project / "ephemeral-config"
    config.mkdir()
    (config / "main.tf").write_text(EPHEMERAL_HCL.replace("LOCAL_VERSION", local), encoding="utf-8")
    git(project.engine.project, "add", "ephemeral-config")  # a job's directory holds the project's files
    git(project.engine.project, "commit", "-qm", "the ephemeral configuration")
    run = project.run(["ephemeral"], file="ephemeral.yml")
    assert run.passed("ephemeral"), safe(run.output)
    assert set(stand_in.roles) == {"ro_ephemeral_route"} and not leaks(run.output)
    state = project.engine.project / ".gitlab-ci-local" / "builds" / "ephemeral" / "ephemeral-config"
    held = [p for p in state.glob("terraform.tfstate*") if leaks(p.read_text(encoding="utf-8"))]
    assert state.joinpath("terraform.tfstate").is_file() and held == [], "the state holds the token"


def test_the_project_pipeline_self_tests_its_component_and_builds_the_release_on_a_tag(
    project: Project, tmp_path: Path
) -> None:
    """`self-test` includes the component at this commit and verifies the job's ID token (check none);
    on the tag X.Y.Z, `dist` checks the tag, builds the release and writes its notes."""
    claims = {"project_path": "platform/authress-gitlab-token"}
    run = project.run(["self-test"], audience="https://self-test.api.authress.io", claims=claims)
    assert run.passed("self-test"), safe(run.output)
    assert "self-test - the component verified the ID token of platform/authress-gitlab-token" in run.output
    assert not leaks(run.output)

    refused = project.run(["self-test"], audience="https://self-test.api.authress.io")
    assert refused.failed("self-test")
    assert 'authress-gitlab-token: claim "project_path" is "my-org/authress-configuration"' in refused.output

    # make dist in a venv of its own: with the test run's venv, make would reinstall this package there
    # (editable, from the temporary copy) whenever that venv lacks make's `.installed` marker.
    builder = Venv.create(tmp_path / "dist-venv")
    builder.pip("install", "--quiet", "build", "pip")
    (builder.bin / ".installed").touch()
    tagged = project.run(["dist"], CI_COMMIT_TAG=__version__, VENV=str(builder.path))
    assert tagged.passed("dist"), safe(tagged.output)
    artifacts = project.engine.project / ".gitlab-ci-local" / "artifacts" / "dist"
    built = sorted(p.name for p in (artifacts / "dist").iterdir())
    stem = f"authress_gitlab_token-{__version__}"
    assert built == [f"{stem}-py3-none-any.whl", f"{stem}.tar.gz"]
    assert (artifacts / "release-notes.md").read_text(encoding="utf-8").strip()

    wrong = project.run(["dist"], CI_COMMIT_TAG="9.9.9", VENV=str(builder.path))
    assert wrong.failed("dist") and f"tag '9.9.9' is not the package version '{__version__}'" in wrong.output
