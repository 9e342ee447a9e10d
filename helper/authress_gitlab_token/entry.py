"""The console entry point (`authress-gitlab-token`, `python -m authress_gitlab_token`): the signal
handlers first, then the command, whose output is kept in memory and written whole once it is done.
A SIGINT or SIGTERM before then ends the run at once (os._exit: KeyboardInterrupt can be swallowed by
threads and `finally` blocks, or become a traceback) with 130 or 143 and one line, nothing of the
output, and the temporary files removed; after, it changes nothing unless the writing is stuck. Before
`main` runs, a signal gets Python's default handling: docs/errors.md gives the measured window."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from types import FrameType
from typing import NoReturn, TextIO

from . import interrupts

PREFIX = "authress-gitlab-token: "
STUCK = 1.0  # seconds the finished output may take to write before a signal interrupts it anyway
INTERNAL = PREFIX + "internal error ({}); please report it with the command you ran\n"

_writing_since: float | None = None  # set once the finished output is being written
_ended = False


def main() -> NoReturn:
    """Run the command of sys.argv and exit: what the console script and `python -m` run."""
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
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
        err.write(INTERNAL.format(type(exc).__name__))
        code = 1
    _finish(out.getvalue(), err.getvalue(), code, real_out, real_err)


def _finish(out: str, err: str, code: int, real_out: TextIO | None, real_err: TextIO | None) -> NoReturn:
    """Write the run's output whole and exit without the interpreter's teardown: nothing is left to
    run, and daemon threads (an abandoned request) or a late signal could only print something."""
    global _writing_since
    _writing_since = time.monotonic()
    try:
        if out and real_out is not None:
            real_out.write(out)
            real_out.flush()
    except (OSError, ValueError) as exc:
        if isinstance(exc, BrokenPipeError):
            err = f"{PREFIX}stdout was closed before the output was written; let the reader read all of it\n"
        else:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            err = f"{PREFIX}stdout could not be written ({reason}); give the command a writable stdout\n"
        code = code or 1
    try:
        if err and real_err is not None:
            real_err.write(err)
            real_err.flush()
    except (OSError, ValueError):
        pass  # stderr closed or full: the exit status still says it
    os._exit(code)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    global _ended
    writing = _writing_since is not None and time.monotonic() - _writing_since < STUCK
    if _ended or writing:
        return  # a second signal, or one while the finished output is written: the first ending stands
    _ended = True
    interrupts.remove_temporary()
    note = interrupts.note
    line = PREFIX + "interrupted" + (f"; {note}" if note else "") + "\n"
    try:
        os.write(2, line.encode(errors="backslashreplace"))
    except OSError:
        pass
    os._exit(128 + signum)  # 130 for SIGINT, 143 for SIGTERM: what a shell reports for a signal's death
