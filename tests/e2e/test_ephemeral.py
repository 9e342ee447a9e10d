"""The ephemeral route for real: `tests/e2e/configs/authress_role` with only the module's `source`
changed to `terraform/ephemeral`, under Terraform and OpenTofu, with hashicorp/local 2.9.0 and
authress/authress 2.0.39 built from their upstream sources. Terraform runs the helper through
`ephemeral "local_command"`; the token configures the provider and never reaches state or a plan."""

from __future__ import annotations

import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import BIN_DIR, leaks, safe

from .module_source import IGNORE, module_repository
from .toolchain import (
    AUDIENCE,
    CLIS,
    ROOT,
    Pipeline,
    Terraform,
    TfRun,
    Toolchain,
    copy_config,
    routed,
    selected,
    variables,
)

pytestmark = pytest.mark.e2e

LOCAL = "hashicorp/local@2.9.0"
AUTHRESS = "authress/authress@2.0.39"
ROLE_ID = "ro_terraform-deployer"
CONFIG = "tests/e2e/configs/authress_role"
DATA_SOURCE_MODULE = 'source = "../../../../terraform"'
EPHEMERAL_MODULE = 'source = "../../../../terraform/ephemeral"'


@dataclass(frozen=True)
class Calls:
    """The helper's runs, recorded by a wrapper ahead of it on PATH: (start, end) in seconds, exit code."""

    log: Path

    def take(self) -> list[tuple[float, int]]:
        """(seconds, exit code) of each run since the last call."""
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return [((int(end) - int(start)) / 1e9, int(code)) for start, end, code in (line.split() for line in lines)]


def recorded(tf: Terraform, tmp_path: Path) -> Calls:
    """Put a wrapper named like the helper ahead of it on `tf`'s PATH that logs each run's time."""
    wrapper_dir = tmp_path / "wrapper"
    wrapper_dir.mkdir()
    log = tmp_path / "helper-calls.log"
    wrapper = wrapper_dir / "authress-gitlab-token"
    wrapper.write_text(
        "#!/bin/sh\n"
        "start=$(date +%s%N)\n"
        f'"{BIN_DIR / "authress-gitlab-token"}" "$@"\n'
        "code=$?\n"
        f'echo "$start $(date +%s%N) $code" >> "{log}"\n'
        "exit $code\n",
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    tf.env["PATH"] = f"{wrapper_dir}:{tf.env['PATH']}"
    return Calls(log)


def stage_route(tmp_path: Path, module: str) -> Path:
    """The module folder and the role configuration, its module `source` set to `module`; nothing else of
    the configuration changes."""
    shutil.copytree(ROOT / "terraform", tmp_path / "terraform", symlinks=True, ignore=IGNORE)
    config = copy_config(ROOT / CONFIG, tmp_path / CONFIG)
    main = config / "main.tf"
    text = main.read_text(encoding="utf-8")
    assert text.count(DATA_SOURCE_MODULE) == 1, f"{CONFIG}/main.tf no longer calls the module as expected"
    main.write_text(text.replace(DATA_SOURCE_MODULE, module), encoding="utf-8")
    return config


def init_route(cli: str, module: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    for provider in (AUTHRESS, LOCAL if module == EPHEMERAL_MODULE else "hashicorp/external@2.4.0"):
        toolchain.provider(provider)
    tf = Terraform(toolchain.cli(cli), stage_route(tmp_path, module), toolchain, ca, tmp_path)
    tf.ok("init", "-input=false")
    assert selected(tf.workdir, "authress/authress") == "2.0.39"
    if module == EPHEMERAL_MODULE:
        assert selected(tf.workdir, "hashicorp/local") == "2.9.0"
    return tf


@pytest.fixture(params=CLIS)
def ephemeral(request: pytest.FixtureRequest, toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> Terraform:
    return init_route(request.param, EPHEMERAL_MODULE, toolchain, ca, tmp_path)


def stored(tf: Terraform, plan: Path | None = None) -> str:
    """Everything Terraform keeps: the state file, and a saved plan's every zip member and its JSON view."""
    parts = [p.read_text(encoding="utf-8") for p in tf.workdir.glob("terraform.tfstate*")]
    if plan is not None:
        with zipfile.ZipFile(plan) as archive:
            parts += [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
        parts.append(tf.ok("show", "-json", plan.name).output)
    return "\n".join(parts)


def seen(pipeline: Pipeline) -> list[tuple[str, str, str, int]]:
    """The stand-in's requests since the last call: (Bearer token, method, path, status)."""
    requests = list(pipeline.stand_in.requests)
    pipeline.stand_in.requests.clear()
    return [(r.token or "", r.method, r.path, r.status) for r in requests]


def test_changing_only_the_source_applies_the_role_and_keeps_the_token_out_of_state(
    ephemeral: Terraform, pipeline: Pipeline, tmp_path: Path
) -> None:
    """Apply, a plan that finds no drift, destroy. A plan runs the helper once, an `apply` twice (its plan,
    its apply), a `destroy` three times (its refresh, its plan, its apply)."""
    calls = recorded(ephemeral, tmp_path)
    token, apply = pipeline.apply(ephemeral)
    assert apply.returncode == 0, f"apply failed:\n{safe(apply.output)}"
    assert not leaks(apply.output), "terraform printed the token"
    assert ROLE_ID in pipeline.stand_in.roles
    assert seen(pipeline) == [(token, "POST", "/v1/roles", 200)]
    assert not leaks(stored(ephemeral)), "the token reached the state"
    assert [code for _, code in calls.take()] == [0, 0]

    env = routed(pipeline.proxy, token)
    args = variables(AUDIENCE, pipeline.issuer)
    plan = ephemeral("plan", "-detailed-exitcode", *args, env=env)
    assert plan.returncode == 0, f"the second plan found changes:\n{safe(plan.output)}"
    assert seen(pipeline) == [(token, "GET", f"/v1/roles/{ROLE_ID}", 200)]
    assert [code for _, code in calls.take()] == [0]

    destroy = ephemeral.ok("destroy", "-auto-approve", *args, env=env)
    assert not leaks(destroy.output), "terraform printed the token"
    assert pipeline.stand_in.roles == {}
    role = f"/v1/roles/{ROLE_ID}"
    assert seen(pipeline) == [(token, "GET", role, 200), (token, "DELETE", role, 204)]
    assert not leaks(stored(ephemeral)), "the token reached the state"
    assert [code for _, code in calls.take()] == [0, 0, 0]


def test_a_saved_plan_applied_by_a_later_job_sends_that_jobs_token(ephemeral: Terraform, pipeline: Pipeline) -> None:
    """GitLab's OpenTofu component plans in one job and applies the saved plan in another: the apply job's
    own token goes to Authress, and the plan file carries no token at all."""
    args = variables(AUDIENCE, pipeline.issuer)
    plan_token = pipeline.token(job_id="401")
    plan = ephemeral.ok("plan", "-out=role.tfplan", *args, env=routed(pipeline.proxy, plan_token))
    assert not leaks(plan.output), "terraform printed the token"
    assert not leaks(stored(ephemeral, ephemeral.workdir / "role.tfplan")), "the saved plan holds the token"
    assert seen(pipeline) == [], "planning a new role called Authress"

    apply_token = pipeline.token(job_id="402")
    assert apply_token != plan_token
    apply = ephemeral.ok("apply", "role.tfplan", env=routed(pipeline.proxy, apply_token))
    assert not leaks(apply.output), "terraform printed the token"
    assert seen(pipeline) == [(apply_token, "POST", "/v1/roles", 200)], "Authress did not see the apply job's token"
    assert ROLE_ID in pipeline.stand_in.roles
    assert not leaks(stored(ephemeral)), "the token reached the state"


def command_error(run: TfRun) -> str:
    """The line the local provider shows after "Command Error:"."""
    flat = run.flat()
    assert "Command Error: " in flat, f"no Command Error in Terraform's output:\n{safe(run.output)}"
    return flat.split("Command Error: ", 1)[1]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        pytest.param(
            {"project_path": "other-org/foreign"},
            'authress-gitlab-token: claim "project_path" is "other-org/foreign", '
            'expected "my-org/authress-configuration" (from project_path); '
            "this token is for another project, ref or job",
            id="foreign project",
        ),
        pytest.param({"now": int(time.time()) - 3600}, "authress-gitlab-token: token expired at ", id="expired token"),
    ],
)
def test_a_refused_token_stops_terraform_with_the_helpers_line_before_any_request(
    claims: dict[str, object], message: str, ephemeral: Terraform, pipeline: Pipeline
) -> None:
    _, run = pipeline.apply(ephemeral, **claims)
    assert run.returncode != 0, "apply succeeded"
    assert command_error(run).startswith(message), f"not the helper's line:\n{safe(run.output)}"
    assert not leaks(run.output), "terraform printed the token"
    assert pipeline.stand_in.requests == [] and pipeline.proxy.tunnels == [], "a refused token was sent to Authress"
    assert pipeline.stand_in.roles == {}
    assert not leaks(stored(ephemeral)), "the token reached the state"


@pytest.mark.parametrize("cli", CLIS)
def test_a_bad_input_is_refused_by_validate_before_the_helper_runs(
    cli: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path
) -> None:
    """The same validation as the data-source module (the same variables.tf), under each CLI."""
    toolchain.provider(LOCAL)
    shutil.copytree(ROOT / "terraform", tmp_path / "terraform", ignore=IGNORE)
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        'module "token" {\n  source = "../terraform/ephemeral"\n  audience = "https://acc-1a2b3c.api.authress.io"\n'
        '  ref_protected = "yes"\n}\n',
        encoding="utf-8",
    )
    tf = Terraform(toolchain.cli(cli), root, toolchain, ca, tmp_path)
    calls = recorded(tf, tmp_path)
    tf.ok("init", "-input=false")
    run = tf("validate")
    assert run.returncode != 0 and 'The ref_protected must be "true" or "false"' in run.flat(), safe(run.output)
    assert calls.take() == []


def test_a_local_command_without_stdin_is_told_to_set_it(
    toolchain: Toolchain, ca: LocalCA, tmp_path: Path, pipeline: Pipeline
) -> None:
    """A hand-written `ephemeral "local_command"` that forgets `stdin`: the helper's one line names the fix."""
    toolchain.provider(LOCAL)
    config = copy_config(ROOT / "tests/e2e/configs/ephemeral_no_stdin", tmp_path / "no_stdin")
    tf = Terraform(toolchain.cli("terraform"), config, toolchain, ca, tmp_path)
    tf.ok("init", "-input=false")
    run = tf("plan", "-input=false", env={"AUTHRESS_KEY": pipeline.token()})
    assert run.returncode != 0, "plan succeeded"
    line = command_error(run)
    assert line.startswith("authress-gitlab-token: no query on stdin; set stdin = jsonencode({"), safe(run.output)
    assert not leaks(run.output), "terraform printed the token"


ROUTES = {"data-source": DATA_SOURCE_MODULE, "ephemeral": EPHEMERAL_MODULE}


@pytest.mark.parametrize("route", ROUTES)
def test_tf_log_trace_prints_the_token_on_both_module_routes(
    route: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path, pipeline: Pipeline
) -> None:
    """What docs/routes.md warns of: hashicorp/local logs the command's stdout at TRACE, as external logs
    the program's result; without TF_LOG the same plan prints no token."""
    tf = init_route("terraform", ROUTES[route], toolchain, ca, tmp_path)
    env = routed(pipeline.proxy, pipeline.token())
    args = ("plan", *variables(AUDIENCE, pipeline.issuer))
    assert not leaks(tf.ok(*args, env=env).output), "terraform printed the token without TF_LOG"
    assert leaks(tf.ok(*args, env={**env, "TF_LOG": "trace"}).output), "TF_LOG=trace no longer prints the token"


@pytest.mark.parametrize("route", ROUTES)
def test_the_helper_runs_once_at_plan_and_once_at_apply_on_the_ephemeral_route_only(
    route: str,
    toolchain: Toolchain,
    ca: LocalCA,
    tmp_path: Path,
    pipeline: Pipeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A saved plan, then its apply: the data source runs the helper at plan only (the plan carries its
    result), the ephemeral resource at both. The figures (wall time of each helper run, the first with a
    cold key cache) are printed for docs/routes.md."""
    tf = init_route("terraform", ROUTES[route], toolchain, ca, tmp_path)
    calls = recorded(tf, tmp_path)
    env = routed(pipeline.proxy, pipeline.token())
    start = time.monotonic()
    tf.ok("plan", "-out=role.tfplan", *variables(AUDIENCE, pipeline.issuer), env=env)
    at_plan, planned = calls.take(), time.monotonic()
    tf.ok("apply", "role.tfplan", env=env)
    at_apply, applied = calls.take(), time.monotonic()
    assert [code for _, code in at_plan] == [0]
    assert [code for _, code in at_apply] == ([0] if route == "ephemeral" else [])
    assert ROLE_ID in pipeline.stand_in.roles
    with capsys.disabled():
        print(
            f"\n{route}: helper at plan {[round(s, 3) for s, _ in at_plan]} s, at apply "
            f"{[round(s, 3) for s, _ in at_apply]} s; terraform plan {planned - start:.2f} s, "
            f"apply {applied - planned:.2f} s"
        )


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """`folder` over plain HTTP on 127.0.0.1, as a web server or a module registry hands out an archive."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *_: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fetch", ["git", "archive"])
@pytest.mark.parametrize("cli", CLIS)
def test_the_module_fetched_with_git_or_as_an_archive_verifies_the_token(
    cli: str, fetch: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path, pipeline: Pipeline
) -> None:
    """How users get it: `git::...//terraform/ephemeral?ref=TAG`, or a registry's .tar.gz."""
    toolchain.provider(LOCAL)
    repo = module_repository(tmp_path / "module", "0.0.0")
    root = tmp_path / "root"
    root.mkdir()
    with serving(tmp_path) as url:
        source = (
            f"git::file://{repo}//terraform/ephemeral?ref=0.0.0"
            if fetch == "git"
            else f"{url}/module.tar.gz//terraform/ephemeral"
        )
        (root / "main.tf").write_text(
            'variable "audience" {}\nvariable "issuer" {}\n'
            f'module "authress_token" {{\n  source = "{source}"\n'
            "  audience = var.audience\n  issuer = var.issuer\n"
            '  project_path = "my-org/authress-configuration"\n  min_validity_seconds = 60\n}\n',
            encoding="utf-8",
        )
        tf = Terraform(toolchain.cli(cli), root, toolchain, ca, tmp_path)
        tf.ok("init", "-input=false")
    calls = recorded(tf, tmp_path)
    token = pipeline.token()
    tf.ok("plan", *variables(AUDIENCE, pipeline.issuer), env={"AUTHRESS_KEY": token})
    assert [code for _, code in calls.take()] == [0]
    foreign = pipeline.token(project_path="other-org/foreign")
    run = tf("plan", *variables(AUDIENCE, pipeline.issuer), env={"AUTHRESS_KEY": foreign})
    assert command_error(run).startswith('authress-gitlab-token: claim "project_path" is "other-org/foreign"'), safe(
        run.output
    )
