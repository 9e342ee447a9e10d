"""The example pipeline, filled in as its README's steps say and with our component rendered in the way
GitLab renders it, is one GitLab accepts; it asks for the token the example's HCL verifies."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from authress_gitlab_token import __version__
from authress_gitlab_token.setup import guide as setup_guide
from authress_gitlab_token.setup.guide import install_command
from tests.fixtures import ci_inputs
from tests.fixtures.helper import BIN_DIR

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
COMPONENT = ROOT / "templates" / "authress-token.yml"
COMPONENT_REF = re.compile(r"^\$CI_SERVER_FQDN/[^@]+/authress-gitlab-token/authress-token@(?P<version>\S+)$")

# What examples/gitlab/README.md tells a user to put in place of each placeholder, on a self-managed
# GitLab with a mirror of the helper (on gitlab.com the first two stay as they are).
FILLED_IN = {
    "https://gitlab.com/authress-gitlab-token/authress-gitlab-token.git": "https://gitlab.example.com/platform/authress-gitlab-token.git",
    "authress-gitlab-token/authress-gitlab-token": "platform/authress-gitlab-token",
    "ACCOUNT_ID": "acc-1a2b3c",
    "GROUP/PROJECT": "my-org/authress-configuration",
}


def check_gitlab_ci(path: Path) -> subprocess.CompletedProcess[str]:
    """GitLab's own CI schema, as vendored by check-jsonschema (no network)."""
    return subprocess.run(
        [
            str(BIN_DIR / "check-jsonschema"),
            "--builtin-schema",
            "vendor.gitlab-ci",
            "--data-transform",
            "gitlab-ci",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fill_in(text: str) -> str:
    for placeholder, value in FILLED_IN.items():
        text = text.replace(placeholder, value)
    return text


def load(text: str) -> dict[str, Any]:
    value: dict[str, Any] = YAML(typ="safe").load(text)
    return value


def expand(pipeline: dict[str, Any]) -> dict[str, Any]:
    """The pipeline GitLab builds: our component rendered with the include's inputs and merged under
    the file's own keys, then every `extends:` resolved."""
    rendered: dict[str, Any] = {}
    for entry in pipeline.get("include", []):
        if COMPONENT_REF.match(entry.get("component", "")):
            rendered = ci_inputs.render(COMPONENT.read_text(encoding="utf-8"), entry.get("inputs", {}))
    assert rendered, "the pipeline does not include the authress-token component"
    own = {k: v for k, v in pipeline.items() if k != "include"}
    return ci_inputs.resolve_extends(ci_inputs.merge(rendered, own))


def expanded_example() -> dict[str, Any]:
    return expand(load(fill_in(PIPELINE.read_text(encoding="utf-8"))))


def test_the_example_pipeline_matches_gitlabs_ci_schema() -> None:
    done = check_gitlab_ci(PIPELINE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_filled_in_example_with_the_component_rendered_matches_gitlabs_ci_schema(tmp_path: Path) -> None:
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(ci_inputs.dump(expanded_example()), encoding="utf-8")
    done = check_gitlab_ci(path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_misspelt_id_tokens_block(tmp_path: Path) -> None:
    broken = expanded_example()
    broken["apply"]["id_tokens"]["AUTHRESS_KEY"] = {"audience": "https://acc-1a2b3c.api.authress.io"}
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(ci_inputs.dump(broken), encoding="utf-8")
    assert check_gitlab_ci(path).returncode != 0


def test_every_placeholder_is_a_step_in_the_readme() -> None:
    readme = (ROOT / "examples" / "gitlab" / "README.md").read_text(encoding="utf-8")
    for placeholder in FILLED_IN:
        assert f"`{placeholder}`" in readme, f"the README never says what to put in place of {placeholder}"
    shipped = PIPELINE.read_text(encoding="utf-8") + (ROOT / "examples" / "gitlab" / "main.tf").read_text()
    assert "my-org" not in shipped, "a sample value a user must notice and change"
    assert not re.search(r"YOUR_|ACCOUNT_ID|GROUP/PROJECT", fill_in(shipped)), "a placeholder no step names"


def test_a_pipeline_copied_without_step_1_is_refused_when_it_is_created() -> None:
    """A forgotten audience fails at pipeline creation, naming the input, not later in Authress."""
    text = PIPELINE.read_text(encoding="utf-8").replace("ACCOUNT_ID", "\0")
    with pytest.raises(ci_inputs.InputError, match="`audience` input"):
        expand(load(fill_in(text).replace("\0", "ACCOUNT_ID")))


def test_the_example_pins_this_release_everywhere() -> None:
    pipeline = load(PIPELINE.read_text(encoding="utf-8"))
    (entry,) = pipeline["include"]
    match = COMPONENT_REF.match(entry["component"])
    assert match and match.group("version") == __version__
    assert "helper_version" not in entry["inputs"], "the component's default is the pin"
    main_tf = (ROOT / "examples" / "gitlab" / "main.tf").read_text(encoding="utf-8")
    assert f'//terraform/ephemeral?ref={__version__}"' in main_tf
    assert pipeline[".terraform"]["cache"][0]["key"] == f"authress-gitlab-token-{__version__}"


def test_the_jobs_ask_for_the_audience_terraform_verifies() -> None:
    ci = expanded_example()
    for job in ("plan", "apply"):
        assert ci[job]["id_tokens"] == {"AUTHRESS_ID_TOKEN": {"aud": "https://acc-1a2b3c.api.authress.io"}}
        assert ci[job]["variables"]["AUTHRESS_PROJECT_PATH"] == "my-org/authress-configuration"
        assert 'export TF_VAR_audience="$AUTHRESS_AUDIENCE" TF_VAR_issuer="$AUTHRESS_ISSUER"' in ci[job]["script"]
    assert "id_tokens" not in ci["fmt-validate"], "fmt and validate need no token"


def test_apply_runs_on_the_protected_default_branch_with_an_environment_and_an_optional_manual_gate() -> None:
    ci = expanded_example()
    rules = ci["apply"]["rules"]
    protected = '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_COMMIT_REF_PROTECTED == "true"'
    assert rules == [
        {"if": f'{protected} && $AUTHRESS_APPLY_MANUAL == "true"', "when": "manual"},
        {"if": protected},
    ]
    assert ci["apply"]["environment"] == {"name": "authress"}
    assert ci["apply"]["variables"]["TERRAFORM_COMMAND"] == "apply -auto-approve"
    assert ci["variables"]["AUTHRESS_APPLY_MANUAL"] == "false"


def test_merge_request_plans_are_opt_in_and_use_the_branchs_own_binding() -> None:
    ci = expanded_example()
    assert ci["variables"]["AUTHRESS_MR_PLAN"] == "false"
    assert [r["if"] for r in ci["plan"]["rules"]] == [
        '$CI_PIPELINE_SOURCE == "merge_request_event" && $AUTHRESS_MR_PLAN == "true"'
    ]
    assert ci["plan"]["variables"]["AUTHRESS_REF"] == "$CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"
    assert ci["plan"]["variables"]["AUTHRESS_PROTECTED_ONLY"] == "false"
    assert "apply" not in ci["plan"]["variables"]["TERRAFORM_COMMAND"]


def test_no_cache_is_shared_with_unprotected_branches() -> None:
    ci = expanded_example()
    for name, job in ci.items():
        for cache in job.get("cache", []) if isinstance(job, dict) else []:
            assert not cache.get("unprotect"), f"{name}: a branch could poison the default branch's cache"


def test_setup_prints_the_include_and_the_module_source_the_example_uses() -> None:
    guide = setup_guide.build_all(
        ["my-org/authress-configuration"], ["main"], [], "https://acc-1a2b3c.api.authress.io", None
    )[0].to_json()
    (printed,) = load(fill_in(guide["component_yaml"]))["include"]
    (example,) = load(fill_in(PIPELINE.read_text(encoding="utf-8")))["include"]
    assert printed["component"] == example["component"]
    assert printed["inputs"] == {**example["inputs"], "ref": "main"}
    (source,) = re.findall(r'^\s*source\s*=\s*("git::.*")$', guide["module_hcl"], flags=re.M)
    assert f"  source = {source}\n" in (ROOT / "examples" / "gitlab" / "main.tf").read_text(encoding="utf-8")


def test_the_module_source_is_one_story_everywhere() -> None:
    """A git URL pinned to this release's tag, in every document, example and `setup`'s output: the
    ephemeral module in the examples and setup, the data-source module only where the docs compare."""
    repository = "git::https://gitlab.com/authress-gitlab-token/authress-gitlab-token.git"
    ephemeral = f"{repository}//terraform/ephemeral?ref={__version__}"
    files = [
        ROOT / "README.md",
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("terraform/**/*.md"),
        *ROOT.glob("examples/**/*.tf"),
        *ROOT.glob("examples/**/*.md"),
    ]
    sources = {
        (path.relative_to(ROOT).as_posix(), source)
        for path in files
        for source in re.findall(r'source\s*=\s*"([^"]+)"', path.read_text(encoding="utf-8"))
        if not source.startswith(("authress/", "hashicorp/")) and not source.endswith("ref=COMMIT")
    }
    assert sources and {source for _, source in sources} <= {ephemeral, f"{repository}//terraform?ref={__version__}"}
    assert {source for path, source in sources if path.startswith("examples/")} == {ephemeral}, sources


def test_setup_for_a_tag_binds_the_component_to_that_tag(tmp_path: Path) -> None:
    guide = setup_guide.build_all(["grp/infra"], [], ["v1.2.0"], "https://acc-1a2b3c.api.authress.io", None)[0]
    text = fill_in(guide.component_yaml())
    (entry,) = load(text)["include"]
    assert entry["inputs"]["ref"] == "v1.2.0" and entry["inputs"]["ref_type"] == "tag"
    rendered = ci_inputs.render(COMPONENT.read_text(encoding="utf-8"), entry["inputs"])
    assert rendered[".authress-gitlab-token"]["variables"]["AUTHRESS_REF_TYPE"] == "tag"


def test_the_job_installs_the_release_setup_prints(tmp_path: Path) -> None:
    """The component builds the pip requirement from its inputs; as the example leaves them, it is the
    install line `setup` prints (and the release's pin check holds the documents to)."""
    apply = expand(load(PIPELINE.read_text(encoding="utf-8").replace("ACCOUNT_ID", "acc-1a2b3c")))["apply"]
    (block,) = [line for line in apply["before_script"] if "requirement=" in line]
    install = 'set -- install --quiet --disable-pip-version-check --no-input "$requirement"'
    assert install in block
    script = block.replace(install, 'echo "$requirement"; exit 0')
    variables = {k: v for k, v in apply["variables"].items() if k.startswith("AUTHRESS_HELPER_")}
    env = {**variables, "CI_PROJECT_DIR": str(tmp_path), "PATH": os.environ["PATH"]}
    done = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert f'pip install "{done.stdout.strip().splitlines()[-1]}"' == install_command()
