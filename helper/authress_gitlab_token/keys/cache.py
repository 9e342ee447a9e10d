"""The disk cache of the issuer's keys: one small JSON file per issuer, read on every warm run.

A bad or foreign file is ignored, never fatal: the keys are then fetched again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import interrupts
from .policy import valid_keys

MAX_CACHE_BYTES = 1024 * 1024  # a cache file holds a JWKS of a few KiB
MAX_AGE_DEFAULT, MAX_AGE_MIN, MAX_AGE_MAX = 3600, 300, 86400  # JWKS freshness, from Cache-Control
STALE_GRACE = 24 * 3600  # serve the last good keys this long past freshness when the issuer is down
STALE_TEMPORARY = 60.0  # seconds: a write takes milliseconds, so an older temporary file's run was killed


@dataclass(frozen=True)
class KeySet:
    """A JWKS as fetched from the issuer, with when it was fetched and how long it stays fresh."""

    issuer: str
    jwks_uri: str
    keys: tuple[Mapping[str, Any], ...]
    fetched_at: float
    max_age: float

    def find(self, kid: str) -> Mapping[str, Any] | None:
        return next((k for k in self.keys if k.get("kid") == kid), None)

    def fresh(self, now: float) -> bool:
        return self.fetched_at <= now < self.fetched_at + self.max_age

    def usable_when_issuer_down(self, now: float) -> bool:
        return self.fetched_at <= now < self.fetched_at + self.max_age + STALE_GRACE

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "jwks": {"keys": list(self.keys)},
            "fetched_at": self.fetched_at,
            "max_age": self.max_age,
        }


class KeyCache:
    """One JSON file per issuer, replaced atomically; a bad or foreign file is ignored, never fatal."""

    def __init__(self, directory: Path, issuer: str) -> None:
        self.directory = directory
        stem = hashlib.sha256(issuer.encode()).hexdigest()[:32]
        self.path = directory / f"jwks-{stem}.json"
        self.issuer = issuer

    def load(self) -> KeySet | None:
        try:
            # O_NOFOLLOW: a symlink planted in the cache directory must not choose our keys.
            # O_NONBLOCK: opening a FIFO planted there must not wait for a writer.
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with open(fd, "rb") as f:
                st = os.fstat(f.fileno())
                # Keys decide what we trust: only a regular file no one else could have written.
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
                    return None
                data = json.loads(f.read(MAX_CACHE_BYTES))
            keys = valid_keys(data["jwks"])
            if data["version"] != 1 or data["issuer"] != self.issuer or keys is None:
                return None
            fetched_at, age = float(data["fetched_at"]), float(data["max_age"])
            if not (math.isfinite(fetched_at) and math.isfinite(age)):
                return None
            # Clamped again: a file's max_age must not keep keys fresh longer than a response's could.
            age = float(min(max(age, MAX_AGE_MIN), MAX_AGE_MAX))
            return KeySet(self.issuer, str(data["jwks_uri"]), keys, fetched_at, age)
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    def store(self, keyset: KeySet) -> None:
        """Write-then-rename, so a parallel reader sees the old file or the new one, never a torn one. An
        interrupt removes the temporary file (interrupts.py); one left by a killed run is removed here."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._remove_stale_temporary()
            fd, tmp = interrupts.create_temporary(str(self.directory), ".jwks-", ".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(keyset.to_json(), f)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            finally:
                interrupts.forget_temporary(tmp)
        except OSError:
            pass  # a read-only home only costs a fetch per run

    def _remove_stale_temporary(self) -> None:
        """Temporary files of runs killed mid-write (SIGKILL, a lost runner): a younger one may be a
        parallel run's, still being written."""
        now = time.time()
        with os.scandir(self.directory) as found:
            for item in found:
                if item.name.startswith(".jwks-") and item.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if now - item.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY:
                            os.unlink(item.path)

    @contextlib.contextmanager
    def fetch_lock(self, deadline: float) -> Iterator[bool]:
        """Let one process fetch while parallel ones wait for its result, until `deadline` (monotonic).

        Yields whether the lock is held; True too when locking is impossible (no cache directory)."""
        import fcntl

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(self.path.with_suffix(".lock"), flags, 0o600)
        except OSError:
            yield True
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        locked = False
                        break
                    time.sleep(0.02)
            yield locked
        finally:
            os.close(fd)  # releases the lock


_MAX_AGE = re.compile(r"\s*max-age\s*=\s*\"?([0-9]{1,10})\"?\s*", re.IGNORECASE)


def max_age(cache_control: str) -> float:
    for part in cache_control.split(","):
        match = _MAX_AGE.fullmatch(part)
        if match:
            return float(min(max(int(match[1]), MAX_AGE_MIN), MAX_AGE_MAX))
    return float(MAX_AGE_DEFAULT)
