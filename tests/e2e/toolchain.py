"""What the end-to-end tests run: the real Terraform (and OpenTofu) CLI, providers from the local
filesystem mirror that tests/e2e/build_providers.sh builds (`make test` runs it first), and the
helper's console script. Whatever is missing skips its tests with the exact reason the build recorded;
under `.ci/run` (AGT_E2E_STRICT=1) a missing CLI or provider that can be built here fails its tests instead.
Not keyed on CI: GitLab sets CI=true in every job, and the project's own pipeline image has no Go."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_roles import add_role_routes
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import ConnectProxy, running_proxy
from tests.fixtures.helper import BIN_DIR, SUB, leaks, safe
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = "tests/e2e/build_providers.sh"
TIMEOUT = 300  # seconds for one terraform command; init and apply take a few seconds here
# The external provider users get (built from its upstream source) and the module's lower bound.
EXTERNAL_VERSIONS = ["2.4.0", "1.2.0"]
CLIS = ["terraform", "tofu"]

ACCOUNT_ID = "acc-1a2b3c"
# The newest Authress provider takes its API URL from `aud` and insists on https://ACCOUNT.api.authress.TLD:
# this host reaches the stand-in through the CONNECT proxy (.test never resolves anywhere). Go's HTTP
# client (authress/authress 2.0.39, hashicorp/http) honours HTTPS_PROXY for it.
API_HOST = f"{ACCOUNT_ID}.api.authress.test"
AUDIENCE = f"https://{API_HOST}"


def cache_dir() -> Path:
    """The e2e tool cache: not the helper's own key cache (~/.cache/authress-gitlab-token)."""
    if "AGT_CACHE" in os.environ:
        return Path(os.environ["AGT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "authress-gitlab-token-e2e"


def missing(reason: str, *, obtainable: bool = True) -> None:
    """Skip for a missing tool; under .ci/run fail instead when the tool can be built here."""
    if obtainable and os.environ.get("AGT_E2E_STRICT") == "1":
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Toolchain:
    """The build's record (CACHE/e2e-status.json): provider versions and CLI paths, or why not."""

    status: Mapping[str, Any]

    @property
    def cli_config(self) -> str:
        return str(self.status["cli_config"])

    def cli(self, name: str) -> str:
        """The CLI's path, or skip with the reason it is missing."""
        entry = self.status.get("clis", {}).get(name, {})
        if not entry.get("path"):
            missing(f"no {name} CLI: {entry.get('error') or 'not recorded by ' + BUILD_SCRIPT}")
        return str(entry["path"])

    def provider(self, name: str, *, obtainable: bool = True) -> str:
        """The version in the mirror of `name` (`namespace/type@version`), or skip with the command and
        error that failed. `obtainable=False`: a provider that cannot be had here may skip even in CI."""
        entry = self.status.get("providers", {}).get(name, {})
        if not entry.get("version"):
            error = entry.get("error") or f"not recorded by {BUILD_SCRIPT}"
            missing(f"provider {name} is not in the mirror: {error}", obtainable=obtainable)
        return str(entry["version"])


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    path = cache_dir() / "e2e-status.json"
    if not path.is_file():
        missing(f"{path} does not exist: run {BUILD_SCRIPT} (`make test` runs it before pytest)")
    return Toolchain(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class TfRun:
    """One terraform command. `output` is stdout + stderr; on success it may hold sensitive values."""

    args: tuple[str, ...]
    returncode: int
    output: str = field(repr=False)

    def flat(self) -> str:
        """The output with line wrapping and box-drawing undone, to find a message in it."""
        return " ".join(re.sub(r"[│╷╵]", " ", self.output).split())


class Terraform:
    """Runs one CLI (terraform or tofu) in `workdir` with an environment built from scratch: nothing
    of the caller's TF_* settings, providers from the mirror only, the helper on PATH."""

    def __init__(self, cli: str, workdir: Path, toolchain: Toolchain, ca: LocalCA, home: Path) -> None:
        self.cli = cli
        self.workdir = workdir
        self.env = {
            "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "TF_CLI_CONFIG_FILE": toolchain.cli_config,
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "SSL_CERT_FILE": str(ca.ca_path),
            "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(home / "helper-cache"),
            "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "2",
        }

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> TfRun:
        done = subprocess.run(
            [self.cli, *args, "-no-color"],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        return TfRun(tuple(args), done.returncode, done.stdout + done.stderr)

    def ok(self, *args: str, env: Mapping[str, str] | None = None) -> TfRun:
        run = self(*args, env=env)
        if run.returncode != 0:
            raise AssertionError(f"{Path(self.cli).name} {' '.join(args)} failed:\n{safe(run.output)}")
        return run


def copy_config(source: Path, destination: Path) -> Path:
    """Copy a configuration without local state or a .terraform folder left by someone's run."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "terraform.tfstate*", "*.tfplan")
    shutil.copytree(source, destination, ignore=ignore)
    return destination


def stage(config: str, tmp_path: Path, external: str | None = None) -> Path:
    """Copy the module and the configuration at `config` (relative to the repo) into `tmp_path`, keeping
    their relative paths so `source = "../.../terraform"` resolves; return the configuration's copy.
    `external`: pin hashicorp/external to that version (an override file beside the module's versions.tf,
    which keeps its own constraint too)."""
    module = copy_config(ROOT / "terraform", tmp_path / "terraform")
    if external is not None:
        pin = f'external = {{ source = "hashicorp/external", version = "{external}" }}'
        pin = f"terraform {{\n  required_providers {{\n    {pin}\n  }}\n}}\n"
        (module / "versions_override.tf").write_text(pin, encoding="utf-8")
    return module if config == "terraform" else copy_config(ROOT / config, tmp_path / config)


def selected(workdir: Path, provider: str) -> str:
    """The version `init` chose for `provider` (`namespace/type`), from the dependency lock file."""
    lock = (workdir / ".terraform.lock.hcl").read_text(encoding="utf-8")
    found = re.search(r'provider "registry\.[^/]+/' + re.escape(provider) + r'" \{\s*version\s*=\s*"([^"]+)"', lock)
    assert found, f"{provider} is not in the lock file:\n{lock}"
    return found[1]


@pytest.fixture
def create_status() -> int:
    """What the stand-in answers to `POST /v1/roles`: 200, the only status authress/authress 2.0.39
    accepts (tests parametrize it to the OpenAPI description's 201)."""
    return 200


@pytest.fixture
def authress_api(
    ca: LocalCA, issuer: LocalIssuer, create_status: int
) -> Iterator[tuple[AuthressStandIn, ConnectProxy]]:
    """The stand-in for account acc-1a2b3c, trusting the issuer with AUDIENCE and granting SUB, reached
    as https://acc-1a2b3c.api.authress.test through the CONNECT proxy."""
    stand_in = AuthressStandIn(ca, ACCOUNT_ID, hostnames=[API_HOST]).start()
    try:
        with running_proxy(API_HOST, stand_in.port) as proxy:
            add_role_routes(stand_in, create_status)
            stand_in.trust(issuer.url, AUDIENCE)
            stand_in.grant(SUB)
            yield stand_in, proxy
    finally:
        stand_in.stop()


def routed(proxy: ConnectProxy, token: str) -> dict[str, str]:
    """Terraform's environment: the token, and the account host routed to the stand-in (the issuer on
    127.0.0.1 is reached directly)."""
    return {"AUTHRESS_KEY": token, "HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost"}


def variables(audience: str, issuer: LocalIssuer) -> list[str]:
    return ["-input=false", "-var", f"audience={audience}", "-var", f"issuer={issuer.url}"]


def init(
    cli: str, config: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path, *providers: str, external: str = "2.4.0"
) -> Terraform:
    """`init` of `config` with hashicorp/external pinned to `external` (also checked in the lock file)
    and each of `providers` (`namespace/type@version`) in the mirror."""
    for provider in (f"hashicorp/external@{external}", *providers):
        toolchain.provider(provider)
    tf = Terraform(toolchain.cli(cli), stage(config, tmp_path, external), toolchain, ca, tmp_path)
    tf.ok("init", "-input=false")
    assert selected(tf.workdir, "hashicorp/external") == external
    return tf


@dataclass(frozen=True)
class Pipeline:
    """A GitLab pipeline's side of an apply: tokens from the local issuer, Authress (the stand-in)
    reached through the CONNECT proxy."""

    stand_in: AuthressStandIn
    proxy: ConnectProxy
    issuer: LocalIssuer
    signing_key: SigningKey

    def token(self, **claims: object) -> str:
        return mint(self.signing_key, gitlab_claims(self.issuer.url, AUDIENCE, **claims))

    def apply(self, tf: Terraform, *extra: str, audience: str = AUDIENCE, **claims: object) -> tuple[str, TfRun]:
        """`apply` with a new token (AUDIENCE, `claims` changed) while the module expects `audience`."""
        token = self.token(**claims)
        run = tf("apply", "-auto-approve", *variables(audience, self.issuer), *extra, env=routed(self.proxy, token))
        return token, run


@pytest.fixture
def pipeline(
    authress_api: tuple[AuthressStandIn, ConnectProxy], issuer: LocalIssuer, signing_key: SigningKey
) -> Pipeline:
    return Pipeline(*authress_api, issuer, signing_key)


# Tokens the module refuses: (claims changed in the token, the audience the module expects, the message).
REFUSED_TOKENS = pytest.mark.parametrize(
    ("claims", "audience", "message"),
    [
        pytest.param(
            {"ref": "feature/x"},
            AUDIENCE,
            'authress-gitlab-token: claim "ref" is "feature/x", expected "main" (from ref); '
            "this token is for another project, ref or job",
            id="token for another branch",
        ),
        pytest.param(
            {"now": int(time.time()) - 3600},
            AUDIENCE,
            "authress-gitlab-token: token expired at ",
            id="expired token",
        ),
        pytest.param(
            {},
            f"https://other-{ACCOUNT_ID}.api.authress.test",
            f'authress-gitlab-token: claim "aud" is "{AUDIENCE}", expected "https://other-{ACCOUNT_ID}.api.authress.test"',
            id="wrong audience",
        ),
    ],
)


def assert_refused_before_authress(
    tf: Terraform, pipeline: Pipeline, claims: dict[str, object], audience: str, message: str
) -> None:
    """Apply fails with the helper's one-line error, and the token reaches neither Authress nor state."""
    token, run = pipeline.apply(tf, audience=audience, **claims)
    assert run.returncode != 0, "apply succeeded"
    assert message in run.flat(), f"the helper's error is not in Terraform's output:\n{safe(run.output)}"
    assert not leaks(run.output), "terraform printed the token"
    assert pipeline.stand_in.requests == [] and pipeline.proxy.tunnels == [], "a refused token was sent to Authress"
    assert pipeline.stand_in.roles == {}
    state = tf.workdir / "terraform.tfstate"
    assert not state.exists() or token not in state.read_text(encoding="utf-8"), "the token reached state"


# Authress not set up for the pipeline: README step 1 (trusted identity) or step 2 (access record) undone.
NOT_SET_UP = {
    "untrusted": "no trusted identity for this issuer and audience",
    "no_record": "no access record for the token's sub",
}


def apply_not_set_up(tf: Terraform, pipeline: Pipeline, setup: str, *extra: str) -> tuple[str, TfRun]:
    """Apply with a good token against an Authress missing the `setup` step: it must fail, token unprinted."""
    if setup == "untrusted":
        pipeline.stand_in.identities.clear()
    else:
        pipeline.stand_in.records.clear()
    token, run = pipeline.apply(tf, *extra)
    assert run.returncode != 0, f"{NOT_SET_UP[setup]}: apply succeeded"
    assert not leaks(run.output), f"{NOT_SET_UP[setup]}: terraform printed the token"
    return token, run
