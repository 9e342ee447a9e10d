"""`make stand-ins`: the demo's GitLab-like issuer and Authress stand-in, left running so that `setup`
and `doctor` can be tried by hand with the commands the five steps print. The stand-in answers as
https://acc-local.api.authress.io through a CONNECT proxy on 127.0.0.1 that tunnels that one host to
it (nothing leaves the machine). Prints the `export` lines (the helper on PATH, the CA, the proxy, an
admin's service-client key, the audience, the issuer, a job's ID token) and the commands to run with
them, then waits until Ctrl-C (SIGINT) or SIGTERM, stops the servers and removes its temporary folder."""

from __future__ import annotations

import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.authress import running_authress  # noqa: E402
from tests.fixtures.authress_admin import add_role  # noqa: E402
from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.connect_proxy import running_proxy  # noqa: E402
from tests.fixtures.issuer import running_issuer  # noqa: E402
from tests.fixtures.service_clients import ServiceClientKey  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

ACCOUNT_ID = "acc-local"
API_HOST = f"{ACCOUNT_ID}.api.authress.io"  # reached through the proxy only: the stand-in, on loopback
AUDIENCE = f"https://{API_HOST}"
PROJECT = "my-org/authress-configuration"
BRANCH = "main"
ROLE = "ro_terraform"
TOKEN_LIFETIME = 3600  # seconds: long enough to try every command; restart for a fresh one
READY = "# stand-ins running; Ctrl-C stops them"


def exports(values: dict[str, str]) -> str:
    """The lines a user pastes into another shell, each value quoted for it."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def commands() -> str:
    """What to try with the exports, in order, every value from the environment they set."""
    pipeline = f"--project {PROJECT} --branch {BRANCH}"
    where = '--audience "$AUTHRESS_AUDIENCE" --issuer "$GITLAB_ISSUER"'
    doctor = f"authress-gitlab-token doctor --token-env GITLAB_ID_TOKEN {where} --project-path {PROJECT}"
    return (
        "# then, in that shell:\n"
        f"{doctor} --ref-type branch --ref {BRANCH}   # the job's token: Authress does not trust it yet\n"
        f"authress-gitlab-token setup --plan {pipeline} {where} --role {ROLE}   # what is missing\n"
        f"authress-gitlab-token setup --apply {pipeline} {where} --role {ROLE}   # makes it: doctor passes now\n"
        f"authress-gitlab-token setup --list {where}   # what setup made\n"
        f"authress-gitlab-token setup --apply --destroy {pipeline} {where}   # takes the grant back\n"
    )


def main() -> int:
    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, stopping)
    signal.signal(signal.SIGTERM, stopping)
    with tempfile.TemporaryDirectory(prefix="authress-gitlab-token-stand-ins-") as tmp:
        ca = LocalCA.create(Path(tmp) / "ca")
        key = SigningKey.generate()
        admin = ServiceClientKey.generate(client_id="sc_admin", key_id="key-local", account_id=ACCOUNT_ID)
        with (
            running_issuer(ca, [key]) as issuer,
            running_authress(ca, ACCOUNT_ID, hostnames=[API_HOST]) as stand_in,
            running_proxy(API_HOST, stand_in.port) as proxy,
        ):
            # What an account has before setup: the admin's service client with its access, and a role.
            stand_in.add_client(admin.client_id, admin.key_id, admin.public)
            stand_in.grant(admin.client_id)
            add_role(stand_in, ROLE)
            job_token = mint(key, gitlab_claims(issuer.url, AUDIENCE, lifetime=TOKEN_LIFETIME))
            sys.stdout.write(
                f"# A GitLab-like issuer and an Authress stand-in for account {ACCOUNT_ID} on 127.0.0.1, real TLS;\n"
                f"# {AUDIENCE} reaches the stand-in through HTTPS_PROXY, which tunnels that host only.\n"
                "# Paste these into a shell of their own (HTTPS_PROXY serves nothing else):\n"
                f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"\n'
                + exports(
                    {
                        "SSL_CERT_FILE": str(ca.ca_path),
                        "HTTPS_PROXY": proxy.url,
                        "NO_PROXY": "127.0.0.1,localhost",
                        "AUTHRESS_KEY": admin.value,
                        "AUTHRESS_AUDIENCE": AUDIENCE,
                        "GITLAB_ISSUER": issuer.url,
                        "GITLAB_ID_TOKEN": job_token,
                    }
                )
                + commands()
                + READY
                + "\n"
            )
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    sys.stdout.write("# stand-ins stopped\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
