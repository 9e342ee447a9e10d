"""Shared fixtures: a test CA, a GitLab-like issuer over TLS on loopback, and the helper run as
Terraform runs it. Every output the helper produces is kept and scanned for leaked tokens."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.ca import LocalCA
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import MINTED, SigningKey, gitlab_claims, mint

ACCOUNT_ID = "acc-1a2b3c"
AUDIENCE = f"https://{ACCOUNT_ID}.api.authress.io"
PROJECT = "my-org/authress-configuration"  # the project of `token`; queries bind it (issue 12)
PROGRAM = "authress-gitlab-token"
BIN_DIR = Path(sys.executable).parent
MAX_LINE = 400  # a refusal is one line a person reads in a CI log: under this many characters


@dataclass(frozen=True)
class Run:
    """One helper process. `stdout` is kept out of repr: on success it holds the token."""

    args: tuple[str, ...]
    returncode: int
    stdout: str = field(repr=False)
    stderr: str

    @property
    def result(self) -> dict[str, str]:
        """stdout parsed the way Terraform does: exactly one JSON object of strings."""
        value = json.loads(self.stdout)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise AssertionError("stdout is not a JSON object of strings")
        return value

    def refused(self, *fragments: str, code: int = 1) -> None:
        """Assert a one-line `authress-gitlab-token:` error under MAX_LINE characters holding each
        fragment, and nothing on stdout."""
        if self.returncode != code:
            raise AssertionError(f"exit {self.returncode}, expected {code}; stderr: {safe(self.stderr)!r}")
        if self.stdout:
            raise AssertionError("a refused run wrote to stdout")
        lines = self.stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("authress-gitlab-token: "):
            raise AssertionError(f"stderr is not one prefixed line: {safe(self.stderr)!r}")
        if len(lines[0]) >= MAX_LINE:
            raise AssertionError(f"stderr is {len(lines[0])} characters, not under {MAX_LINE}: {safe(self.stderr)!r}")
        for fragment in fragments:
            if fragment not in self.stderr:
                raise AssertionError(f"{fragment!r} not in stderr {safe(self.stderr)!r}")
        if leaks(self.stderr):
            raise AssertionError(f"stderr holds a token: {safe(self.stderr)!r}")


RUNS: list[Run] = []


def _secrets(tokens: set[str]) -> list[str]:
    """Each token and its signature part (when long enough that a chance match is impossible), longest first.

    A token with an empty signature (alg none) is still a secret-shaped string: it is checked whole."""
    pieces = set(tokens) | {t.rsplit(".", 1)[-1] for t in tokens if len(t.rsplit(".", 1)[-1]) >= 16}
    return sorted(pieces, key=len, reverse=True)


def safe(text: str) -> str:
    """`text` with every minted token masked, for assertion messages."""
    for piece in _secrets(MINTED):
        text = text.replace(piece, "[token]")
    return text


def leaks(text: str, tokens: set[str] = MINTED) -> bool:
    """True when `text` holds any minted token or its signature part."""
    return any(piece in text for piece in _secrets(tokens))


ENV_LINE = re.compile(r"^(export )?AUTHRESS_KEY=\S+$")


def allowed_stdout(run: Run) -> str:
    """stdout with the one place a token may appear removed: `access_token` of a successful `external`
    run, or the first `AUTHRESS_KEY=` line of a successful `env` run."""
    if run.returncode == 0 and run.args[:1] == ("external",):
        try:
            value = json.loads(run.stdout)
            value.pop("access_token", None)
            return json.dumps(value)
        except (ValueError, AttributeError):
            return run.stdout  # not the object Terraform expects: scan all of it
    if run.returncode == 0 and run.args[:1] == ("env",):
        lines = run.stdout.splitlines()
        first = next((i for i, line in enumerate(lines) if ENV_LINE.match(line)), None)
        return "\n".join(line for i, line in enumerate(lines) if i != first)
    return run.stdout


def leaked_runs(runs: list[Run], tokens: set[str] = MINTED) -> list[str]:
    """The runs whose stderr, or stdout outside the allowed place, holds a token."""
    return [
        f"{' '.join(r.args)} (exit {r.returncode})"
        for r in runs
        if leaks(r.stderr, tokens) or leaks(allowed_stdout(r), tokens)
    ]


@pytest.fixture(scope="session", autouse=True)
def no_token_leaks() -> Iterator[None]:
    """Suite-wide secret hygiene: after all tests, no output the helper produced holds a token."""
    yield
    leaked = leaked_runs(RUNS)
    if leaked:
        raise AssertionError(f"{len(leaked)} helper run(s) printed a token: {leaked[:5]}")


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


class Helper:
    """Runs the installed console script as Terraform does: argv list, no shell, JSON on stdin."""

    def __init__(self, ca: LocalCA, home: Path) -> None:
        self.cache_dir = home / "cache"
        self.env = {
            "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "SSL_CERT_FILE": str(ca.ca_path),
            "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(self.cache_dir),
            "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "2",
        }

    def run(
        self, args: list[str], stdin: bytes = b"", env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> Run:
        program = shutil.which(PROGRAM, path=self.env["PATH"])
        assert program, f"{PROGRAM} is not installed in {BIN_DIR}"
        full_env = {**self.env, **(env or {})}
        done = subprocess.run(
            [program, *args], input=stdin, env=full_env, capture_output=True, timeout=timeout, check=False
        )
        run = Run(tuple(args), done.returncode, done.stdout.decode(), done.stderr.decode())
        RUNS.append(run)
        return run

    def external(
        self,
        query: Mapping[str, Any],
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Run:
        """hashicorp/external's encoding: compact JSON, keys sorted, null values left out; a run that
        takes longer than `timeout` seconds fails the test."""
        stdin = json.dumps(
            {k: v for k, v in query.items() if v is not None}, separators=(",", ":"), sort_keys=True
        ).encode()
        extra = dict(env or {})
        if token is not None:
            extra.setdefault("AUTHRESS_KEY", token)
        return self.run(["external"], stdin, extra, timeout)

    def start(
        self, args: list[str], stdin: bytes = b"", env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """The program started, its stdin (at most a pipe's buffer) already written, for a test that acts
        while it runs."""
        program = shutil.which(PROGRAM, path=self.env["PATH"])
        assert program, f"{PROGRAM} is not installed in {BIN_DIR}"
        read_end, write_end = os.pipe()
        with open(write_end, "wb") as pipe:
            pipe.write(stdin)
        full_env = {**self.env, **(env or {})}
        with open(read_end, "rb") as given:
            pipe = subprocess.PIPE
            return subprocess.Popen([program, *args], stdin=given, stdout=pipe, stderr=pipe, env=full_env)

    def finish(self, child: subprocess.Popen[bytes], args: list[str], timeout: float = 60) -> Run:
        """The outcome of a program `start` started, recorded for the leak scan."""
        stdout, stderr = child.communicate(timeout=timeout)
        run = Run(tuple(args), child.returncode, stdout.decode(), stderr.decode())
        RUNS.append(run)
        return run


@pytest.fixture
def helper(ca: LocalCA, tmp_path: Path) -> Helper:
    home = tmp_path / "home"
    home.mkdir()
    return Helper(ca, home)


class InProcess:
    """The helper's `main()` inside pytest, for what a subprocess cannot show (log records); its
    stdout and stderr, taken with capsys, are recorded and scanned for leaks like a subprocess's."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def run(self, args: list[str], stdin: bytes, environ: Mapping[str, str]) -> Run:
        from authress_gitlab_token.cli import main

        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(args, environ)
        out, err = self.capsys.readouterr()
        run = Run(tuple(args), code, out, err)
        RUNS.append(run)
        return run


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(capsys, monkeypatch)
