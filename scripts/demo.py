"""The local demo: a GitLab-like issuer on loopback (real TLS, a throwaway CA), a GitLab-shaped ID
token, the helper run exactly as Terraform's data "external" runs it, then, where the CLI and the
providers built by tests/e2e/build_providers.sh are present, `terraform apply` of the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.issuer import running_issuer  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

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
        return terraform_demo(Path(tmp), env, issuer.url)


def terraform_demo(tmp: Path, env: dict[str, str], issuer_url: str) -> int:
    """`terraform apply` of the module (tests/e2e/configs/module_outputs) with providers from the mirror."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = Path(os.environ.get("AGT_CACHE") or xdg / "authress-gitlab-token-e2e")
    status_path = cache / "e2e-status.json"
    status = json.loads(status_path.read_text(encoding="utf-8")) if status_path.is_file() else {}
    cli = status.get("clis", {}).get("terraform", {}).get("path")
    external = status.get("providers", {}).get("hashicorp/external@2.4.0", {}).get("version")
    if not (cli and external):
        print(
            f"\nTerraform: skipped (no CLI or hashicorp/external provider recorded in {status_path}; "
            "`make e2e-tools` builds them)"
        )
        return 0
    config = ROOT / "tests" / "e2e" / "configs" / "module_outputs"
    workdir = tmp / config.relative_to(ROOT)
    shutil.copytree(ROOT / "terraform", tmp / "terraform")
    shutil.copytree(config, workdir)
    tf_env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "TF_CLI_CONFIG_FILE": status["cli_config"],
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
    }
    variables = ["-var", f"audience={AUDIENCE}", "-var", f"issuer={issuer_url}"]
    print(f"\n$ terraform init && terraform apply   (module ./terraform; {cli}; hashicorp/external {external})")
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false", *variables]):
        done = subprocess.run(
            [cli, *args, "-no-color"], cwd=workdir, env=tf_env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return done.returncode
    claims = subprocess.run(
        [cli, "output", "-json", "claims"], cwd=workdir, env=tf_env, capture_output=True, text=True, check=True
    ).stdout
    print("module outputs (access_token is sensitive and not shown):")
    print(json.dumps(json.loads(claims), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
