"""What a run costs the issuer and the job, as behaviour: no timings here (those live in bench/)."""

from __future__ import annotations

from typing import Any

from tests.conftest import AUDIENCE, Helper
from tests.fixtures.issuer import LocalIssuer


def query(issuer: LocalIssuer) -> dict[str, Any]:
    return {"audience": AUDIENCE, "issuer": issuer.url, "project_path": "my-org/authress-configuration", "ref": "main"}


def imported_modules(stderr: str) -> set[str]:
    """Module names from `PYTHONPROFILEIMPORTTIME` lines: `import time: self | cumulative | name`."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_terraforms_call_with_cached_keys_loads_no_http_client_and_no_parser(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    profile = {"PYTHONPROFILEIMPORTTIME": "1"}
    cold = helper.external(query(issuer), token, profile)
    assert cold.returncode == 0 and cold.result["user_id"]
    assert "httpx" in imported_modules(cold.stderr), "the import trace does not show the fetch's httpx"

    warm = helper.external(query(issuer), token, profile)
    assert warm.returncode == 0 and warm.result["user_id"]
    modules = imported_modules(warm.stderr)
    assert "authress_gitlab_token.verify" in modules and "jsonschema" in modules
    assert not {m for m in modules if m.split(".")[0] in ("httpx", "httpcore", "h11")}
    assert "argparse" not in modules, "Terraform's `external` call should not build the argument parser"
    assert len(issuer.requests) == 2
