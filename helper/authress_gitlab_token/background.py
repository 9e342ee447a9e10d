"""Work in a thread whose outcome the caller collects by a deadline: how every request is bounded
(calls.py stops waiting for it then, whatever it is stuck in: name resolution, a dead address, a TLS
handshake), how a cold run overlaps its network waits with its start-up (keys/lookup.py), and how it
asks for two documents at once (keys/fetch.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")
GRACE = 1.0  # seconds past the deadline for a job whose own requests end by the deadline


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
