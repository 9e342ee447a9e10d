"""The module folder as users fetch it: a git repository with a release tag (`git::URL//terraform/...`),
and a .tar.gz of it (a registry, an https archive)."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from .toolchain import ROOT

IGNORE = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "terraform.tfstate*", "*.tfplan")


def module_repository(folder: Path, tag: str) -> Path:
    """A git repository at `folder` holding terraform/ as committed here, tagged `tag`; beside it,
    `folder`.tar.gz holds the same folder."""
    shutil.copytree(ROOT / "terraform", folder / "terraform", symlinks=True, ignore=IGNORE)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "module"], ["tag", tag]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    with tarfile.open(folder.with_suffix(".tar.gz"), "w:gz") as archive:
        archive.add(folder / "terraform", "terraform")
    return folder
