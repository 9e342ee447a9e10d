"""What a run reads from its environment besides the query, read once by the command entry (cli.py
hands it the mapping): the requests' Http (timeout, CA, proxies), where the issuer's keys are cached,
and for `setup` the job's defaults and the admin key. Everything below takes these values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import QueryError, quoted

DEFAULT_TOKEN_ENV = "AUTHRESS_KEY"
HTTP_TIMEOUT_ENV = "AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT"
CA_FILE_ENV, CA_DIR_ENV = "SSL_CERT_FILE", "SSL_CERT_DIR"
PROXY_VARIABLES = ("https_proxy", "all_proxy", "http_proxy", "no_proxy")  # either case; proxies.py reads them
CACHE_DIR_ENV = "AUTHRESS_GITLAB_TOKEN_CACHE_DIR"
DEFAULT_HTTP_TIMEOUT, MIN_HTTP_TIMEOUT, MAX_HTTP_TIMEOUT = 5.0, 0.1, 60.0


@dataclass(frozen=True)
class Http:
    """What every request of a run is made with, as the environment gave it (network.session)."""

    timeout: float = DEFAULT_HTTP_TIMEOUT  # seconds, each socket wait
    ca_file: str = ""  # SSL_CERT_FILE; "" (and no ca_dir): the default CAs
    ca_dir: str = ""  # SSL_CERT_DIR
    proxy_env: tuple[tuple[str, str], ...] = ()  # the proxy variables set, as (name, value)


DEFAULT_HTTP = Http()


def http_from(environ: Mapping[str, str]) -> Http:
    """The run's Http; a timeout that is not a number of seconds is refused here, before any request."""
    return Http(
        timeout=http_timeout(environ),
        ca_file=environ.get(CA_FILE_ENV, ""),
        ca_dir=environ.get(CA_DIR_ENV, ""),
        proxy_env=tuple((n, environ[n]) for v in PROXY_VARIABLES for n in (v, v.upper()) if n in environ),
    )


@dataclass(frozen=True)
class Job:
    """What a GitLab job's predefined variables say, for the `setup` flags left out."""

    project_path: str = ""  # CI_PROJECT_PATH
    commit_tag: str = ""  # CI_COMMIT_TAG
    ref_name: str = ""  # CI_COMMIT_REF_NAME
    server_url: str = ""  # CI_SERVER_URL


NO_JOB = Job()


@dataclass(frozen=True)
class SetupEnv:
    """`setup`'s one value from the environment: the job's defaults, and for the commands that call
    Authress the requests' Http and the admin key, as the variable --key-env names holds it."""

    job: Job = NO_JOB
    http: Http = DEFAULT_HTTP
    key_env: str = DEFAULT_TOKEN_ENV
    admin_key: str | None = field(default=None, repr=False)


def setup_from(environ: Mapping[str, str], key_env: str, calls_authress: bool) -> SetupEnv:
    """SetupEnv, read once by the `setup` command; a guide, which calls nothing, reads no more than the
    job's variables (a timeout or an admin key it would refuse is not its concern)."""
    job = Job(
        project_path=environ.get("CI_PROJECT_PATH", ""),
        commit_tag=environ.get("CI_COMMIT_TAG", ""),
        ref_name=environ.get("CI_COMMIT_REF_NAME", ""),
        server_url=environ.get("CI_SERVER_URL", ""),
    )
    if not calls_authress:
        return SetupEnv(job, key_env=key_env)
    return SetupEnv(job, http_from(environ), key_env, environ.get(key_env))


def http_timeout(environ: Mapping[str, str]) -> float:
    """AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT in seconds; unset or empty: the default. A typo is refused, not
    silently replaced: the user set it for a reason."""
    text = environ.get(HTTP_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_HTTP_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_HTTP_TIMEOUT <= value <= MAX_HTTP_TIMEOUT:  # also false for nan
        raise QueryError(
            f"{HTTP_TIMEOUT_ENV} is {quoted(text, 40)}, expected seconds from {MIN_HTTP_TIMEOUT} to "
            f"{MAX_HTTP_TIMEOUT:.0f}",
            f"set it to a number such as 10, or unset it for {DEFAULT_HTTP_TIMEOUT:.0f} s",
        )
    return value


def locate(environ: Mapping[str, str]) -> tuple[Path | None, str, str]:
    """The cache directory, a line saying where it is, and ""; None, why, and what to do, when that is
    not an absolute path. A relative one (HOME unset and a uid without a passwd entry, or a relative XDG_CACHE_HOME)
    would be inside the checkout, where anyone who can push could plant keys."""
    chosen, xdg = environ.get(CACHE_DIR_ENV), environ.get("XDG_CACHE_HOME")
    if chosen:
        where, source, fix = chosen, CACHE_DIR_ENV, CACHE_DIR_ENV
    elif xdg:
        where = os.path.join(xdg, "authress-gitlab-token")
        source, fix = "XDG_CACHE_HOME", f"XDG_CACHE_HOME or {CACHE_DIR_ENV}"
    else:
        where = os.path.join(_home(environ), ".cache", "authress-gitlab-token")
        source, fix = "the home directory", f"HOME or {CACHE_DIR_ENV}"
    if not os.path.isabs(where):
        return (
            None,
            f"no disk cache: {source} gives the relative path {quoted(where)}, where a checkout could plant keys",
            f"set {fix} to an absolute path (until then keys are fetched on every run)",
        )
    return Path(where), f"keys cached in {quoted(where)}", ""


def _home(environ: Mapping[str, str]) -> str:
    """HOME, else the passwd entry's home directory, else "" (no home at all)."""
    home = environ.get("HOME")
    if home:
        return home
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return ""
