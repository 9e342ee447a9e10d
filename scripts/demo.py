"""`make demo`: what a GitLab pipeline does with this project, on loopback. A GitLab-like issuer (real
TLS, a throwaway CA) mints the job's ID token; `terraform apply` of scripts/demo.tf runs the helper
through the module's data "external" and creates an `authress_role` with authress/authress 2.0.39 in a
local Authress stand-in, which judges the Bearer as Authress does; then a token from another project
is refused at plan time, before any request reaches the stand-in. Terraform's own output is shown."""

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
from tests.fixtures.authress_roles import add_role_routes  # noqa: E402
from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.connect_proxy import running_proxy  # noqa: E402
from tests.fixtures.issuer import running_issuer  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

ACCOUNT_ID = "acc-demo"
API_HOST = f"{ACCOUNT_ID}.api.authress.test"  # reached through the CONNECT proxy only
AUDIENCE = f"https://{API_HOST}"
PROJECT = "my-org/authress-configuration"
OTHER_PROJECT = "my-org/other-project"
SUB = f"project_path:{PROJECT}:ref_type:branch:ref:main"
ROLE = "authress_role.deployer"
CONFIG = ROOT / "scripts" / "demo.tf"
PROVIDERS = ("hashicorp/external@2.4.0", "authress/authress@2.0.39")
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
    for name in PROVIDERS:
        entry = status.get("providers", {}).get(name, {})
        if not entry.get("version"):
            raise DemoFailed(f"provider {name} is not in the mirror: {entry.get('error')}; run {BUILD}")
    return Tools(cli, status["cli_config"])


class Demo:
    """The world of one run: issuer, Authress stand-in and proxy on loopback, a Terraform working directory."""

    def __init__(self, tools: Tools, tmp: Path, out: IO[str]) -> None:
        self.tools = tools
        self.tmp = tmp
        self.out = out
        self.workdir = tmp / "demo"

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> tuple[Apply, Apply]:
        """The role created with the job's token, then the foreign project's apply refused."""
        ca = LocalCA.create(self.tmp / "ca")
        key = SigningKey.generate()
        with (
            running_issuer(ca, [key]) as issuer,
            running_authress(ca, ACCOUNT_ID, hostnames=[API_HOST]) as stand_in,
            running_proxy(API_HOST, stand_in.port) as proxy,
        ):
            add_role_routes(stand_in, create_status=200)  # the only status 2.0.39 accepts for a create
            stand_in.trust(issuer.url, AUDIENCE)
            stand_in.grant(SUB)
            self.say(f"== A GitLab-like issuer at {issuer.url} (real TLS) mints the job's ID token")
            self.say(f"   iss {issuer.url}\n   aud {AUDIENCE}\n   sub {SUB}")
            self.say(
                f"== Authress (a local stand-in for account {ACCOUNT_ID}, reached as {AUDIENCE}) trusts that "
                "issuer and audience and has an access record for that sub"
            )
            shutil.copytree(ROOT / "terraform", self.workdir / "terraform")
            shutil.copy(CONFIG, self.workdir / "main.tf")
            env = self.environment(ca, proxy.url)
            self.say(f"== {Path(self.tools.cli).name} init (providers from the local mirror; scripts/demo.tf)")
            init = self.terraform(["init", "-input=false"], env, show=_init_line)
            if init.returncode != 0:
                raise DemoFailed(f"init failed:\n{init.output}")
            variables = ["-var", f"audience={AUDIENCE}", "-var", f"issuer={issuer.url}"]
            apply_args = ["apply", "-auto-approve", "-input=false", *variables]

            token = mint(key, gitlab_claims(issuer.url, AUDIENCE))
            self.say(
                f'\n== {Path(self.tools.cli).name} apply: the module\'s data "external" runs the helper, '
                "authress/authress 2.0.39 creates the role with its result"
            )
            created = self.apply(apply_args, {**env, "AUTHRESS_KEY": token}, stand_in, proxy.tunnels)
            self.check_created(created, stand_in)

            foreign = mint(key, gitlab_claims(issuer.url, AUDIENCE, project_path=OTHER_PROJECT))
            self.say(f"\n== The same apply in a pipeline of {OTHER_PROJECT}: its job's token is refused at plan time")
            refused = self.apply(apply_args, {**env, "AUTHRESS_KEY": foreign}, stand_in, proxy.tunnels)
            self.check_refused(refused)
        return created, refused

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
    """The helper's one stderr line as Terraform's error box shows it (wrapped there, joined again here)."""
    flat = " ".join(re.sub(r"[│╷╵]", " ", output).split())
    found = re.search(r"Error Message: (authress-gitlab-token: .*?) State: ", flat)
    return found[1] if found else None


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    start = time.monotonic()
    try:
        tools = find_tools()
        with tempfile.TemporaryDirectory(prefix="authress-gitlab-token-demo-") as tmp:
            Demo(tools, Path(tmp), sys.stdout).run()
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
    print(f"\nmake demo: done in {time.monotonic() - start:.1f} s (the part after the build)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
