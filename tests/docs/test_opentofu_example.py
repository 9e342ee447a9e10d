"""examples/opentofu-component: GitLab's OpenTofu component with its documented inputs, the ID token and
the helper for every job, which OpenTofu runs through the ephemeral module; GitLab's CI schema accepts
it, and each placeholder is a README step."""

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
    # Not AUTHRESS_KEY, which the provider would read by itself: only the module's verified output reaches it.
    assert ci["default"]["id_tokens"] == {"AUTHRESS_ID_TOKEN": {"aud": audience}}
    assert ci["variables"]["AUTHRESS_AUDIENCE"] == audience
    assert ci["variables"]["AUTHRESS_PROJECT_PATH"] == "my-org/authress-configuration"
    assert ci["variables"]["TF_VAR_authress_api_url"] == "$AUTHRESS_AUDIENCE"
    assert ci["variables"]["TF_VAR_project_path"] == "$AUTHRESS_PROJECT_PATH"
    assert ci["variables"]["TF_VAR_ref"] == "$CI_DEFAULT_BRANCH"
    (script,) = ci["default"]["before_script"]
    assert 'export PATH="/opt/authress-gitlab-token/bin:$PATH"' in script
    assert "eval" not in script and "AUTHRESS_KEY" not in script, "the job exports nothing: OpenTofu runs the helper"
    assert [rule["if"] for rule in ci["workflow"]["rules"]] == ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]


def test_opentofu_runs_the_helper_through_the_ephemeral_module() -> None:
    """The component applies a saved plan: an ephemeral value is not kept in it, a data source's would be."""
    main_tf = re.sub(r"#.*", "", (EXAMPLE / "infra" / "main.tf").read_text(encoding="utf-8"))
    assert f'//terraform/ephemeral?ref={__version__}"' in main_tf and 'data "external"' not in main_tf
    assert re.search(r'token_env\s+= "AUTHRESS_ID_TOKEN"', main_tf)
    assert re.search(r'ref_protected\s+= "true"', main_tf) and re.search(r'ref_type\s+= "branch"', main_tf)
    assert re.search(r"access_key\s+= module\.authress_token\.access_token", main_tf)
    assert re.search(r'required_version = ">= 1\.11"', main_tf)
    opentofu = pipeline()["include"][0]["inputs"]["opentofu_version"]
    assert tuple(map(int, opentofu.split(".")[:2])) >= (1, 11), "OpenTofu reads ephemeral resources since 1.11"


def test_the_example_pins_this_release_and_names_every_placeholder_in_its_readme() -> None:
    text = PIPELINE.read_text(encoding="utf-8")
    pins = re.findall(r"authress-gitlab-token\.git@(\S+)", text)
    assert pins == [__version__]
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    for placeholder in FILLED_IN:
        assert f"`{placeholder}`" in readme, f"the README never says what to put in place of {placeholder}"
    assert not re.search(r"YOUR_|ACCOUNT_ID|GROUP/PROJECT", fill_in(text + (EXAMPLE / "infra" / "main.tf").read_text()))
