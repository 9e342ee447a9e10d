"""Every example, copied into a new project and filled in only as its README's steps say, runs: its
pipeline passes GitLab's CI schema, its jobs' own script lines run in bash (the helper's verification
included) with a token from the local GitLab-like issuer, and its HCL applies through the real
authress/authress provider against the Authress stand-in, which judges the token as Authress does.

What the jobs do that cannot run here is left out and named: installing Python and the helper (the
helper on PATH is this checkout's), and GitLab-managed state (a backend override keeps state local).
The module comes, as step 4 says, from a git URL at the release tag: a local clone of this checkout."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token import __version__
from tests.conftest import leaks, safe
from tests.fixtures import ci_inputs
from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_roles import add_role_routes
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy, running_proxy
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint
from tests.test_gitlab_example import FILLED_IN, check_gitlab_ci, expand, load

from .conftest import CLIS, ROOT, TIMEOUT, Terraform, Toolchain

pytestmark = pytest.mark.e2e

ACCOUNT_ID = FILLED_IN["ACCOUNT_ID"]
API_HOST = f"{ACCOUNT_ID}.api.authress.io"  # reached only through the CONNECT proxy on 127.0.0.1
AUDIENCE = f"https://{API_HOST}"
PROJECT = FILLED_IN["GROUP/PROJECT"]
SUB = f"project_path:{PROJECT}:ref_type:branch:ref:main"
NOT_HERE = re.compile(r"python3 -m venv|pip install")  # installing the helper: its own tests cover it


@pytest.fixture
def authress(ca: LocalCA, issuer: LocalIssuer) -> Iterator[tuple[AuthressStandIn, ConnectProxy]]:
    """The stand-in as https://acc-1a2b3c.api.authress.io, set up as the README's steps 2 and 3 say."""
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


@pytest.fixture
def hosted_copy(tmp_path: Path, ca: LocalCA) -> Iterator[str]:
    """Step 4: a copy of this repository at the release tag, served over https on 127.0.0.1 as a git
    remote (git's "dumb" HTTP protocol: static files), the URL both the job and Terraform fetch from."""
    if not shutil.which("git"):
        pytest.skip("no git on PATH: Terraform needs it to fetch the module from a git URL")
    work = tmp_path / "hosted-work"
    shutil.copytree(ROOT / "terraform", work / "terraform")
    served = tmp_path / "served"
    bare = served / "platform" / "authress-gitlab-token.git"
    identity = ["-c", "user.name=test", "-c", "user.email=test@127.0.0.1"]
    for args in (
        ["-C", str(work), "init", "-q"],
        ["-C", str(work), "add", "-A"],
        ["-C", str(work), *identity, "commit", "-qm", "release"],
        ["-C", str(work), "tag", f"v{__version__}"],
        ["clone", "-q", "--bare", str(work), str(bare)],
        ["-C", str(bare), "update-server-info"],
    ):
        subprocess.run(["git", *args], check=True, capture_output=True, timeout=60)
    handler = functools.partial(QuietFiles, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ca.server_context(["127.0.0.1", "localhost"]).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/platform/authress-gitlab-token.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


def copy_example(name: str, files: list[str], workdir: Path, repository: str) -> Path:
    """The example's files in a new project root, each placeholder replaced as its README's steps say."""
    steps = {**FILLED_IN, "https://gitlab.com/YOUR_GROUP/authress-gitlab-token.git": repository}
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
        env = {**self.env, **expand_vars(variables, self.env), "AUTHRESS_KEY": token}
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
    hosted_copy: str,
) -> Example:
    return Example(toolchain, ca, tmp_path, issuer, signing_key, *authress, hosted_copy)


@pytest.mark.parametrize("cli", CLIS)
def test_the_gitlab_example_applies_as_written(cli: str, example: Example) -> None:
    example.toolchain.provider("hashicorp/external@2.4.0")
    example.toolchain.provider("authress/authress@2.0.39")
    root, written = example.copy("gitlab", [".gitlab-ci.yml", "main.tf"])

    pipeline = expand(written)
    expanded = example.tmp_path / "expanded.yml"
    expanded.write_text(ci_inputs.dump(pipeline), encoding="utf-8")
    for path in (root / ".gitlab-ci.yml", expanded):
        done = check_gitlab_ci(path)
        assert done.returncode == 0, done.stdout + done.stderr

    local_state(root)
    # The job's image runs `terraform`; under OpenTofu the same lines run with `tofu` by that name.
    stand_in, proxy = example.stand_in, example.proxy
    token = example.token(environment="authress")

    check = pipeline["fmt-validate"]
    job = example.job(cli, "terraform", root, root, "check")
    done = job.run(check["script"], {**pipeline["variables"], **check.get("variables", {})}, token)
    assert done.returncode == 0, f"fmt-validate failed:\n{safe(done.stdout + done.stderr)}"

    apply = pipeline["apply"]
    job = example.job(cli, "terraform", root, root, "apply")
    variables = {**pipeline["variables"], **apply["variables"]}
    done = job.run([*apply["before_script"], *apply["script"]], variables, token)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"the apply job failed:\n{safe(output)}"
    assert not leaks(output), "the job printed the token"
    assert stand_in.roles["ro_documents_reader"]["permissions"] == [
        {"action": "documents:read", "allow": True, "grant": False, "delegate": False}
    ]
    assert set(stand_in.tokens_seen()) == {token}, "Authress did not get the job's token as Bearer"
    assert ("GET", f"/v1/accounts/{ACCOUNT_ID}") == (stand_in.requests[0].method, stand_in.requests[0].path), (
        "the job's check did not call Authress before Terraform"
    )
    assert set(proxy.tunnels) == {f"{API_HOST}:443"} and not proxy.refused

    # The role reads back as applied: the next pipeline's plan has nothing to do; destroy removes it.
    again = [*apply["before_script"], *apply["script"][:-1]]
    plan = job.run([*again, "terraform plan -detailed-exitcode"], variables, token)
    assert plan.returncode == 0, f"the second plan found changes or failed:\n{safe(plan.stdout + plan.stderr)}"
    destroy = job.run([*again, "terraform destroy -auto-approve"], variables, token)
    assert destroy.returncode == 0, safe(destroy.stdout + destroy.stderr)
    assert stand_in.roles == {}


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"ref": "feature/x", "ref_protected": "false"}, 'claim "ref" is "feature/x", expected "main"'),
        ({"ref_type": "tag"}, 'claim "ref_type" is "tag", expected "branch"'),
    ],
    ids=["another branch", "a tag named like the branch"],
)
def test_the_gitlab_example_job_stops_a_token_of_another_ref_before_terraform(
    claims: dict[str, str], message: str, example: Example
) -> None:
    root, written = example.copy("gitlab", [".gitlab-ci.yml", "main.tf"])
    pipeline = expand(written)
    apply = pipeline["apply"]
    done = example.job("terraform", "terraform", root, root, "apply").run(
        [*apply["before_script"], *apply["script"]],
        {**pipeline["variables"], **apply["variables"]},
        example.token(**claims),
    )
    assert done.returncode != 0
    assert f"authress-gitlab-token: {message}" in done.stderr, safe(done.stderr)
    assert not leaks(done.stdout + done.stderr)
    assert example.stand_in.requests == [] and not (root / ".terraform").exists(), "Terraform ran after a refused token"


def test_the_opentofu_component_example_plans_and_applies_with_each_jobs_own_token(example: Example) -> None:
    """The component's plan job saves a plan; its apply job applies it later with its own token. Neither
    the plan nor the state holds a token."""
    example.toolchain.provider("authress/authress@2.0.39")
    project, pipeline = example.copy("opentofu-component", [".gitlab-ci.yml", "infra/main.tf"])
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

    apply_token = example.token(job_id="302")
    apply = example.job("tofu", "tofu", root, project, "deploy").run(
        [*before, "tofu init -input=false", "tofu apply -input=false plan.cache"], variables, apply_token
    )
    assert apply.returncode == 0, f"the apply job failed:\n{safe(apply.stdout + apply.stderr)}"

    assert "ro_documents_reader" in example.stand_in.roles
    assert example.stand_in.tokens_seen()[-1] == apply_token, "the saved plan's apply did not use the apply job's token"
    with zipfile.ZipFile(root / "plan.cache") as saved:
        assert not any(plan_token.encode() in saved.read(name) for name in saved.namelist()), "the plan holds a token"
    state = (root / "terraform.tfstate").read_text(encoding="utf-8")
    assert plan_token not in state and apply_token not in state, "the state holds a token"
    assert not leaks(plan.stdout + plan.stderr + apply.stdout + apply.stderr)


def test_the_opentofu_example_job_stops_a_token_of_another_project_before_opentofu(example: Example) -> None:
    project, pipeline = example.copy("opentofu-component", [".gitlab-ci.yml", "infra/main.tf"])
    root = project / "infra"
    done = example.job("tofu", "tofu", root, project, "build").run(
        [*pipeline["default"]["before_script"], "tofu init -input=false"],
        pipeline["variables"],
        example.token(project_path="acme/infra"),
    )
    assert done.returncode != 0
    expected = f'authress-gitlab-token: claim "project_path" is "acme/infra", expected "{PROJECT}"'
    assert expected in done.stderr, safe(done.stderr)
    assert not leaks(done.stdout + done.stderr)
    assert example.stand_in.requests == [] and not (root / ".terraform").exists(), "OpenTofu ran after a refused token"
