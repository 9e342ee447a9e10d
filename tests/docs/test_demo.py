"""`make demo`, the README's first command: Terraform creates an Authress role with the job's GitLab token
as the Bearer, and refuses another project's token before Authress sees a request; no token is shown."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import demo
from tests.fixtures.helper import leaks, safe

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tools() -> demo.Tools:
    try:
        return demo.find_tools()
    except demo.DemoFailed as exc:
        if os.environ.get("AGT_E2E_STRICT") == "1":
            pytest.fail(f"CI must not skip: {exc}")
        pytest.skip(str(exc))


def test_the_demo_creates_the_role_with_the_job_token_and_refuses_another_project_before_authress(
    tools: demo.Tools, tmp_path: Path
) -> None:
    out = io.StringIO()
    created, refused = demo.Demo(tools, tmp_path, out).run()
    shown = out.getvalue()

    assert created.returncode == 0, safe(created.output)
    assert created.requests == (("POST", "/v1/roles", 200),)
    assert created.tunnels == (f"{demo.API_HOST}:443",)
    assert "authress_role.deployer: Creation complete" in created.output
    assert "authress_role.deployer: Creation complete" in shown, "Terraform's own line was not shown"
    assert "Authress stand-in: POST /v1/roles answered 200 to project_path:my-org/authress-configuration" in shown

    assert refused.returncode != 0
    assert refused.requests == () and refused.tunnels == (), "a refused token reached Authress"
    line = (
        'authress-gitlab-token: claim "project_path" is "my-org/other-project", expected '
        '"my-org/authress-configuration"'
    )
    assert line in " ".join(shown.split())
    assert "will perform the following actions" not in refused.output, "the refused apply reached a plan"
    assert "Authress stand-in: no request arrived" in shown
    assert not leaks(shown + created.output + refused.output), "the demo printed a token"


def test_make_demo_says_what_to_run_when_its_tools_are_missing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env={**os.environ, "AGT_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"make demo: {tmp_path}/e2e-status.json does not exist; run {demo.BUILD}\n"
