"""What the end-to-end tests run: the real Terraform (and OpenTofu) CLI, providers from the local
filesystem mirror that tests/e2e/build_providers.sh builds (`make test` runs it first), and the
helper's console script. Whatever is missing skips its tests with the exact reason the build recorded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN_DIR, safe
from tests.fixtures.ca import LocalCA

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = "tests/e2e/build_providers.sh"
TIMEOUT = 300  # seconds for one terraform command; init and apply take a few seconds here


def cache_dir() -> Path:
    if "AGT_CACHE" in os.environ:
        return Path(os.environ["AGT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "authress-gitlab-token"


@dataclass(frozen=True)
class Toolchain:
    """The build's record (CACHE/e2e-status.json): provider versions and CLI paths, or why not."""

    status: Mapping[str, Any]

    @property
    def cli_config(self) -> str:
        return str(self.status["cli_config"])

    def cli(self, name: str) -> str:
        """The CLI's path, or skip with the reason it is missing."""
        entry = self.status.get("clis", {}).get(name, {})
        if not entry.get("path"):
            pytest.skip(f"no {name} CLI: {entry.get('error') or 'not recorded by ' + BUILD_SCRIPT}")
        return str(entry["path"])

    def provider(self, name: str) -> str:
        """The provider's version in the mirror, or skip with the command and error that failed."""
        entry = self.status.get("providers", {}).get(name, {})
        if not entry.get("version"):
            pytest.skip(f"provider {name} is not in the mirror: {entry.get('error') or 'not recorded'}")
        return str(entry["version"])


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    path = cache_dir() / "e2e-status.json"
    if not path.is_file():
        pytest.skip(f"{path} does not exist: run {BUILD_SCRIPT} (`make test` runs it before pytest)")
    return Toolchain(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class TfRun:
    """One terraform command. `output` is stdout + stderr; on success it may hold sensitive values."""

    args: tuple[str, ...]
    returncode: int
    output: str = field(repr=False)

    def flat(self) -> str:
        """The output with line wrapping and box-drawing undone, to find a message in it."""
        return " ".join(re.sub(r"[│╷╵]", " ", self.output).split())


class Terraform:
    """Runs one CLI (terraform or tofu) in `workdir` with an environment built from scratch: nothing
    of the caller's TF_* settings, providers from the mirror only, the helper on PATH."""

    def __init__(self, cli: str, workdir: Path, toolchain: Toolchain, ca: LocalCA, home: Path) -> None:
        self.cli = cli
        self.workdir = workdir
        self.env = {
            "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "TF_CLI_CONFIG_FILE": toolchain.cli_config,
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "SSL_CERT_FILE": str(ca.ca_path),
            "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(home / "helper-cache"),
            "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "2",
        }

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> TfRun:
        done = subprocess.run(
            [self.cli, *args, "-no-color"],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        return TfRun(tuple(args), done.returncode, done.stdout + done.stderr)

    def ok(self, *args: str, env: Mapping[str, str] | None = None) -> TfRun:
        run = self(*args, env=env)
        if run.returncode != 0:
            raise AssertionError(f"{Path(self.cli).name} {' '.join(args)} failed:\n{safe(run.output)}")
        return run


def copy_config(source: Path, destination: Path) -> Path:
    """Copy a configuration without local state or a .terraform folder left by someone's run."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "terraform.tfstate*", "*.tfplan")
    shutil.copytree(source, destination, ignore=ignore)
    return destination


def stage(config: str, tmp_path: Path) -> Path:
    """Copy the module and the configuration at `config` (relative to the repo) into `tmp_path`, keeping
    their relative paths so `source = "../.../terraform"` resolves; return the configuration's copy."""
    module = copy_config(ROOT / "terraform", tmp_path / "terraform")
    return module if config == "terraform" else copy_config(ROOT / config, tmp_path / config)
