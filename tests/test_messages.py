"""Messages that tell the truth when time runs short or the options are incomplete, with the helper run as
installed: a wait for another run's fetch is named as such, an expiry is dated by the clock that judged
it, and `doctor` asks the issuer once and checks the signature even when the options bind no project."""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time

from authress_gitlab_token.keys.lookup import KeyCache, fetch_bound
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, Run, query
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

TIMEOUT = 2.0  # AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT in conftest
NO_DISK_CACHE = {"AUTHRESS_GITLAB_TOKEN_CACHE_DIR": "relative/cache"}  # a relative path: no disk cache


def doctor(helper: Helper, token: str, *args: str, env: dict[str, str] | None = None) -> tuple[Run, dict]:
    run = helper.run(["doctor", "--json", "--check", "none", *args], env={"AUTHRESS_KEY": token, **(env or {})})
    return run, json.loads(run.stdout)


def step(report: dict, name: str) -> dict:
    return next(s for s in report["steps"] if s["name"] == name)


def test_a_run_that_waited_for_another_runs_fetch_in_vain_says_so(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """The other run (this test, holding the fetch lock) lets go just before our deadline: too late for a
    fetch of our own, so the message names the wait, not "no time was left after 0 attempt(s)" nor a
    timeout of a request that barely started. (A 3 s timeout: our start-up may take up to 3 s, the
    least time a fetch of our own is begun with, and still leave it too late.)"""
    issuer.delay = 2.5
    lock_path = KeyCache(helper.cache_dir, issuer.url).path.with_suffix(".lock")
    lock_path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    runs: list[Run] = []
    started = time.monotonic()
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "3"}
    thread = threading.Thread(target=lambda: runs.append(helper.external(query(issuer.url), token, env=env)))
    thread.start()
    try:
        time.sleep(fetch_bound(3) - 0.05)  # the run's deadline starts a little after its process
    finally:
        os.close(fd)
    thread.join()
    runs[0].refused(f'another run has been fetching the keys of "{issuer.url}" for 16 s without a result')
    assert "attempt(s)" not in runs[0].stderr
    assert issuer.requests == []
    assert time.monotonic() - started < fetch_bound(3) + 5


def test_a_token_that_expires_during_a_slow_fetch_is_dated_by_the_clock_that_judged_it(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    issuer.delay = 4.5  # within the 5 s timeout set below: one slow answer, no retry
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3))
    env = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "5"}
    run = helper.external(query(issuer.url, leeway_seconds="0"), token, env=env)
    run.refused("token expired at", "leeway 0 s")
    ago = re.search(r"\((-?\d+) s ago", run.stderr)
    assert ago is not None and int(ago[1]) >= 1, run.stderr


def test_doctor_without_a_disk_cache_asks_for_discovery_and_the_keys_once(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    run, report = doctor(
        helper, token, "--audience", AUDIENCE, "--issuer", issuer.url, "--project-path", PROJECT, env=NO_DISK_CACHE
    )
    assert run.returncode == 0, run.stdout
    assert step(report, "key cache")["status"] == "warn"
    assert (issuer.hits(DISCOVERY_PATH), issuer.hits(JWKS_PATH)) == (1, 1)


def test_doctor_without_a_project_binding_checks_the_signature_and_names_the_flag(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, token: str
) -> None:
    run, report = doctor(helper, token, "--audience", AUDIENCE, "--issuer", issuer.url)
    assert run.returncode == 1
    assert step(report, "signature and claims")["status"] == "pass"
    assert step(report, "binding")["status"] == "fail"
    assert report["claims_verified"] is True
    assert report["fix"].startswith(f'pass --project-path "{PROJECT}"'), report["fix"]
    assert '"project_path"' not in report["fix"]

    # The attack the check stops: another project's claims under this token's signature.
    other = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, project_path="evil/project"))
    header, _, signature = token.split(".")
    forged = ".".join([header, other.split(".")[1], signature])
    run, report = doctor(helper, forged, "--audience", AUDIENCE, "--issuer", issuer.url)
    assert run.returncode == 1
    assert step(report, "signature and claims")["status"] == "fail"
    assert "signature does not verify" in step(report, "signature and claims")["detail"]
    assert report["claims_verified"] is False
