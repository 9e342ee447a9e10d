"""Hostile servers, for key fetching and for the Authress check: compression bombs, trickled headers and
bodies, broken encodings, unusable URLs and certificates from an unknown CA. The helper runs as
Terraform runs it; each test asserts the outcome (exit status, the one-line message) and that the run
ends by itself within a bounded wait. Memory and time figures are measured by bench/hostile.py."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from authress_gitlab_token import authress
from authress_gitlab_token.calls import Budget
from authress_gitlab_token.keys.lookup import fetch_bound
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import ACCOUNT_ID, AUDIENCE, STARTUP, Helper, Run, query
from tests.fixtures.hostile import answer, gzip_bomb, running_hostile, trickled_headers, trickling_issuer
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

TIMEOUT = 0.5  # AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT for the slow-server tests
SLOW = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": str(TIMEOUT)}
CHECK_BOUND = Budget(authress.ATTEMPTS, TIMEOUT).seconds  # the Authress check's


def checked(issuer: LocalIssuer, api_url: str) -> dict[str, str]:
    return query(issuer.url, check="authress", api_url=api_url)


def timed_external(helper: Helper, q: dict[str, Any], token: str, bound: float, env: Any = None) -> tuple[Run, float]:
    """One run that must end by itself: the subprocess is killed (and the test fails) past `bound` + slack."""
    started = time.monotonic()
    run = helper.external(q, token, env=env, timeout=bound + 2 * STARTUP)
    return run, time.monotonic() - started


# --- bounded memory: compressed and plain bodies ---------------------------------------------------------


@pytest.mark.parametrize("path", [DISCOVERY_PATH, JWKS_PATH])
def test_a_gzip_bomb_from_the_issuer_is_refused_at_the_decoded_cap(
    helper: Helper, issuer: LocalIssuer, token: str, path: str
) -> None:
    """64 MiB of spaces in 64 KiB of gzip: refused once 1 MiB is decoded, never buffered whole."""
    issuer.script(path, Reply(body=gzip_bomb(64), headers={"Content-Encoding": "gzip"}))
    helper.external(query(issuer.url), token).refused(f'{path}" sent more than 1048576 bytes')


def test_a_gzipped_key_set_within_the_cap_is_accepted(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """The control: a server that compresses as nginx in front of GitLab does is still understood."""
    issuer.script(
        DISCOVERY_PATH,
        Reply(body=gzip.compress(json.dumps(issuer.discovery()).encode()), headers={"Content-Encoding": "gzip"}),
    )
    issuer.script(
        JWKS_PATH, Reply(body=gzip.compress(json.dumps(issuer.jwks()).encode()), headers={"Content-Encoding": "gzip"})
    )
    run = helper.external(query(issuer.url), token)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,gzip,gzip", "br", "deflate", "zstd"])
def test_stacked_or_unasked_encodings_are_refused_before_decoding(
    helper: Helper, issuer: LocalIssuer, token: str, encoding: str
) -> None:
    """The review's bomb: 3.5 KB of `gzip, gzip` grew to 4.1 GiB. Only the single gzip asked for is decoded."""
    issuer.script(DISCOVERY_PATH, Reply(body=gzip_bomb(1024, layers=2), headers={"Content-Encoding": encoding}))
    helper.external(query(issuer.url), token).refused(
        f'answered with Content-Encoding "{encoding}", but only a single gzip was asked for'
    )


@pytest.mark.parametrize(
    "body",
    [b"\x1f\x8b\x08\x00garbage-not-deflate", gzip.compress(b'{"issuer": "x"}')[:-12], gzip.compress(b"{}") + b"tail"],
    ids=["garbage", "truncated", "trailing-data"],
)
def test_a_broken_gzip_body_is_refused_with_one_line(
    helper: Helper, issuer: LocalIssuer, token: str, body: bytes
) -> None:
    issuer.script(DISCOVERY_PATH, Reply(body=body, headers={"Content-Encoding": "gzip"}))
    run = helper.external(query(issuer.url), token)
    run.refused('openid-configuration" sent a body that is not valid gzip', "a proxy or server in between")
    assert issuer.hits(DISCOVERY_PATH) == 1, "a corrupt body is not retried"


def test_a_gzip_bomb_from_authress_is_refused_at_the_decoded_cap(
    helper: Helper, issuer: LocalIssuer, ca: LocalCA, token: str
) -> None:
    """The Authress check reads the body the same way: 1.8 KB had grown to 2.1 GiB."""
    bomb = gzip_bomb(64)
    with running_hostile(ca, lambda path: answer(bomb, Content_Encoding="gzip")) as api:
        helper.external(checked(issuer, api.url), token).refused(
            f'"{api.url}/v1/accounts/{ACCOUNT_ID}" sent more than 1048576 bytes'
        )
    with running_hostile(ca, lambda path: answer(bomb, Content_Encoding="gzip, gzip")) as api:
        helper.external(checked(issuer, api.url), token).refused('Content-Encoding "gzip, gzip"')


# --- one deadline: connect, TLS, headers, body ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_server_trickling_bytes_is_cut_at_the_stated_bound(
    helper: Helper, ca: LocalCA, signing_key: SigningKey, part: str
) -> None:
    """One byte every 0.1 s: every read succeeds well within the 0.5 s timeout, yet the lookup ends
    within 4 x (timeout + 1 s), as the README states. Before, headers trickled without limit."""

    with trickling_issuer(ca, part, 0.1) as server:
        token = mint(signing_key, gitlab_claims(server.url, AUDIENCE))
        run, elapsed = timed_external(helper, query(server.url), token, fetch_bound(TIMEOUT), SLOW)
        run.refused(f'could not fetch "{server.url}{JWKS_PATH}": timed out', "after 1 attempt(s)")
        assert fetch_bound(TIMEOUT) - 0.5 <= elapsed < fetch_bound(TIMEOUT) + STARTUP


@pytest.mark.slow
def test_authress_trickling_headers_is_cut_at_the_check_bound(
    helper: Helper, issuer: LocalIssuer, ca: LocalCA, token: str
) -> None:
    with running_hostile(ca, lambda path: trickled_headers(0.1)) as api:
        run, elapsed = timed_external(helper, checked(issuer, api.url), token, CHECK_BOUND, SLOW)
        run.refused(f'Authress at "{api.url}/v1/accounts/{ACCOUNT_ID}": timed out', "after 1 attempt(s)")
        assert elapsed < CHECK_BOUND + STARTUP


@pytest.mark.slow
def test_a_server_that_never_finishes_the_tls_handshake_is_cut_at_the_bound(
    helper: Helper, signing_key: SigningKey
) -> None:
    """Connect succeeds, TLS never completes: the listener accepts and says nothing."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        token = mint(signing_key, gitlab_claims(url, AUDIENCE))
        run, elapsed = timed_external(helper, query(url), token, fetch_bound(TIMEOUT), SLOW)
    run.refused("openid-configuration", 'timed out in the TLS handshake with "127.0.0.1" after')
    assert elapsed < fetch_bound(TIMEOUT) + STARTUP


# --- unusable URLs and certificates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "jwks_uri",
    ["{url}/oauth\n/discovery/keys", "https://[zz]/oauth/discovery/keys", "https://[::1/oauth/discovery/keys"],
    ids=["newline", "bad-ipv6", "unclosed-ipv6"],
)
def test_a_jwks_uri_that_is_not_a_url_is_refused_with_one_line(
    helper: Helper, issuer: LocalIssuer, token: str, jwks_uri: str
) -> None:
    issuer.discovery_overrides = {"jwks_uri": jwks_uri.format(url=issuer.url)}
    run = helper.external(query(issuer.url), token)
    run.refused("is not a URL that can be fetched", f'the discovery document of "{issuer.url}" names it as jwks_uri')
    assert "internal error" not in run.stderr


def test_a_certificate_from_an_unknown_ca_is_named_and_not_retried(
    helper: Helper, signing_key: SigningKey, tmp_path: Any
) -> None:
    """A self-managed GitLab with a private CA: the run says which host and that SSL_CERT_FILE must hold
    that CA, after one connection per URL instead of four (discovery and GitLab's usual JWKS URL go out
    at once, keys/lookup.py)."""
    stranger = LocalCA.create(tmp_path / "other-ca", name="a CA the runner does not trust")
    with running_hostile(stranger, lambda path: answer(b"{}")) as server:
        token = mint(signing_key, gitlab_claims(server.url, AUDIENCE))
        run = helper.external(query(server.url), token)
        run.refused(
            'the TLS certificate of "127.0.0.1" did not verify (unable to get local issuer certificate)',
            "set SSL_CERT_FILE (or SSL_CERT_DIR) to a file holding that CA",
        )
        assert server.connections == 2


def test_authress_with_a_certificate_from_an_unknown_ca_is_named(
    helper: Helper, issuer: LocalIssuer, token: str, tmp_path: Any
) -> None:
    stranger = LocalCA.create(tmp_path / "other-ca", name="a CA the runner does not trust")
    with running_hostile(stranger, lambda path: answer(b"{}")) as api:
        helper.external(checked(issuer, api.url), token).refused(
            'the TLS certificate of "127.0.0.1" did not verify', "SSL_CERT_FILE"
        )
        assert api.connections == 1


def test_a_missing_ca_file_is_named_before_any_connection(
    helper: Helper, signing_key: SigningKey, tmp_path: Any
) -> None:
    """SSL_CERT_FILE naming no file made httpx raise FileNotFoundError, an internal error; now one line."""
    with running_hostile(LocalCA.create(tmp_path / "ca"), lambda path: answer(b"{}")) as server:
        helper.env["SSL_CERT_FILE"] = str(tmp_path / "no-such-ca.pem")
        token = mint(signing_key, gitlab_claims(server.url, AUDIENCE))
        run = helper.external(query(server.url), token)
        # The path is quoted, its end cut when long (a deep temporary folder): its start and the verdict.
        run.refused(f'SSL_CERT_FILE is "{str(tmp_path)[:40]}', '", which is not a file', "PEM file")
        assert "internal error" not in run.stderr
        assert server.connections == 0
