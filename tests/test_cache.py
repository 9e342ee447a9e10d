"""The key cache against a checkout or an environment that plants keys: a relative cache path, a FIFO, a
max_age from the far future. Each test plants the attacker's key where the old code would read it and
runs the helper as Terraform does with a token the attacker signed; it must be refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authress_gitlab_token.keys.cache import KeyCache
from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import AUDIENCE, BIN_DIR, PROGRAM, PROJECT, RUNS, Helper, Run
from tests.fixtures.issuer import JWKS_PATH, LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint
from tests.test_commands import doctor

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


def test_doctor_says_there_is_no_disk_cache(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    args = ("--audience", AUDIENCE, "--issuer", issuer.url, "--check", "none")
    env = {"AUTHRESS_GITLAB_TOKEN_CACHE_DIR": "", "XDG_CACHE_HOME": "relative/cache"}
    report = doctor(helper, token, *args, env=env)
    step = next(s for s in report["steps"] if s["name"] == "key cache")
    assert step["status"] == "warn"
    assert step["detail"].startswith('no disk cache: XDG_CACHE_HOME gives the relative path "relative/cache/')
    assert report["fix"].startswith("set XDG_CACHE_HOME or AUTHRESS_GITLAB_TOKEN_CACHE_DIR to an absolute path")
    step = next(s for s in doctor(helper, token, *args)["steps"] if s["name"] == "key cache")
    assert (step["status"], step["detail"]) == ("pass", f'keys cached in "{helper.cache_dir}"')


@pytest.mark.parametrize("which", ["cache", "lock"])
def test_a_fifo_at_the_cache_path_does_not_hang_the_run(
    helper: Helper, issuer: LocalIssuer, token: str, which: str
) -> None:
    path = KeyCache(helper.cache_dir, issuer.url).path
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
    path = KeyCache(helper.cache_dir, issuer.url).path
    data = json.loads(path.read_text())
    data.update(jwks={"keys": [other_key.public_jwk()]}, fetched_at=time.time() - 25 * 3600, max_age=10 * 365 * 86400)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    dropped = mint(other_key, gitlab_claims(issuer.url, AUDIENCE))
    helper.external({"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}, dropped).refused(
        f'token kid "{other_key.kid}" is not among the keys'
    )
    assert issuer.hits(JWKS_PATH) == 2
