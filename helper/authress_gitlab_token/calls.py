"""The one shape of every call (the key fetch, the Authress check, the admin API): `call_json` within a
Budget gives an Answer, or CallFailed naming the URL and what happened, with the caller's fix (its
Wording). The request runs in a worker thread the caller stops waiting for at the deadline: the one
mechanism that bounds name resolution, dead addresses, TLS and a trickled body alike."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .background import Background
from .errors import HelperError, quoted
from .network import MAX_BODY_BYTES, Budget, Progress, Refused, Response, Session, TooLarge, Unanswered, send

MAX_JSON_VALUES = 10_000  # discovery, a JWKS or an account hold a few hundred at most


class CallFailed(HelperError):
    """A call that got no usable answer: `problem` names the URL and what happened, `fix` what to check."""


@dataclass(frozen=True)
class Wording:
    """What to do when one caller's calls fail: call_json says what happened to which URL, these the fix."""

    lead: str  # an unanswered call's problem, before its URL ("{method}" is filled in)
    reach: str  # the fix when no answer came
    not_ours: str  # the fix for an answer too large or not JSON: the server is not the one meant
    url_fix: str = ""  # the fix for a URL that cannot be requested
    url_fix_always: bool = False  # `url_fix` also follows the fix of a refusal that has its own
    down: str = ""  # the fix when the last answer was 429 or 5xx ("": `reach`)
    late: str = "no time was left"  # why there was not one attempt
    posted: str = ""  # what an unanswered POST adds to its problem: the create may have been made


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    json: Any  # the body's JSON when the status is one the caller accepts (None for an empty body)


def call_json(
    session: Session,
    method: str,
    url: str,
    wording: Wording,
    budget: Budget,
    *,
    accepted: Collection[int],
    deadline: float | None = None,
    payload: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """The request within `budget` (by `deadline` when the caller shares one between calls); the body
    read as JSON when the status is `accepted`, any other status left for the caller to word. CallFailed
    when no answer came, or one too large or not JSON, or a refusal no retry can change."""
    end = budget.deadline() if deadline is None else deadline
    progress = Progress()

    def request() -> Response:
        return send(session, method, url, payload, headers or {}, budget, end, progress)

    def overdue() -> Unanswered:
        return Unanswered(f"timed out {progress.phase or 'before an answer came'}", progress.attempts)

    try:
        response = Background(request, "authress-gitlab-token request").result(end, overdue, grace=0.0)
    except Unanswered as exc:
        how = f"{exc.reason} after {exc.attempts} attempt(s)" if exc.attempts else wording.late
        posted = wording.posted if method == "POST" and not exc.reason.startswith("HTTP 4") else ""
        fix = wording.down if wording.down and exc.reason.startswith("HTTP") else wording.reach
        raise CallFailed(f"{wording.lead.format(method=method)} {quoted(url)}: {how}{posted}", fix) from None
    except TooLarge:
        raise CallFailed(f"{quoted(url)} sent more than {MAX_BODY_BYTES} bytes", wording.not_ours) from None
    except Refused as exc:  # a certificate that does not verify, a URL that cannot be fetched, a proxy's no
        fix = "; ".join(filter(None, (exc.fix, wording.url_fix))) if wording.url_fix_always else exc.fix
        raise CallFailed(exc.problem, fix or wording.url_fix) from None
    if response.status not in accepted or not response.body:
        return Answer(response.status, response.headers, None)
    try:
        return Answer(response.status, response.headers, parse_json(response.body))
    except (ValueError, RecursionError):
        raise CallFailed(
            f"{quoted(url)} did not return JSON (or returned more than {MAX_JSON_VALUES} values)", wording.not_ours
        ) from None


def parse_json(body: bytes) -> Any:
    """The JSON in `body`; ValueError also for more than MAX_JSON_VALUES values (counted from the
    separators, strings included): parsed, 1 MiB of `[{},{},...]` would take 25 MiB."""
    if sum(body.count(c) for c in (b"{", b"[", b",", b":")) > MAX_JSON_VALUES:
        raise ValueError(f"more than {MAX_JSON_VALUES} JSON values")
    return json.loads(body)
