"""The console entry point (`authress-gitlab-token`, `python -m authress_gitlab_token`): the signal
handlers first, then the command. Every run ends here, one of two ways:

- interrupted: SIGINT or SIGTERM before the run's output is complete ends the process at once, with
  exit status 130 or 143 and the one line `authress-gitlab-token: interrupted`; nothing of the run is
  printed. The handler exits (os._exit) instead of raising KeyboardInterrupt, which importlib's module
  locks, threads and `finally` blocks can swallow or turn into a traceback;
- done: the output, kept in memory while the command ran, is written whole, and the process exits with
  the command's status. A signal from then on changes nothing, unless the writing is stuck (a reader
  that stopped reading): then it still interrupts.

The console script (helper/bin/authress-gitlab-token) installs a first pair of handlers before it reads
any file, this module included; `main`'s replace them. Before the script runs (interpreter start-up,
`site`), a signal gets Python's default (README, Exit status). This module imports only what the
interpreter has loaded already: `signal` would import enum first.
"""

from __future__ import annotations

import _thread
import io
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from types import FrameType
    from typing import NoReturn, TextIO
else:
    import _signal  # the built-in half of `signal`, loaded at start-up

PREFIX = "authress-gitlab-token: "
STUCK = 1.0  # seconds the finished output may take to write before a signal interrupts it anyway

_RUNNING, _WRITING, _ENDED = 0, 1, 2
_state = _RUNNING
_writing_since = 0.0
_note = ""  # what the interrupted line adds: what `setup --apply` had made
_temporary: set[str] = set()
_temporary_lock = _thread.RLock()


def main() -> NoReturn:
    """Run the command of sys.argv and exit; what the console script and `python -m` run."""
    _signal.signal(_signal.SIGINT, _interrupted)
    _signal.signal(_signal.SIGTERM, _interrupted)
    real_out, real_err = sys.stdout, sys.stderr
    # None stays None: the command names a closed stdout, and a closed stderr costs only the message.
    out, err = io.StringIO(), io.StringIO()
    if real_out is not None:
        sys.stdout = out
    if real_err is not None:
        sys.stderr = err
    try:
        from .cli import main as command

        code = command()
    except SystemExit as exc:  # argparse's --help and --version
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException as exc:  # noqa: BLE001 -- never a traceback: it could carry the token
        err.write(f"{PREFIX}internal error ({type(exc).__name__}); please report it with the command you ran\n")
        code = 1
    _finish(out.getvalue(), err.getvalue(), code, real_out, real_err)


def _finish(out: str, err: str, code: int, real_out: TextIO | None, real_err: TextIO | None) -> NoReturn:
    """Write the run's output whole and exit without the interpreter's teardown: nothing is left to
    run, and daemon threads (an abandoned key fetch) or a late signal could only print something."""
    global _state, _writing_since
    _writing_since = time.monotonic()
    _state = _WRITING
    try:
        if out and real_out is not None:
            real_out.write(out)
            real_out.flush()
    except (OSError, ValueError) as exc:
        if isinstance(exc, BrokenPipeError):
            err = f"{PREFIX}stdout was closed before the output was written; let the reader read all of it\n"
        else:
            err = f"{PREFIX}internal error ({type(exc).__name__}); please report it with the command you ran\n"
        code = code or 1
    try:
        if err and real_err is not None:
            real_err.write(err)
            real_err.flush()
    except (OSError, ValueError):
        pass  # stderr closed: the exit status still says it
    os._exit(code)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    global _state
    if _state == _ENDED or (_state == _WRITING and time.monotonic() - _writing_since < STUCK):
        return  # a second signal, or one after the run finished: the first ending stands
    _state = _ENDED
    _remove_temporary()
    line = PREFIX + "interrupted" + (f"; {_note}" if _note else "") + "\n"
    try:
        os.write(2, line.encode(errors="backslashreplace"))
    except OSError:
        pass
    os._exit(128 + signum)  # 130 for SIGINT, 143 for SIGTERM: what a shell reports for a signal's death


def say_if_interrupted(note: str) -> None:
    """What an interrupt's line adds from now on ("" for nothing): what is half done, and the fix."""
    global _note
    _note = " ".join(note.split())


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


def _remove_temporary() -> None:
    # Held until exit: a thread about to create a file waits for ever. A thread creating one now is
    # waited for (its file is then noted); the main thread, interrupted while creating one, holds it already.
    _temporary_lock.acquire(timeout=1.0)
    for path in list(_temporary):
        try:
            os.unlink(path)
        except OSError:
            pass
