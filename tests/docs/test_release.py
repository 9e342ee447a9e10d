"""Releases: one version everywhere (package, `--version`, tag, changelog, every install line in the documents),
and the project's own pipeline, which releases only a tag that equals that version: a semantic version
without `v`, the scheme GitLab's CI/CD Catalog accepts."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from authress_gitlab_token import __version__
from authress_gitlab_token.setup.guide import install_command
from tests.docs.test_gitlab_example import check_gitlab_ci
from tests.fixtures.helper import Helper, guide

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / ".gitlab-ci.yml"
GUARD = ROOT / "scripts" / "release_version.py"
RELEASE_TAG = r"$CI_COMMIT_TAG =~ /^\d+\.\d+\.\d+$/"

# The helper's name where something installs it: a pip requirement (pinned `==X` or a git URL at a tag)
# or the module's git source. Python files are left out: setup's line is built from __version__ (tested below).
PIP_LINE = re.compile(r"pip install\b.*")
REQUIREMENT = re.compile(r"""(?<![\w/.-])authress-gitlab-token(?P<pin>==[\w.]+|\s*@\s*git\+[^\s"'`]+)?(?![\w.-])""")
GIT_REF = re.compile(r"authress-gitlab-token\.git(?:@|//terraform(?:/ephemeral)?\?ref=)(?P<ref>[^\s\"'`)]+)")
DOC_SUFFIXES = {".md", ".yml", ".yaml", ".tf"}


# A copy without tags pins a commit (docs/install.md): the placeholder COMMIT stands for its full SHA.
COMMIT = "COMMIT"


def unpinned_installs(text: str, version: str) -> list[str]:
    """Every install of the helper in `text` that pins neither `version` nor a COMMIT, as the offending fragment."""
    found = []
    for line in PIP_LINE.findall(text):
        for match in REQUIREMENT.finditer(line):
            pin = match["pin"] or ""
            if pin != f"=={version}" and not pin.endswith((f".git@{version}", f".git@{COMMIT}")):
                found.append(match[0])
    found += [m[0] for m in GIT_REF.finditer(text) if m["ref"] not in (version, COMMIT)]
    return found


def documents() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in listed.splitlines() if Path(name).suffix in DOC_SUFFIXES]


def pipeline() -> dict[str, Any]:
    """The pipeline as data; `!reference` tags become the lists they name (GitLab resolves them)."""
    yaml = YAML(typ="safe")
    yaml.constructor.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    value: dict[str, Any] = yaml.load(PIPELINE.read_text(encoding="utf-8"))
    return value


# --- one version ----------------------------------------------------------------------------------


def test_version_flag_prints_the_package_version(helper: Helper) -> None:
    run = helper.run(["--version"])
    assert (run.returncode, run.stdout) == (0, f"authress-gitlab-token {__version__}\n")


def test_a_version_tag_on_head_equals_the_package_version() -> None:
    tags = subprocess.run(
        ["git", "tag", "--points-at", "HEAD", "--list", "[0-9]*"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert all(tag == __version__ for tag in tags), f"HEAD is tagged {tags}, the package is {__version__}"


def test_the_changelog_has_unreleased_on_top_then_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert headings[:2] == ["Unreleased", __version__]
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, flags=re.MULTILINE)
    assert f"[{__version__}]: " in text


def test_version_flag_changelog_and_readme_install_name_one_release(helper: Helper) -> None:
    """What a user runs, reads in the CHANGELOG and installs from the README is the same release."""
    flag = helper.run(["--version"]).stdout.split()
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, flags=re.MULTILINE)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = re.search(
        r'^    pip install "authress-gitlab-token @ git\+\S+\.git@([^"]+)"$', readme, flags=re.MULTILINE
    )
    assert newest and install, "no dated CHANGELOG section or no README install line"
    assert flag == ["authress-gitlab-token", newest[1]]
    assert install[1] == newest[1]
    assert f"pip install authress-gitlab-token=={newest[1]}" in readme


def test_every_install_in_the_documents_pins_this_version() -> None:
    docs = documents()
    problems = {str(p.relative_to(ROOT)): unpinned_installs(p.read_text(encoding="utf-8"), __version__) for p in docs}
    assert {k: v for k, v in problems.items() if v} == {}
    installing = {
        str(p.relative_to(ROOT)) for p in docs if any(map(REQUIREMENT.search, PIP_LINE.findall(p.read_text())))
    }
    # examples/gitlab installs through the component (docs/test_gitlab_example.py checks its line).
    assert {"README.md", "terraform/README.md"} <= installing


@pytest.mark.parametrize(
    "text",
    [
        "pip install authress-gitlab-token",
        "    - /opt/venv/bin/pip install --quiet authress-gitlab-token\n",
        "`pip install authress-gitlab-token>=0.1`",
        "pip install authress-gitlab-token==0.1.0",
        'pip install "authress-gitlab-token @ git+https://gitlab.com/g/authress-gitlab-token.git@main"',
        'pip install "authress-gitlab-token @ git+https://gitlab.com/g/authress-gitlab-token.git"',
        'source = "git::https://gitlab.com/g/authress-gitlab-token.git//terraform?ref=TAG"',
        'pip install "authress-gitlab-token @ git+https://gitlab.com/g/authress-gitlab-token.git@v0.2.0"',
        'source = "git::https://gitlab.com/g/authress-gitlab-token.git//terraform?ref=v0.2.0"',
        'source = "git::https://gitlab.com/g/authress-gitlab-token.git//terraform/ephemeral?ref=0.1.0"',
    ],
)
def test_the_pin_check_flags_an_unpinned_or_stale_install(text: str) -> None:
    assert unpinned_installs(text, "0.2.0") != []


def test_the_pin_check_accepts_both_pinned_routes_and_a_pinned_commit() -> None:
    text = (
        'pip install "authress-gitlab-token @ git+https://gitlab.com/g/authress-gitlab-token.git@0.2.0"\n'
        "pip install authress-gitlab-token==0.2.0\n"
        'pip install "authress-gitlab-token @ git+https://HOST/GROUP/authress-gitlab-token.git@COMMIT"\n'
        'source = "git::https://HOST/GROUP/authress-gitlab-token.git//terraform?ref=COMMIT"\n'
        "`authress-gitlab-token setup` prints the pip install for the version you run\n"
    )
    assert unpinned_installs(text, "0.2.0") == []


def test_setup_prints_the_install_of_the_version_it_is(helper: Helper) -> None:
    run = helper.run(guide(project="my-org/infra"))
    assert run.returncode == 0, run.stderr
    assert f"       {install_command()}\n" in run.stdout
    assert unpinned_installs(run.stdout, __version__) == []
    assert install_command().endswith(f'authress-gitlab-token.git@{__version__}"')
    assert install_command() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_release_docs_state_the_floors_the_package_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    floors = dict(re.match(r"^([\w\[\]-]+)>=([\w.]+)$", d).groups() for d in declared)  # type: ignore[union-attr]
    page = (ROOT / "docs" / "releasing.md").read_text(encoding="utf-8")
    assert dict(re.findall(r"^\| `([\w\[\]-]+)` \| ([\d.]+) \|", page, flags=re.MULTILINE)) == floors


# --- the release guard ----------------------------------------------------------------------------


def guard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GUARD), *args], capture_output=True, text=True, timeout=60)


def test_the_release_guard_accepts_the_tag_of_this_version() -> None:
    stem = f"dist/authress_gitlab_token-{__version__}"
    done = guard(__version__, f"{stem}-py3-none-any.whl", f"{stem}.tar.gz")
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("tag", ["9.9.9", f"v{__version__}", f"{__version__}.1", f"{__version__}rc1"])
def test_the_release_guard_refuses_a_tag_that_differs_from_the_version(tag: str) -> None:
    done = guard(tag)
    assert done.returncode == 1
    assert f"tag '{tag}' is not the package version '{__version__}'" in done.stderr


def test_the_release_guard_refuses_distributions_of_another_version() -> None:
    done = guard(__version__, "dist/authress_gitlab_token-0.0.1-py3-none-any.whl")
    assert done.returncode == 1
    assert "authress_gitlab_token-0.0.1-py3-none-any.whl is version '0.0.1'" in done.stderr


# --- the project's pipeline -----------------------------------------------------------------------


def test_the_project_pipeline_matches_gitlabs_ci_schema() -> None:
    done = check_gitlab_ci(PIPELINE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_merge_requests_and_the_default_branch_run_make_test() -> None:
    ci = pipeline()
    assert [r["if"] for r in ci["workflow"]["rules"]] == [
        '$CI_PIPELINE_SOURCE == "merge_request_event"',
        "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
        RELEASE_TAG,
    ]
    assert ci["test"]["script"] == ["make test"]
    assert "rules" not in ci["test"] and ci["test"]["stage"] == "test"


def test_a_release_tag_is_checked_then_built_with_make_dist_before_anything_is_published() -> None:
    ci = pipeline()
    assert ci["stages"] == ["test", "build", "publish"]
    assert ci[".on-release-tag"]["rules"] == [{"if": RELEASE_TAG}]
    dist = ci["dist"]
    assert dist["extends"] == ".on-release-tag"
    assert dist["script"] == [
        'python3 scripts/release_version.py "$CI_COMMIT_TAG"',
        "make dist",
        'python3 scripts/release_version.py "$CI_COMMIT_TAG" dist/*',
        'python3 scripts/release_version.py --notes "$CI_COMMIT_TAG" > release-notes.md',
    ]
    for job in ("gitlab-package-registry", "pypi"):
        assert ci[job]["extends"] == ".on-release-tag" and ci[job]["needs"] == ["dist"]
        assert ci[job]["stage"] == "publish"
        assert ci[job]["script"][-1].startswith("python3 -m twine upload --non-interactive ")
        assert ci[job]["script"][-1].endswith(" dist/*")


def test_the_release_job_creates_the_gitlab_release_from_the_changelog_section_after_publishing() -> None:
    job = pipeline()["release"]
    assert job["extends"] == ".on-release-tag" and job["stage"] == "publish"
    assert job["needs"] == ["dist", "gitlab-package-registry", "pypi"]
    assert job["release"] == {"tag_name": "$CI_COMMIT_TAG", "name": "$CI_COMMIT_TAG", "description": "release-notes.md"}
    assert "release-notes.md" in pipeline()["dist"]["artifacts"]["paths"]


def test_the_release_notes_are_the_versions_changelog_section() -> None:
    done = guard("--notes", __version__)
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    section = text.split(f"## [{__version__}]", 1)[1].split("\n", 1)[1].split("\n## [", 1)[0]
    assert done.returncode == 0 and done.stdout.strip() and done.stdout.strip() in section
    assert "## [" not in done.stdout and "[Unreleased]:" not in done.stdout
    missing = guard("--notes", "9.9.9")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "CHANGELOG.md has no section '## [9.9.9]'" in missing.stderr


def test_the_project_tests_its_component_at_this_commit_with_a_real_id_token() -> None:
    ci = YAML(typ="rt").load(PIPELINE.read_text(encoding="utf-8"))
    (entry,) = ci["include"]
    assert entry["component"] == "$CI_SERVER_FQDN/$CI_PROJECT_PATH/authress-token@$CI_COMMIT_SHA"
    assert entry["inputs"]["check"] == "none"
    job = ci["self-test"]
    assert job["extends"] == ".authress-gitlab-token" and "rules" in job
    assert job["variables"]["AUTHRESS_PROJECT_PATH"] == "$CI_PROJECT_PATH"
    assert str(job["before_script"][-1].tag.value) == "!reference"
    assert list(job["before_script"][-1]) == [".authress-gitlab-token", "before_script"]


def test_the_package_registry_upload_uses_the_jobs_own_token() -> None:
    script = "\n".join(pipeline()["gitlab-package-registry"]["script"])
    assert 'TWINE_USERNAME=gitlab-ci-token TWINE_PASSWORD="$CI_JOB_TOKEN"' in script
    assert '--repository-url "${CI_API_V4_URL}/projects/${CI_PROJECT_ID}/packages/pypi"' in script


def test_pypi_gets_a_token_minted_from_the_jobs_id_token_for_audience_pypi() -> None:
    job = pipeline()["pypi"]
    assert job["id_tokens"] == {"PYPI_ID_TOKEN": {"aud": "pypi"}}
    assert job["environment"]["name"] == "pypi"
    script = "\n".join(job["script"])
    assert "https://pypi.org/_/oidc/mint-token" in script and "${PYPI_ID_TOKEN}" in script
    assert "TWINE_USERNAME=__token__" in script
    assert "API_TOKEN" not in script and "secret" not in script.lower()


@pytest.mark.parametrize(
    ("response", "code", "out"),
    [
        ('{"token": "pypi-minted"}', 0, "pypi-minted"),
        ('{"message": "Token request failed", "errors": [{"code": "invalid-publisher"}]}', 1, ""),
    ],
)
def test_the_pypi_job_takes_the_minted_token_or_stops_with_pypis_reason(response: str, code: int, out: str) -> None:
    """The job's own shell line, run by sh with PyPI's answer in $response (PyPI itself is not called)."""
    line = next(s for s in pipeline()["pypi"]["script"] if s.startswith("TWINE_PASSWORD="))
    done = subprocess.run(
        ["sh", "-ec", line + '\nprintf "%s" "$TWINE_PASSWORD"'],
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "response": response},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (code, out)
    if code:
        assert "PyPI refused the ID token: [{'code': 'invalid-publisher'}]" in done.stderr


def test_every_script_line_of_the_pipeline_is_valid_shell() -> None:
    ci = pipeline()
    lines = [line for job in ci.values() if isinstance(job, dict) for line in job.get("script", [])]
    assert len(lines) >= 10
    for line in lines:
        done = subprocess.run(["sh", "-n", "-c", line], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{line!r}: {done.stderr}"
