"""docs/install.md's lines for a copy without tags work as written: against a copy of this repository with
no tag, the install line and the module `source` pinned to a commit fetch the helper and the module, and
the same lines at the release tag are refused there (the problem the page exists for)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from authress_gitlab_token import __version__
from scripts import demo

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "install.md"
COPY_URL = "https://HOST/GROUP/authress-gitlab-token.git"  # the page's placeholder for the copy


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A clone of this commit with every tag deleted, as a mirror pushed without `--tags` is; its HEAD."""
    repo = tmp_path_factory.mktemp("copy") / "authress-gitlab-token"
    git("clone", "--quiet", "--no-tags", str(ROOT), str(repo), cwd=repo.parent)
    git("checkout", "--quiet", "--detach", git("rev-parse", "HEAD", cwd=ROOT), cwd=repo)
    for tag in git("tag", "--list", cwd=repo).split():
        git("tag", "--delete", tag, cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


def page_line(pattern: str) -> str:
    (line,) = re.findall(pattern, PAGE.read_text(encoding="utf-8"), flags=re.M)
    return line


def pip_target(requirement: str, target: Path) -> subprocess.CompletedProcess[str]:
    """The page's requirement, installed as pip installs it (git clone, checkout, build) into `target`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_REQUIRE", "VIRTUAL_ENV"))}
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), requirement]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=env)


@pytest.mark.slow  # pip clones and builds the package: 8 s
def test_the_install_line_pinned_to_a_commit_installs_the_helper_from_a_copy_without_tags(
    copy: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = copy
    line = page_line(r'^    pip install "(authress-gitlab-token @ git\+\S+@COMMIT)"$')
    assert COPY_URL in line
    at_commit = line.replace(f"git+{COPY_URL}", f"git+file://{repo}").replace("@COMMIT", f"@{commit}")
    done = pip_target(at_commit, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    version = (tmp_path / "site" / "authress_gitlab_token" / "__init__.py").read_text(encoding="utf-8")
    assert f'"{__version__}"' in version

    at_tag = line.replace(f"git+{COPY_URL}", f"git+file://{repo}").replace("@COMMIT", f"@{__version__}")
    refused = pip_target(at_tag, tmp_path / "tag")
    assert refused.returncode != 0 and __version__ in refused.stderr


def terraform_cli() -> str:
    """The e2e build's CLI, else one on PATH: `get` fetches modules only, no provider."""
    try:
        return demo.find_tools().cli
    except demo.DemoFailed as exc:
        found = shutil.which("terraform") or shutil.which("tofu")
        if found:
            return found
        if os.environ.get("AGT_E2E_STRICT") == "1":
            pytest.fail(f"CI must not skip: {exc}")
        pytest.skip(f"no Terraform or OpenTofu CLI for `get`: {exc}")


def test_the_module_source_pinned_to_a_commit_fetches_the_module_from_a_copy_without_tags(
    copy: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = copy
    cli = terraform_cli()
    source = page_line(r'^      source = "(git::\S+//terraform\?ref=COMMIT)"$')
    assert source.startswith(f"git::{COPY_URL}//")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}

    def get(ref: str) -> subprocess.CompletedProcess[str]:
        workdir = tmp_path / ref
        workdir.mkdir()
        pinned = source.replace(f"git::{COPY_URL}", f"git::file://{repo}").replace("?ref=COMMIT", f"?ref={ref}")
        (workdir / "main.tf").write_text(f'module "authress_token" {{\n  source = "{pinned}"\n}}\n', encoding="utf-8")
        return subprocess.run(
            [cli, "get", "-no-color"], cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    done = get(commit)
    assert done.returncode == 0, done.stdout + done.stderr
    modules = json.loads((tmp_path / commit / ".terraform" / "modules" / "modules.json").read_text())["Modules"]
    (fetched,) = [m for m in modules if m["Key"] == "authress_token"]
    assert (tmp_path / commit / fetched["Dir"] / "variables.tf").is_file()

    refused = get(__version__)
    assert refused.returncode != 0 and __version__ in refused.stdout + refused.stderr
