"""Every example, copied into a new project and filled in only as its README's steps say, runs, and its
HCL applies through the real authress/authress provider against the Authress stand-in, which judges
the token as Authress does; tokens come from the local GitLab-like issuer.

examples/gitlab runs in a real GitLab CI engine (gitlab-ci-local, tests/e2e/gitlab_ci_local.py): the
component, the helper and the module come from the GitLab stand-in's copy of this repository at the
release tag, the state goes through the example's own http backend variables to the stand-in's
Terraform state API. examples/opentofu-component includes GitLab's own OpenTofu component from
gitlab.com, which cannot be had here: its jobs' own script lines run in bash (the install left out,
the helper on PATH is this checkout's) with local state, and the module comes from a git repository
of this checkout's terraform/ at the release tag."""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token import __version__
from tests.docs.test_gitlab_example import FILLED_IN, check_gitlab_ci, load
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_roles import add_role_routes
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy, running_proxy
from tests.fixtures.gitlab_server import GitLabStandIn
from tests.fixtures.helper import SUB, leaks, safe
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

from .gitlab_ci_local import Engine, JobRun, engine, job_environment, publish, release, without_images
from .module_source import module_repository
from .toolchain import ROOT, TIMEOUT, Terraform, Toolchain

pytestmark = pytest.mark.e2e

ACCOUNT_ID = FILLED_IN["ACCOUNT_ID"]
HELPER_URL = "https://gitlab.com/authress-gitlab-token/authress-gitlab-token.git"
API_HOST = f"{ACCOUNT_ID}.api.authress.io"  # reached only through the CONNECT proxy on 127.0.0.1
AUDIENCE = f"https://{API_HOST}"
PROJECT = FILLED_IN["GROUP/PROJECT"]  # SUB is its main branch's user ID
NOT_HERE = re.compile(r"python3 -m venv|pip install")  # installing the helper: its own tests cover it


@pytest.fixture
def authress(ca: LocalCA, issuer: LocalIssuer) -> Iterator[tuple[AuthressStandIn, ConnectProxy]]:
    """The stand-in as https://acc-1a2b3c.api.authress.io, set up as the README's steps 1 and 2 say."""
    stand_in = AuthressStandIn(ca, ACCOUNT_ID, hostnames=[API_HOST]).start()
    try:
        with running_proxy(API_HOST, stand_in.port) as proxy:
            # 200: what authress/authress 2.0.39 accepts from createRole (tests/fixtures/authress_roles.py).
            add_role_routes(stand_in, create_status=200)
            stand_in.trust(issuer.url, AUDIENCE)
            stand_in.grant(SUB)
            yield stand_in, proxy
    finally:
        stand_in.stop()


def copy_example(name: str, files: list[str], workdir: Path, repository: str) -> Path:
    """The example's files in a new project root, each placeholder replaced as its README's steps say."""
    steps = {**FILLED_IN, HELPER_URL: repository}
    for file in files:
        text = (ROOT / "examples" / name / file).read_text(encoding="utf-8")
        for placeholder, value in steps.items():
            text = text.replace(placeholder, value)
        (workdir / file).parent.mkdir(parents=True, exist_ok=True)
        (workdir / file).write_text(text, encoding="utf-8")
    return workdir


def local_state(root: Path) -> None:
    """GitLab-managed state cannot be had here; the only change to the copied project."""
    (root / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n', encoding="utf-8")


def expand_vars(variables: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Job variables as the runner sets them: `$NAME` and `${NAME}` expanded (unknown: empty)."""
    known = dict(env)
    out: dict[str, str] = {}
    for _ in range(3):  # a variable may name another (AUTHRESS_REF: $CI_DEFAULT_BRANCH)
        for name, value in variables.items():
            text = str(value)
            out[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: known.get(m.group(1), ""), text)
        known.update(out)
    return out


class Job:
    """One job's own lines (before_script, then script) in one bash, as GitLab's shell runs them."""

    def __init__(self, tf: Terraform, cli_dir: Path, ci: Mapping[str, str], proxy: ConnectProxy) -> None:
        self.tf = tf
        self.env = {
            **tf.env,
            **ci,
            "PATH": f"{cli_dir}{os.pathsep}{tf.env['PATH']}",
            "HTTPS_PROXY": proxy.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "GIT_SSL_CAINFO": tf.env["SSL_CERT_FILE"],
        }

    def run(self, lines: list[str], variables: Mapping[str, Any], token: str) -> subprocess.CompletedProcess[str]:
        kept = ["\n".join(x for x in line.splitlines() if not NOT_HERE.search(x)) for line in lines]
        env = {**self.env, **expand_vars(variables, self.env), "AUTHRESS_ID_TOKEN": token}
        return subprocess.run(
            ["bash", "-e", "-c", "\n".join(kept)],
            cwd=self.tf.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


def cli_on_path(tmp_path: Path, name: str, path: str) -> Path:
    """The toolchain's CLI under the name the job's lines call."""
    folder = tmp_path / "cli"
    folder.mkdir(exist_ok=True)
    if not (folder / name).is_symlink():  # a test's second job reuses it
        (folder / name).symlink_to(path)
    return folder


def ci_variables(issuer: LocalIssuer, workdir: Path, stage: str) -> dict[str, str]:
    """The predefined variables the jobs read, for a pipeline on the protected default branch."""
    return {
        "CI_SERVER_URL": issuer.url,
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_REF_PROTECTED": "true",
        "CI_PROJECT_DIR": str(workdir),
        "CI_JOB_STAGE": stage,
    }


@dataclass(frozen=True)
class Example:
    """One example test's world: the toolchain, the local issuer, Authress (stand-in and proxy) and the
    module's hosted copy; the example's project is copied to `tmp_path / "project"`."""

    toolchain: Toolchain
    ca: LocalCA
    tmp_path: Path
    issuer: LocalIssuer
    signing_key: SigningKey
    stand_in: AuthressStandIn
    proxy: ConnectProxy
    repository: str

    def copy(self, name: str, files: list[str]) -> tuple[Path, dict[str, Any]]:
        """The copied project and its pipeline as written (.gitlab-ci.yml loaded, not expanded)."""
        project = copy_example(name, files, self.tmp_path / "project", self.repository)
        return project, load((project / ".gitlab-ci.yml").read_text(encoding="utf-8"))

    def token(self, **claims: object) -> str:
        return mint(self.signing_key, gitlab_claims(self.issuer.url, AUDIENCE, **claims))

    def job(self, cli: str, called: str, root: Path, project: Path, stage: str) -> Job:
        """A job of `stage` running Terraform in `root`, the toolchain's `cli` on PATH as `called`."""
        path = self.toolchain.cli(cli)
        tf = Terraform(path, root, self.toolchain, self.ca, self.tmp_path)
        return Job(tf, cli_on_path(self.tmp_path, called, path), ci_variables(self.issuer, project, stage), self.proxy)


@pytest.fixture
def example(
    toolchain: Toolchain,
    ca: LocalCA,
    tmp_path: Path,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    authress: tuple[AuthressStandIn, ConnectProxy],
) -> Example:
    # The OpenTofu example's helper URL is never fetched here (the hand-run jobs skip the install).
    return Example(toolchain, ca, tmp_path, issuer, signing_key, *authress, FILLED_IN[HELPER_URL])


@pytest.fixture
def gitlab(ca: LocalCA, tmp_path: Path) -> Iterator[GitLabStandIn]:
    """The GitLab stand-in holding a mirror of this repository at the release tag, as a self-managed GitLab would."""
    engine()  # skip early, before anything is built, when the engine is missing
    stand_in = GitLabStandIn(ca, tmp_path / "repos", "job-" + os.urandom(8).hex()).start()
    try:
        release(stand_in, tmp_path / "release-work", __version__)
        yield stand_in
    finally:
        stand_in.stop()


@dataclass(frozen=True)
class Pipeline:
    """The example's project pushed to the GitLab stand-in, and gitlab-ci-local ready to run its jobs."""

    example: Example
    gitlab: GitLabStandIn
    engine: Engine

    def run(self, jobs: list[str], token: str, **variables: str) -> JobRun:
        """Jobs of a pipeline on the protected default branch, the ID token in AUTHRESS_ID_TOKEN."""
        given = {
            "CI_SERVER_URL": self.example.issuer.url,
            "CI_API_V4_URL": f"{self.gitlab.url}/api/v4",
            "CI_COMMIT_REF_PROTECTED": "true",
            "CI_JOB_TOKEN": self.gitlab.job_token,
            "AUTHRESS_ID_TOKEN": token,
            **variables,
        }
        return self.engine.run(jobs, given)


def example_pipeline(example: Example, gitlab: GitLabStandIn, name: str, files: list[str]) -> Pipeline:
    """The example copied and filled in as its README says, pushed as my-org/authress-configuration."""
    project = copy_example(
        name, files, example.tmp_path / "project", f"{gitlab.url}/platform/authress-gitlab-token.git"
    )
    pipeline = project / ".gitlab-ci.yml"
    pipeline.write_text(without_images(pipeline.read_text(encoding="utf-8")), encoding="utf-8")
    publish(project, gitlab, "my-org/authress-configuration")
    cli_dir = cli_on_path(example.tmp_path, "terraform", example.toolchain.cli("terraform"))
    env = job_environment(example.ca.ca_path, example.proxy.url, example.toolchain.cli_config, cli_dir)
    return Pipeline(example, gitlab, Engine(engine(), project, example.tmp_path / "home", env))


def test_the_gitlab_example_pipeline_runs_in_gitlab_ci_local(example: Example, gitlab: GitLabStandIn) -> None:
    """fmt-validate and apply pass in a real GitLab CI engine: the component comes from the hosted copy
    at the release tag, the job installs the helper from there, verifies the token and Terraform applies
    the role through authress/authress 2.0.39, with the state kept by the GitLab stand-in."""
    example.toolchain.provider("hashicorp/local@2.9.0")  # main.tf's module: the ephemeral one
    example.toolchain.provider("authress/authress@2.0.39")
    pipeline = example_pipeline(example, gitlab, "gitlab", [".gitlab-ci.yml", "main.tf"])
    token = example.token(environment="authress")

    run = pipeline.run(["fmt-validate", "apply"], token)
    assert run.passed("fmt-validate") and run.passed("apply"), safe(run.output)
    assert not leaks(run.output), "the pipeline printed the token"
    stand_in = example.stand_in
    assert stand_in.roles["ro_documents_reader"]["permissions"] == [
        {"action": "documents:read", "allow": True, "grant": False, "delegate": False}
    ]
    assert set(stand_in.tokens_seen()) == {token}, "Authress did not get the job's token as Bearer"
    assert ("GET", f"/v1/accounts/{ACCOUNT_ID}") == (stand_in.requests[0].method, stand_in.requests[0].path)
    # The state went through the example's own TF_HTTP_* variables: locked, written, unlocked.
    state = gitlab.state_json("authress")
    assert [r["type"] for r in state["resources"] if r["mode"] == "managed"] == ["authress_role"]
    seen = [(c.method, c.path.split("?")[0].rsplit("/", 1)[-1], c.status) for c in gitlab.calls]
    assert ("POST", "lock", 200) in seen and ("DELETE", "lock", 200) in seen and ("POST", "authress", 200) in seen
    assert {c.user for c in gitlab.calls} == {"gitlab-ci-token"} and not gitlab.locks

    # Tokens the apply job must refuse: the helper's line ends the job before Terraform or Authress.
    before = (len(stand_in.requests), len(gitlab.calls))
    for claims, message in REFUSED:
        run = pipeline.run(["apply"], example.token(environment="authress", **claims))
        assert run.failed("apply"), safe(run.output)
        assert f"authress-gitlab-token: {message}" in run.job("apply"), safe(run.output)
        assert "terraform init" not in run.job("apply").split("authress-gitlab-token: ")[-1]
        assert (len(stand_in.requests), len(gitlab.calls)) == before, f"{message}: Authress or the state was reached"
        assert not leaks(run.output)

    # A job with its own before_script fails closed, unless it keeps the component's lines first.
    project = pipeline.engine.project / ".gitlab-ci.yml"
    written = project.read_text(encoding="utf-8")
    own = "  variables:\n    TERRAFORM_COMMAND: apply -auto-approve\n"
    project.write_text(written.replace(own, own + "  before_script:\n    - echo own lines\n"), encoding="utf-8")
    run = pipeline.run(["apply"], token)
    assert run.failed("apply"), safe(run.output)
    # No helper on PATH either: the module's ephemeral "local_command" cannot run it
    # (tests/e2e/test_component_pipelines.py has the helper present and refusing).
    assert '"authress-gitlab-token": executable file not found' in run.job("apply") and not leaks(run.output)
    assert len(stand_in.requests) == before[0], "a job without the component's before_script reached Authress"
    kept = "  before_script:\n    - !reference [.authress-gitlab-token, before_script]\n    - echo own lines\n"
    project.write_text(written.replace(own, own + kept), encoding="utf-8")
    run = pipeline.run(["apply"], token)
    assert run.passed("apply") and "own lines" in run.job("apply"), safe(run.output)
    assert "No changes." in run.job("apply"), "the role did not read back as applied from the GitLab-managed state"
    assert len(stand_in.requests) > before[0] and set(stand_in.tokens_seen()) == {token}
    assert not leaks(run.output)


REFUSED = [
    ({"project_path": "acme/infra"}, 'claim "project_path" is "acme/infra", expected "my-org/authress-configuration"'),
    ({"ref": "feature/x"}, 'claim "ref" is "feature/x", expected "main"'),
    ({"ref_type": "tag"}, 'claim "ref_type" is "tag", expected "branch"'),
    ({"ref_protected": "false"}, 'claim "ref_protected" is "false", expected "true"'),
]


def opentofu_example(example: Example) -> tuple[Path, dict[str, Any]]:
    """The example copied, its module source pointing at a git repository of terraform/ at the release tag."""
    example.toolchain.provider("hashicorp/local@2.9.0")
    repository = module_repository(example.tmp_path / "authress-gitlab-token", __version__)
    return replace(example, repository=f"file://{repository}").copy(
        "opentofu-component", [".gitlab-ci.yml", "infra/main.tf"]
    )


def test_the_opentofu_component_example_plans_and_applies_with_each_jobs_own_token(example: Example) -> None:
    """The component's plan job saves a plan; its apply job applies it later, and OpenTofu runs the helper
    again with the apply job's own token (the ephemeral module). Neither the plan nor the state holds a token."""
    example.toolchain.provider("authress/authress@2.0.39")
    project, pipeline = opentofu_example(example)
    done = check_gitlab_ci(project / ".gitlab-ci.yml")
    assert done.returncode == 0, done.stdout + done.stderr

    root = project / pipeline["include"][0]["inputs"]["root_dir"]
    local_state(root)
    before = pipeline["default"]["before_script"]
    variables = pipeline["variables"]

    # The component's jobs run gitlab-tofu, a wrapper of these commands.
    plan_token = example.token(job_id="301")
    plan = example.job("tofu", "tofu", root, project, "build").run(
        [*before, "tofu init -input=false", "tofu plan -input=false -out=plan.cache"], variables, plan_token
    )
    assert plan.returncode == 0, f"the plan job failed:\n{safe(plan.stdout + plan.stderr)}"
    # The module's check (check = "authress") asked Authress with the plan job's token.
    assert set(example.stand_in.tokens_seen()) == {plan_token}
    example.stand_in.requests.clear()

    apply_token = example.token(job_id="302")
    apply = example.job("tofu", "tofu", root, project, "deploy").run(
        [*before, "tofu init -input=false", "tofu apply -input=false plan.cache"], variables, apply_token
    )
    assert apply.returncode == 0, f"the apply job failed:\n{safe(apply.stdout + apply.stderr)}"

    assert "ro_documents_reader" in example.stand_in.roles
    assert ("POST", "/v1/roles") in [(r.method, r.path) for r in example.stand_in.requests]
    assert set(example.stand_in.tokens_seen()) == {apply_token}, (
        "the saved plan's apply did not use the apply job's token"
    )
    with zipfile.ZipFile(root / "plan.cache") as saved:
        held = b"".join(saved.read(name) for name in saved.namelist())
    assert plan_token.encode() not in held and plan_token.rsplit(".", 1)[1].encode() not in held, (
        "the plan holds a token"
    )
    state = (root / "terraform.tfstate").read_text(encoding="utf-8")
    assert not leaks(state), "the state holds a token"
    assert not leaks(plan.stdout + plan.stderr + apply.stdout + apply.stderr)


def test_the_opentofu_example_stops_a_token_of_another_project_before_authress(example: Example) -> None:
    project, pipeline = opentofu_example(example)
    root = project / "infra"
    local_state(root)
    done = example.job("tofu", "tofu", root, project, "build").run(
        [*pipeline["default"]["before_script"], "tofu init -input=false", "tofu plan -input=false -out=plan.cache"],
        pipeline["variables"],
        example.token(project_path="acme/infra"),
    )
    assert done.returncode != 0
    expected = f'Command Error: authress-gitlab-token: claim "project_path" is "acme/infra", expected "{PROJECT}"'
    uncoloured = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # the job's tofu runs in colour
    flat = " ".join(re.sub(r"[│╷╵]", " ", uncoloured).split())
    assert expected in flat, safe(done.stdout + done.stderr)
    assert not leaks(done.stdout + done.stderr)
    assert example.stand_in.requests == [] and example.proxy.tunnels == [], "a refused token reached Authress"
