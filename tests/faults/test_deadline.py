"""One deadline over every network wait, with the helper run as installed: a resolver that never answers,
a host whose addresses are all dead, a body trickled byte by byte, and proxies that cannot work or that
ask for credentials. The bounds asserted are the ones the product states (keys.lookup.fetch_bound for keys,
network.Budget for the Authress calls), plus STARTUP for starting Python on a busy machine.

The resolver is replaced inside the helper's own process (tests/fixtures/site/sitecustomize.py on
PYTHONPATH): the machine's DNS is never touched, and every address used is on loopback."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from authress_gitlab_token import authress, network
from authress_gitlab_token.calls import Budget, CallFailed, Wording, call_json
from authress_gitlab_token.environment import Http
from authress_gitlab_token.keys.lookup import fetch_bound
from authress_gitlab_token.setup import admin_api
from tests.fixtures.ca import LocalCA
from tests.fixtures.connect_proxy import running_proxy
from tests.fixtures.helper import (
    AUDIENCE,
    HTTP_TIMEOUT,
    STARTUP,
    Diagnosis,
    Helper,
    Run,
    doctor,
    guide,
    query,
    timed,
)
from tests.fixtures.issuer import DISCOVERY_PATH, LocalIssuer, Reply, running_issuer
from tests.fixtures.service_clients import ServiceClientKey
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


@pytest.fixture
def helper(process: Helper) -> Helper:
    """These tests are about the process: every run here starts the installed console script."""
    return process


SITE = Path(__file__).parents[1] / "fixtures" / "site"
CHECK_BOUND = Budget(authress.ATTEMPTS, HTTP_TIMEOUT).seconds  # the Authress check's
SETUP_BOUND = Budget(admin_api.ATTEMPTS, HTTP_TIMEOUT).seconds  # each admin call's; the first one fails here
SILENT = "issuer.silent.test"  # names the resolver never answers for
SILENT_API = "api.silent.test"


def resolving(table: dict[str, object], **extra: str) -> dict[str, str]:
    """The environment that makes the helper's resolver answer from `table` ("hang": never)."""
    return {"PYTHONPATH": str(SITE), "TEST_RESOLVER": json.dumps(table), **extra}


def run_within(
    helper: Helper, args: list[str], env: dict[str, str], bound: float, stdin: bytes = b""
) -> tuple[Run, float]:
    """One run, killed (failing the test, not hanging the suite) well past `bound`; and its seconds."""
    return timed(helper.run, args, stdin, env, timeout=bound + STARTUP + 10)


def diagnose_within(helper: Helper, issuer_url: str, env: dict[str, str], bound: float) -> tuple[Diagnosis, float]:
    """`doctor` (no Authress check) for `query(issuer_url)`, token in `env`, as `run_within` runs it."""
    return timed(doctor, helper, None, env=env, timeout=bound + STARTUP + 10, **query(issuer_url, check="none"))


@contextmanager
def dead_addresses(port: int, count: int) -> Iterator[list[str]]:
    """`count` loopback addresses where a connect to `port` hangs: a listener whose accept queue is full
    drops every further SYN, as a black-holed address does."""
    held: list[socket.socket] = []
    addresses = [f"127.0.0.{i}" for i in range(2, 2 + count)]
    try:
        for address in addresses:
            listener = socket.socket()
            listener.bind((address, port))
            listener.listen(0)
            held.append(listener)
            for _ in range(3):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex((address, port))
                held.append(filler)
        time.sleep(0.2)
        with socket.socket() as probe:  # the control: a connect there really hangs
            probe.settimeout(0.3)
            with pytest.raises(TimeoutError):
                probe.connect((addresses[0], port))
        yield addresses
    finally:
        for sock in held:
            sock.close()


# --- name resolution and addresses ------------------------------------------------------------------------


@pytest.mark.slow
def test_external_ends_by_its_bound_when_the_resolver_never_answers_and_blames_no_other_run(
    helper: Helper, signing_key: SigningKey
) -> None:
    url = f"https://{SILENT}"
    stdin = json.dumps(query(url)).encode()
    env = resolving({SILENT: "hang"}, AUTHRESS_KEY=mint(signing_key, gitlab_claims(url, AUDIENCE)))
    run, elapsed = run_within(helper, ["external"], env, fetch_bound(HTTP_TIMEOUT), stdin)
    run.refused(f'timed out connecting to "{SILENT}"', "check the issuer is reachable")
    assert "another run" not in run.stderr
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + STARTUP


@pytest.mark.slow
def test_doctor_ends_by_the_same_bound_when_the_resolver_never_answers(helper: Helper, signing_key: SigningKey) -> None:
    url = f"https://{SILENT}"
    env = resolving({SILENT: "hang"}, AUTHRESS_KEY=mint(signing_key, gitlab_claims(url, AUDIENCE)))
    diagnosis, elapsed = diagnose_within(helper, url, env, fetch_bound(HTTP_TIMEOUT))
    assert diagnosis.run.returncode == 1, diagnosis.run.stderr
    keys = diagnosis.step("issuer keys")
    assert keys["status"] == "fail" and f'timed out connecting to \\"{SILENT}\\"' in json.dumps(keys["detail"])
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + STARTUP


@pytest.mark.slow
def test_the_authress_check_ends_by_its_bound_when_the_resolver_never_answers(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    stdin = json.dumps(query(issuer.url, check="authress", api_url=f"https://{SILENT_API}")).encode()
    run, elapsed = run_within(
        helper, ["external"], resolving({SILENT_API: "hang"}, AUTHRESS_KEY=token), CHECK_BOUND, stdin
    )
    run.refused(f'timed out connecting to "{SILENT_API}"', "after 1 attempt(s)")
    assert elapsed < CHECK_BOUND + STARTUP


@pytest.mark.slow
def test_setup_plan_ends_by_its_bound_when_the_resolver_never_answers(helper: Helper, issuer: LocalIssuer) -> None:
    args = guide("--plan", issuer=issuer.url, api_url=f"https://{SILENT_API}", role="ro_terraform")
    env = resolving({SILENT_API: "hang"}, AUTHRESS_KEY=ServiceClientKey.generate().value)
    run, elapsed = run_within(helper, args, env, SETUP_BOUND)
    run.refused(f'timed out connecting to "{SILENT_API}"', "check --api-url")
    assert elapsed < SETUP_BOUND + STARTUP


@pytest.mark.slow
def test_a_host_whose_addresses_are_all_dead_ends_by_the_bound_of_the_key_lookup(
    helper: Helper, ca: LocalCA, signing_key: SigningKey
) -> None:
    """Sixteen black-holed addresses, each given the whole connect timeout by Python's
    socket.create_connection: the key lookup's deadline (3 s here) still ends the run, naming the host."""
    with running_issuer(ca, [signing_key], name="many.test") as many, dead_addresses(many.port, 16) as dead:
        env = resolving(
            {"many.test": dead},
            TEST_MAX_FETCH_SECONDS="3",
            AUTHRESS_KEY=mint(signing_key, gitlab_claims(many.url, AUDIENCE)),
        )
        run, elapsed = run_within(helper, ["external"], env, 3.0, json.dumps(query(many.url)).encode())
    run.refused('timed out connecting to "many.test"', "check the issuer is reachable")
    assert elapsed < 3.0 + STARTUP


@pytest.mark.slow
def test_a_trickled_body_ends_by_the_deadline_not_by_the_socket_timeout(issuer: LocalIssuer, ca: LocalCA) -> None:
    """One byte every 50 ms for 1.8 s, then silence: every read gets its byte well within the 5 s timeout,
    so only the 2 s deadline of the call ends it (not 1.8 + 5 s)."""
    issuer.script(DISCOVERY_PATH, Reply(trickle=1.8))
    wording = Wording(lead="could not fetch", reach="check it", not_ours="not ours")
    with network.session(Http(timeout=5.0, ca_file=str(ca.ca_path))) as session:
        started = time.monotonic()  # the client is made: the deadline starts with the request
        with pytest.raises(CallFailed, match="timed out reading the answer"):
            call_json(
                session,
                "GET",
                issuer.url + DISCOVERY_PATH,
                wording,
                Budget(4, 5.0),
                accepted=(200,),
                deadline=started + 2.0,
            )
        ended = time.monotonic()
    assert issuer.arrivals[0] - started < 0.2, "the trickle must end before the deadline for this to test anything"
    assert ended - started < 2.7


@pytest.mark.slow
def test_the_cli_ends_a_trickled_body_by_its_deadline(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """The same through doctor, whose key lookup has a 3 s deadline here: it began before the request
    (the client is made first), so the run ends within 3 s of the request's arrival, not 1.8 + 5 s."""
    issuer.script(DISCOVERY_PATH, Reply(trickle=1.8))
    env = {
        "PYTHONPATH": str(SITE),
        "TEST_MAX_FETCH_SECONDS": "3",  # the deadline of the key lookup
        "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "5",
        "AUTHRESS_KEY": token,
    }
    diagnosis, elapsed = diagnose_within(helper, issuer.url, env, 3.0)
    ended = time.monotonic()
    keys = diagnosis.step("issuer keys")
    assert keys["status"] == "fail" and "timed out reading the answer" in keys["detail"], keys
    assert "after 1 attempt(s)" in keys["detail"], keys
    assert ended - issuer.arrivals[0] < 3.0 + 0.5  # 0.5: the process exiting
    assert elapsed < 3.0 + STARTUP


# --- proxies ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("HTTPS_PROXY", "socks5://ci:s3cret@127.0.0.1:1080", 'names a "socks5" proxy'),
        ("ALL_PROXY", "socks5h://127.0.0.1:1080", 'names a "socks5h" proxy'),
        ("https_proxy", "ftp://proxy.example:21", 'has the scheme "ftp"'),
        ("HTTPS_PROXY", "http://ci:s3cret@proxy.example:99999", "is not a valid URL"),
        ("ALL_PROXY", "http://[proxy.example", "is not a valid URL"),
        ("HTTP_PROXY", "proxy example:3128", "is not a valid URL"),
    ],
)
def test_a_proxy_setting_that_cannot_work_is_one_line_naming_the_variable(
    helper: Helper, issuer: LocalIssuer, token: str, variable: str, value: str, fragment: str
) -> None:
    run = helper.external(query(issuer.url), token, env={variable: value})
    run.refused(f"authress-gitlab-token: {variable} {fragment}", "or unset it")
    assert "s3cret" not in run.stderr and "internal error" not in run.stderr
    assert issuer.requests == []


def test_doctor_and_setup_name_an_unusable_proxy_too(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    env = {"HTTPS_PROXY": "socks5://127.0.0.1:1080"}
    report = doctor(helper, token, env=env, **query(issuer, check="none")).report
    assert not report["ok"] and report["fix"].startswith("set it to the http:// URL of a proxy"), report["fix"]
    assert any("HTTPS_PROXY names a" in s["detail"] for s in report["steps"])

    args = guide("--plan", issuer=issuer.url, role="ro_terraform")
    run = helper.run(args, env={**env, "AUTHRESS_KEY": ServiceClientKey.generate().value})
    run.refused('HTTPS_PROXY names a "socks5" proxy', "or unset it")


@pytest.mark.slow
def test_a_proxy_asking_for_credentials_is_named_and_not_retried(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    with running_proxy("127.0.0.1", issuer.port, port=issuer.port, credentials="ci:s3cret") as proxy:
        started = time.monotonic()
        run = helper.external(query(issuer.url), token, env={"HTTPS_PROXY": proxy.url})
        run.refused("the proxy in HTTPS_PROXY answered 407 (proxy authentication required)", "USER:PASSWORD")
        assert time.monotonic() - started < STARTUP
        # Discovery and GitLab's usual JWKS URL go out together; each asked once, none retried.
        assert len(proxy.unauthenticated) <= 2 and issuer.requests == []

        with_credentials = proxy.url.replace("http://", "http://ci:s3cret@")
        run = helper.external(query(issuer.url), token, env={"HTTPS_PROXY": with_credentials})
        assert run.returncode == 0, run.stderr
        assert proxy.tunnels and "s3cret" not in run.stderr
