"""Fetching the issuer's keys: its discovery document, then the https `jwks_uri` it names.

Only the configured issuer is ever asked; nothing in a token chooses where keys come from."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from ..background import Background
from ..errors import KeyFetchFailed, quoted
from ..network import Budget, CallFailed, Session, Wording, call_json, session
from ..settings import DEFAULT_HTTP, Http
from .cache import KeySet, max_age
from .policy import valid_keys

ATTEMPTS = 4  # per URL; retried on connection errors, timeouts, 429 and 5xx
USUAL_JWKS_PATH = "/oauth/discovery/keys"  # where GitLab serves its JWKS; trusted only once discovery says so
MAX_FETCH_SECONDS = 30.0  # all a run spends on keys (waiting for another run's fetch included), whatever the timeout
OK = (200,)  # the only answer whose body is read
WORDING = Wording(
    lead="could not fetch",
    reach="check the issuer is reachable from this runner, then retry the job",
    not_ours="is the issuer URL a GitLab instance?",
    late="the time for the keys ran out first",
)  # url_fix: each call names its own


def budget(timeout: float) -> Budget:
    """What a lookup may spend: every attempt at `timeout`, never more than MAX_FETCH_SECONDS."""
    return Budget(ATTEMPTS, timeout, MAX_FETCH_SECONDS)


def fetch_bound(timeout: float) -> float:
    """Seconds a lookup may take (its budget's)."""
    return budget(timeout).seconds


def too_late(deadline: float, timeout: float) -> bool:
    """After waiting for another run's fetch: whether too little time is left for one attempt of our own
    (its failure would then name a timeout, when the truth is the other run's wait)."""
    return deadline - time.monotonic() < min(timeout, fetch_bound(timeout) / 2)


def waited_in_vain(issuer: str, bound: float) -> KeyFetchFailed:
    """Another run held the fetch lock for all the time this one may wait, and left no keys."""
    return KeyFetchFailed(
        f"another run has been fetching the keys of {quoted(issuer)} for {bound:.0f} s without a result",
        WORDING.reach,
    )


def fetch_keyset(
    issuer: str, http: Http = DEFAULT_HTTP, deadline: float | None = None, client: Session | None = None
) -> KeySet:
    """Discovery (whose `issuer` must equal ours exactly), then its https `jwks_uri`, by `deadline`.

    GitLab's JWKS is asked for at its usual place at the same time as discovery, which saves a round
    trip; that answer is used only when discovery names exactly that URL, else the named one is fetched.
    `client`: a network.session the caller opened, else one is opened here (with `http`)."""

    timeout = http.timeout
    if deadline is None:
        deadline = time.monotonic() + fetch_bound(timeout)
    end = deadline
    usual_uri = issuer + USUAL_JWKS_PATH
    # Used for the usual URL too: its answer counts only once discovery has named it.
    misconfigured = f"the discovery document of {quoted(issuer)} names it as jwks_uri: the issuer is misconfigured"
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(session(http))
        usual = Background(
            lambda: _get_json(client, usual_uri, timeout, end, misconfigured), "authress-gitlab-token jwks"
        )
        try:
            jwks_uri = _discover(client, issuer, timeout, deadline)
            if jwks_uri == usual_uri:
                jwks, headers = usual.result(deadline, lambda: _overdue(usual_uri))
            else:
                jwks, headers = _get_json(client, jwks_uri, timeout, deadline, misconfigured)
        finally:
            usual.wait(deadline)  # its request ends (by the deadline) before the client closes
    keys = valid_keys(jwks)
    if keys is None:
        raise KeyFetchFailed(
            f"{quoted(jwks_uri)} did not return a non-empty JSON Web Key Set", "the issuer may be misconfigured"
        )
    return KeySet(issuer, jwks_uri, keys, time.time(), max_age(headers.get("cache-control", "")))


def _discover(client: Session, issuer: str, timeout: float, deadline: float) -> str:
    """The https `jwks_uri` of the issuer's discovery document, once it names exactly our issuer."""
    discovery_url = issuer + "/.well-known/openid-configuration"
    discovery, _ = _get_json(client, discovery_url, timeout, deadline, 'check the query key "issuer"')
    if not isinstance(discovery, dict):
        raise KeyFetchFailed(
            f"the discovery document of {quoted(issuer)} is not a JSON object", 'check the query key "issuer"'
        )
    if discovery.get("issuer") != issuer:
        raise KeyFetchFailed(
            f"discovery at {quoted(issuer)} names issuer {quoted(discovery.get('issuer'))}, expected {quoted(issuer)}",
            'set the query key "issuer" to exactly the issuer GitLab names',
        )
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        raise KeyFetchFailed(
            f"discovery at {quoted(issuer)} names jwks_uri {quoted(jwks_uri)}, expected an https URL",
            "keys are only fetched over https",
        )
    return jwks_uri


def _overdue(url: str) -> KeyFetchFailed:
    return KeyFetchFailed(f"could not fetch {quoted(url)}: no answer by the deadline", WORDING.reach)


def _get_json(
    client: Session, url: str, timeout: float, deadline: float, url_fix: str
) -> tuple[Any, Mapping[str, str]]:
    """The JSON body of a 200 answer, or KeyFetchFailed naming the URL and what to check."""
    try:
        wording = dataclasses.replace(WORDING, url_fix=url_fix)
        answer = call_json(client, "GET", url, wording, budget(timeout), accepted=OK, deadline=deadline)
    except CallFailed as exc:
        raise KeyFetchFailed(exc.problem, exc.fix) from None
    if answer.status not in OK:
        raise KeyFetchFailed(f"{quoted(url)} answered HTTP {answer.status}", 'check the query key "issuer"')
    return answer.json, answer.headers
