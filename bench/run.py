"""The benchmark: the helper against Python's and its libraries' own start-up cost, as whole processes.

Prints figures and asserts nothing (targets live in the README, not in a timed test). Every variant is
a fresh process per run, started the way Terraform starts the helper (argv list, no shell, JSON on
stdin, its own environment), against a GitLab-like issuer over real TLS on 127.0.0.1. Variants are
interleaved round by round, so a burst of load from elsewhere hits all of them alike.

On loopback a round trip costs nothing; from a CI runner to gitlab.com it does. So the cold helper and
the naive verifier also run with the issuer holding back each answer D ms (`--delays`), and
cold(D) - cold(0) is the network time a CI run still waits for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.issuer import JWKS_PATH, LocalIssuer  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

AUDIENCE = "https://bench-account.api.authress.io"
PROGRAM = "authress-gitlab-token"


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # user + system seconds: less sensitive than wall time to other load on the machine
    max_rss: int  # KiB, the child's own peak (os.wait4)
    requests: int  # what the issuer saw during this run


@dataclass
class Variant:
    name: str
    argv: list[str]
    env: Callable[[int], dict[str, str]]  # run number -> environment
    stdin: bytes = b""
    counts_requests: bool = False
    delay_ms: int = 0  # the issuer's delay for this variant's runs
    samples: list[Sample] = field(default_factory=list)

    def median(self, what: str) -> float:
        """Median wall or CPU time in ms."""
        return statistics.median(getattr(s, what) for s in self.samples) * 1000

    def paired(self, base: Variant) -> float:
        """Median of the round-by-round wall-time differences to `base`, in ms."""
        return statistics.median((a.wall - b.wall) * 1000 for a, b in zip(self.samples, base.samples, strict=True))


class Spawner:
    """Runs each measured process through bench/spawn.py (see there why: peak RSS must be the child's)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [sys.executable, "-S", str(ROOT / "bench" / "spawn.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], env: dict[str, str], stdin: bytes) -> tuple[Sample, int, str]:
        """One process, start to exit: its sample (requests not yet counted), exit status and stderr."""
        (self.workdir / "stdin.json").write_bytes(stdin)
        job = {name: str(self.workdir / name) for name in ("stdout", "stderr")}
        job.update(stdin=str(self.workdir / "stdin.json"), argv=argv, env=env)
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        done = json.loads(self.proc.stdout.readline())
        stderr = (self.workdir / "stderr").read_text(errors="replace")
        return Sample(done["wall"], done["cpu"], done["max_rss"], 0), done["code"], stderr

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--runs", type=int, default=15, help="runs per variant (default 15)")
    options.add_argument("--parallel", type=int, default=20, help="cold runs started at once (default 20)")
    options.add_argument("--parallel-rounds", type=int, default=3, help="times to repeat the parallel test")
    options.add_argument(
        "--delays",
        type=lambda text: [int(d) for d in text.split(",")],
        default=[0, 50, 150],
        help="issuer delays D in ms, comma-separated, the first the baseline (default 0,50,150)",
    )
    options.add_argument(
        "--before",
        metavar="PROGRAM",
        help="another build of the helper (e.g. the last release) to run cold beside this one, at each D",
    )
    args = options.parse_args()

    program = shutil.which(PROGRAM, path=str(Path(sys.executable).parent))
    if program is None:
        print(f"{PROGRAM} is not installed beside {sys.executable}; run `make bench`", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="authress-bench-") as tmp_name:
        tmp = Path(tmp_name)
        ca = LocalCA.create(tmp / "ca")
        key = SigningKey.generate()
        issuer = LocalIssuer(ca, [key]).start()
        spawner = Spawner(tmp)
        try:
            return bench(args, program, tmp, ca, key, issuer, spawner)
        finally:
            spawner.close()
            issuer.stop()


def bench(
    args: argparse.Namespace,
    program: str,
    tmp: Path,
    ca: LocalCA,
    key: SigningKey,
    issuer: LocalIssuer,
    spawner: Spawner,
) -> int:
    token = mint(key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3600))
    query = {
        "audience": AUDIENCE,
        "issuer": issuer.url,
        "project_path": "my-org/authress-configuration",
        "ref": "main",
        "ref_type": "branch",
    }
    stdin = json.dumps(query, separators=(",", ":"), sort_keys=True).encode()
    base_env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp),
        "SSL_CERT_FILE": str(ca.ca_path),
    }
    warm_cache = tmp / "warm-cache"

    def helper_env(cache: Path) -> dict[str, str]:
        return {**base_env, "AUTHRESS_KEY": token, "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(cache)}

    delays = args.delays
    variants = [
        Variant("1 floor: python -c 'import json'", [sys.executable, "-c", "import json"], lambda _: base_env),
        Variant(
            "2 libraries: python -c 'import jwt, jsonschema'",
            [sys.executable, "-c", "import jwt, jsonschema"],
            lambda _: base_env,
        ),
        Variant(
            "3 helper, warm (keys cached on disk)",
            [program, "external"],
            lambda _: helper_env(warm_cache),
            stdin,
            True,
        ),
    ]
    cold = {
        d: Variant(
            f"4 helper, cold (empty cache dir), D = {d} ms",
            [program, "external"],
            lambda i, d=d: helper_env(tmp / f"cold-{d}-{i}"),
            stdin,
            True,
            d,
        )
        for d in delays
    }
    naive = {
        d: Variant(
            f"5 naive verifier (bench/naive.py), D = {d} ms",
            [sys.executable, str(ROOT / "bench" / "naive.py")],
            lambda _: {**base_env, "AUTHRESS_KEY": token},
            stdin,
            True,
            d,
        )
        for d in delays
    }
    before = {
        d: Variant(
            f"6 --before helper, cold, D = {d} ms",
            [args.before, "external"],
            lambda i, d=d: helper_env(tmp / f"before-{d}-{i}"),
            stdin,
            True,
            d,
        )
        for d in (delays if args.before else [])
    }
    variants += [*cold.values(), *naive.values(), *before.values()]

    # Fill the warm cache once, outside the measurement.
    _, code, err = spawner.run([program, "external"], helper_env(warm_cache), stdin)
    if code != 0:
        print(f"the helper failed to fill the cache (exit {code}): {err}", file=sys.stderr)
        return 1

    load_before = os.getloadavg()
    for i in range(args.runs):
        for v in variants:
            seen = len(issuer.requests)
            issuer.delay = v.delay_ms / 1000
            sample, code, err = spawner.run(v.argv, v.env(i), v.stdin)
            if code != 0:
                print(f"{v.name}: run {i + 1} failed (exit {code}): {err.strip()}", file=sys.stderr)
                return 1
            v.samples.append(dataclasses.replace(sample, requests=len(issuer.requests) - seen))
    issuer.delay = 0.0
    load_after = os.getloadavg()

    print(f"authress-gitlab-token benchmark: {args.runs} runs per variant, interleaved; each run a new process")
    print(
        f"python {sys.version.split()[0]} on {os.cpu_count()} CPU(s); load average 1/5/15 min before: "
        f"{'/'.join(f'{x:.2f}' for x in load_before)}, after: {'/'.join(f'{x:.2f}' for x in load_after)}"
    )
    print("Other load on the machine skews wall times; compare variants within one run, not across runs.")
    print("D: the issuer holds back each answer D ms, as a network round trip to gitlab.com would.\n")
    print(f"{'':<50} {'wall time, ms':^20} {'CPU time, ms':^20} {'peak RSS, MiB':^20} {'HTTP requests':>13}")
    print(f"{'variant':<50}" + " {:>6} {:>6} {:>6}".format("median", "min", "max") * 3 + f" {'per run':>13}")
    for v in variants:
        reqs = [s.requests for s in v.samples]
        per_run = (
            (str(min(reqs)) if min(reqs) == max(reqs) else f"{min(reqs)}-{max(reqs)}") if v.counts_requests else "-"
        )
        columns = [
            [s.wall * 1000 for s in v.samples],
            [s.cpu * 1000 for s in v.samples],
            [s.max_rss / 1024 for s in v.samples],
        ]
        figures = "".join(f" {statistics.median(c):6.1f} {min(c):6.1f} {max(c):6.1f}" for c in columns)
        print(f"{v.name:<50}{figures} {per_run:>13}")

    def ratio(a: Variant, b: Variant) -> str:
        return f"{a.median('wall') / b.median('wall'):.2f}x wall, {a.median('cpu') / b.median('cpu'):.2f}x CPU"

    floor, libraries, warm = variants[:3]
    d0 = delays[0]
    print("\nratios of medians:")
    print(f"  warm helper / libraries:        {ratio(warm, libraries)}  (target: within 1.15x)")
    print(f"  warm helper / floor:            {ratio(warm, floor)}")
    print(f"  cold helper, D = {d0} / libraries: {ratio(cold[d0], libraries)}  (target: within 1.6x)")
    print(f"  naive, D = {d0} / warm helper:     {ratio(naive[d0], warm)}")

    print(
        f"\nthe network a run waits for: cold(D) - cold({d0}), wall ms; the difference of the "
        "medians, and in () the median of the per-round differences (round i of D against round i of "
        f"{d0}: less sensitive to load)"
    )
    print(f"{'D, ms':>6} {'cold helper':>12} {'cold(D)-cold(0)':>22} {'/ D':>6} {'naive':>8} {'naive(D)-naive(0)':>22}")
    for d in delays:
        c, n = cold[d], naive[d]
        cost, paired = c.median("wall") - cold[d0].median("wall"), c.paired(cold[d0])
        naive_cost, naive_paired = n.median("wall") - naive[d0].median("wall"), n.paired(naive[d0])
        per_d = f"{cost / d:5.2f}x" if d else "-"
        print(
            f"{d:>6} {c.median('wall'):>12.1f} {cost:>9.1f} ({paired:>7.1f}) {per_d:>6} "
            f"{n.median('wall'):>8.1f} {naive_cost:>9.1f} ({naive_paired:>7.1f})"
            f"   naive / cold {n.median('wall') / c.median('wall'):.2f}x"
        )
    if before:
        print(f"the --before helper, {args.before}:")
    for d in before:
        c, b = cold[d], before[d]
        cost, paired = b.median("wall") - before[d0].median("wall"), b.paired(before[d0])
        per_d = f"{cost / d:5.2f}x" if d else "-"
        print(
            f"{d:>6} {b.median('wall'):>12.1f} {cost:>9.1f} ({paired:>7.1f}) {per_d:>6}"
            f"   before / this cold helper {b.median('wall') / c.median('wall'):.2f}x"
        )
    last = delays[-1]
    if last:
        print(f"  target at D = {last}: cold({last}) - cold({d0}) <= 1.0 x D = {last} ms (stretch: 0.5 x D)")

    print(f"\n{args.parallel} parallel cold runs of the helper, one shared empty cache dir per round:")
    for r in range(args.parallel_rounds):
        cache = tmp / f"parallel-{r}"
        seen = len(issuer.requests)
        start = time.perf_counter()
        children = []
        for i in range(args.parallel):
            out = tmp / f"parallel-{r}-{i}"
            out.mkdir()
            (out / "stdin.json").write_bytes(stdin)
            with open(out / "stdin.json", "rb") as fin, open(out / "stderr", "wb") as ferr:
                children.append(
                    subprocess.Popen(
                        [program, "external"], stdin=fin, stdout=subprocess.DEVNULL, stderr=ferr, env=helper_env(cache)
                    )
                )
        codes = [c.wait(timeout=120) for c in children]
        wall = time.perf_counter() - start
        hits = issuer.requests[seen:]
        jwks = hits.count(JWKS_PATH)
        print(
            f"  round {r + 1}: {len(hits)} HTTP requests in total ({jwks} of them for the JWKS), "
            f"{codes.count(0)}/{len(codes)} succeeded, {wall * 1000:.0f} ms for all"
        )
        for i, code in enumerate(codes):
            if code != 0:
                print(f"    run {i + 1} exit {code}: {(tmp / f'parallel-{r}-{i}' / 'stderr').read_text().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
