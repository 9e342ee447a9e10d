"""The example pipeline is one GitLab accepts, and it asks for the token the example's HCL verifies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from authress_gitlab_token.setup_guide import install_command
from tests.conftest import BIN_DIR

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"


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


def pipeline() -> dict[str, Any]:
    value: dict[str, Any] = YAML(typ="safe").load(PIPELINE.read_text(encoding="utf-8"))
    return value


def test_the_example_pipeline_matches_gitlabs_ci_schema() -> None:
    done = check_gitlab_ci(PIPELINE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_misspelt_id_tokens_block(tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(PIPELINE.read_text(encoding="utf-8").replace("      aud: ", "      audience: "), encoding="utf-8")
    assert "audience: " in broken.read_text(encoding="utf-8")
    assert check_gitlab_ci(broken).returncode != 0


def test_the_jobs_ask_for_the_audience_terraform_verifies() -> None:
    ci = pipeline()
    aud = ci["default"]["id_tokens"]["AUTHRESS_KEY"]["aud"]
    assert re.fullmatch(r"https://[^.]+\.api\.authress\.io", aud)
    assert ci["variables"]["TF_VAR_audience"] == aud
    assert not any("id_tokens" in ci[job] for job in ("plan", "apply")), "a job overrides the default id_tokens"


def test_apply_runs_only_on_the_protected_default_branch_and_plan_on_merge_requests() -> None:
    ci = pipeline()
    assert [r["if"] for r in ci["apply"]["rules"]] == [
        '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_COMMIT_REF_PROTECTED == "true"'
    ]
    assert "terraform apply -auto-approve" in ci["apply"]["script"]
    assert [r["if"] for r in ci["plan"]["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    assert not any("apply" in line for line in ci["plan"]["script"])
    installs = [line for line in ci["default"]["before_script"] if "pip install" in line]
    assert len(installs) == 1 and installs[0].endswith(install_command().removeprefix("pip install"))
