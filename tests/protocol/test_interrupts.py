"""Ctrl-C (SIGINT) and a runner's cancel (SIGTERM) at random moments of real runs, as Terraform starts
them: every run is either done (exit 0, the whole result, nothing on stderr) or interrupted (exit 130 or
143, the one line, nothing on stdout), never a traceback, and no temporary file stays in the key cache.

A signal that arrives before the entry point has installed its handlers (interpreter start-up, `site`,
the console script's first import) gets Python's default, which no code of ours can change: SIGTERM
and an early SIGINT end the process by the signal, silently; a SIGINT once Python's own handler is in
place raises KeyboardInterrupt, which Python reports (inside `site`, as a fatal error, exit 1; inside
an import lock's callback, as "Exception ignored", and the run goes on to complete). The test
tells those runs apart by what the process catches when the signal is sent (SigCgt in /proc/PID/status:
Python never catches SIGTERM, the entry point does), holds them to what Python does, and counts them.

INTERRUPT_STRESS_RUNS sets the number of runs (default 200); the figures print with `pytest -s`."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, Run, leaks, safe
from tests.fixtures.issuer import LocalIssuer, running_issuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

RUNS = int(os.environ.get("INTERRUPT_STRESS_RUNS", "200"))
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
    ours: bool  # the entry point's handlers were installed when the first signal was sent
    run: Run
    temporary: tuple[str, ...]  # .jwks-*.tmp left in the run's cache directory
    cached: bool  # the run had written the keys to its cache


def handlers_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM, which only the entry point makes it do. Read before the
    signal is sent, True stays true: the handlers are installed once and never removed."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False  # already gone
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


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
        ours = handlers_installed(child.pid)
        for i, sig in enumerate(shot.signals):
            if i:
                time.sleep(random.uniform(0, 0.003))
            child.send_signal(sig)
        run = self.helper.finish(child, ["external"])
        temporary = tuple(p.name for p in cache.glob(".jwks-*.tmp")) if cache.exists() else ()
        cached = cache.exists() and any(cache.glob("jwks-*.json"))
        return Outcome(shot, ours, run, temporary, cached)


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
        # Before the handlers, Python's own default handler may raise the KeyboardInterrupt inside an
        # import lock's weakref callback, which Python reports as "Exception ignored" and goes on: the
        # signal is lost, the run completes. Nothing of ours has run yet (README, Errors).
        if done and run.stderr and not outcome.ours and swallowed_by_python(run.stderr):
            return None
        return None if done and run.stderr == "" else "exit 0 without the whole result, or with something on stderr"
    if run.returncode in [128 + s for s in sent]:
        return None if run.stdout == "" and run.stderr == LINE else "interrupted, but not with the one line alone"
    if outcome.ours:
        return f"exit {run.returncode} though the handlers were installed"
    # Before the handlers, Python's default: the signal ends the process, or a SIGINT raises a
    # KeyboardInterrupt that Python reports (exit 1 while it starts, else ended by the signal).
    if run.stdout:
        return "a result from a run ended by Python's default"
    reported = signal.SIGINT in sent and "KeyboardInterrupt" in run.stderr
    if run.stderr and not reported:
        return f"exit {run.returncode} before the handlers, with more than Python's report on stderr"
    ended = [-s for s in sent] + ([1] if reported else [])  # by a signal sent, or Python's exit 1
    return None if run.returncode in ended else f"exit {run.returncode} before the handlers"


def swallowed_by_python(stderr: str) -> bool:
    """Python's report of a KeyboardInterrupt raised in an import lock's callback, and nothing else."""
    lines = stderr.splitlines()
    return (
        bool(lines)
        and lines[0].startswith("Exception ignored in: <function _get_module_lock.<locals>.cb")
        and lines[-1].strip() == "KeyboardInterrupt:"
        and "authress-gitlab-token:" not in stderr
    )


def category(outcome: Outcome) -> str:
    code = outcome.run.returncode
    if code == 0 and not outcome.ours and swallowed_by_python(outcome.run.stderr):
        return "exit 0, before the handlers, the SIGINT swallowed by Python's import lock"
    if code in (0, 130, 143):
        return f"exit {code}" + ("" if outcome.ours or code == 0 else " (handlers installed while it was sent)")
    if outcome.ours:
        return f"exit {code} with the handlers installed"
    reported = "KeyboardInterrupt" in outcome.run.stderr
    return f"exit {code}, before the handlers" + (", with Python's report" if reported else "")


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
    late = sum(o.cached and o.run.returncode != 0 and o.shot.mode != "warm" for o in outcomes)
    print(f"  {late:5d}  cold runs interrupted after writing the key cache")
    print(f"  {sum(len(o.shot.signals) == 2 for o in outcomes):5d}  sent a second signal")
    assert not wrong, f"seed {seed}: {len(wrong)} of {RUNS} runs ended wrongly, first: {wrong[:3]}"
    # The mix the test exists for: most signals meet the handlers, and some runs finish first.
    assert sum(o.ours for o in outcomes) > RUNS // 2, counts
    assert counts["exit 0"] and counts["exit 130"] and counts["exit 143"], counts


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
