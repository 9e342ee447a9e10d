"""The release pipeline's guard, run before anything is published: the tag equals the package version
(a semantic version without `v`, as GitLab's CI/CD Catalog wants), CHANGELOG.md has a section for it,
and every built distribution carries that version. `--notes` prints that CHANGELOG section instead,
the description of the GitLab release.

    python3 scripts/release_version.py TAG [DIST_FILE ...]
    python3 scripts/release_version.py --notes TAG

Exit 0, or 1 with one line per problem."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "helper" / "authress_gitlab_token" / "__init__.py"
CHANGELOG = ROOT / "CHANGELOG.md"


def package_version() -> str:
    """`__version__`, read without importing the package, as setuptools reads it for the metadata."""
    for node in ast.parse(INIT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["__version__"]:
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise SystemExit(f"release_version: no __version__ string in {INIT}")


def dist_version(path: str) -> str:
    """The version in a wheel's or an sdist's file name (`name-1.2.3-py3-none-any.whl`, `name-1.2.3.tar.gz`)."""
    name = Path(path).name
    if name.endswith(".whl"):
        return name.split("-")[1]
    return name.removesuffix(".tar.gz").rsplit("-", 1)[-1]


def problems(tag: str, dists: Sequence[str]) -> list[str]:
    version = package_version()
    found = []
    if tag != version:
        found.append(
            f"tag {tag!r} is not the package version {version!r}; tag the release {version}, or set __version__ "
            "in helper/authress_gitlab_token/__init__.py to the tag's version and add it to CHANGELOG.md"
        )
    if f"## [{version}]" not in CHANGELOG.read_text(encoding="utf-8"):
        found.append(f"CHANGELOG.md has no section '## [{version}]'; add what the release changes")
    found += [
        f"{Path(d).name} is version {dist_version(d)!r}, not {version!r}; rebuild with `make dist`"
        for d in dists
        if dist_version(d) != version
    ]
    return found


def notes(version: str) -> str | None:
    """The body of CHANGELOG.md's `## [version]` section, or None when there is none."""
    text = CHANGELOG.read_text(encoding="utf-8")
    found = re.search(rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## \[|^\[[^\]]+\]: |\Z)", text, re.M | re.S)
    return found[1].strip() + "\n" if found else None


def main(argv: Sequence[str]) -> int:
    if not argv or (argv[0] == "--notes" and len(argv) != 2):
        sys.stderr.write("usage: release_version.py TAG [DIST_FILE ...] | --notes TAG\n")
        return 2
    if argv[0] == "--notes":
        body = notes(argv[1])
        if body is None:
            sys.stderr.write(f"release_version: CHANGELOG.md has no section '## [{argv[1]}]'\n")
            return 1
        sys.stdout.write(body)
        return 0
    found = problems(argv[0], argv[1:])
    for line in found:
        sys.stderr.write(f"release_version: {line}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
