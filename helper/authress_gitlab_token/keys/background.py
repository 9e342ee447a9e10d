"""Work in a thread whose outcome the caller collects: how a cold run overlaps its network waits with
its start-up (keys/lookup.py) and asks for two documents at once (keys/fetch.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")
GRACE = 1.0  # seconds past the deadline for a job to return: its own work ends by the deadline


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

    def wait(self, deadline: float) -> bool:
        """Whether the work has ended, waiting for it until `deadline` (time.monotonic()) and GRACE."""
        return self._done.wait(max(0.0, deadline + GRACE - time.monotonic()))

    def result(self, deadline: float, overdue: Callable[[], BaseException]) -> T:
        """The work's value; its exception raised here; `overdue()` raised when it outlasts the deadline."""
        if not self.wait(deadline):
            raise overdue()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)  # set: the work returned
