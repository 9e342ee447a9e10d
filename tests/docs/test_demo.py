"""`make demo`, the README's first command: `setup --apply` makes the Authress side, Terraform creates an
Authress role with the job's GitLab token as the Bearer and refuses another project's token before
Authress sees a request, the state is searched for the token; no token is shown. While it builds, it
says what at least every 15 s."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import demo, demo_build
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
    run = demo.Demo(tools, tmp_path, out)
    created, refused = run.run()
    shown = out.getvalue()

    # setup --apply, with the admin's key, made what the pipeline's token needs: nothing was set up before.
    setup = shown.split("== authress-gitlab-token setup --apply", 1)[1].split("\n== ", 1)[0]
    assert '+ create trusted identity issuer "https://127.0.0.1:' in setup
    assert '+ create access record "gitlab-ci-' in setup and f'user "{demo.SUB}" roles ["ro_terraform"]' in setup
    assert "Applied: 2 change(s)." in setup

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

    # The state, searched: on the data-source route it holds the token, on the ephemeral route never.
    assert (run.in_state > 0) == (demo.ROUTE == "data-source"), (demo.ROUTE, run.in_state)
    verdict = "terraform.tfstate holds the job's token" if run.in_state else "does not hold the job's token"
    assert verdict in shown
    assert "another project's token was refused before Authress" in demo.summary(run.in_state)
    assert not leaks(shown + created.output + refused.output), "the demo printed a token"


def test_while_it_builds_it_says_what_at_least_every_interval() -> None:
    """scripts/demo_build.py: each step's lines as they come, and when none comes for the interval, a
    line naming what still builds and what it last said; a failed step fails the build."""
    out = io.StringIO()
    steps = [
        ("the slow step", "go build", ["bash", "-c", "echo compiling; sleep 1.5; echo linked"]),
        ("the quick one", "true", ["true"]),
    ]
    assert demo_build.build(steps, out, interval=0.4) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "make demo: [  0 s] building the slow step (go build) and the quick one (true)"
    assert any(line.endswith("still building the slow step: compiling") for line in lines)
    assert lines[-1].endswith("] built") and any(line.endswith("] linked") for line in lines)
    failed = io.StringIO()
    broken = [("the broken step", "make", ["bash", "-c", "echo no compiler; exit 3"])]
    assert demo_build.build(broken, failed, 0.4) == 1
    assert failed.getvalue().splitlines()[-1].endswith("building the broken step failed (the lines above say why)")


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
