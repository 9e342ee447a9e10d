"""The distributions a release publishes: built once by `make dist`, checked by twine, installed into fresh
venvs outside the repository (from the wheel, from a local package index, from a git tag) and run against
the local issuer; and the core tests run at the lowest dependency versions the package declares.

Dependencies come from PyPI (pip's cache makes repeats quick)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.version import Version

from authress_gitlab_token import __version__
from tests.fixtures.helper import AUDIENCE, BIN_DIR, PROJECT, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.venvs import ROOT, Venv, clean_env

pytestmark = pytest.mark.dist

NAME = "authress-gitlab-token"
FLOORED = ("httpx", "pyjwt", "jsonschema", "cryptography")
# The tests that exercise each dependency through the real helper: httpx (keys, the Authress check, the one
# deadline against hostile servers, proxies and the CA from the run's settings), PyJWT and cryptography
# (RS256, Ed25519 service-client keys, the test CA), jsonschema (the query).
CORE_TESTS = (
    "protocol/test_external refusals/test_token refusals/test_claims protocol/test_settings faults/test_keys "
    "protocol/test_service_client faults/test_authress_check faults/test_hostile_servers faults/test_network"
).split()


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path

    def metadata(self) -> Message:
        with zipfile.ZipFile(self.wheel) as whl:
            text = whl.read(f"authress_gitlab_token-{__version__}.dist-info/METADATA").decode()
        return HeaderParser().parsestr(text)


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """`make dist`, as the release pipeline runs it, into a directory of this session; `-o` keeps make from
    reinstalling the venv the tests run in."""
    out = tmp_path_factory.mktemp("dist")
    installed = Path(sys.prefix) / "bin" / ".installed"
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", str(installed), "dist", f"DIST={out}", f"VENV={sys.prefix}"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert [p.name for p in wheels + sdists] == [
        f"authress_gitlab_token-{__version__}-py3-none-any.whl",
        f"authress_gitlab_token-{__version__}.tar.gz",
    ]
    return Dists(wheels[0], sdists[0])


def runs_and_verifies(venv: Venv, helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """The installed helper, from `venv` only, prints its version and verifies a token as Terraform runs it."""
    version = venv.run(NAME, "--version")
    assert (version.returncode, version.stdout) == (0, f"{NAME} {__version__}\n"), version.stderr
    where = venv.run("python", "-c", "import authress_gitlab_token as m; print(m.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(venv.path), where.stdout + where.stderr
    helper.env["PATH"] = str(venv.bin)
    run = helper.external(
        {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT, "ref_type": "branch", "ref": "main"},
        token,
    )
    assert run.returncode == 0, run.stderr
    assert run.result["access_token"] == token
    assert run.result["user_id"] == "project_path:my-org/authress-configuration:ref_type:branch:ref:main"


# --- the files ------------------------------------------------------------------------------------


def test_twine_check_strict_passes_on_the_wheel_and_the_sdist(dists: Dists) -> None:
    done = subprocess.run(
        [str(BIN_DIR / "twine"), "check", "--strict", str(dists.wheel), str(dists.sdist)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


def test_the_wheel_holds_the_schema_the_type_marker_and_the_license_and_nothing_else(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as whl:
        names = set(whl.namelist())
        schema = json.loads(whl.read("authress_gitlab_token/query.schema.json"))
        entry_points = whl.read(f"authress_gitlab_token-{__version__}.dist-info/entry_points.txt").decode()
    assert {"authress_gitlab_token/query.schema.json", "authress_gitlab_token/py.typed"} <= names
    assert "audience" in schema["properties"]
    info = f"authress_gitlab_token-{__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    assert {n.split("/")[0] for n in names} == {"authress_gitlab_token", info}, "tests or scripts leaked in"
    # The console script is the packaging standard's: pip writes it from the entry point.
    assert f"{NAME} = authress_gitlab_token.entry:main" in entry_points.splitlines()
    package = ROOT / "helper"
    modules = {p.relative_to(package).as_posix() for p in (package / "authress_gitlab_token").rglob("*.py")}
    assert modules - names == set(), "a module (of keys/, setup/?) is missing from the wheel"


def test_the_sdist_holds_what_a_rebuild_and_a_reader_need(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "LICENSE", "helper/authress_gitlab_token/py.typed"} <= names
    assert "helper/authress_gitlab_token/query.schema.json" in names


def test_the_metadata_is_complete(dists: Dists) -> None:
    meta = dists.metadata()
    assert (meta["Name"], meta["Version"]) == (NAME, __version__)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    classifiers = meta.get_all("Classifier") or []
    for wanted in ("Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3 :: Only"):
        assert wanted in classifiers
    assert "Typing :: Typed" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Source", "Issues", "Changelog", "Documentation", "GitLab ID tokens", "Authress"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    assert set(floors(dists)) == set(FLOORED)


def floors(dists: Dists) -> dict[str, str]:
    """The declared lower bound of each dependency, from the wheel's own metadata: what pip will accept."""
    found = {}
    for req in dists.metadata().get_all("Requires-Dist") or []:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*\(?>=\s*([\w.]+)", req)
        if match and "extra ==" not in req:
            found[match[1].lower()] = match[2]
    return found


# --- installs -------------------------------------------------------------------------------------


def test_the_wheel_installs_into_a_fresh_venv_and_verifies_a_token(
    dists: Dists, tmp_path: Path, helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    venv = Venv.create(tmp_path / "venv")
    venv.pip("install", "--quiet", str(dists.wheel))
    runs_and_verifies(venv, helper, issuer, token)


def test_the_core_tests_pass_at_the_lowest_declared_versions(dists: Dists, tmp_path: Path) -> None:
    """pip constraints pin each dependency at the floor the wheel declares; the core tests then run there."""
    wanted = floors(dists)
    constraints = tmp_path / "floors.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in wanted.items()))
    venv = Venv.create(tmp_path / "venv")
    venv.pip("install", "--quiet", "--constraint", str(constraints), str(dists.wheel), "pytest", "hypothesis")
    installed = venv.versions(*wanted)
    assert {k: Version(v) for k, v in installed.items()} == {k: Version(v) for k, v in wanted.items()}
    done = venv.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--basetemp={tmp_path / 'pytest'}",
        *(f"tests/{name}.py" for name in CORE_TESTS),
        cwd=ROOT,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"^\d+ passed", done.stdout.splitlines()[-1]), done.stdout[-500:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def package_index(tmp_path: Path) -> Iterator[str]:
    """pypiserver on 127.0.0.1, uploads open (`-a . -P .`). A name it lacks is redirected to PyPI, as
    GitLab's package registry forwards it: that is where the helper's dependencies come from."""
    packages = tmp_path / "packages"
    packages.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [str(BIN_DIR / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", ".", str(packages)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "pypi-server exited"
            try:
                with urllib.request.urlopen(f"{url}/simple/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "pypi-server did not answer within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_upload_to_a_package_index_installs_by_pinned_name_and_runs(
    dists: Dists, package_index: str, tmp_path: Path, helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    twine = [str(BIN_DIR / "twine"), "upload", "--non-interactive", "--repository-url", f"{package_index}/"]
    upload = subprocess.run(
        [*twine, "-u", "ci", "-p", "ci", str(dists.wheel), str(dists.sdist)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upload.returncode == 0, upload.stdout + upload.stderr
    venv = Venv.create(tmp_path / "venv")
    report = tmp_path / "report.json"
    venv.pip(
        "install",
        "--quiet",
        "--index-url",
        f"{package_index}/simple/",
        "--report",
        str(report),
        f"{NAME}=={__version__}",
    )
    items = json.loads(report.read_text())["install"]
    installed = {i["metadata"]["name"].lower(): i["download_info"]["url"] for i in items}
    assert installed[NAME] == f"{package_index}/packages/{dists.wheel.name}"
    assert {"httpx", "pyjwt", "jsonschema", "cryptography"} <= set(installed)
    runs_and_verifies(venv, helper, issuer, token)


def test_a_git_url_at_the_release_tag_installs_and_runs(
    tmp_path: Path, helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """The README's route until the package is on PyPI, from a clone of this commit tagged as the release."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    repo = tmp_path / "authress-gitlab-token"

    def git(*args: str, cwd: Path = repo) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=120)

    git("clone", "--quiet", "--no-checkout", str(ROOT), str(repo), cwd=tmp_path)
    git("checkout", "--quiet", "--detach", head.strip())
    git("tag", "--force", __version__)
    venv = Venv.create(tmp_path / "venv")
    venv.pip("install", "--quiet", f"{NAME} @ git+file://{repo}@{__version__}")
    runs_and_verifies(venv, helper, issuer, token)
