"""Every socket wait of a request within the run's deadline: name resolution, connecting, TLS, reads
and writes (network.py sets the deadline; this is the network backend its client's pools use).

httpcore's own backend calls `socket.create_connection`: `getaddrinfo` there has no timeout, and each
address of a host gets the whole timeout, so a resolver that never answers or a row of dead addresses
(a broken AAAA in front of a working A) outlasts any bound. Here the lookup runs in a daemon thread
waited on only until the deadline, and the addresses are tried happy-eyeballs style (RFC 8305): a new
one every STAGGER seconds while the earlier ones still try, the first to connect wins."""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import math
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import quoted

STAGGER = 0.25  # RFC 8305's connection attempt delay; shorter when many addresses share a short wait
Address = tuple[Any, ...]  # one getaddrinfo entry: family, type, proto, canonname, sockaddr

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)


@contextmanager
def deadline(at: float) -> Iterator[None]:
    """Every socket wait of this thread's requests ends by `at` (time.monotonic())."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def until_deadline(timeout: float | None, expired: type[Exception]) -> float:
    """The wait one socket operation may take: its own timeout, cut to what is left of the deadline."""
    left = _deadline.get() - time.monotonic()
    if left <= 0:
        raise expired("the deadline has passed")
    return left if timeout is None else min(timeout, left)


def why(exc: BaseException, otherwise: str) -> str:
    """The reason this module gave for a failed connection (it names the host), else `otherwise`."""
    text = str(exc)
    return text if text.startswith(("connection failed (", "timed out ")) else otherwise


class _Lookup:
    """One getaddrinfo in a daemon thread: retries of a request wait on the same lookup, and a lookup
    that never ends costs one idle thread, not the run."""

    def __init__(self, host: str, port: int) -> None:
        self.done = threading.Event()
        self.addresses: list[Address] = []
        self.error: OSError | None = None
        threading.Thread(target=self._run, args=(host, port), name="authress-gitlab-token resolve", daemon=True).start()

    def _run(self, host: str, port: int) -> None:
        try:
            self.addresses = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            self.error = exc
        finally:
            self.done.set()


_lookups: dict[tuple[str, int], _Lookup] = {}
_lookups_lock = threading.Lock()


def resolve(host: str, port: int, wait: float) -> list[Address]:
    """The addresses of `host`, waiting at most `wait` seconds; TimeoutError or OSError naming it."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: no resolver is asked
        return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST))
    with _lookups_lock:
        lookup = _lookups.get((host, port))
        if lookup is None or lookup.error is not None:  # a failed lookup is asked again on a retry
            lookup = _lookups[(host, port)] = _Lookup(host, port)
    if not lookup.done.wait(max(wait, 0.0)):
        raise TimeoutError(f"timed out resolving {quoted(host)} (the resolver did not answer)")
    if lookup.error is not None or not lookup.addresses:
        reason = getattr(lookup.error, "strerror", None) or "no address"
        raise OSError(f"connection failed (could not resolve {quoted(host)}: {reason})")
    return lookup.addresses


def connect(
    host: str, addresses: list[Address], wait: float, local_address: str | None, options: Iterable[Any]
) -> socket.socket:
    """A connected socket to the first of `addresses` that answers within `wait` seconds."""
    end = time.monotonic() + wait
    queue = _interleaved(addresses)
    stagger = min(STAGGER, wait / (2 * len(queue) or 1))
    options = list(options)
    pending: set[socket.socket] = set()
    failures: list[OSError] = []
    next_start = time.monotonic()
    with selectors.DefaultSelector() as selector:
        try:
            while queue or pending:
                now = time.monotonic()
                if now >= end:
                    break
                if queue and now >= next_start:
                    started = _start(queue.pop(0), local_address, options, failures)
                    if started is not None:
                        pending.add(started)
                        selector.register(started, selectors.EVENT_WRITE, started)
                        next_start = now + stagger
                    continue
                for key, _ in selector.select(max(0.0, min(end, next_start if queue else end) - now)):
                    sock: socket.socket = key.data
                    selector.unregister(sock)
                    pending.discard(sock)
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if not error:
                        sock.setblocking(True)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        return sock
                    sock.close()
                    failures.append(OSError(error, os.strerror(error)))
                    next_start = time.monotonic()  # refused: the next address at once
        finally:
            for left in pending:
                left.close()
    tried = f"{len(addresses)} address(es) of {quoted(host)}"
    if queue or time.monotonic() >= end:
        raise TimeoutError(f"timed out connecting to {tried}")
    reason = (failures[-1].strerror or str(failures[-1])) if failures else "no address"
    raise OSError(f"connection failed ({reason}; tried {tried})")


def _start(
    address: Address, local_address: str | None, options: list[Any], failures: list[OSError]
) -> socket.socket | None:
    """A socket whose connect to `address` is under way, or None when it failed at once."""
    family, kind, proto, _, sockaddr = address
    sock = socket.socket(family, kind, proto)
    try:
        for option in options:
            sock.setsockopt(*option)
        if local_address:
            sock.bind((local_address, 0))
        sock.setblocking(False)
        error = sock.connect_ex(sockaddr)
        if error in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            return sock
        failures.append(OSError(error, os.strerror(error)))
    except OSError as exc:
        failures.append(exc)
    sock.close()
    return None


def _interleaved(addresses: list[Address]) -> list[Address]:
    """The resolver's order, alternating address families (RFC 8305): a broken family costs one stagger."""
    families: dict[int, list[Address]] = {}
    for address in addresses:
        families.setdefault(address[0], []).append(address)
    rows = list(families.values())
    return [row[i] for i in range(max(map(len, rows), default=0)) for row in rows if i < len(row)]


def backend(inner: Any) -> Any:
    """An httpcore network backend whose every wait ends by the deadline; `inner` serves Unix sockets."""
    import httpcore
    from httpcore._backends.sync import SyncStream  # checked by tests/faults/test_network.py on every upgrade

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return bytes(self._stream.read(max_bytes, until_deadline(timeout, httpcore.ReadTimeout)))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, until_deadline(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(
            self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
        ) -> Any:
            wait = until_deadline(timeout, httpcore.ConnectTimeout)
            return Stream(self._stream.start_tls(ssl_context, server_hostname, wait))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> Any:
            wait = until_deadline(timeout, httpcore.ConnectTimeout)
            end = time.monotonic() + wait  # one wait for resolving and connecting together
            try:
                addresses = resolve(host, port, wait)
                sock = connect(host, addresses, end - time.monotonic(), local_address, socket_options or ())
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(str(exc)) from None
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from None
            return Stream(SyncStream(sock))

        def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            wait = until_deadline(timeout, httpcore.ConnectTimeout)
            return Stream(inner.connect_unix_socket(path, wait, socket_options))

        def sleep(self, seconds: float) -> None:
            inner.sleep(seconds)

    return Backend()
