"""Secret hygiene: the ID token never appears in stderr, log records or anywhere in stdout but
`access_token`. The suite-wide check (conftest `no_token_leaks`) is shown here to catch a planted leak."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token import verify
from authress_gitlab_token.errors import VerificationFailed
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import (
    AUDIENCE,
    PROJECT,
    Helper,
    InProcess,
    Run,
    argv,
    leaked_runs,
    leaks,
    query,
    safe,
    spoilt_pieces,
)
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, forge, gitlab_claims, mint, tampered


def test_leak_check_flags_a_token_anywhere_but_the_access_token_of_a_success(token: str) -> None:
    signature = token.rsplit(".", 1)[1]
    unsigned = forge({"alg": "none", "kid": "k"}, {"sub": "x"})
    ok = json.dumps({"access_token": token, "user_id": "x"})
    planted = {
        "stderr": Run(("external",), 1, "", f"authress-gitlab-token: bad token {token}\n"),
        "signature in stderr": Run(("external",), 1, "", f"sig {signature}\n"),
        "unsigned token in stderr": Run(("external",), 1, "", f"{unsigned}\n"),
        "another output key": Run(("external",), 0, json.dumps({"access_token": token, "debug": token}), ""),
        "stdout of a refusal": Run(("external",), 1, ok, "authress-gitlab-token: no\n"),
        "stdout that is not JSON": Run(("external",), 0, f"token={token}\n", ""),
        "another command": Run(("doctor",), 0, ok, ""),
    }
    for what, run in planted.items():
        assert leaked_runs([run]) != [], f"not flagged: {what}"
    assert leaked_runs([Run(("external",), 0, ok, "")]) == []
    assert leaked_runs([Run(("external",), 1, "", "authress-gitlab-token: signature does not verify\n")]) == []


def test_assertion_messages_mask_tokens(token: str) -> None:
    text = safe(f"got {token} and {token.rsplit('.', 1)[1]}")
    assert not leaks(text) and text == "got [token] and [token]"


@pytest.fixture
def cold_run_env(ca: LocalCA, tmp_path: Path) -> dict[str, str]:
    return {
        "SSL_CERT_FILE": str(ca.ca_path),
        "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(tmp_path / "cache"),
        "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "2",
    }


def test_no_log_record_at_any_level_holds_the_token(
    in_process: InProcess,
    issuer: LocalIssuer,
    signing_key: SigningKey,
    token: str,
    cold_run_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    stdin = json.dumps({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT, "ref": "main"}).encode()
    run = in_process.run(["external"], stdin, {**cold_run_env, "AUTHRESS_KEY": token})
    assert run.returncode == 0, safe(run.stderr)
    other_branch = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="feature/x"))
    in_process.run(["external"], stdin, {**cold_run_env, "AUTHRESS_KEY": other_branch}).refused('claim "ref"')

    assert any(r.name.startswith("httpx") for r in caplog.records), "the cold fetch logged nothing: capture broken?"
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert not leaks(logged)


@pytest.mark.parametrize("command", ["external", "env", "doctor", "doctor --json"])
def test_a_message_that_held_the_token_is_redacted_before_it_is_printed(
    in_process: InProcess,
    issuer: LocalIssuer,
    token: str,
    cold_run_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """Defence in depth for a future bug: messages are built without the token, and every output of
    every command is redacted anyway (doctor's report included, which once was not)."""

    def careless(checked: verify.Verification) -> str:
        jwt = checked.token
        raise VerificationFailed(f"refused {jwt} (signature {jwt.rsplit('.', 1)[1]})")

    monkeypatch.setattr(verify, "_signature", careless)  # the check every command runs
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}
    environ = {**cold_run_env, "AUTHRESS_KEY": token}
    if command == "external":
        in_process.run(["external"], json.dumps(query).encode(), environ).refused("refused [redacted] (signature")
        return
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in query.items()]
    run = in_process.run([*command.split(), *flags], b"", environ)
    assert run.returncode == 1 and "refused [redacted] (signature [redacted])" in run.stdout + run.stderr
    assert not leaks(run.stdout + run.stderr)


def test_messages_about_a_spoilt_token_never_hold_it(token: str, signing_key: SigningKey) -> None:
    """The messages themselves, before any redaction: a bad signature, and a stray character."""
    from authress_gitlab_token.errors import HelperError
    from authress_gitlab_token.settings import from_query
    from authress_gitlab_token.sources import find_credential

    issuer = "https://gitlab.example.com"
    settings = from_query({"audience": AUDIENCE, "issuer": issuer, "project_path": PROJECT}, {})
    good = mint(signing_key, gitlab_claims(issuer, AUDIENCE))
    header, payload, signature = good.split(".")

    def jwk(kid: str) -> dict[str, Any]:
        return signing_key.public_jwk()

    for spoilt, call in [
        (f"{header}.{payload}.{signature[:-6]}AAAAAA", lambda t: verify.verify(t, settings, jwk)),
        (f"{header}.{payload}.{signature[:9]}\t{signature[9:]}", lambda t: find_credential({"K": t}, "K", AUDIENCE)),
        (f"{header}.{payload}.{signature[:9]}!{signature[9:]}", lambda t: find_credential({"K": t}, "K", AUDIENCE)),
    ]:
        with pytest.raises(HelperError) as refused:
            call(spoilt)
        message = str(refused.value)
        assert "signature does not verify" in message or "inside the token" in message
        assert not any(piece in message for piece in spoilt_pieces(good, spoilt)), safe(message)


def test_an_internal_error_carrying_the_token_prints_only_its_type(
    in_process: InProcess,
    issuer: LocalIssuer,
    token: str,
    cold_run_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(jwt: str, *args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError(jwt)

    monkeypatch.setattr(verify, "verify", crash)
    stdin = json.dumps({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}).encode()
    run = in_process.run(["external"], stdin, {**cold_run_env, "AUTHRESS_KEY": token})
    run.refused("internal error (RuntimeError)")


def stray(token: str) -> str:
    """`token` with a tab inside its signature."""
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:10]}\t{signature[10:]}"


@pytest.mark.parametrize(
    ("spoil", "refusal"),
    [(tampered, "signature does not verify"), (stray, "whitespace at position")],
    ids=["bad-signature", "stray-character"],
)
def test_no_command_prints_a_spoilt_token(
    helper: Helper, issuer: LocalIssuer, token: str, spoil: Callable[[str], str], refusal: str
) -> None:
    """The leak scan knows only the tokens minted: a spoilt one is looked for here, raw and escaped."""
    bad = spoil(token)
    doctor = argv("doctor", **query(issuer, check="none"))
    runs = [helper.external(query(issuer), bad)]
    runs += [helper.run(args, env={"AUTHRESS_KEY": bad}) for args in (argv("env", **query(issuer)), doctor)]
    runs.append(helper.run([*doctor, "--json"], env={"AUTHRESS_KEY": bad}))
    pieces = spoilt_pieces(token, bad)
    for run in runs:
        assert run.returncode == 1
        assert not any(piece in run.stdout + run.stderr for piece in pieces), run.args
        assert refusal in run.stdout + run.stderr, run.args
