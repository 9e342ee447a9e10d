"""Command line: argv, stdin, stdout and exit codes live here and in external.py only."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence

from . import __version__
from .errors import HelperError, redact
from .settings import DEFAULT_TOKEN_ENV

PREFIX = "authress-gitlab-token: "


def cmd_external(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Terraform's data "external": query on stdin, verified token and claims on stdout."""
    from . import external, keys, settings, sources, verify
    from .result import gitlab_result

    query = external.read_query(sys.stdin.buffer)
    config = settings.from_query(query, environ)
    credential = sources.find_credential(environ, config.token_env, config.audience)
    cache = keys.KeyCache(keys.default_cache_dir(environ), config.issuer)
    now = time.time()
    issuer_keys = keys.IssuerKeys(config.issuer, cache, timeout=keys.timeout_from_env(environ))
    claims = verify.verify(credential.value, config, issuer_keys, now)
    external.write_result(gitlab_result(credential.value, claims, config, now), sys.stdout)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="authress-gitlab-token",
        description="Verify a GitLab CI ID token and hand it to Terraform as the Authress access token.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "external",
        help='speak Terraform\'s data "external" protocol (query on stdin)',
        description=cmd_external.__doc__,
    ).set_defaults(run=cmd_external)
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args, environ)
        return code
    except HelperError as exc:
        return fail(str(exc), exc.exit_code, environ)
    except Exception as exc:  # noqa: BLE001 -- never a traceback: it could carry the token
        return fail(f"internal error ({type(exc).__name__}); please report it with the command you ran", 1, environ)


def fail(message: str, code: int, environ: Mapping[str, str]) -> int:
    # Defence in depth: messages are built without the token, but redact anything token-like anyway.
    secrets = [v for k, v in environ.items() if len(v) >= 40 and (k == DEFAULT_TOKEN_ENV or v.count(".") >= 2)]
    line = " ".join(redact(message, secrets).split())
    sys.stderr.write(PREFIX + line + "\n")
    return code
