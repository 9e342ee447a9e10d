"""The local demo: a GitLab-like issuer on loopback (real TLS, a throwaway CA), a GitLab-shaped ID
token, and the helper run exactly as Terraform's data "external" runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.ca import LocalCA
from tests.fixtures.issuer import running_issuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

AUDIENCE = "https://demo-account.api.authress.io"


def main() -> int:
    program = shutil.which("authress-gitlab-token", path=str(Path(sys.executable).parent))
    if program is None:
        print("authress-gitlab-token is not installed; run `make demo`", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_issuer(LocalCA.create(Path(tmp) / "ca"), keys := [SigningKey.generate()]) as issuer,
    ):
        token = mint(keys[0], gitlab_claims(issuer.url, AUDIENCE))
        query = {
            "audience": AUDIENCE,
            "issuer": issuer.url,
            "project_path": "my-org/authress-configuration",
            "ref": "main",
        }
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": tmp,
            "SSL_CERT_FILE": str(Path(tmp) / "ca" / "ca.pem"),
            "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(Path(tmp) / "cache"),
            "AUTHRESS_KEY": token,
        }
        stdin = json.dumps(query, separators=(",", ":"), sort_keys=True)
        print(f"local issuer:  {issuer.url} (discovery + JWKS over TLS, CA in SSL_CERT_FILE)")
        print("id token:      AUTHRESS_KEY = a GitLab-shaped RS256 token for my-org/authress-configuration@main")
        print(f"query (stdin): {stdin}")
        print(f"$ {program} external")
        done = subprocess.run([program, "external"], input=stdin, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, end="", file=sys.stderr)
            return done.returncode
        result = json.loads(done.stdout)
        shown = dict(result, access_token=f"<the verified ID token, {len(result['access_token'])} bytes>")
        print(json.dumps(shown, indent=2, sort_keys=True))
        bad = subprocess.run(
            [program, "external"],
            input=stdin.replace('"ref":"main"', '"ref":"release"'),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        print(f'\nthe same token with ref = "release" (exit {bad.returncode}):\n{bad.stderr}', end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
