"""Glob matching time, worst cases: prints figures and asserts nothing (the README states the bound).

Each case is a glob against a claim value of 1 KiB, the kind of value whoever names a branch chooses.
A case's time includes compiling the glob (the cache is cleared first), best of a few tries so that
other load on the machine does not decide the figure. The old backtracking regex is timed on the
issue's case at growing lengths for contrast; it is stopped long before the 255 characters that took
it 80 s.

    .venv/bin/python bench/globs.py
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

from authress_gitlab_token.settings import MAX_GLOB_LENGTH
from authress_gitlab_token.verify import _glob_parts, glob_match

VALUE_LENGTH = 1024
TRIES = 5
G = MAX_GLOB_LENGTH


def crafted() -> list[tuple[str, str, str]]:
    """(name, glob, value): stars and `?` arranged to make a matcher retry as much as it can."""
    a = "a" * VALUE_LENGTH
    ab = "a" * (VALUE_LENGTH - 1) + "b"  # the last part matches: only the middle can fail
    half = VALUE_LENGTH // 2
    return [
        ("* then 511 ? and c, then *b: a middle miss", "*" + "?" * (half - 1) + "c*b", ab),
        ("* then 'a?' x 255 and c, then *b", "*" + "a?" * (half // 2 - 1) + "c*b", ab),
        ("* then 511 a and c, then *b", "*" + "a" * (half - 1) + "c*b", ab),
        ("'*?c' x 341, then b", ("*?c" * G)[: G - 1] + "b", ab),
        ("issue: */*/*/*/*/main, value all '/'", "*/*/*/*/*/main", "/" * VALUE_LENGTH),
        ("200 x '*/' then main, value all '/'", "*/" * 200 + "main", "/" * VALUE_LENGTH),
        ("'*a' x 511 then b, value all a", ("*a" * G)[: G - 1] + "b", a),
        ("* then 1022 ? then b", "*" + "?" * (G - 2) + "b", a),
        ("* 511 ? * 511 ? b", "*" + "?" * 511 + "*" + "?" * 510 + "b", a),
        ("'a?' x 511 after a star, then *b", "*" + "a?" * ((G - 3) // 2) + "*b", a),
        ("literal part of 1022 a, then b", "*" + "a" * (G - 3) + "b*", a),
        ("'*?' x 511 then b", ("*?" * G)[: G - 1] + "b", a),
        ("40 x (20 ? and a star) then a", "*" + ("?" * 20 + "*") * 40 + "a", a),
        ("1024 ? (no star), value 1024", "?" * G, a),
        ("a?* x 341", ("a?*" * G)[:G], a),
    ]


def random_cases(count: int, seed: int) -> list[tuple[str, str, str]]:
    """Random globs of up to the longest allowed over a small alphabet, where near misses are common."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        glob = "".join(rng.choice("ab*?") for _ in range(rng.randint(1, G)))
        value = "".join(rng.choice("ab") for _ in range(VALUE_LENGTH))
        cases.append((f"random #{i}", glob, value))
    return cases


def best_of(call: Callable[[], object], tries: int = TRIES) -> float:
    best = float("inf")
    for _ in range(tries):
        _glob_parts.cache_clear()
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def old_regex(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob), re.DOTALL)


def main() -> None:
    print(f"glob matching, value {VALUE_LENGTH} characters, globs up to {G}; best of {TRIES}, compile included")
    print(f"{'case':44} {'glob':>6} {'match':>6} {'ms':>8}")
    worst = ("", 0.0)
    for name, glob, value in crafted() + random_cases(200, seed=12):
        seconds = best_of(lambda g=glob, v=value: glob_match(g, v))
        if not name.startswith("random"):
            print(f"{name:44} {len(glob):6} {glob_match(glob, value)!s:>6} {seconds * 1000:8.3f}")
        if seconds > worst[1]:
            worst = (name, seconds)
    print(f"worst of {len(crafted())} crafted and 200 random cases: {worst[1] * 1000:.3f} ms ({worst[0]})")

    print("\nthe old backtracking regex on the issue's case, */*/*/*/*/main against a run of '/':")
    pattern = old_regex("*/*/*/*/*/main")
    for length in (20, 40, 60, 80):
        seconds = best_of(lambda n=length: pattern.fullmatch("/" * n), tries=1)
        new = best_of(lambda n=length: glob_match("*/*/*/*/*/main", "/" * n))
        print(f"  {length:4} characters: old {seconds * 1000:10.3f} ms, new {new * 1000:7.3f} ms")


if __name__ == "__main__":
    main()
