"""The key cache, with the helper run as Terraform runs it: against a checkout or an environment that
plants keys (a relative cache path, a FIFO, a max_age from the far future, a file others can write),
damaged, serving stale keys while the issuer is down, and shared by parallel runs. Where a test plants
the attacker's key, a token the attacker signed must be refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from authress_gitlab_token.keys.cache import KeyCache
from authress_gitlab_token.keys.lookup import fetch_bound
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import (
    AUDIENCE,
    BIN_DIR,
    HTTP_TIMEOUT,
    PROGRAM,
    PROJECT,
    RUNS,
    STARTUP,
    Helper,
    Run,
    age_cache,
    cache_file,
    query,
    timed,
)
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer, Reply, running_issuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

STRANGER_UID = 54_321  # no passwd entry: a CI container's arbitrary uid


# A user namespace where this process's uid is 54321, which has no passwd entry (files it owns outside
# appear as 54321's inside): what a CI container running an arbitrary uid looks like.
STRANGER = ["unshare", "--user", f"--map-user={STRANGER_UID}", f"--map-group={STRANGER_UID}"]


def stranger_available() -> bool:
    probe = "import os, pwd\ntry:\n    pwd.getpwuid(os.getuid())\nexcept KeyError:\n    print('stranger')"
    try:
        done = subprocess.run([*STRANGER, sys.executable, "-c", probe], capture_output=True, timeout=10, check=False)
    except OSError:
        return False
    return done.stdout.strip() == b"stranger"


@pytest.fixture
def checkout(ca: LocalCA) -> Iterator[Path]:
    """A job's working directory that any uid can enter (pytest's own are private), with the test CA."""
    base = Path(tempfile.mkdtemp(prefix="agt-checkout-"))
    os.chmod(base, 0o755)
    shutil.copy(ca.ca_path, base / "ca.pem")
    os.chmod(base / "ca.pem", 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def plant(directory: Path, issuer: LocalIssuer, key: SigningKey) -> Path:
    """A well-formed, fresh, private cache file holding the attacker's key, as a commit could add it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = KeyCache(directory, issuer.url).path
    data = {
        "version": 1,
        "issuer": issuer.url,
        "jwks_uri": issuer.url + JWKS_PATH,
        "jwks": {"keys": [key.public_jwk()]},
        "fetched_at": time.time(),
        "max_age": 86400,
    }
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    return path


def run_in(checkout: Path, env: dict[str, str], token: str, issuer: LocalIssuer, as_stranger: bool = False) -> Run:
    """The helper in `checkout` with exactly `env` (plus PATH, the CA and the token), as Terraform runs it."""
    full = {
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "SSL_CERT_FILE": str(checkout / "ca.pem"),
        "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "2",
        "AUTHRESS_KEY": token,
        **env,
    }
    stdin = json.dumps(
        {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}, separators=(",", ":"), sort_keys=True
    )
    done = subprocess.run(
        [*(STRANGER if as_stranger else []), str(BIN_DIR / PROGRAM), "external"],
        input=stdin.encode(),
        env=full,
        cwd=checkout,
        capture_output=True,
        timeout=30,
        check=False,
    )
    run = Run(("external",), done.returncode, done.stdout.decode(), done.stderr.decode())
    RUNS.append(run)
    return run


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


@pytest.mark.parametrize(
    ("env", "relative"),
    [
        ({"HOME": "/nonexistent", "XDG_CACHE_HOME": "cache"}, "cache/authress-gitlab-token"),
        ({"HOME": "/nonexistent", "AUTHRESS_GITLAB_TOKEN_CACHE_DIR": "keys"}, "keys"),
        ({"HOME": "~"}, "~/.cache/authress-gitlab-token"),
    ],
    ids=["relative-XDG_CACHE_HOME", "relative-override", "relative-HOME"],
)
def test_keys_planted_at_a_relative_cache_path_are_never_read(
    checkout: Path, issuer: LocalIssuer, other_key: SigningKey, env: dict[str, str], relative: str
) -> None:
    plant(checkout / relative, issuer, other_key)
    before = files_under(checkout)
    forged = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    run_in(checkout, env, forged, issuer).refused(f'token kid "{other_key.kid}" is not among the keys')
    assert issuer.hits(JWKS_PATH) == 1, "the issuer was asked, not the planted file"
    assert files_under(checkout) == before, "no cache is written inside the checkout"


@pytest.mark.slow
@pytest.mark.skipif(
    not stranger_available(), reason="needs a user namespace (unshare --user) to run as a uid without a passwd entry"
)
def test_without_home_and_without_a_passwd_entry_planted_keys_are_never_read(
    checkout: Path, issuer: LocalIssuer, other_key: SigningKey, signing_key: SigningKey
) -> None:
    """The review's case: HOME unset in a CI container whose uid has no passwd entry, so `~` stays `~`
    and the old cache path was ./~/.cache/... inside the checkout, where a commit had planted a key."""
    plant(checkout / "~" / ".cache" / "authress-gitlab-token", issuer, other_key)
    before = files_under(checkout)
    forged = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    run_in(checkout, {}, forged, issuer, as_stranger=True).refused(f'token kid "{other_key.kid}" is not among')
    assert issuer.hits(JWKS_PATH) == 1
    assert files_under(checkout) == before
    # The control: the issuer's own token still verifies, fetched afresh, with nothing cached.
    good = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    assert run_in(checkout, {}, good, issuer, as_stranger=True).returncode == 0
    assert issuer.hits(JWKS_PATH) == 2


@pytest.mark.parametrize("which", ["cache", "lock"])
def test_a_fifo_at_the_cache_path_does_not_hang_the_run(
    helper: Helper, issuer: LocalIssuer, token: str, which: str
) -> None:
    path = cache_file(helper, issuer.url)
    path.parent.mkdir(mode=0o700, parents=True)
    os.mkfifo(path if which == "cache" else path.with_suffix(".lock"), 0o600)
    run = helper.run(
        ["external"],
        json.dumps({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}).encode(),
        {"AUTHRESS_KEY": token},
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 1


def test_a_cached_max_age_is_clamped_on_load(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey, token: str
) -> None:
    """A cache file, ours in every other way, that claims ten years of freshness for a key the issuer has
    since dropped: past the README's 24 hours the issuer is asked again, and the dropped key refused."""
    assert helper.external({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}, token).returncode == 0
    path = cache_file(helper, issuer.url)
    data = json.loads(path.read_text())
    data.update(jwks={"keys": [other_key.public_jwk()]}, fetched_at=time.time() - 25 * 3600, max_age=10 * 365 * 86400)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    dropped = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    helper.external({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}, dropped).refused(
        f'token kid "{other_key.kid}" is not among the keys'
    )
    assert issuer.hits(JWKS_PATH) == 2


# --- the cache damaged, planted or shared ---------------------------------------------------------------


@pytest.mark.slow
def test_stale_keys_are_served_while_the_issuer_is_down(helper: Helper, ca: LocalCA, signing_key: SigningKey) -> None:
    with running_issuer(ca, [signing_key]) as gone:
        token = mint(signing_key, gitlab_claims(gone.url, AUDIENCE))
        assert helper.external(query(gone.url), token).returncode == 0
    path = cache_file(helper, gone.url)
    age_cache(path, 86400 + 60)  # past the JWKS's max-age (one day), within the stale bound
    run, elapsed = timed(helper.external, query(gone.url), token)
    assert run.returncode == 0, run.stderr
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + STARTUP

    age_cache(path, 86400)  # past max-age + the one-day stale bound
    run, elapsed = timed(helper.external, query(gone.url), token)
    run.refused("could not fetch", "connection failed")
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + STARTUP


@pytest.mark.parametrize(
    "content",
    [b"\x00garbage", b'{"version": 1, "jwks": ', b"[" * 200_000, b""],
    ids=["binary", "truncated", "deeply-nested", "empty"],
)
def test_corrupt_cache_file_is_ignored_and_replaced(
    helper: Helper, issuer: LocalIssuer, token: str, content: bytes
) -> None:
    path = cache_file(helper, issuer.url)
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    run = helper.external(query(issuer.url), token)
    assert run.returncode == 0, run.stderr
    assert issuer.hits(JWKS_PATH) == 1
    assert KeyCache(helper.cache_dir, issuer.url).load() is not None


def test_cache_file_writable_by_others_is_not_trusted(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey, token: str
) -> None:
    """Someone who can write the cache plants their own key in it: only a private file is trusted."""
    assert helper.external(query(issuer.url), token).returncode == 0
    path = cache_file(helper, issuer.url)
    planted = json.loads(path.read_text())
    planted["jwks"] = {"keys": [other_key.public_jwk()]}
    path.write_text(json.dumps(planted))
    forged = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))

    os.chmod(path, 0o666)
    helper.external(query(issuer.url), forged).refused(f'token kid "{other_key.kid}" is not among the keys')
    assert issuer.hits(JWKS_PATH) == 2  # the planted file was ignored and the issuer asked again

    # The control: the same keys in a file only we can write are ours, and trusted as such.
    path.write_text(json.dumps(planted))
    os.chmod(path, 0o600)
    assert helper.external(query(issuer.url), forged).returncode == 0


def test_twenty_parallel_cold_runs_share_one_fetch(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """Parallel data sources and jobs on one runner: one process fetches while the others wait for it."""
    issuer.script(JWKS_PATH, Reply(hang=1.0))  # a slow first fetch, so the others pile up behind it
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        runs = list(pool.map(lambda _: helper.external(query(issuer.url), token), range(20)))
    elapsed = time.monotonic() - started
    assert [r.returncode for r in runs] == [0] * 20, [r.stderr for r in runs if r.returncode]
    assert (issuer.hits(DISCOVERY_PATH), issuer.hits(JWKS_PATH)) == (1, 1), "one fetch for 20 runs"
    # Mostly the cost of starting 20 Pythons on 2 cores; a retry storm or serial refetches would exceed it.
    assert elapsed < fetch_bound(HTTP_TIMEOUT) + 20 * 2.5
