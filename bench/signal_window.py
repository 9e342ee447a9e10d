"""How long a run of the helper is open to Python's default signal handling, against its whole length.

A signal that lands before the helper's own handlers are installed gets Python's default: before the
interpreter installs its SIGINT handler, SIGINT and SIGTERM end the process silently; from then on a
SIGINT raises KeyboardInterrupt wherever Python is (site, an import), and SIGTERM still ends it
silently. This polls /proc/PID/status (SigCgt) of each run from the moment it is started and reports,
as medians over cold `external` runs against a local issuer (the run the stress test signals):

  python's   when the interpreter catches SIGINT (its default handler is in place)
  ours       when the process catches SIGTERM (only the helper's handlers do that)
  end        when the run has exited

Prints figures and asserts nothing. `--program` (repeatable) measures other builds, such as a wrapper
pip made, their runs interleaved round by round so that load from elsewhere hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.issuer import LocalIssuer  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

AUDIENCE = "https://bench-account.api.authress.io"
PROGRAM = "authress-gitlab-token"


def caught(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))


def one_run(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds from start to Python's SIGINT handler, to ours, and to the exit."""
    python = ours = float("nan")
    read_end, write_end = os.pipe()
    os.write(write_end, stdin)
    os.close(write_end)
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    os.close(read_end)
    while child.poll() is None:
        mask = caught(child.pid)
        now = time.perf_counter() - started
        if mask is None:
            break
        if python != python and mask >> (signal.SIGINT - 1) & 1:
            python = now
        if mask >> (signal.SIGTERM - 1) & 1:
            ours = now
            break
    child.wait()
    end = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"a run failed with exit {child.returncode}")
    return python, ours, end


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--runs", type=int, default=100)
    options.add_argument("--program", action="append", help="the program to run (default: the installed one)")
    args = options.parse_args()
    programs = args.program or [shutil.which(PROGRAM, path=str(Path(sys.executable).parent))]
    if not all(programs):
        print(f"{PROGRAM} is not installed beside {sys.executable}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="authress-window-") as tmp_name:
        tmp = Path(tmp_name)
        ca = LocalCA.create(tmp / "ca")
        key = SigningKey.generate()
        issuer = LocalIssuer(ca, [key]).start()
        try:
            token = mint(key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3600))
            query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": "my-org/authress-configuration"}
            stdin = json.dumps(query).encode()
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(tmp),
                "SSL_CERT_FILE": str(ca.ca_path),
                "AUTHRESS_KEY": token,
            }
            samples: dict[str, list[tuple[float, float, float]]] = {p: [] for p in programs}
            for i in range(args.runs):
                for n, program in enumerate(programs):
                    cache = {"AUTHRESS_GITLAB_TOKEN_CACHE_DIR": f"{tmp}/c{i}-{n}"}
                    samples[program].append(one_run([program, "external"], stdin, {**env, **cache}))
        finally:
            issuer.stop()
    for program, runs in samples.items():
        python, ours, end = (statistics.median(s[i] for s in runs) * 1000 for i in range(3))
        print(f"{program}: {args.runs} cold runs, medians")
        print(f"  {python:7.2f} ms  until Python's SIGINT handler (before it: both signals end the run silently)")
        print(f"  {ours:7.2f} ms  until the helper's handlers (from Python's: SIGINT raises KeyboardInterrupt)")
        print(f"  {end:7.2f} ms  the whole run")
        share, sigint = ours / end, (ours - python) / end
        print(f"  {share:7.1%}     of the run open to Python's defaults, {sigint:.1%} to its SIGINT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
