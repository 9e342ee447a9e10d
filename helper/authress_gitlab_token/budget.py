"""What one network operation may spend, written once: the key lookup, the Authress check and each admin
call are given `attempts` tries, each socket wait at most `timeout`, and one deadline over all of it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

BACKOFF_ALLOWANCE = 1.0  # seconds per attempt for the pause before the next one (network.send's backoff)


@dataclass(frozen=True)
class Budget:
    attempts: int
    timeout: float
    cap: float = math.inf  # the most the operation may take, whatever the timeout

    @property
    def seconds(self) -> float:
        """attempts x (timeout + the backoff allowance), at most `cap`."""
        return min(self.attempts * (self.timeout + BACKOFF_ALLOWANCE), self.cap)

    def deadline(self) -> float:
        """The time.monotonic() by which an operation starting now must end."""
        return time.monotonic() + self.seconds
