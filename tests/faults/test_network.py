"""The network layer in process: one deadline over a whole call (a slow resolver, a silent TLS handshake,
a caller's shared deadline), the proxies read from the run's environment (NO_PROXY with IPv6 entries,
the lower-case name winning), the decoded-size cap per gzip step, the JSON value limit, and what each
operation may spend. Every server is on loopback; the resolver is replaced with monkeypatch."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authress_gitlab_token import authress, network, proxies
from authress_gitlab_token.calls import MAX_JSON_VALUES, Budget, CallFailed, Wording, call_json, parse_json
from authress_gitlab_token.environment import Http, http_from
from authress_gitlab_token.errors import ProxyUnusable
from authress_gitlab_token.setup import admin_api
from tests.fixtures.ca import LocalCA
from tests.fixtures.issuer import DISCOVERY_PATH, LocalIssuer

WORDING = Wording(lead="could not fetch", reach="check it", not_ours="not ours")


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and then says nothing: a TLS handshake there never ends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for sock in [*held, server]:
            sock.close()


def timed_call(http: Http, url: str, budget: Budget, deadline: float | None = None) -> tuple[str, float]:
    """call_json's failure for `url` and the seconds it took."""
    started = time.monotonic()
    with network.session(http) as session, pytest.raises(CallFailed) as failed:
        call_json(session, "GET", url, WORDING, budget, accepted=(200,), deadline=deadline)
    return failed.value.problem, time.monotonic() - started


# --- one deadline over the whole call ---------------------------------------------------------------------


def test_a_tls_handshake_that_never_ends_is_cut_at_the_deadline(ca: LocalCA) -> None:
    """Each socket wait gets 5 s, but the call's deadline is 1 s away: it ends then, naming the phase."""
    with silent_listener() as port:
        problem, took = timed_call(
            Http(timeout=5.0, ca_file=str(ca.ca_path)),
            f"https://127.0.0.1:{port}/x",
            Budget(1, 5.0),
            time.monotonic() + 1.0,
        )
    assert 'timed out in the TLS handshake with "127.0.0.1"' in problem, problem
    assert 0.9 < took < 1.6


def test_a_caller_s_shared_deadline_bounds_the_call_whatever_its_budget(ca: LocalCA) -> None:
    """A budget of 3 attempts x 5 s, and a deadline the caller shares between calls 1 s away: 1 s."""
    with silent_listener() as port:
        problem, took = timed_call(
            Http(timeout=5.0, ca_file=str(ca.ca_path)),
            f"https://127.0.0.1:{port}/x",
            Budget(3, 5.0),
            time.monotonic() + 1.0,
        )
    assert "after 1 attempt(s)" in problem
    assert took < 1.6


@pytest.mark.slow
def test_a_slow_resolver_leaves_connect_only_what_is_left_of_the_deadline(
    ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name takes 1.5 s to resolve, then the address is silent: the call still ends at its 2 s
    deadline, not 1.5 s plus a whole connect timeout."""
    real = socket.getaddrinfo

    def slow(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow.test":
            time.sleep(1.5)
            return real("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    with silent_listener() as port:
        problem, took = timed_call(
            Http(timeout=2.0, ca_file=str(ca.ca_path)),
            f"https://slow.test:{port}/x",
            Budget(4, 2.0),
            time.monotonic() + 2.0,
        )
    assert "timed out" in problem
    assert took < 2.6


@pytest.mark.slow
def test_a_resolver_that_never_answers_ends_at_the_deadline_naming_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def hang(host: str, *args: object, **kwargs: object) -> object:
        if host == "silent.test":
            release.wait(30)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    try:
        problem, took = timed_call(Http(timeout=0.5), "https://silent.test/x", Budget(3, 0.5))
    finally:
        release.set()
    assert 'timed out connecting to "silent.test"' in problem, problem
    assert took < Budget(3, 0.5).seconds + 0.5


@pytest.mark.parametrize(("timeout", "bound"), [(0.5, 4.5), (2.0, 9.0), (5.0, 18.0), (60.0, 183.0)])
def test_the_authress_check_and_each_admin_call_are_bounded_as_the_docs_state(timeout: float, bound: float) -> None:
    """Within 3 x (timeout + 1 s): the bound the hostile-server and deadline tests hold each run to."""
    assert Budget(authress.ATTEMPTS, timeout).seconds == bound
    assert Budget(admin_api.ATTEMPTS, timeout).seconds == bound


# --- proxies, from the run's environment only -----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        ("[::1]", "all://[::1]"),
        ("::1", "all://[::1]"),
        ("[fe80::1%eth0]", "all://[fe80::1]"),
        ("127.0.0.1", "all://127.0.0.1"),
        ("localhost", "all://localhost"),
        (".example.com", "all://*example.com"),
        ("gitlab.example.com", "all://*gitlab.example.com"),
        ("*.example.com", "all://*example.com"),
    ],
)
def test_each_no_proxy_entry_becomes_a_pattern_httpx_can_use(entry: str, pattern: str) -> None:
    import httpx

    found = proxies.from_environ({"HTTPS_PROXY": "http://proxy.test:3128", "NO_PROXY": f"example.org,{entry}"})
    assert pattern in found.direct
    httpx.Client(mounts=dict.fromkeys(found.direct), trust_env=False).close()  # httpx accepts every one


@pytest.mark.parametrize("entry", [".", "*", "10.0.0.0/8", "a:b:c", "[::1", ""])
def test_a_no_proxy_entry_that_names_no_host_sends_nothing_past_the_proxy(entry: str) -> None:
    """ "." must not read as every host ("all://*"), nor a CIDR range as a domain; "*" alone means no proxy."""
    found = proxies.from_environ({"HTTPS_PROXY": "http://proxy.test:3128", "NO_PROXY": entry})
    assert found.direct == ()
    assert (found.https is None) == (entry == "*")


def test_a_bracketed_ipv6_no_proxy_entry_sends_the_request_straight_to_the_host(
    issuer: LocalIssuer, ca: LocalCA
) -> None:
    """The corporate runner's NO_PROXY, with a proxy that does not exist: the loopback issuer answers."""
    env = {
        "SSL_CERT_FILE": str(ca.ca_path),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "localhost,127.0.0.1,[::1]",
    }
    with network.session(http_from(env)) as session:
        answer = call_json(session, "GET", issuer.url + DISCOVERY_PATH, WORDING, Budget(1, 2.0), accepted=(200,))
    assert answer.status == 200


@pytest.mark.parametrize(
    ("environ", "used"),
    [
        ({"https_proxy": "", "HTTPS_PROXY": "http://upper.test:1"}, None),  # empty lower-case: no proxy
        ({"https_proxy": "http://lower.test:1", "HTTPS_PROXY": "http://upper.test:1"}, "https_proxy"),
        ({"HTTPS_PROXY": "http://upper.test:1", "ALL_PROXY": "http://all.test:1"}, "HTTPS_PROXY"),
        ({"ALL_PROXY": "all.test:1"}, "ALL_PROXY"),
        ({"HTTPS_PROXY": "http://upper.test:1", "NO_PROXY": "example.org, *"}, None),
    ],
)
def test_the_https_proxy_is_taken_as_urllib_and_httpx_take_it(environ: dict[str, str], used: str | None) -> None:
    found = proxies.from_environ(environ).https
    assert (found.variable if found else None) == used


def test_an_unusable_proxy_is_refused_when_a_request_is_made_not_before() -> None:
    http = http_from({"HTTPS_PROXY": "socks5://127.0.0.1:1080"})  # a warm run makes no request
    with pytest.raises(ProxyUnusable, match='HTTPS_PROXY names a "socks5" proxy'), network.session(http):
        pass


def test_the_client_reads_nothing_from_the_process_environment(
    issuer: LocalIssuer, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy that does not exist in os.environ, and the CA only in the run's settings: it answers."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with network.session(Http(timeout=2.0, ca_file=str(ca.ca_path))) as session:
        answer = call_json(session, "GET", issuer.url + DISCOVERY_PATH, WORDING, Budget(1, 2.0), accepted=(200,))
    assert answer.status == 200


# --- bodies ------------------------------------------------------------------------------------------------


def test_one_gzip_step_never_inflates_more_than_a_chunk() -> None:
    """A 64 KiB raw chunk of a bomb would be 64 MiB inflated at once; each step gives at most CHUNK."""
    bomb = gzip.compress(b" " * (8 * 1024 * 1024), 9)
    assert len(bomb) < network.CHUNK
    steps = network._decoded([bomb], "gzip", "https://x.test/")
    sizes = [len(next(steps)) for _ in range(4)]
    assert max(sizes) <= network.CHUNK and sum(sizes) > 0


def test_a_flat_array_of_more_values_than_the_limit_is_not_parsed() -> None:
    with pytest.raises(ValueError, match="JSON values"):
        parse_json(b"[" + b"1," * MAX_JSON_VALUES + b"1]")
    assert parse_json(b"[" + b"1," * 100 + b"1]") == [1] * 101


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    proxy=st.one_of(
        st.text(max_size=40), st.from_regex(r"(https?|socks5|ftp)://[a-z.:\[\]@0-9 %]{0,20}", fullmatch=True)
    ),
    no_proxy=st.lists(st.one_of(st.text(max_size=20), st.from_regex(r"\[?[0-9a-f:.%]{0,16}\]?", fullmatch=True))),
)
def test_no_proxy_setting_makes_the_client_fail_other_than_in_one_line(proxy: str, no_proxy: list[str]) -> None:
    """Whatever a runner's proxy variables hold: a client is made, or ProxyUnusable names the variable."""
    environ = {"HTTPS_PROXY": proxy, "NO_PROXY": ",".join(no_proxy)}
    try:
        with network.session(http_from(environ)):
            pass
    except ProxyUnusable as exc:
        assert str(exc).startswith("HTTPS_PROXY ")
