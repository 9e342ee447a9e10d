"""What network.session relies on inside httpx and httpcore, and what each operation may spend, checked
in-process: the deadline is enforced by swapping each connection pool's network backend, through private
attributes that a new httpx or httpcore could move. When they do, this fails loudly instead of the
deadline silently going away."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from authress_gitlab_token import authress, network, sockets
from authress_gitlab_token.calls import Budget
from authress_gitlab_token.setup import admin_api


def test_every_pool_of_a_session_uses_the_deadline_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # a proxy route has a pool of its own
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with network.session(1.0) as client:
        pools = network.pools(client)
        assert len(pools) == 2, "the direct pool and the proxy's"
        assert {type(p._network_backend).__module__ for p in pools} == {sockets.__name__}


def test_the_stream_class_the_deadline_backend_wraps_sockets_in_still_exists() -> None:
    from httpcore import NetworkStream
    from httpcore._backends.sync import SyncStream

    assert issubclass(SyncStream, NetworkStream)


def test_pools_refuses_a_client_whose_pools_it_cannot_find() -> None:
    """The guard itself: a client without the attributes is an error, never a client without a deadline."""

    moved = SimpleNamespace(_transport=object(), _mounts={})
    with pytest.raises(RuntimeError, match="the deadline cannot be enforced"):
        network.pools(moved)


@pytest.mark.parametrize(("timeout", "bound"), [(0.5, 4.5), (2.0, 9.0), (5.0, 18.0), (60.0, 183.0)])
def test_the_authress_check_and_each_admin_call_are_bounded_as_the_readme_states(timeout: float, bound: float) -> None:
    """Within 3 x (timeout + 1 s): the bound the hostile-server and deadline tests hold each run to."""
    assert Budget(authress.ATTEMPTS, timeout).seconds == bound
    assert Budget(admin_api.ATTEMPTS, timeout).seconds == bound
