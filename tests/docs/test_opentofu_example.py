"""examples/opentofu-component: GitLab's OpenTofu component with its documented inputs, the ID token and
the helper's check for every job; GitLab's CI schema accepts it, and each placeholder is a README step."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from authress_gitlab_token import __version__
from tests.docs.test_gitlab_example import FILLED_IN, check_gitlab_ci, fill_in, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "opentofu-component"
PIPELINE = EXAMPLE / ".gitlab-ci.yml"


def pipeline() -> dict[str, Any]:
    return load(fill_in(PIPELINE.read_text(encoding="utf-8")))


def test_the_example_pipeline_matches_gitlabs_ci_schema(tmp_path: Path) -> None:
    for text in (PIPELINE.read_text(encoding="utf-8"), fill_in(PIPELINE.read_text(encoding="utf-8"))):
        path = tmp_path / ".gitlab-ci.yml"
        path.write_text(text, encoding="utf-8")
        done = check_gitlab_ci(path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_it_uses_the_opentofu_component_with_the_inputs_gitlab_documents() -> None:
    (entry,) = pipeline()["include"]
    name, version = entry["component"].rsplit("@", 1)
    assert name == "gitlab.com/components/opentofu/validate-plan-apply"
    assert set(entry["inputs"]) == {"version", "opentofu_version", "root_dir", "state_name"}
    assert entry["inputs"]["version"] == version, "the component's version input must repeat its version"
    assert (EXAMPLE / entry["inputs"]["root_dir"] / "main.tf").is_file()
    assert pipeline()["stages"] == ["validate", "build", "deploy"]


def test_every_job_gets_the_token_for_the_audience_it_verifies_and_binds_the_project() -> None:
    ci = pipeline()
    audience = "https://acc-1a2b3c.api.authress.io"
    # Not AUTHRESS_KEY, which the provider reads: only the verified export sets that.
    assert ci["default"]["id_tokens"] == {"AUTHRESS_ID_TOKEN": {"aud": audience}}
    assert ci["variables"]["AUTHRESS_AUDIENCE"] == audience
    assert ci["variables"]["AUTHRESS_PROJECT_PATH"] == "my-org/authress-configuration"
    assert ci["variables"]["TF_VAR_authress_api_url"] == "$AUTHRESS_AUDIENCE"
    (script,) = ci["default"]["before_script"]
    assert '--project-path "$AUTHRESS_PROJECT_PATH"' in script
    assert "--token-env AUTHRESS_ID_TOKEN" in script
    assert '--ref "$CI_DEFAULT_BRANCH" --ref-type branch --ref-protected true' in script
    assert "--check authress" in script
    assert 'eval "$exports"' in script
    assert [rule["if"] for rule in ci["workflow"]["rules"]] == ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]


def test_the_token_reaches_the_provider_only_through_the_environment() -> None:
    """The component applies a saved plan: a token read in Terraform would be kept in it."""
    main_tf = (EXAMPLE / "infra" / "main.tf").read_text(encoding="utf-8")
    assert 'data "external"' not in main_tf and "access_key" not in re.sub(r"#.*", "", main_tf)
    assert "custom_domain = var.authress_api_url" in main_tf


def test_the_example_pins_this_release_and_names_every_placeholder_in_its_readme() -> None:
    text = PIPELINE.read_text(encoding="utf-8")
    pins = re.findall(r"authress-gitlab-token\.git@(\S+)", text)
    assert pins == [__version__]
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    for placeholder in FILLED_IN:
        assert f"`{placeholder}`" in readme, f"the README never says what to put in place of {placeholder}"
    assert not re.search(r"YOUR_|ACCOUNT_ID|GROUP/PROJECT", fill_in(text + (EXAMPLE / "infra" / "main.tf").read_text()))
