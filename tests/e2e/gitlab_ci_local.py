"""Pipelines run by a real GitLab CI engine: gitlab-ci-local (tests/e2e/install_gitlab_ci_local.sh puts
it in the e2e tool cache), shell executor, each job in its own build directory with GitLab's cache
between jobs. A project is a git repository whose origin is the GitLab stand-in, so components and
the helper come from a hosted copy of this repository at the release tag, as a user's do.

What gitlab-ci-local cannot do is done around it and named: it mints no ID tokens (the token is passed
as the variable the job's `id_tokens:` names); it has no container images (the `image:` keys are taken
out, or it would report CI_PROJECT_DIR as the container's /builds path while running on this machine);
its predefined CI_SERVER_URL and CI_API_V4_URL would point at the origin, so they name the local issuer
and the stand-in's API."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.gitlab_server import GitLabStandIn

from .toolchain import ROOT, cache_dir, missing

GIT_IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@127.0.0.1", "-c", "init.defaultBranch=main"]
IMAGE = re.compile(r"^ *image:(?: .*)?\n(?:(?: {4,}).*\n)*", re.MULTILINE)


def engine() -> str:
    """The launcher the install script writes, or skip (fail under .ci/run) naming the command."""
    launcher = cache_dir() / "gitlab-ci-local" / "gitlab-ci-local"
    if not launcher.is_file():
        missing(f"no gitlab-ci-local in {launcher.parent}: run tests/e2e/install_gitlab_ci_local.sh (make e2e-tools)")
    if not shutil.which("rsync"):
        missing("no rsync on PATH: gitlab-ci-local copies each job's directory with it (apt-get install rsync)")
    return str(launcher)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def this_checkout() -> list[str]:
    """The files of this repository as they are now (committed or not), as a release would hold them."""
    listed = git(ROOT, "ls-files", "-co", "--exclude-standard").splitlines()
    return [name for name in listed if (ROOT / name).is_file()]


def release(stand_in: GitLabStandIn, work: Path, tag: str) -> str:
    """This checkout, as GROUP/PROJECT platform/authress-gitlab-token at `tag` on the stand-in: the copy
    a self-managed GitLab mirrors (README, "Five steps"); the commit SHA."""
    for name in this_checkout():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    return publish(work, stand_in, "platform/authress-gitlab-token", tag=tag)


def job_environment(ca: Path, proxy: str, cli_config: str, cli_dir: Path) -> dict[str, str]:
    """What the runner's machine gives every job: the test CA for TLS (the helper, git), Authress's host
    through the CONNECT proxy (loopback and PyPI directly), providers from the mirror, the CLI on PATH."""
    return {
        "PATH": f"{cli_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SSL_CERT_FILE": str(ca),
        "GIT_SSL_CAINFO": str(ca),
        "HTTPS_PROXY": proxy,
        "NO_PROXY": "127.0.0.1,localhost,pypi.org,files.pythonhosted.org",
        "TF_CLI_CONFIG_FILE": cli_config,
        "CHECKPOINT_DISABLE": "1",
        "PIP_CACHE_DIR": str(cache_dir() / "pip"),
    }


def without_images(text: str) -> str:
    return IMAGE.sub("", text)


def publish(work: Path, stand_in: GitLabStandIn, path: str, tag: str | None = None) -> str:
    """Commit `work` and push it as GROUP/PROJECT `path` to the stand-in (its origin); the commit SHA."""
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "release" if tag else "pipeline")
    if tag:
        git(work, "tag", tag)
    bare = stand_in.repos / f"{path}.git"
    if not bare.exists():
        git(work, "clone", "-q", "--bare", str(work), str(bare))
    git(work, "remote", "add", "origin", f"{stand_in.url}/{path}.git")
    return git(work, "rev-parse", "HEAD")


@dataclass(frozen=True)
class JobRun:
    """One gitlab-ci-local run; `output` is its whole log (every job's lines)."""

    returncode: int
    output: str

    def job(self, name: str) -> str:
        """The lines of one job (gitlab-ci-local prefixes each with the job's name)."""
        return "\n".join(line for line in self.output.splitlines() if line.startswith(f"{name} "))

    def passed(self, name: str) -> bool:
        return bool(re.search(rf"^ PASS  {re.escape(name)}\s*$", self.output, re.MULTILINE))

    def failed(self, name: str) -> bool:
        return bool(re.search(rf"^ FAIL  {re.escape(name)}\s*$", self.output, re.MULTILINE))


class Engine:
    """Runs jobs of the project at `project` with gitlab-ci-local, from an environment built here:
    no GCL_* option (each is read as a flag), the caller's CI variables left out."""

    def __init__(self, launcher: str, project: Path, home: Path, env: Mapping[str, str]) -> None:
        self.launcher = launcher
        self.project = project
        self.home = home
        kept = {k: v for k, v in os.environ.items() if not k.startswith(("GCL_", "CI_", "GITLAB_", "TF_", "AUTHRESS_"))}
        self.env = {**kept, "HOME": str(home), **env}
        self.job_token = secrets.token_urlsafe(16)

    def run(
        self, jobs: Sequence[str], variables: Mapping[str, str], *, file: str | None = None, timestamps: bool = False
    ) -> JobRun:
        args = [self.launcher, *jobs, "--home", str(self.home / "gitlab-ci-local")]
        args += ["--timestamps"] if timestamps else []
        args += ["--shell-isolation", "--shell-executor-no-image", "--no-json-schema-validation", "--no-color"]
        args += ["--concurrency", "1", "--max-job-name-padding", "0", "--ignore-predefined-vars", ",".join(variables)]
        if file:
            args += ["--file", file]
        for name, value in variables.items():
            args += ["--variable", f"{name}={value}"]
        done = subprocess.run(
            args, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=900, check=False
        )
        return JobRun(done.returncode, done.stdout + done.stderr)
