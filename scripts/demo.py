"""`make demo`: what a GitLab pipeline does with this project, on loopback. A GitLab-like issuer (real
TLS, a throwaway CA) mints the job's ID token; `setup --apply`, with an admin's service-client key,
creates the trusted identity and the pipeline's access record in a local Authress stand-in, which
judges every Bearer as Authress does; `terraform apply` of scripts/demo.tf runs the helper through
the module and creates an `authress_role` with authress/authress 2.0.39; a token from another project
is refused before any request reaches the stand-in; the state is searched for the job's token.
Terraform's own output is shown."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.authress import AuthressStandIn, running_authress  # noqa: E402
from tests.fixtures.authress_admin import add_role  # noqa: E402
from tests.fixtures.authress_roles import add_role_routes  # noqa: E402
from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.connect_proxy import running_proxy  # noqa: E402
from tests.fixtures.issuer import running_issuer  # noqa: E402
from tests.fixtures.service_clients import ServiceClientKey  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

ACCOUNT_ID = "acc-demo"
API_HOST = f"{ACCOUNT_ID}.api.authress.test"  # reached through the CONNECT proxy only
AUDIENCE = f"https://{API_HOST}"
PROJECT = "my-org/authress-configuration"
OTHER_PROJECT = "my-org/other-project"
SUB = f"project_path:{PROJECT}:ref_type:branch:ref:main"
ROLE = "authress_role.deployer"
GRANTED_ROLE = "ro_terraform"  # what setup --apply grants the pipeline: the account's role for Terraform
CONFIG = ROOT / "scripts" / "demo.tf"
# The module demo.tf's source names sets the route, and with it the provider that runs the helper.
EPHEMERAL = bool(re.search(r'^\s*source\s*=\s*"\./terraform/ephemeral"', CONFIG.read_text(encoding="utf-8"), re.M))
ROUTE = "ephemeral" if EPHEMERAL else "data-source"
RUNNER = "hashicorp/local" if EPHEMERAL else "hashicorp/external"
PROVIDERS = (RUNNER, "authress/authress@2.0.39")  # a name without @VERSION: any version the build made
TIMEOUT = 300  # seconds for one terraform command; a few seconds here
BUILD = "make demo (tests/e2e/build_providers.sh --demo)"


class DemoFailed(Exception):
    """The demo did not show what it exists to show; the message says what happened instead."""


@dataclass(frozen=True)
class Tools:
    """The CLI and the CLI config (providers from the local mirror) that build_providers.sh recorded."""

    cli: str
    cli_config: str


@dataclass(frozen=True)
class Apply:
    """One `terraform apply`: its exit code, its output (shown as it came) and what Authress saw."""

    returncode: int
    output: str = field(repr=False)
    requests: tuple[tuple[str, str, int], ...]  # (method, path, status) at the stand-in
    tunnels: tuple[str, ...]  # CONNECT targets the proxy opened


def cache_dir() -> Path:
    """The e2e tool cache build_providers.sh fills (not the helper's own key cache)."""
    if "AGT_CACHE" in os.environ:
        return Path(os.environ["AGT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "authress-gitlab-token-e2e"


def find_tools() -> Tools:
    """Terraform (else OpenTofu) and the two providers from the build's record, or DemoFailed with why not."""
    path = cache_dir() / "e2e-status.json"
    if not path.is_file():
        raise DemoFailed(f"{path} does not exist; run {BUILD}")
    status = json.loads(path.read_text(encoding="utf-8"))
    clis = status.get("clis", {})
    cli = clis.get("terraform", {}).get("path") or clis.get("tofu", {}).get("path")
    if not cli:
        raise DemoFailed(f"no Terraform or OpenTofu CLI: {clis.get('terraform', {}).get('error')}; run {BUILD}")
    providers = status.get("providers", {})
    for name in PROVIDERS:
        entries = [v for k, v in providers.items() if k == name or k.startswith(f"{name}@")] or [{}]
        if not any(entry.get("version") for entry in entries):
            raise DemoFailed(f"provider {name} is not in the mirror: {entries[0].get('error')}; run {BUILD}")
    return Tools(cli, status["cli_config"])


class Demo:
    """The world of one run: issuer, Authress stand-in and proxy on loopback, a Terraform working directory."""

    def __init__(self, tools: Tools, tmp: Path, out: IO[str]) -> None:
        self.tools = tools
        self.tmp = tmp
        self.out = out
        self.workdir = tmp / "demo"
        self.in_state = -1  # how many times the state held the job's token; set by run()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> tuple[Apply, Apply]:
        """Setup, then the role created with the job's token, the foreign project refused, the state searched."""
        ca = LocalCA.create(self.tmp / "ca")
        key = SigningKey.generate()
        admin = ServiceClientKey.generate(client_id="sc_admin", key_id="key-demo", account_id=ACCOUNT_ID)
        with (
            running_issuer(ca, [key]) as issuer,
            running_authress(ca, ACCOUNT_ID, hostnames=[API_HOST]) as stand_in,
            running_proxy(API_HOST, stand_in.port) as proxy,
        ):
            add_role_routes(stand_in, create_status=200)  # the only status 2.0.39 accepts for a create
            # The account as an admin finds it: their service client with its access, a role for Terraform.
            stand_in.add_client(admin.client_id, admin.key_id, admin.public)
            stand_in.grant(admin.client_id)
            add_role(stand_in, GRANTED_ROLE, ("authress:*", "documents:*"))
            cli = Path(self.tools.cli).name
            env = self.environment(ca, proxy.url)
            self.say(f"== A GitLab-like issuer at {issuer.url} (real TLS) mints the job's ID token")
            self.say(f"   iss {issuer.url}\n   aud {AUDIENCE}\n   sub {SUB}")
            self.say(
                f"\n== authress-gitlab-token setup --apply, with an admin's service-client key: the Authress side "
                f"(a local stand-in for account {ACCOUNT_ID}, reached as {AUDIENCE})"
            )
            self.setup(issuer.url, admin.value, env)
            if stand_in.permissions_of(SUB) is None:
                raise DemoFailed(f"after setup --apply the stand-in has no access record for {SUB}")

            shutil.copytree(ROOT / "terraform", self.workdir / "terraform")
            shutil.copy(CONFIG, self.workdir / "main.tf")
            self.say(f"\n== {cli} init (providers from the local mirror; scripts/demo.tf, the {ROUTE} route)")
            init = self.terraform(["init", "-input=false"], env, show=_init_line)
            if init.returncode != 0:
                raise DemoFailed(f"init failed:\n{init.output}")
            variables = ["-var", f"audience={AUDIENCE}", "-var", f"issuer={issuer.url}"]
            apply_args = ["apply", "-auto-approve", "-input=false", *variables]

            token = mint(key, gitlab_claims(issuer.url, AUDIENCE))
            self.say(
                f"\n== {cli} apply: the module runs the helper, which verifies the job's token; "
                "authress/authress 2.0.39 creates the role with it"
            )
            created = self.apply(apply_args, {**env, "AUTHRESS_KEY": token}, stand_in, proxy.tunnels)
            self.check_created(created, stand_in)

            foreign = mint(key, gitlab_claims(issuer.url, AUDIENCE, project_path=OTHER_PROJECT))
            self.say(f"\n== The same apply in a pipeline of {OTHER_PROJECT}: its job's token is refused at plan time")
            refused = self.apply(apply_args, {**env, "AUTHRESS_KEY": foreign}, stand_in, proxy.tunnels)
            self.check_refused(refused)

            self.say("\n== The state (terraform.tfstate) searched for the job's token")
            self.in_state = self.search_state(token)
        return created, refused

    def setup(self, issuer: str, admin_key: str, env: dict[str, str]) -> None:
        """`setup --apply` as an admin runs it once: the trusted identity and the pipeline's access record."""
        argv = [
            str(Path(sys.executable).parent / "authress-gitlab-token"),
            *("setup", "--apply", "--project", PROJECT, "--branch", "main"),
            *("--audience", AUDIENCE, "--api-url", AUDIENCE, "--issuer", issuer, "--role", GRANTED_ROLE),
        ]
        self.say("$ authress-gitlab-token " + " ".join(argv[1:]))
        done = subprocess.run(
            argv, env={**env, "AUTHRESS_KEY": admin_key}, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise DemoFailed(f"setup --apply failed (exit {done.returncode}): {done.stderr.strip()}")
        self.out.write(done.stdout)
        self.out.flush()

    def search_state(self, token: str) -> int:
        """How many times the state holds the job's token (or its signature), said in one line."""
        state = (self.workdir / "terraform.tfstate").read_text(encoding="utf-8")
        found = state.count(token.rsplit(".", 1)[-1])  # the signature: in the token, and nowhere else
        if found:
            self.say(
                f"terraform.tfstate holds the job's token ({'once' if found == 1 else f'{found} times'}): the {ROUTE} "
                "route keeps it there until "
                "the job's timeout (docs/routes.md); the ephemeral route keeps it out"
            )
        else:
            self.say(f"terraform.tfstate does not hold the job's token: the {ROUTE} route keeps it out of the state")
        return found

    def environment(self, ca: LocalCA, proxy_url: str) -> dict[str, str]:
        """Built from scratch: the helper on PATH, providers from the mirror, the account host via the proxy."""
        return {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.tmp),
            "TF_CLI_CONFIG_FILE": self.tools.cli_config,
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "SSL_CERT_FILE": str(ca.ca_path),
            "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(self.tmp / "helper-cache"),
            "HTTPS_PROXY": proxy_url,
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def apply(self, args: list[str], env: dict[str, str], stand_in: AuthressStandIn, tunnels: list[str]) -> Apply:
        seen, opened = len(stand_in.requests), len(tunnels)
        run = self.terraform(args, env)
        requests = tuple((r.method, r.path, r.status) for r in stand_in.requests[seen:])
        if any(r.token != env["AUTHRESS_KEY"] for r in stand_in.requests[seen:]):
            raise DemoFailed("a request reached the stand-in without exactly the job's token as its Bearer")
        return Apply(run.returncode, run.output, requests, tuple(tunnels[opened:]))

    def check_created(self, created: Apply, stand_in: AuthressStandIn) -> None:
        if created.returncode != 0 or f"{ROLE}: Creation complete" not in created.output:
            raise DemoFailed(f"apply did not create {ROLE} (exit {created.returncode})")
        if created.requests != (("POST", "/v1/roles", 200),) or "ro_terraform-deployer" not in stand_in.roles:
            raise DemoFailed(f"the stand-in saw {list(created.requests)}, expected one POST /v1/roles answered 200")
        self.say(
            f"Authress stand-in: POST /v1/roles answered 200 to {SUB}: the Bearer was exactly the GitLab ID token "
            "minted above, its RS256 signature checked against the issuer's keys (trusted issuer and audience)"
        )

    def check_refused(self, refused: Apply) -> None:
        line = helper_line(refused.output)
        if refused.returncode == 0 or line is None:
            raise DemoFailed(f"the foreign project's apply was not refused by the helper (exit {refused.returncode})")
        if "will perform the following actions" in refused.output:
            raise DemoFailed("the foreign project's apply got as far as a plan")
        if refused.requests or refused.tunnels:
            raise DemoFailed(f"a request reached Authress for the refused token: {list(refused.requests)}")
        self.say(f"The helper's one line: {line}")
        self.say("Authress stand-in: no request arrived (none at the stand-in, no tunnel through the proxy)")

    def terraform(self, args: list[str], env: dict[str, str], show: Callable[[str], bool] = bool) -> Apply:
        """Run the CLI, writing each output line that `show` keeps as it comes; the whole output is returned."""
        lines: list[str] = []
        with subprocess.Popen(
            [self.tools.cli, *args, "-no-color"],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            timer = threading.Timer(TIMEOUT, proc.kill)
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.append(line)
                    if show(line):
                        self.out.write(line)
                        self.out.flush()
            except BaseException:
                proc.kill()
                raise
            finally:
                timer.cancel()
        return Apply(proc.returncode, "".join(lines), (), ())


def _init_line(line: str) -> bool:
    """The lines of `init` worth showing: the providers it installed and that it succeeded."""
    return line.startswith(("- Install", "- Using")) or "has been successfully initialized" in line


def helper_line(output: str) -> str | None:
    """The helper's one stderr line as Terraform's error box shows it (wrapped there, joined again here):
    hashicorp/external's "Error Message:" on the data-source route, hashicorp/local's "Command Error:"
    on the ephemeral route."""
    flat = " ".join(re.sub(r"[│╷╵]", " ", output).split())
    found = re.search(r"(?:Error Message|Command Error): (authress-gitlab-token: .*?) State: ", flat)
    return found[1] if found else None


def summary(in_state: int) -> str:
    """The one line that says what the run showed."""
    state = f"the state holds the token ({ROUTE} route)" if in_state else "the state holds no token"
    return (
        "setup --apply made the trusted identity and the access record; terraform apply created a role with "
        f"the job's GitLab ID token as the Bearer; another project's token was refused before Authress; {state}."
    )


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    start = time.monotonic()
    try:
        tools = find_tools()
        with tempfile.TemporaryDirectory(prefix="authress-gitlab-token-demo-") as tmp:
            demo = Demo(tools, Path(tmp), sys.stdout)
            demo.run()
    except DemoFailed as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("make demo: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            print("make demo: terminated", file=sys.stderr)
        raise
    print(f"\nmake demo: shown in {time.monotonic() - start:.1f} s: {summary(demo.in_state)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
