"""The disk cache of the issuer's keys: one small JSON file per issuer, read on every warm run.

A bad or foreign file is ignored, never fatal: the keys are then fetched again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jwk_policy import valid_keys

CACHE_DIR_ENV = "AUTHRESS_GITLAB_TOKEN_CACHE_DIR"
MAX_CACHE_BYTES = 1024 * 1024  # a cache file holds a JWKS of a few KiB
MAX_AGE_DEFAULT, MAX_AGE_MIN, MAX_AGE_MAX = 3600, 300, 86400  # JWKS freshness, from Cache-Control
STALE_GRACE = 24 * 3600  # serve the last good keys this long past freshness when the issuer is down


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


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV])
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "authress-gitlab-token"


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
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            with open(fd, "rb") as f:
                st = os.fstat(f.fileno())
                # Keys decide what we trust: ignore a file someone else could have written.
                if st.st_uid != os.getuid() or st.st_mode & 0o022:
                    return None
                data = json.loads(f.read(MAX_CACHE_BYTES))
            keys = valid_keys(data["jwks"])
            if data["version"] != 1 or data["issuer"] != self.issuer or keys is None:
                return None
            return KeySet(self.issuer, str(data["jwks_uri"]), keys, float(data["fetched_at"]), float(data["max_age"]))
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    def store(self, keyset: KeySet) -> None:
        """Write-then-rename, so a parallel reader sees the old file or the new one, never a torn one."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".jwks-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(keyset.to_json(), f)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only home only costs a fetch per run

    @contextlib.contextmanager
    def fetch_lock(self, deadline: float) -> Iterator[bool]:
        """Let one process fetch while parallel ones wait for its result, until `deadline` (monotonic).

        Yields whether the lock is held; True too when locking is impossible (no cache directory)."""
        import fcntl

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
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
