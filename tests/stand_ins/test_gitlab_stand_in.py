"""The GitLab stand-in's Terraform state API answers as GitLab documents it, so a pipeline that keeps its
state there proves the example's backend variables: the job token is required, and the lock is held."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.ca import LocalCA
from tests.fixtures.gitlab_server import GitLabStandIn

STATE = "/api/v4/projects/1217/terraform/state/authress"


@pytest.fixture
def gitlab(ca: LocalCA, tmp_path: Path) -> Iterator[GitLabStandIn]:
    stand_in = GitLabStandIn(ca, tmp_path / "repos", "the-job-token").start()
    yield stand_in
    stand_in.stop()


def client(ca: LocalCA, password: str = "the-job-token") -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.ca_path))
    return httpx.Client(verify=context, timeout=5, auth=("gitlab-ci-token", password))


def test_the_state_api_refuses_another_token_and_stores_nothing(gitlab: GitLabStandIn, ca: LocalCA) -> None:
    with client(ca, "a-guess") as http:
        assert http.post(gitlab.url + STATE, content=b'{"version": 4}').status_code == 401
        assert http.get(gitlab.url + STATE).status_code == 401
    assert gitlab.states == {} and [c.status for c in gitlab.calls] == [401, 401]


def test_the_state_api_stores_the_state_and_holds_the_lock(gitlab: GitLabStandIn, ca: LocalCA) -> None:
    with client(ca) as http:
        assert http.get(gitlab.url + STATE).status_code == 204
        assert http.post(gitlab.url + STATE + "/lock", content=b'{"ID": "first"}').status_code == 200
        taken = http.post(gitlab.url + STATE + "/lock", content=b'{"ID": "second"}')
        assert (taken.status_code, taken.content) == (409, b'{"ID": "first"}')
        assert http.post(gitlab.url + STATE + "?ID=first", content=b'{"version": 4}').status_code == 200
        assert http.request("DELETE", gitlab.url + STATE + "/lock").status_code == 200
        assert http.request("DELETE", gitlab.url + STATE + "/lock").status_code == 409
        assert http.get(gitlab.url + STATE).content == b'{"version": 4}'


@pytest.mark.slow
def test_git_fetches_a_commit_by_its_sha_as_from_gitlab(gitlab: GitLabStandIn, ca: LocalCA, tmp_path: Path) -> None:
    """A component pinned to a commit is fetched by that SHA, shallow (gitlab-ci-local does so)."""
    work = tmp_path / "work"
    identity = ["-c", "user.name=t", "-c", "user.email=t@127.0.0.1"]
    for args in (["init", "-q", str(work)], ["-C", str(work), *identity, "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], check=True, capture_output=True, timeout=60)
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    (gitlab.repos / "g").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(gitlab.repos / "g" / "p.git")], check=True)
    clone = tmp_path / "clone"
    env = {"GIT_SSL_CAINFO": str(ca.ca_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", str(clone)], check=True, env=env)
    fetched = subprocess.run(
        ["git", "-C", str(clone), "fetch", "--depth=1", f"{gitlab.url}/g/p.git", sha.stdout.strip()],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert fetched.returncode == 0, fetched.stderr
