"""A cold run's key fetch, started as soon as the issuer is known, so the network overlaps start-up.

Terraform's call reads its query with the standard library and starts the fetch in a thread before
importing jsonschema and jwt: the requests go out while they load. The thread takes the lock every run
takes, so parallel runs still share one fetch. Its keys, or its failure, go to the main path
(keys.IssuerKeys), which judges and reports them as if it had fetched them itself."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from . import network, settings, sources
from .background import Background
from .errors import KeyFetchFailed, quoted
from .keycache import KeyCache, KeySet
from .keyfetch import fetch_bound, fetch_keyset, too_late, waited_in_vain


class KeyPrefetch:
    """The fetch of `issuer`'s keys into `cache` (None: no disk cache), from construction until `deadline`."""

    def __init__(
        self, issuer: str, cache: KeyCache | None, timeout: float, cached: KeySet | None, ca_file: str
    ) -> None:
        self.issuer = issuer
        self.cache = cache
        self.timeout = timeout
        self.deadline = time.monotonic() + fetch_bound(timeout)
        self._ca_file = ca_file
        self._cached = cached  # what the cache held when the run started
        self._taken = False
        self._client: Any = None
        self._held = contextlib.ExitStack()  # the lock and the client of a run that fetches; the thread closes it
        if self._held.enter_context(cache.fetch_lock(0.0) if cache else contextlib.nullcontext(True)):
            # This run fetches. httpx is imported and the client made here, before the thread starts, so
            # the thread sends at once instead of sharing the GIL with the main thread's imports.
            try:
                self._client = self._held.enter_context(network.session(timeout, ca_file))
            except Exception:  # noqa: BLE001 -- the thread meets it again and hands it to the main path
                self._held.close()
        else:
            self._held.close()  # a parallel run is fetching: the thread waits for it, without httpx
        self._job = Background(self._fetch, "authress-gitlab-token keys")

    def _fetch(self) -> KeySet | None:
        """Fetch and cache the keys, unless a parallel run did meanwhile (then None)."""
        with self._held:
            if self._client or self.cache is None:
                lock: contextlib.AbstractContextManager[bool] = contextlib.nullcontext(True)
            else:
                lock = self.cache.fetch_lock(self.deadline)
            with lock as locked:
                again = self.cache.load() if self.cache else None
                newer = again is not None and (self._cached is None or again.fetched_at > self._cached.fetched_at)
                if newer and again is not None and again.fresh(time.time()):
                    return None  # the main path finds the other run's keys
                if not locked or (not self._client and too_late(self.deadline, self.timeout)):
                    raise waited_in_vain(self.issuer, fetch_bound(self.timeout))
                keyset = fetch_keyset(self.issuer, self.timeout, self.deadline, self._client, self._ca_file)
                if self.cache:
                    self.cache.store(keyset)
                return keyset

    def wait(self) -> None:
        """Until the fetch has ended (its keys are then in the cache, if it could write there)."""
        self._job.wait(self.deadline)

    def take(self) -> KeySet | None:
        """The keys fetched, once; None when it fetched none. Its failure is raised here, in the main path."""
        if self._taken:
            return None
        self._taken = True
        return self._job.result(self.deadline, self._overdue)

    def _overdue(self) -> KeyFetchFailed:
        return KeyFetchFailed(
            f"could not fetch the keys of {quoted(self.issuer)} within {fetch_bound(self.timeout):.0f} s; "
            "check the issuer is reachable from this runner, then retry the job"
        )


def start(config: settings.Settings, environ: Mapping[str, str]) -> KeyPrefetch | None:
    """The key fetch for these (valid) settings, started now; None when the cache is fresh, or when the
    credential is no GitLab ID token (the main path then says what is wrong, if anything)."""
    try:
        if sources.gitlab_id_token(environ, config.token_env, config.audience) is None:
            return None  # no token, or a service-client key: no GitLab keys are needed
    except Exception:  # noqa: BLE001 -- any refusal: no early fetch, and the main path says why
        return None
    cache = KeyCache(config.cache_dir, config.issuer) if config.cache_dir is not None else None
    cached = cache.load() if cache else None
    if cached is not None and cached.fresh(time.time()):
        return None  # a warm run: no request, no httpx
    return KeyPrefetch(config.issuer, cache, config.http_timeout, cached, config.ca_file)
