"""gitlab-ci-local as a second renderer beside tests/fixtures/ci_inputs.py: the component included with
the same inputs gives, in a real GitLab CI engine (`--preview`: includes, inputs and `extends`
resolved), the job ci_inputs gives, and the engine refuses what ci_inputs refuses. ci_inputs keeps
the refusals gitlab-ci-local does not make (an unknown input name, a bad default on an unused input,
`regex` on a number input): tests/docs/test_gitlab_component.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.docs.test_gitlab_component import ACCEPTED, COMPONENT, REFUSED, REQUIRED, job_of, render

from .gitlab_ci_local import Engine, engine, git

pytestmark = pytest.mark.e2e


def preview(tmp_path: Path, inputs: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`gitlab-ci-local --preview` of a project including the component by `include: local` with `inputs`."""
    project = tmp_path / "project"
    (project / "templates").mkdir(parents=True)
    (project / "templates" / COMPONENT.name).write_text(COMPONENT.read_text(encoding="utf-8"), encoding="utf-8")
    include = {"local": f"templates/{COMPONENT.name}", "inputs": inputs}
    pipeline = {"include": [include], "apply": {"extends": ".authress-gitlab-token", "script": ["terraform apply"]}}
    with (project / ".gitlab-ci.yml").open("w", encoding="utf-8") as out:
        YAML().dump(pipeline, out)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "pipeline")
    runner = Engine(engine(), project, tmp_path / "home", {})
    args = [runner.launcher, "--preview", "--home", str(tmp_path / "home" / "gcl"), "--no-json-schema-validation"]
    return subprocess.run(
        [*args, "--no-color"], cwd=project, env=runner.env, capture_output=True, text=True, timeout=120, check=False
    )


@ACCEPTED
def test_gitlab_ci_local_renders_the_job_ci_inputs_renders(given: dict[str, Any], tmp_path: Path) -> None:
    done = preview(tmp_path, {**REQUIRED, **given})
    assert done.returncode == 0, done.stderr
    got = YAML(typ="safe").load(done.stdout)["apply"]
    expected = job_of(render(**given))
    for key in ("id_tokens", "variables", "before_script", "script"):
        assert got[key] == expected[key], key
    assert [{"key": c["key"], "paths": c["paths"]} for c in got["cache"]] == expected["cache"]


@REFUSED
def test_gitlab_ci_local_refuses_what_ci_inputs_refuses(given: dict[str, Any], message: str, tmp_path: Path) -> None:
    done = preview(tmp_path, {k: v for k, v in {**REQUIRED, **given}.items() if v is not None})
    assert done.returncode != 0
    name = next(iter(given))
    assert f"This GitLab CI configuration is invalid: `templates/{COMPONENT.name}`: `{name}` input" in done.stderr
