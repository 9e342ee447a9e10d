"""The README documents what the code does, and its links work where it is read: on PyPI too."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from scripts.query_table import table

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "https://gitlab.com/authress-gitlab-token/authress-gitlab-token"  # the canonical one
# A Markdown link's target: inline `[text](target)` or a reference definition `[name]: target`.
LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def link_targets(text: str) -> list[str]:
    return [inline or reference for inline, reference in LINK.findall(text)]


def test_readme_query_table_is_generated_from_the_schema() -> None:
    section = readme().split("<!-- query-table:start -->\n", 1)[1].split("\n<!-- query-table:end -->", 1)[0]
    assert section == table(), "README query table is stale: run `python scripts/query_table.py`"


def test_the_readme_links_absolutely_as_pypi_needs() -> None:
    """The README is the PyPI long description, where a relative link points into pypi.org."""
    targets = link_targets(readme())
    assert len(targets) > 20
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert relative == [], f"relative links; write {REPOSITORY}/-/blob/main/PATH instead"


def test_every_readme_link_into_the_repository_names_a_file_or_folder_it_holds() -> None:
    ours = [t for t in link_targets(readme()) if t.startswith(REPOSITORY)]
    assert len(ours) >= 20
    for target in ours:
        found = re.fullmatch(re.escape(REPOSITORY) + r"/-/(blob|tree)/main/([^#]+)(#.*)?", target)
        assert found, f"{target}: not {REPOSITORY}/-/blob/main/FILE or /-/tree/main/FOLDER"
        path = ROOT / found[2]
        assert path.is_file() if found[1] == "blob" else path.is_dir(), f"{target}: no such {found[1]} here"


def test_the_package_metadata_names_the_repository_issues_changelog_and_documentation() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    assert urls["Source"] == REPOSITORY
    assert urls["Issues"] == f"{REPOSITORY}/-/issues"
    assert urls["Changelog"] == f"{REPOSITORY}/-/blob/main/CHANGELOG.md"
    assert urls["Documentation"] == f"{REPOSITORY}/-/blob/main/README.md"
    assert all(url.startswith("https://") for url in urls.values())
