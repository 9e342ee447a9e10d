"""The one shape of every call (the key fetch, the Authress check, the admin API): `call_json` within a
Budget gives an Answer, or CallFailed naming the URL and what happened, with the caller's fix (its
Wording). The request runs in a worker thread (Background) the caller stops waiting for at the
deadline: the one mechanism that bounds name resolution, dead addresses, TLS and a trickled body
alike; a cold run's key fetch overlaps its imports the same way (keys/lookup.py). httpx and
network.py are imported only when a call is made: a warm run imports this module and makes none."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .errors import HelperError, quoted

if TYPE_CHECKING:
    from .network import Session

BACKOFF_ALLOWANCE = 1.0  # seconds per attempt for the pause before the next one (network.send's backoff)
MAX_JSON_VALUES = 10_000  # discovery, a JWKS or an account hold a few hundred at most
GRACE = 1.0  # seconds past the deadline for a job whose own requests end by the deadline
T = TypeVar("T")


class Background(Generic[T]):
    """`work()` in a daemon thread. Its value or exception is kept for the caller, never printed: a
    traceback on stderr could carry what the thread saw, and every failure must reach the main path."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(work,), name=name, daemon=True).start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._value = work()
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller, who raises it
            self._error = exc
        finally:
            self._done.set()

    def wait(self, deadline: float, grace: float = GRACE) -> bool:
        """Whether the work has ended, waiting for it until `deadline` (time.monotonic()) and `grace`."""
        return self._done.wait(max(0.0, deadline + grace - time.monotonic()))

    def result(self, deadline: float, overdue: Callable[[], BaseException], grace: float = GRACE) -> T:
        """The work's value; its exception raised here; `overdue()` raised when it outlasts the deadline."""
        if not self.wait(deadline, grace):
            raise overdue()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)  # set: the work returned


@dataclass(frozen=True)
class Budget:
    """What one operation may spend: `attempts` tries, each socket wait at most `timeout`, and one
    deadline over all of it."""

    attempts: int
    timeout: float
    cap: float = math.inf  # the most the operation may take, whatever the timeout

    @property
    def seconds(self) -> float:
        """attempts x (timeout + the backoff allowance), at most `cap`."""
        return min(self.attempts * (self.timeout + BACKOFF_ALLOWANCE), self.cap)


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
    from . import network

    end = time.monotonic() + budget.seconds if deadline is None else deadline
    progress = network.Progress()

    def request() -> network.Response:
        return network.send(
            session, method, url, payload, headers or {}, budget.timeout, budget.attempts, end, progress
        )

    def overdue() -> network.Unanswered:
        return network.Unanswered(f"timed out {progress.phase or 'before an answer came'}", progress.attempts)

    try:
        response = Background(request, "authress-gitlab-token request").result(end, overdue, grace=0.0)
    except network.Unanswered as exc:
        how = f"{exc.reason} after {exc.attempts} attempt(s)" if exc.attempts else wording.late
        posted = wording.posted if method == "POST" and not exc.reason.startswith("HTTP 4") else ""
        fix = wording.down if wording.down and exc.reason.startswith("HTTP") else wording.reach
        raise CallFailed(f"{wording.lead.format(method=method)} {quoted(url)}: {how}{posted}", fix) from None
    except network.TooLarge:
        raise CallFailed(f"{quoted(url)} sent more than {network.MAX_BODY_BYTES} bytes", wording.not_ours) from None
    except network.Refused as exc:  # a certificate that does not verify, a URL that cannot be fetched, a proxy's no
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
