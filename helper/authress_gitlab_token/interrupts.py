"""What an interrupt must undo and say: the temporary files a run is writing, and what `setup --apply`
had made. Kept at the bottom of the package so that any module may note these without importing the
entry point (entry.py reads them when a signal ends the run)."""

from __future__ import annotations

import os
import threading

note = ""  # what the interrupted line adds (say_if_interrupted): what `setup --apply` had made, the step to take
_temporary: set[str] = set()
_temporary_lock = threading.RLock()


def say_if_interrupted(text: str) -> None:
    """What an interrupt's line adds from now on ("" for nothing): what is half done, and the fix."""
    global note
    note = " ".join(text.split())


def create_temporary(directory: str, prefix: str, suffix: str) -> tuple[int, str]:
    """A new private file (an open descriptor and its path) that an interrupt removes. Named, noted and
    created under one lock, so the handler never misses a file another thread is creating."""
    with _temporary_lock:
        path = os.path.join(directory, prefix + os.urandom(8).hex() + suffix)
        _temporary.add(path)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), path
        except OSError:
            _temporary.discard(path)
            raise


def forget_temporary(path: str) -> None:
    """The file was renamed into place or removed: nothing for an interrupt to remove."""
    _temporary.discard(path)


def remove_temporary() -> None:
    """Remove every noted file; the lock is then held until the process exits, so a thread about to
    create one waits for ever (a thread creating one now is waited for, and its file noted)."""
    _temporary_lock.acquire(timeout=1.0)
    for path in list(_temporary):
        try:
            os.unlink(path)
        except OSError:
            pass
