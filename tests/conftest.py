"""Shared fixtures: a test CA, a GitLab-like issuer over TLS on loopback, and the helper run as
Terraform runs it (tests/fixtures/helper.py). Every output the helper produces is kept and scanned for leaked tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, RUNS, Helper, InProcess, cut_runs, leaked_runs
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

# The longest files, minutes of one worker's time each (docs/testing.md): `make test` starts them first.
LONGEST = ("tests/docs/test_dist.py", "tests/e2e/test_component_pipelines.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """LONGEST first, each file whole and in its own order: `make test` hands whole files to its workers
    in this order (--no-loadscope-reorder), so neither is left to start last and end the run late."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST)


@pytest.fixture(scope="session", autouse=True)
def no_token_leaks() -> Iterator[None]:
    """Suite-wide secret hygiene: after all tests, no output the helper produced holds a token."""
    yield
    leaked = leaked_runs(RUNS)
    if leaked:
        raise AssertionError(f"{len(leaked)} helper run(s) printed a token: {leaked[:5]}")


@pytest.fixture(scope="session", autouse=True)
def no_message_cut() -> Iterator[None]:
    """Suite-wide: no failure the tests provoke was cut in the middle to fit one line (the fix could go)."""
    yield
    cut = cut_runs(RUNS)
    if cut:
        raise AssertionError(f"{len(cut)} helper run(s) printed a message cut in the middle: {cut[:3]}")


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    """A key the issuer does not publish: an attacker's, or another issuer's."""
    return SigningKey.generate()


@pytest.fixture(scope="session")
def issuer_server(ca: LocalCA, signing_key: SigningKey) -> Iterator[LocalIssuer]:
    server = LocalIssuer(ca, [signing_key]).start()
    yield server
    server.stop()


@pytest.fixture
def issuer(issuer_server: LocalIssuer, signing_key: SigningKey) -> LocalIssuer:
    issuer_server.reset(keys=[signing_key])
    return issuer_server


@pytest.fixture(scope="session")
def authress_server(ca: LocalCA) -> Iterator[AuthressStandIn]:
    server = AuthressStandIn(ca, ACCOUNT_ID).start()
    yield server
    server.stop()


@pytest.fixture
def authress(authress_server: AuthressStandIn) -> AuthressStandIn:
    """The Authress stand-in for account acc-1a2b3c, empty: no trusted identity, no access record."""
    authress_server.reset()
    return authress_server


@pytest.fixture
def token(issuer: LocalIssuer, signing_key: SigningKey) -> str:
    """A valid GitLab ID token for my-org/authress-configuration on main."""
    return mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))


@pytest.fixture
def helper(ca: LocalCA, tmp_path: Path) -> Helper:
    """The helper run in process (tests/fixtures/helper.py)."""
    home = tmp_path / "home"
    home.mkdir()
    return Helper(ca, home)


@pytest.fixture
def process(ca: LocalCA, tmp_path: Path) -> Helper:
    """The installed console script started as a process, for what only a process shows."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Helper(ca, home, process=True)


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(capsys, monkeypatch)
