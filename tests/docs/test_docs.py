"""The README documents what the code does, tells one story with `setup` and the examples, and its
links (and those of docs/) work where they are read: on PyPI too."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from scripts import five_steps
from scripts.query_table import table
from tests.docs.test_gitlab_example import PIPELINE, check_gitlab_ci, expand, fill_in, load
from tests.fixtures import ci_inputs
from tests.fixtures.helper import Helper, argv

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "https://gitlab.com/authress-gitlab-token/authress-gitlab-token"  # the canonical one
# A Markdown link's target: inline `[text](target)` or a reference definition `[name]: target`.
LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


DOCS = sorted((ROOT / "docs").glob("*.md"))


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def link_targets(text: str) -> list[str]:
    return [inline or reference for inline, reference in LINK.findall(text)]


def test_readme_query_table_is_generated_from_the_schema() -> None:
    section = readme().split("<!-- query-table:start -->\n", 1)[1].split("\n<!-- query-table:end -->", 1)[0]
    assert section == table(), "README query table is stale: run `python scripts/query_table.py`"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_the_documents_link_absolutely_as_pypi_needs(path: Path) -> None:
    """The README is the PyPI long description, where a relative link points into pypi.org; docs/ is
    linked from it and follows the same rule, so a page reads the same wherever it is opened."""
    targets = link_targets(path.read_text(encoding="utf-8"))
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert relative == [], f"relative links; write {REPOSITORY}/-/blob/main/PATH instead"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_link_into_the_repository_names_a_file_or_folder_it_holds(path: Path) -> None:
    ours = [t for t in link_targets(path.read_text(encoding="utf-8")) if t.startswith(REPOSITORY)]
    assert ours
    for target in ours:
        found = re.fullmatch(re.escape(REPOSITORY) + r"/-/(blob|tree)/main/([^#]+)(#.*)?", target)
        assert found, f"{target}: not {REPOSITORY}/-/blob/main/FILE or /-/tree/main/FOLDER"
        file = ROOT / found[2]
        assert file.is_file() if found[1] == "blob" else file.is_dir(), f"{target}: no such {found[1]} here"


def test_the_readme_links_every_page_of_docs_and_keeps_contributor_material_there() -> None:
    text = readme()
    assert len(DOCS) >= 4
    for page in DOCS:
        assert f"{REPOSITORY}/-/blob/main/docs/{page.name})" in text, f"README does not link docs/{page.name}"
    assert "## The end-to-end tests" not in text and "## Performance" not in text and "## Releases" not in text


def test_the_readme_opens_with_what_it_adds_the_install_and_the_shortest_pipeline() -> None:
    first = readme().split("## Set up GitLab and Authress in five steps", 1)[0]
    assert "What it adds over pasting `id_tokens`" in first
    assert f'pip install "authress-gitlab-token @ git+{REPOSITORY}.git@' in first
    assert "extends: .authress-gitlab-token" in first and "component: " in first


def shortest_pipeline() -> str:
    section = readme().split("## The shortest pipeline", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n\n((?:    .*\n|\n)+)", section)
    assert block, "no code block under The shortest pipeline"
    return textwrap.dedent(block[1])


def test_the_readmes_shortest_pipeline_is_one_gitlab_accepts_with_the_examples_include(tmp_path: Path) -> None:
    pipeline = load(fill_in(shortest_pipeline()))
    (example,) = load(fill_in(PIPELINE.read_text(encoding="utf-8")))["include"]
    assert pipeline["include"] == [example]
    expanded = expand(pipeline)
    job = expanded["apply"]
    assert job["id_tokens"] == {"AUTHRESS_ID_TOKEN": {"aud": "https://acc-1a2b3c.api.authress.io"}}
    assert job["before_script"] and job["script"] == ["terraform init", "terraform apply -auto-approve"]
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(ci_inputs.dump(expanded), encoding="utf-8")
    done = check_gitlab_ci(path)
    assert done.returncode == 0, done.stdout + done.stderr


# --- one story: the five steps --------------------------------------------------------------------


def test_the_readmes_hold_the_five_steps_setup_prints() -> None:
    """The README and both examples' READMEs hold, between the markers, the steps rendered with the
    documented placeholders: `python scripts/five_steps.py --write` renews them."""
    held = {p.relative_to(ROOT).as_posix(): five_steps.section(p.read_text(encoding="utf-8")) for p in five_steps.FILES}
    assert set(held) == {"README.md", "examples/gitlab/README.md", "examples/opentofu-component/README.md"}
    stale = [name for name, text in held.items() if text != five_steps.steps()]
    assert stale == [], f"stale five steps in {stale}: run `python scripts/five_steps.py --write`"


def test_setup_prints_the_readmes_five_steps_word_for_word(helper: Helper) -> None:
    values = five_steps.PLACEHOLDERS
    run = helper.run(argv("setup", project=values["project"], branch=values["branch"], audience=values["audience"]))
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == five_steps.section(readme())
    assert run.stdout.startswith("1. **Trust GitLab in Authress.**") and "\n5. **Push" in run.stdout


def test_the_steps_name_the_provider_the_example_pins_with_its_custom_domain() -> None:
    steps = five_steps.steps()
    example = (ROOT / "examples" / "gitlab" / "main.tf").read_text(encoding="utf-8")
    pin = re.search(r'^\s+version = "([^"]+)"', example, flags=re.M)
    assert pin and f'version = "{pin[1]}"' in steps
    assert "custom_domain = module.authress_token.api_url" in steps and "custom_domain" in example
    assert 'route: "data-source"' in steps and "route: data-source" in (
        ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
    ).read_text(encoding="utf-8")


def test_the_package_metadata_names_the_repository_issues_changelog_and_documentation() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    assert urls["Source"] == REPOSITORY
    assert urls["Issues"] == f"{REPOSITORY}/-/issues"
    assert urls["Changelog"] == f"{REPOSITORY}/-/blob/main/CHANGELOG.md"
    assert urls["Documentation"] == f"{REPOSITORY}/-/blob/main/README.md"
    assert all(url.startswith("https://") for url in urls.values())
