"""What `make demo` builds before it runs, at once: the helper's venv (runtime dependencies only, as a
user installs it) and the tools (tests/e2e/build_providers.sh --demo). Each line they print is shown
with the time taken so far; when neither has said anything for INTERVAL seconds, one line says what is
still building and for how long. Standard library only: it runs before the venv exists."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 15.0  # at most this long without a line while something builds


class Show:
    """Lines with the time since the start; remembers when the last one was written."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.start = time.monotonic()
        self.last = self.start
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            self.last = time.monotonic()
            self.out.write(f"make demo: [{self.last - self.start:3.0f} s] {line}\n")
            self.out.flush()


class Step:
    """One build step as a child process; its output lines go to `show` as they come."""

    def __init__(self, name: str, argv: list[str], show: Show) -> None:
        self.name, self.show = name, show
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.doing = "starting"
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip()
            if line:
                self.doing = line.removeprefix("build_providers: ").split(" (from ", 1)[0]
                self.show(line)


def build(steps: list[tuple[str, str, list[str]]], out: IO[str], interval: float = INTERVAL) -> int:
    """Run the steps at once, showing their lines, and a line naming what still builds whenever
    `interval` seconds pass without one; 0 when every step succeeded."""
    show = Show(out)
    show("building " + " and ".join(f"{name} ({what})" for name, what, _ in steps))
    running = [Step(name, argv, show) for name, _, argv in steps]
    while any(s.proc.poll() is None for s in running):
        time.sleep(min(0.2, interval / 4))
        if time.monotonic() - show.last >= interval:
            show("still building " + "; ".join(f"{s.name}: {s.doing}" for s in running if s.proc.poll() is None))
    for s in running:
        s.reader.join(5)
    failed = [s.name for s in running if s.proc.returncode != 0]
    if failed:
        show(f"building {' and '.join(failed)} failed (the lines above say why)")
        return 1
    show("built")
    return 0


def main(argv: list[str]) -> int:
    venv_target, make = argv[0], argv[1] if len(argv) > 1 else "make"
    steps = [
        ("the helper's venv", "pip install -e .", [make, "--no-print-directory", venv_target]),
        (
            "the tools",
            "tests/e2e/build_providers.sh --demo: a Terraform CLI, the providers the demo runs",
            ["bash", "tests/e2e/build_providers.sh", "--demo"],
        ),
    ]
    return build(steps, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
