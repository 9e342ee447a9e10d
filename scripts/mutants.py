"""A mutation test of the suite: plausible one-line bugs in the security logic, each run against the
non-e2e suite (`-x`: the first failing test kills it). A surviving mutant is a bug the suite would let
through. Each mutant is applied in place and always restored (the file's text and times; an interrupt
restores it too), so run it in a clone you are not editing. A mutant names its file and an exact
fragment of one line; when the file has moved, the fragment is looked for under helper/.

    .venv/bin/python scripts/mutants.py                 # all, in order; figures at the end
    .venv/bin/python scripts/mutants.py --only 9,20 -v  # some, with each one's failing test

Test files that mention the mutated module run first, so most kills come quickly; a survivor runs
the whole suite. INTERRUPT_STRESS_RUNS is 30 here unless set: the stress test checks no security logic.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "helper"
PACKAGE = "authress_gitlab_token"


@dataclass(frozen=True)
class Mutant:
    file: str  # under helper/authress_gitlab_token/
    old: str  # exactly once in the file
    new: str
    why: str
    tests: tuple[str, ...] = ()  # test files to run first, beside those that mention the module


M = Mutant
MUTANTS = [
    # verify.py: the token's header, signature and claims
    M("verify.py", "if alg not in PINNED_ALGORITHMS:", 'if alg == "none":', "alg pin dropped"),
    M("verify.py", 'PINNED_ALGORITHMS = ("RS256",)', 'PINNED_ALGORITHMS = ("RS256", "RS512")', "alg pin widened"),
    M("verify.py", 'if "crit" in header:', "if False:", "crit header ignored"),
    M(
        "verify.py",
        "if not isinstance(kid, str) or not kid:",
        "if not isinstance(kid, str):",
        "empty kid taken",
        ("test_token.py",),
    ),
    M("verify.py", '"strict_aud": False}', '"strict_aud": False, "verify_aud": False}', "audience unchecked"),
    M("verify.py", "issuer=settings.issuer,", "issuer=None,", "issuer unchecked"),
    M("verify.py", "leeway=settings.leeway_seconds,", "leeway=settings.leeway_seconds + 600,", "leeway too wide"),
    M("verify.py", '{"require": list(REQUIRED_CLAIMS),', '{"require": ["iss", "aud"],', "exp/iat/sub optional"),
    M("verify.py", "left < min_validity_seconds:", "left <= min_validity_seconds:", "min-validity boundary"),
    M("verify.py", 'left = int(claims["exp"] - now)', 'left = int(claims["exp"] - now) + 60', "lifetime off"),
    M(
        "verify.py",
        'if not v.claims["sub"].strip():',
        'if not v.claims["sub"]:',
        "blank sub taken",
        ("test_claims.py",),
    ),
    M(
        "verify.py",
        "problem = time_claim_problem(v.claims)",
        "problem = None",
        "string time claims taken",
        ("test_claims.py",),
    ),
    M(
        "verify.py",
        "and not isinstance(value, bool) and 0 <=",
        "and 0 <=",
        "boolean time claim taken",
        ("test_claims.py",),
    ),
    M(
        "verify.py",
        "glob_match(g, value) for g in bound.globs",
        "glob_match(g.lower(), value.lower()) for g in bound.globs",
        "case-insensitive globs",
    ),
    M("verify.py", 'value = "true" if value else "false"', "value = str(value)", "booleans as True/False"),
    M(
        "verify.py",
        "return len(value) == first_size and first.match(value)",
        "return first.match(value)",
        "glob matches a prefix",
    ),
    M("verify.py", " or last.match(value, end) is None:", ":", "glob's tail unchecked"),
    M("verify.py", 'if run[0] == "?" else re.escape(run)', 'if run[0] == "?" else run', "glob literals as regex"),
    # settings.py: bindings and the issuer
    M(
        "settings.py",
        "all(glob_binds(b.claim, g) for g in b.globs)",
        "any(glob_binds(b.claim, g) for g in b.globs)",
        "any instead of all",
    ),
    M(
        "settings.py",
        'return bool(group) and not any(c in group for c in "*?")',
        'return bool(group) and group != "*"',
        "only * unbinds",
    ),
    M("settings.py", 'if "/" not in glob:', "if False:", "sub glob with an open group binds"),
    M("settings.py", "if not glob.startswith(SUB_PREFIX):", "if not glob:", "sub of another shape binds"),
    M("settings.py", 'return not any(c in glob for c in "*?")', 'return "*" not in glob', "ID glob with ? binds"),
    M("settings.py", "if leeway > MAX_LEEWAY:", "if leeway > MAX_LEEWAY * 10:", "leeway cap lifted"),
    M("settings.py", 'if parts.scheme != "https":', 'if parts.scheme not in ("https", "http"):', "http issuer"),
    M(
        "settings.py",
        "if not parts.hostname or parts.username or parts.password:",
        "if not parts.hostname:",
        "issuer with user info",
    ),
    M("settings.py", 'or parts.fragment or issuer.endswith("/"):', "or parts.fragment:", "issuer with trailing slash"),
    # keys/lookup.py: where the keys come from
    M(
        "keys/lookup.py",
        'if discovery.get("issuer") != issuer:',
        'if not str(discovery.get("issuer")).startswith(issuer):',
        "discovery issuer by prefix",
    ),
    M("keys/lookup.py", 'or not jwks_uri.startswith("https://"):', ":", "http jwks_uri"),
    M("keys/lookup.py", "if jwks_uri == usual_uri:", "if True:", "usual JWKS used though discovery names another"),
    M("keys/lookup.py", "now - keyset.fetched_at < UNKNOWN_KID_COOLDOWN", "now - keyset.fetched_at < 0", "no cooldown"),
    # keys/cache.py: what a cache file must be to be trusted
    M("keys/cache.py", " or st.st_uid != os.getuid()", "", "cache owner unchecked"),
    M("keys/cache.py", "or st.st_mode & 0o022:", "or st.st_mode & 0o002:", "group-writable cache taken"),
    M(
        "keys/cache.py",
        "os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK",
        "os.O_RDONLY | os.O_NONBLOCK",
        "symlink followed",
    ),
    M("keys/cache.py", ' or data["issuer"] != self.issuer', "", "another issuer's cache taken"),
    M(
        "keys/cache.py",
        "age = float(min(max(age, MAX_AGE_MIN), MAX_AGE_MAX))",
        "age = float(max(age, MAX_AGE_MIN))",
        "max_age unclamped",
    ),
    # keys/policy.py: which keys may verify
    M(
        "keys/policy.py",
        'jwk.get("use", "sig") != "sig"',
        'jwk.get("use", "sig") not in ("sig", "enc")',
        "enc key taken",
    ),
    M("keys/policy.py", "private = [m for m in PRIVATE_MEMBERS if m in jwk]", "private = []", "private key taken"),
    M("keys/policy.py", 'or "verify" not in ops):', "):", "key_ops ignored"),
    M("keys/policy.py", "if bits < MIN_RSA_BITS:", "if bits < 1024:", "1024-bit keys"),
    # output.py, errors.py: what output may hold
    M("output.py", "*GITLAB_SECRETS, *_named, *marked}", "*GITLAB_SECRETS, *marked}", "token_env not redacted"),
    M("output.py", "if len(v) >= MIN_SECRET_LENGTH]", "if len(v) >= 40]", "short secrets kept"),
    M(
        "output.py",
        "found.extend(match[1] for match in _URL_PASSWORD.finditer(value))",
        "pass",
        "URL passwords (a second layer: every message quotes URLs with their user info hidden)",
    ),
    M("errors.py", 'text = _USER_INFO.sub("://[redacted]@", text)', "pass", "user info echoed"),
    # calls.py, network.py, proxies.py: one deadline, bounded bodies, the run's proxies
    M(
        "calls.py",
        ".result(end, overdue, grace=0.0)",
        ".result(end + 30, overdue, grace=0.0)",
        "the call's deadline not enforced",
        ("test_network.py",),
    ),
    M(
        "calls.py",
        "end = time.monotonic() + budget.seconds if deadline is None else deadline",
        "end = time.monotonic() + budget.seconds",
        "a caller's shared deadline ignored",
        ("test_network.py",),
    ),
    M(
        "calls.py",
        'for c in (b"{", b"[", b",", b":")',
        'for c in (b"{", b"[")',
        "the JSON value limit counts containers only",
        ("test_network.py",),
    ),
    M(
        "network.py",
        "min(timeout, remaining), headers",
        "timeout, headers",
        "attempt not cut to deadline (equivalent while the worker's deadline holds)",
    ),
    M(
        "network.py",
        "yield gunzip.decompress(chunk, CHUNK)",
        "yield gunzip.decompress(chunk)",
        "one gzip step inflates a whole chunk",
        ("test_network.py",),
    ),
    M(
        "proxies.py",
        "return lower if environ[lower] else None",
        "return lower if environ[lower] else (upper if environ.get(upper) else None)",
        "an empty https_proxy no longer masks HTTPS_PROXY",
        ("test_network.py",),
    ),
    M(
        "entry.py",
        "writing = _writing_since is not None and time.monotonic() - _writing_since < STUCK",
        "writing = False",
        "a signal cuts the finished output off",
        ("test_interrupts.py",),
    ),
    M(
        "entry.py",
        "time.monotonic() - _writing_since < STUCK",
        "time.monotonic() - _writing_since < STUCK * 1000",
        "a stuck write cannot be interrupted",
        ("test_interrupts.py",),
    ),
    M(
        "output.py",
        "found = [environ[name].strip() for name in names if name in environ]",
        "found = [environ[name] for name in names if name in environ]",
        "a named secret with a trailing newline kept",
        ("test_redaction.py",),
    ),
    M(
        "service_client.py",
        '"exp": issued + min(max(lifetime, 60), MAX_LIFETIME),',
        '"exp": issued + max(lifetime, 60),',
        "a minted token's lifetime uncapped",
        ("test_service_client.py",),
    ),
    M(
        "verify.py",
        "if not isinstance(kid, str):\n",
        "if False:\n",
        "a kid that is not a string named as a critical extension",
        ("test_token.py",),
    ),
    M(
        "network.py",
        'attempts = 1 if method == "POST" else attempts',
        "attempts = attempts",
        "POST retried",
        ("test_setup_apply.py",),
    ),
    M(
        "network.py",
        "if len(body) > MAX_BODY_BYTES:",
        "if len(body) > MAX_BODY_BYTES * 64:",
        "body cap lifted",
        ("test_hostile_servers.py",),
    ),
    # setup/resource_uri.py, setup
    M("setup/resource_uri.py", "if len(uri) > MAX_LENGTH:", "if len(uri) > MAX_LENGTH * 2:", "resource length"),
    M("setup/resource_uri.py", "return groups <= MAX_GROUPS", "return True", "resource group count"),
    M("setup/resource_uri.py", "and run - i < MAX_RUN and", "and", "resource name run length"),
    M(
        "outcome.py",
        "str(max(0, int(self.expires_at - self.at)))",
        "str(int(self.expires_at - self.at))",
        "negative expires_in",
        ("test_lifetime.py", "test_claims.py"),
    ),
    M("setup/plan.py", "head if len(head) <= room else", "head if len(head) < room else", "record name off by one"),
    M("setup/account.py", "if named and named != key.account_id:", "if False:", "admin key of another account"),
    M("setup/plan.py", "if not resource_uri_valid(resource):", "if not resource:", "resource unchecked"),
    M("flags.py", "allow_abbrev=False,", "allow_abbrev=True,", "abbreviated flags taken"),
]


def locate(mutant: Mutant) -> Path:
    """The file holding the fragment once: where it was, else wherever it moved under helper/."""
    first = HELPER / PACKAGE / mutant.file
    candidates = [first] if first.exists() else []
    candidates += sorted(p for p in HELPER.rglob("*.py") if p != first)
    for path in candidates:
        if path.read_text().count(mutant.old) == 1:
            return path
    raise SystemExit(f"{mutant.file}: no file under helper/ holds {mutant.old!r} exactly once")


def test_files(mutant: Mutant, module: str, only_near: bool) -> list[str]:
    """Every non-e2e test file, the mutant's own and those that mention the module first (`only_near`:
    only those)."""
    files = sorted(p for p in (ROOT / "tests").rglob("test_*.py") if "e2e" not in p.relative_to(ROOT).parts)
    named = [p for p in files if p.name in mutant.tests]
    near = named + [p for p in files if p not in named and re.search(rf"\b{re.escape(module)}\b", p.read_text())]
    return [str(p.relative_to(ROOT)) for p in near + ([] if only_near else [p for p in files if p not in near])]


def run(mutant: Mutant, verbose: bool, near: bool) -> tuple[bool, float, str]:
    """Apply, run the suite, restore: (killed, seconds, the first failure's line)."""
    path = locate(mutant)
    text, times = path.read_text(), path.stat()
    path.write_text(text.replace(mutant.old, mutant.new))
    for cached in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
        cached.unlink()
    started = time.monotonic()
    try:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.setdefault("INTERRUPT_STRESS_RUNS", "30")
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e and not dist"]
        done = subprocess.run(
            command + test_files(mutant, path.stem, near),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        path.write_text(text)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    lines = done.stdout.splitlines()
    failed = next((line for line in lines if line.startswith(("FAILED", "ERROR"))), "")
    failed += "".join(f"\n       {line[:200]}" for line in [next((x for x in lines if x.startswith("E ")), "")] if line)
    if verbose and done.returncode not in (0, 1):
        failed += f" (pytest exit {done.returncode}: {done.stdout[-300:]})"
    return done.returncode != 0, time.monotonic() - started, failed


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--only", help="mutant numbers, comma-separated (1-based, as listed)")
    options.add_argument("--list", action="store_true", help="list the mutants and exit")
    options.add_argument("-v", "--verbose", action="store_true", help="print each kill's failing test")
    options.add_argument(
        "--near", action="store_true", help="only the test files that mention the module: quick, a lower bound"
    )
    args = options.parse_args()
    numbered = list(enumerate(MUTANTS, 1))
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        numbered = [(n, m) for n, m in numbered if n in wanted]
    for _, mutant in numbered:
        locate(mutant)  # every fragment is found before anything is changed
    if args.list:
        for n, m in numbered:
            print(f"{n:3d}  {m.file}: {m.why}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through `finally`: the file is restored
    survivors = []
    for n, mutant in numbered:
        killed, took, failed = run(mutant, args.verbose, args.near)
        print(f"{n:3d}  {'killed  ' if killed else 'SURVIVED'} {took:6.1f} s  {mutant.file}: {mutant.why}", flush=True)
        if killed and args.verbose:
            print(f"       {failed}", flush=True)
        if not killed:
            survivors.append(n)
    total = len(numbered)
    print(
        f"{total - len(survivors)} of {total} killed ({(total - len(survivors)) / total:.1%}); survivors: {survivors}"
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
