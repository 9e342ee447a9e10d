"""What a hostile server can make one run of the helper spend: peak RSS and wall time, with the outcome.

Prints figures and asserts nothing (tests/faults/test_hostile_servers.py asserts the outcomes). Each case is one fresh
process started as Terraform starts it, through bench/spawn.py so the peak RSS is the helper's own,
against servers on 127.0.0.1 over real TLS: compression bombs and large bodies from the issuer and from
the Authress API, and servers that trickle their headers or body one byte at a time, each byte well
within the HTTP timeout. The review measured 4.1 GiB for the discovery bomb, 2.1 GiB for the Authress
one, and 52 s (or no end) for trickled headers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PROGRAM, Spawner  # noqa: E402
from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.hostile import answer, gzip_bomb, running_hostile, trickled_headers, trickling_issuer  # noqa: E402
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

AUDIENCE = "https://acc-bench.api.authress.io"
Respond = Callable[[str], Iterable[bytes]]


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--timeout", default="5", help="AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT for the runs (default 5)")
    options.add_argument("--bomb-mib", type=int, default=1024, help="decoded size of the bombs, MiB (default 1024)")
    args = options.parse_args()
    program = shutil.which(PROGRAM, path=str(Path(sys.executable).parent))
    if program is None:
        print(f"{PROGRAM} is not installed beside {sys.executable}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="authress-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        ca, key = LocalCA.create(tmp / "ca"), SigningKey.generate()
        issuer = LocalIssuer(ca, [key]).start()
        spawner = Spawner(tmp)
        try:
            measure(args, program, tmp, ca, key, issuer, spawner)
        finally:
            spawner.close()
            issuer.stop()
    return 0


def measure(
    args: argparse.Namespace,
    program: str,
    tmp: Path,
    ca: LocalCA,
    key: SigningKey,
    issuer: LocalIssuer,
    spawner: Spawner,
) -> None:
    started = time.monotonic()
    once = gzip_bomb(args.bomb_mib // 2)  # about 0.5 MiB sent at the default: under the raw cap
    twice = gzip_bomb(args.bomb_mib, layers=2)
    print(
        f"bombs built in {time.monotonic() - started:.1f} s: gzip {len(once)} B -> {args.bomb_mib // 2} MiB, "
        f"gzip,gzip {len(twice)} B -> {args.bomb_mib} MiB",
        flush=True,
    )
    print(f"{'case':58} {'exit':>4} {'peak RSS, MiB':>13} {'wall, s':>8}  message")

    def run(name: str, issuer_url: str, api_url: str = "") -> None:
        query = {"audience": AUDIENCE, "issuer": issuer_url}
        if api_url:
            query.update(check="authress", api_url=api_url)
        env = {
            "PATH": str(Path(sys.executable).parent),
            "HOME": str(tmp),
            "SSL_CERT_FILE": str(ca.ca_path),
            "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": str(tmp / f"cache-{name[:12].replace(' ', '-')}-{time.monotonic_ns()}"),
            "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": args.timeout,
            "AUTHRESS_KEY": mint(key, gitlab_claims(issuer_url, AUDIENCE)),
        }
        sample, code, stderr = spawner.run([program, "external"], env, json.dumps(query).encode())
        message = stderr.strip().removeprefix("authress-gitlab-token: ")[:70]
        print(f"{name:58} {code:>4} {sample.max_rss / 1024:>13.1f} {sample.wall:>8.2f}  {message}", flush=True)

    issuer.reset()
    run("a good issuer, cold (for comparison)", issuer.url)
    for path in (DISCOVERY_PATH, JWKS_PATH):
        for label, body, encoding in (("gzip", once, "gzip"), ("gzip, gzip", twice, "gzip, gzip")):
            issuer.reset()
            issuer.script(path, Reply(body=body, headers={"Content-Encoding": encoding}))
            run(f"{path.rsplit('/', 1)[-1]}: {label} bomb", issuer.url)
        issuer.reset()
        issuer.script(path, Reply(body=b" " * (64 * 1024 * 1024)))
        run(f"{path.rsplit('/', 1)[-1]}: 64 MiB plain body", issuer.url)
        issuer.reset()
        issuer.script(path, Reply(body=b"[" + b",".join([b"{}"] * 340_000) + b"]"))
        run(f"{path.rsplit('/', 1)[-1]}: 1 MiB of JSON values, [{{}},{{}},...]", issuer.url)

    issuer.reset()
    authress: list[tuple[str, Respond]] = [
        ("Authress: gzip bomb", lambda p: answer(once, Content_Encoding="gzip")),
        ("Authress: gzip, gzip bomb", lambda p: answer(twice, Content_Encoding="gzip, gzip")),
        ("Authress: headers trickled, a byte every 0.1 s", lambda p: trickled_headers(0.1)),
    ]
    for name, respond in authress:
        with running_hostile(ca, respond) as api:
            run(name, issuer.url, api.url)

    for part in ("headers", "body"):
        with trickling_issuer(ca, part, 0.1) as server:
            run(f"issuer: JWKS {part} trickled, a byte every 0.1 s", server.url)


if __name__ == "__main__":
    raise SystemExit(main())
