"""Ctrl-C (SIGINT) and a runner's cancel (SIGTERM) at random moments of real runs, as Terraform starts
them: every run is either done (exit 0, the whole result, nothing on stderr) or interrupted (exit 130 or
143, the one line, nothing on stdout), never a traceback, and no temporary file stays in the key cache.

The console script is the packaging standard's (`[project.scripts]`): `entry.main` installs the handlers
as its first act. A signal that arrives before that (interpreter start-up, `site`, the wrapper's imports
of our package) gets Python's default: SIGTERM and an early SIGINT end the process by the signal,
silently; a SIGINT once Python's own handler is in place raises KeyboardInterrupt, which Python reports
(a traceback, or "Exception ignored" and the run goes on). The test tells those runs apart by what the
process catches when the signal is sent (SigCgt in /proc/PID/status: Python never catches SIGTERM, our
handler does), allows them Python's own endings (never a token, never a partial result), and counts them.

INTERRUPT_STRESS_RUNS sets the number of runs (default 100); the figures print with `pytest -s`."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from authress_gitlab_token import __version__
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, BIN_DIR, PROGRAM, PROJECT, Helper, Run, leaks, safe
from tests.fixtures.issuer import LocalIssuer, running_issuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint


@pytest.fixture
def helper(process: Helper) -> Helper:
    """These tests are about the process: every run here starts the installed console script."""
    return process


RUNS = int(os.environ.get("INTERRUPT_STRESS_RUNS", "100"))
PARALLEL = 4  # processes at once: load on 2 cores moves the moments a signal lands, as a busy runner does
LINE = "authress-gitlab-token: interrupted\n"
MODES = ("slow issuer", "cold", "warm")


@dataclass(frozen=True)
class Shot:
    """One run and what it is sent: its mode, the signals (a second one 0-3 ms after the first), when."""

    number: int
    mode: str
    signals: tuple[signal.Signals, ...]
    delay: float


@dataclass(frozen=True)
class Outcome:
    shot: Shot
    ours: bool  # the launcher's handlers were installed when the first signal was sent
    pythons: bool  # Python's SIGINT handler was (the interpreter had got that far)
    run: Run
    temporary: tuple[str, ...]  # .jwks-*.tmp left in the run's cache directory
    cached: bool  # the run had written the keys to its cache


def handlers_installed(pid: int) -> tuple[bool, bool]:
    """Whether the process catches SIGTERM, which only our handlers make it do, and SIGINT (Python's own
    handler or ours). Read before the signal is sent, True stays true: handlers are never removed."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True, True  # already gone: whatever was sent came after the end
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1), bool(caught >> (signal.SIGINT - 1) & 1)


@dataclass
class Stage:
    """Where the runs happen: a token and a query per mode, and a warm cache to copy for warm runs."""

    helper: Helper
    tokens: dict[str, str]
    queries: dict[str, bytes]
    warm_cache: Path
    root: Path

    def fire(self, shot: Shot) -> Outcome:
        cache = self.root / f"cache-{shot.number}-{shot.mode}-{os.urandom(4).hex()}"
        if shot.mode == "warm":
            shutil.copytree(self.warm_cache, cache)
        env = {"AUTHRESS_KEY": self.tokens[shot.mode], "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(cache)}
        child = self.helper.start(["external"], self.queries[shot.mode], env)
        time.sleep(shot.delay)
        ours, pythons = handlers_installed(child.pid)
        for i, sig in enumerate(shot.signals):
            if i:
                time.sleep(random.uniform(0, 0.003))
            child.send_signal(sig)
        run = self.helper.finish(child, ["external"])
        temporary = tuple(p.name for p in cache.glob(".jwks-*.tmp")) if cache.exists() else ()
        cached = cache.exists() and any(cache.glob("jwks-*.json"))
        return Outcome(shot, ours, pythons, run, temporary, cached)


@pytest.fixture
def stage(helper: Helper, issuer: LocalIssuer, ca: LocalCA, signing_key: SigningKey, tmp_path: Path) -> Iterator[Stage]:
    with running_issuer(ca, [signing_key]) as slow:
        slow.delay = 0.3  # each of discovery and the JWKS answers after 0.3 s: a far or busy GitLab
        # Valid for an hour, as a long job's: a thousand runs on a busy machine take a quarter of it.
        tokens = {"slow issuer": mint(signing_key, gitlab_claims(slow.url, AUDIENCE, lifetime=3600))}
        tokens["cold"] = tokens["warm"] = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3600))
        queries = {
            mode: json.dumps({"audience": AUDIENCE, "issuer": url, "project_path": PROJECT}).encode()
            for mode, url in (("slow issuer", slow.url), ("cold", issuer.url), ("warm", issuer.url))
        }
        warm_cache = tmp_path / "warm"
        env = {"AUTHRESS_KEY": tokens["warm"], "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(warm_cache)}
        assert helper.finish(helper.start(["external"], queries["warm"], env), ["external"]).returncode == 0
        yield Stage(helper, tokens, queries, warm_cache, tmp_path)


def problem(outcome: Outcome, token: str) -> str | None:
    """What is wrong with one run's ending, or None."""
    run, sent = outcome.run, outcome.shot.signals
    if outcome.temporary:
        return f"temporary files left: {outcome.temporary}"
    if leaks(run.stderr) or (run.returncode != 0 and leaks(run.stdout)):
        return "a token in the output"
    if run.returncode == 0:
        try:
            done = run.result["access_token"] == token
        except (ValueError, KeyError, AssertionError):
            done = False
        return None if done and (run.stderr == "" or before_ours(outcome)) else "exit 0 without the whole result"
    if run.stdout:
        return "a result from a run that did not succeed"
    if run.returncode in [128 + s for s in sent] and run.stderr == LINE:
        return None
    if outcome.ours:
        return f"exit {run.returncode} though the handlers were installed, or not with the one line alone"
    return None if before_ours(outcome) else f"exit {run.returncode} before the handlers, not as Python ends"


def before_ours(outcome: Outcome) -> str | None:
    """How Python ended (or went on with) a run whose first signal was sent before our handlers were
    installed, or None when the handlers were installed. Python's own endings: silent death by a signal
    sent, or a report of a SIGINT's KeyboardInterrupt (a traceback, which may show the console script
    importing our package; or "Exception ignored", and the run went on)."""
    run, sent = outcome.run, outcome.shot.signals
    if outcome.ours:
        return None
    if run.returncode in [-s for s in sent]:  # the default action of a signal sent, maybe mid-report
        return "ended by the signal" + (", after part of Python's report" if run.stderr.strip() else ", silently")
    if not run.stderr.strip():
        return "went on"
    last = run.stderr.splitlines()[-1].strip()
    if signal.SIGINT in sent and (last in INTERRUPTS or "KeyboardInterrupt" in run.stderr):
        return f"Python's report of a KeyboardInterrupt, exit {run.returncode}"
    return "went on" if run.returncode in (0, 1, 130, 143) else None


INTERRUPTS = ("KeyboardInterrupt", "KeyboardInterrupt:")


def category(outcome: Outcome) -> str:
    python = before_ours(outcome)
    if python:
        return f"exit {outcome.run.returncode}, before the handlers: {python}"
    code = outcome.run.returncode
    if code in (0, 130, 143):
        return f"exit {code}" + ("" if outcome.ours or code == 0 else " (handlers installed while it was sent)")
    return f"exit {code}, wrong"


@pytest.mark.slow
def test_every_run_signalled_at_a_random_moment_is_done_or_interrupted_with_one_line(stage: Stage) -> None:
    seed = int(os.environ.get("INTERRUPT_STRESS_SEED", random.randrange(1 << 32)))
    rng = random.Random(seed)
    # How long unsignalled runs of each mode take here, now, as many at once as the signalled ones: the
    # signals land across all of such a run, and some come too late.
    length = {}
    with ThreadPoolExecutor(PARALLEL) as pool:
        for mode in MODES:
            started = time.monotonic()
            quiet = pool.map(stage.fire, [Shot(-1, mode, (), 0.0)] * PARALLEL)
            assert all(o.run.returncode == 0 for o in quiet), mode
            length[mode] = time.monotonic() - started
    shots = []
    for number in range(RUNS):
        mode = MODES[number % len(MODES)]
        first = rng.choice([signal.SIGINT, signal.SIGTERM])
        second = {signal.SIGINT: signal.SIGTERM, signal.SIGTERM: signal.SIGINT}[first]
        sent = (first, second) if number % 10 == 9 else (first,)
        spread = (1.5, 3.0) if number % 25 == 24 else (0.0, 1.3)  # a few after the end, whatever the load does
        shots.append(Shot(number, mode, sent, rng.uniform(*spread) * length[mode]))

    started = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(stage.fire, shots))
    took = time.monotonic() - started

    token = {mode: stage.tokens[mode] for mode in MODES}
    wrong = [(o.shot, problem(o, token[o.shot.mode]), safe(o.run.stderr)[-300:]) for o in outcomes]
    wrong = [w for w in wrong if w[1]]
    counts = collections.Counter(category(o) for o in outcomes)
    seconds = {mode: round(t, 2) for mode, t in length.items()}
    print(f"\n{RUNS} runs in {took:.1f} s, {PARALLEL} at a time (so many unsignalled: {seconds} s), seed {seed}:")
    for name, count in sorted(counts.items()):
        print(f"  {count:5d}  {name}")
    early = [o for o in outcomes if not o.ours]
    print(f"  {len(early):5d}  sent before the handlers ({len(early) / RUNS:.1%}), of them")
    print(f"  {sum(not o.pythons for o in early):5d}    before Python's own SIGINT handler")
    late = sum(o.cached and o.run.returncode != 0 and o.shot.mode != "warm" for o in outcomes)
    print(f"  {late:5d}  cold runs interrupted after writing the key cache")
    print(f"  {sum(len(o.shot.signals) == 2 for o in outcomes):5d}  sent a second signal")
    assert not wrong, f"seed {seed}: {len(wrong)} of {RUNS} runs ended wrongly, first: {wrong[:3]}"
    # The mix the test exists for: most signals meet the handlers, and some runs finish first.
    assert sum(o.ours for o in outcomes) > RUNS // 2, counts
    assert counts["exit 0"] and counts["exit 130"] and counts["exit 143"], counts


# The entry point as the console script calls it, recording each file opened and module imported (audit
# events; a module already loaded raises none) from the moment `main` runs until both handlers are installed.
WATCH = """
import os, signal, sys
from authress_gitlab_token import entry
installed, real = [], signal.signal
def install(signum, handler):
    installed.append(signum)
    return real(signum, handler)
def watch(event, args):
    if event in ("open", "import") and len(set(installed) & {2, 15}) < 2:
        os.write(2, f"{event} {args[0]!r} before the handlers\\n".encode())
signal.signal = install
sys.argv = ["authress-gitlab-token", "--version"]
sys.addaudithook(watch)
entry.main()
"""


def test_the_console_script_is_the_standard_entry_point_whose_first_act_is_to_install_the_handlers() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name=PROGRAM)
    assert script.value == "authress_gitlab_token.entry:main"
    assert shutil.which(PROGRAM, path=str(BIN_DIR)), f"{PROGRAM} is not installed in {BIN_DIR}"
    done = subprocess.run([sys.executable, "-c", WATCH], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{PROGRAM} {__version__}\n", "")


def big_output(helper: Helper) -> list[str]:
    """`setup` guides for 40 projects: about 140 KB on stdout, more than a pipe holds, with no request."""
    projects = [a for i in range(40) for a in ("--project", f"my-org/p{i}")]
    return ["setup", *projects, "--branch", "main", "--audience", AUDIENCE, "--issuer", "https://gitlab.com"]


def writing(pid: int, seconds: float = 30.0) -> bool:
    """Whether the process comes to wait in write(2) on its stdout pipe (the reader is not reading)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{pid}/syscall").read_text().split()[0] == "1":
                return True
        except (OSError, IndexError):
            return False
        time.sleep(0.01)
    return False


def test_a_signal_while_the_finished_output_is_written_does_not_cut_it_off(helper: Helper) -> None:
    """The run is done and its output is being written to a reader that is slow to read: a signal then
    changes nothing, and the reader gets the whole output (exit 0)."""
    args = big_output(helper)
    whole = helper.run(args)
    assert whole.returncode == 0 and len(whole.stdout) > 100_000
    child = helper.start(args)
    assert writing(child.pid), "the run never waited on its stdout"
    child.send_signal(signal.SIGTERM)
    run = helper.finish(child, args)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == whole.stdout


@pytest.mark.slow
def test_a_write_stuck_on_a_reader_that_stopped_reading_can_still_be_interrupted(helper: Helper) -> None:
    """Past STUCK seconds of a write that does not move, a signal ends the run as interrupted; what was
    written by then stays written (less than the whole output), and the exit status says it is not all."""
    from authress_gitlab_token.entry import STUCK

    args = big_output(helper)
    child = helper.start(args)
    assert writing(child.pid), "the run never waited on its stdout"
    time.sleep(STUCK + 0.5)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    run = helper.finish(child, args)
    assert run.stderr == LINE
    assert len(run.stdout) < 140_000


def test_a_full_disk_on_stdout_is_one_line_not_an_internal_error(helper: Helper) -> None:
    program = shutil.which(PROGRAM, path=str(BIN_DIR))
    assert program
    with open("/dev/full", "w") as full:
        done = subprocess.run([program, "--version"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "authress-gitlab-token: stdout could not be written (No space left on device); give the command a "
        "writable stdout\n"
    )


def test_a_temporary_file_left_by_a_killed_run_is_removed_by_the_next_run_that_writes_the_cache(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """SIGKILL cannot be handled. A temporary file older than a minute is such a run's; a younger one
    may be a parallel run's write in progress, and stays."""
    helper.cache_dir.mkdir(parents=True)
    old, young = helper.cache_dir / ".jwks-0123abcd.tmp", helper.cache_dir / ".jwks-4567ef01.tmp"
    for path in (old, young):
        path.write_text('{"keys": [')
    os.utime(old, (time.time() - 120, time.time() - 120))
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}
    assert helper.external(query, token).returncode == 0
    assert not old.exists() and young.exists()
