"""The README is read to the end and tells one story with `setup` and the examples; the reference lives
in docs/, every page listed in its contents; the links of both work where they are read: on PyPI too."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from authress_gitlab_token import __version__
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


def test_the_query_table_is_generated_from_the_schema() -> None:
    text = (ROOT / "docs" / "query.md").read_text(encoding="utf-8")
    section = text.split("<!-- query-table:start -->\n", 1)[1].split("\n<!-- query-table:end -->", 1)[0]
    assert section == table(), "docs/query.md's query table is stale: run `python scripts/query_table.py`"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_documents_link_absolutely_as_pypi_needs(path: Path) -> None:
    """The README is the PyPI long description, where a relative link points into pypi.org; docs/ is
    linked from it and follows the same rule, so a page reads the same wherever it is opened."""
    targets = link_targets(path.read_text(encoding="utf-8"))
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert relative == [], f"relative links; write {REPOSITORY}/-/blob/main/PATH instead"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_into_the_repository_names_a_file_or_folder_it_holds(path: Path) -> None:
    ours = [t for t in link_targets(path.read_text(encoding="utf-8")) if t.startswith(REPOSITORY)]
    assert ours
    for target in ours:
        found = re.fullmatch(re.escape(REPOSITORY) + r"/-/(blob|tree)/main/([^#]+)(#.*)?", target)
        assert found, f"{target}: not {REPOSITORY}/-/blob/main/FILE or /-/tree/main/FOLDER"
        file = ROOT / found[2]
        assert file.is_file() if found[1] == "blob" else file.is_dir(), f"{target}: no such {found[1]} here"


def test_every_page_of_docs_is_in_the_contents_and_the_readme_links_the_contents() -> None:
    """docs/README.md is the contents: every page is listed there, and the README links it (and every
    page a user needs), so nothing that left the README is out of reach."""
    contents = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    pages = [page for page in DOCS if page.name != "README.md"]
    assert len(pages) >= 12
    missing = [page.name for page in pages if f"{REPOSITORY}/-/blob/main/docs/{page.name})" not in contents]
    assert missing == [], f"docs/README.md does not list {missing}"
    text = readme()
    assert f"{REPOSITORY}/-/blob/main/docs/README.md)" in text
    users = ["routes", "setup", "component", "module", "query", "errors", "doctor", "security", "network"]
    assert [p for p in users if f"{REPOSITORY}/-/blob/main/docs/{p}.md)" not in text] == []


def test_the_readme_is_read_to_the_end_the_reference_lives_in_docs() -> None:
    lines = readme().splitlines()
    assert len(lines) <= 300, f"README.md is {len(lines)} lines; move reference text to docs/"
    headings = [line for line in lines if line.startswith("#")]
    for moved in ("## The query", "## The result", "## Security", "## The key cache", "## Where the token lives"):
        assert moved not in headings, f"{moved} belongs in docs/"


def test_the_first_screen_shows_how_to_try_it_and_how_to_get_the_component_into_a_pipeline() -> None:
    first = "\n".join(readme().splitlines()[:60])
    assert "    make demo\n" in first and "make stand-ins" in first
    assert "      - component: $CI_SERVER_FQDN/authress-gitlab-token/authress-gitlab-token/authress-token@" in first
    assert "      extends: .authress-gitlab-token" in first


def code_blocks(section: str) -> list[str]:
    """The indented code blocks of a README section, dedented."""
    return [textwrap.dedent(block) for block in re.findall(r"(?:^|\n\n)((?:    .*\n|\n)+)", section + "\n")]


def shortest_pipeline() -> tuple[str, str]:
    """The README's pipeline: `.gitlab-ci.yml`, then `main.tf`."""
    section = readme().split("## Into your pipeline", 1)[1].split("\n## ", 1)[0]
    pipeline, hcl = [block for block in code_blocks(section) if block.strip()]
    return pipeline, hcl


def test_the_readmes_pipeline_keeps_its_state_in_gitlab_as_the_example_does() -> None:
    """Without a backend GitLab throws the state away after the job and the next pipeline creates
    everything again: the README's pipeline keeps it where the example does, with the same variables."""
    pipeline, hcl = shortest_pipeline()
    ours = load(fill_in(pipeline))["variables"]
    example = load(fill_in(PIPELINE.read_text(encoding="utf-8")))["variables"]
    state = {k: v.replace("${TF_STATE_NAME}", "authress") for k, v in example.items() if k.startswith("TF_HTTP_")}
    assert ours == state
    assert re.search(r'^  backend "http" \{\}', hcl, flags=re.M), "main.tf has no http backend"


def test_the_readmes_pipeline_takes_the_ephemeral_route_with_the_examples_include() -> None:
    pipeline, hcl = shortest_pipeline()
    (ours,) = load(fill_in(pipeline))["include"]
    (example,) = load(fill_in(PIPELINE.read_text(encoding="utf-8")))["include"]
    assert ours["component"] == example["component"]
    assert ours["inputs"] == {**example["inputs"], "route": "ephemeral"}
    source = f"git::{REPOSITORY}.git//terraform/ephemeral?ref={__version__}"
    assert f'  source       = "{source}"\n' in hcl
    assert re.search(r'^  required_version = ">= 1\.10"$', hcl, flags=re.M), "ephemeral values need Terraform 1.10"
    # The ephemeral module takes the data-source module's inputs; each one the README sets is one of them.
    module = hcl.split('module "authress_token" {', 1)[1].split("\n}", 1)[0]
    given = set(re.findall(r"^  (\w+)\s+=", module, flags=re.M)) - {"source"}
    variables = set(re.findall(r'^variable "(\w+)"', (ROOT / "terraform" / "variables.tf").read_text(), flags=re.M))
    assert given and given <= variables, given - variables
    # The component keeps the job's ID token in its token_variable: the module reads it from there.
    assert 'token_env    = "AUTHRESS_ID_TOKEN"' in module


def test_the_readmes_pipeline_is_one_gitlab_accepts(tmp_path: Path) -> None:
    pipeline, _ = shortest_pipeline()
    expanded = expand(load(fill_in(pipeline)))
    job = expanded["apply"]
    assert job["id_tokens"] == {"AUTHRESS_ID_TOKEN": {"aud": "https://acc-1a2b3c.api.authress.io"}}
    assert job["before_script"] and job["script"] == ["terraform init", "terraform apply -auto-approve"]
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(ci_inputs.dump(expanded), encoding="utf-8")
    done = check_gitlab_ci(path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_error_table_leads_a_dropped_before_script_to_its_fix() -> None:
    """What Terraform prints when a job's own before_script dropped the component's lines (the words
    tests/e2e/test_examples.py sees), and what the helper prints when it is on PATH, lead to `!reference`."""
    section = readme().split("## Errors you may meet", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if "executable file not found" in line)
    assert '`"authress-gitlab-token": executable file not found in $PATH`' in row
    assert "the CI/CD component's before_script did not run in this job" in row
    assert "`- !reference [.authress-gitlab-token, before_script]`" in row
    e2e = (ROOT / "tests" / "e2e" / "test_examples.py").read_text(encoding="utf-8")
    assert "'\"authress-gitlab-token\": executable file not found'" in e2e


def test_the_gitlab_examples_readme_says_how_it_is_tested_as_docs_testing_does() -> None:
    """Both say the example runs in gitlab-ci-local with its GitLab-managed state going to the stand-in."""
    example = (ROOT / "examples" / "gitlab" / "README.md").read_text(encoding="utf-8")
    tested = example.split("## Tested", 1)[1]
    testing = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for text in (tested, testing):
        assert "gitlab-ci-local" in text and "TF_HTTP_*" in text
    assert "backend override" not in tested and "script lines in bash" not in tested


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
    assert 'route: "ephemeral"' in steps and "route: ephemeral" in (
        ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
    ).read_text(encoding="utf-8")


def test_the_package_metadata_names_the_repository_issues_changelog_and_documentation() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    assert urls["Source"] == REPOSITORY
    assert urls["Issues"] == f"{REPOSITORY}/-/issues"
    assert urls["Changelog"] == f"{REPOSITORY}/-/blob/main/CHANGELOG.md"
    assert urls["Documentation"] == f"{REPOSITORY}/-/blob/main/README.md"
    assert all(url.startswith("https://") for url in urls.values())


def test_every_provider_block_in_the_documents_is_written_for_the_pinned_generation() -> None:
    """The README, docs/, the module's README and the examples pin authress/authress 2.0.39 and give it
    the `custom_domain` it needs: a block written for the newest provider fails validation on 2.0.39."""
    pages = [ROOT / "README.md", *DOCS, *ROOT.glob("terraform/**/README.md"), *ROOT.glob("examples/**/*.md")]
    pages += [*ROOT.glob("examples/**/*.tf"), ROOT / "scripts" / "demo.tf"]
    blocks = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r'^\s*provider "authress" \{\n(.*?)^\s*\}', text, flags=re.M | re.S):
            blocks += 1
            assert re.search(r"^\s*custom_domain\s*=", block, flags=re.M), f"{page.name}: no custom_domain"
        pins = re.findall(r'source\s*=\s*"authress/authress"\s*\n\s*version\s*=\s*"([^"]+)"', text)
        assert set(pins) <= {"2.0.39"}, f"{page.name} pins {pins}"
    assert blocks >= 5
