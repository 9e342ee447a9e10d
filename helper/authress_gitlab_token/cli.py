"""Command line: argv, stdin, stdout and exit codes live here and in external.py only (entry.py writes
the output out and ends the process)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .errors import HelperError, QueryError, redact
from .settings import DEFAULT_TOKEN_ENV

if TYPE_CHECKING:
    import argparse

    from . import setup_guide

PREFIX = "authress-gitlab-token: "
ENV_NAME = "AUTHRESS_KEY"  # the variable the Authress Terraform provider reads


def cmd_external(args: argparse.Namespace | None, environ: Mapping[str, str]) -> int:
    """Terraform's data "external": query on stdin, verified token and claims on stdout."""
    from . import external, prefetch

    if sys.stdin is None:
        raise QueryError(f"stdin is closed, so there is no query; {external.USAGE}")
    raw = external.read_raw(sys.stdin.buffer)
    # A cold run's key fetch starts before jsonschema and jwt are imported, so the two overlap.
    ahead = prefetch.start(raw, environ)
    from . import flow, settings

    config = settings.from_query(external.parse_query(raw), environ)
    outcome = flow.obtain(config, environ, ahead=ahead)
    warn_about_audience(config.audience, config.api_url)  # after success: a failure stays one line
    external.write_result(outcome.result, sys.stdout)
    return 0


def cmd_env(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Verify as `external` does, then print the token as AUTHRESS_KEY for a job script: it reaches the
    Authress provider through the environment and never enters Terraform state."""
    import shlex

    from . import flow, prefetch, settings

    ahead = prefetch.start(given_options(args), environ)  # a job script's run is cold too, as `external`'s
    config = settings.from_query(query_from_args(args), environ)
    token = shlex.quote(flow.obtain(config, environ, ahead=ahead).result["access_token"])
    warn_about_audience(config.audience, config.api_url)
    sys.stdout.write(f"export {ENV_NAME}={token}\n" if args.format == "shell" else f"{ENV_NAME}={token}\n")
    return 0


def cmd_doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Show where the token came from, its claims (never the token), each check passed or failed, the
    Authress check, and the one fix to make."""
    from . import doctor

    report = doctor.diagnose(query_from_args(args), environ, show_personal=args.show_personal)
    sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n" if args.json else report.render())
    return 0 if report.ok else 1


def cmd_setup(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Print what to enter in Authress and GitLab for one project and branch or tag; with --plan, what
    Authress lacks of it; with --apply, make it so (with an Authress service-client admin key)."""
    from . import setup_guide

    guide = setup_guide.build(args.project, args.branch, args.tag, args.audience, args.issuer, environ)
    if args.plan or args.apply:
        return setup_changes(args, guide, environ)
    if args.role or args.api_url or args.resource != "*":
        raise QueryError("--role, --resource and --api-url take effect with --plan or --apply only; add one of them")
    for warning in guide.warnings:
        warn(warning)
    sys.stdout.write(json.dumps(guide.to_json(), indent=2) + "\n" if args.json else guide.render())
    return 0


def setup_changes(args: argparse.Namespace, guide: setup_guide.Guide, environ: Mapping[str, str]) -> int:
    from . import bootstrap

    api_url, changes = bootstrap.run(
        guide, args.role or [], args.resource, args.api_url or "", args.key_env, environ, apply=args.apply
    )
    if args.json:
        mode = "apply" if args.apply else "plan"
        value = {"mode": mode, "api_url": api_url, "changes": [c.to_json() for c in changes]}
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
        return 0
    sys.stdout.write("".join(c.line() + "\n" for c in changes))
    pending = [c for c in changes if c.action != "unchanged"]
    if args.plan:
        sys.stdout.write(
            f"Plan: {len(pending)} change(s); run with --apply to make them.\n" if pending else "Nothing to change.\n"
        )
    elif pending:
        sys.stdout.write(f"Applied: {len(pending)} change(s).\n")
    return 0


def warn_about_audience(audience: str, api_url: str) -> None:
    from .authress import audience_warning

    message = audience_warning(audience, api_url)
    if message:
        warn(message)


def warn(message: str) -> None:
    """One line on stderr; the run still succeeds (Terraform shows stderr only on failure)."""
    sys.stderr.write(PREFIX + "warning: " + " ".join(message.split()) + "\n")


def query_options(p: argparse.ArgumentParser, audience_required: bool) -> None:
    """One flag per query key (`--token-env` for `token_env`), from the query schema: the two stay alike."""
    from .external import load_schema

    schema = load_schema()
    for key, prop in schema["properties"].items():
        help_text = prop["description"].replace("%", "%%")
        required = audience_required and key in schema.get("required", [])
        if key in schema.get("required", []) and not required:
            help_text = help_text.removeprefix("Required. ") + " Default: the token's own `aud`."
        p.add_argument(
            "--" + key.replace("_", "-"),
            dest=f"q_{key}",
            metavar=None if "enum" in prop else "VALUE",
            choices=prop.get("enum"),
            required=required,
            help=help_text,
        )


def query_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The flags given, as the query `external` would read (validated against the same schema)."""
    from .external import load_schema, validate

    query = given_options(args)
    validate(query, {**load_schema(), "required": []}, what="option")
    return query


def given_options(args: argparse.Namespace) -> dict[str, str]:
    """The query keys given as flags, not yet validated."""
    return {k[2:]: v for k, v in vars(args).items() if k.startswith("q_") and v is not None}


def parser() -> argparse.ArgumentParser:
    import argparse

    class OneLineErrors(argparse.ArgumentParser):
        """A usage error is one line (argparse prints the usage too), with exit status 2 as argparse's."""

        def error(self, message: str) -> Any:
            raise QueryError(f"{message}; see `{self.prog} --help`")

    p = OneLineErrors(
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

    env = commands.add_parser(
        "env", help="verify, then print `export AUTHRESS_KEY=...` for a job script", description=cmd_env.__doc__
    )
    query_options(env, audience_required=True)
    env.add_argument("--format", choices=["shell", "dotenv"], default="shell", help="shell: `export NAME=VALUE`")
    env.set_defaults(run=cmd_env)

    doctor = commands.add_parser("doctor", help="explain what works and what to fix", description=cmd_doctor.__doc__)
    query_options(doctor, audience_required=False)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--show-personal", action="store_true", help="show user_email (hidden by default: job logs can be public)"
    )
    doctor.set_defaults(run=cmd_doctor)

    setup = commands.add_parser(
        "setup", help="print what to enter in Authress and GitLab", description=cmd_setup.__doc__
    )
    setup.add_argument("--project", help="GROUP/PROJECT; default $CI_PROJECT_PATH")
    ref = setup.add_mutually_exclusive_group()
    ref.add_argument("--branch", help="the branch that may apply; default $CI_COMMIT_REF_NAME")
    ref.add_argument("--tag", help="the tag that may apply, instead of a branch")
    setup.add_argument("--audience", help="the account's API URL, https://ACCOUNT_ID.api.authress.io")
    setup.add_argument("--issuer", help="GitLab's issuer; default $CI_SERVER_URL, else https://gitlab.com")
    setup.add_argument("--json", action="store_true", help="machine-readable output")
    mode = setup.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="show what Authress lacks (needs the admin key)")
    mode.add_argument("--apply", action="store_true", help="create or update it in Authress (needs the admin key)")
    setup.add_argument("--role", action="append", help="with --plan/--apply: a role ID to grant (repeatable)")
    setup.add_argument("--resource", default="*", help="with --plan/--apply: the resource URI granted on (default *)")
    setup.add_argument("--api-url", help="with --plan/--apply: the Authress API URL when the audience is not it")
    setup.add_argument(
        "--key-env",
        default=ENV_NAME,
        help=f"with --plan/--apply: the variable with the admin's service-client key (default {ENV_NAME})",
    )
    setup.set_defaults(run=cmd_setup)
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else list(argv)
    # Only `external` and `env` print the token, and only on stdout; everything else is redacted.
    with redacted_output(secrets_in(environ), stdout=argv[:1] not in (["external"], ["env"])):
        try:
            if sys.stdout is None:
                raise HelperError("stdout is closed, so nothing could be printed; run it with stdout open")
            if argv == ["external"]:
                # Terraform's call, made on every plan and refresh: importing argparse and building the
                # parser would add about 5 ms to a run (README, Performance).
                return cmd_external(None, environ)
            args = parser().parse_args(argv)
            code: int = args.run(args, environ)
            return code
        except HelperError as exc:
            return fail(str(exc), exc.exit_code, environ)
        except Exception as exc:  # noqa: BLE001 -- never a traceback: it could carry the token
            return fail(f"internal error ({type(exc).__name__}); please report it with the command you ran", 1, environ)


def secrets_in(environ: Mapping[str, str]) -> list[str]:
    """Environment values that look like a token or key: never printed, whatever a message holds."""
    return [v for k, v in environ.items() if len(v) >= 40 and (k == DEFAULT_TOKEN_ENV or v.count(".") >= 2)]


class Redacted:
    """A text stream that writes everything with the secrets removed (defence in depth: messages are
    built without them). Each write is redacted whole, and every output is written in one piece."""

    def __init__(self, stream: IO[str], secrets: list[str]) -> None:
        self.stream, self.secrets = stream, secrets

    def write(self, text: str) -> int:
        return self.stream.write(redact(text, self.secrets))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def redacted_output(secrets: list[str], stdout: bool) -> Iterator[None]:
    """stderr (and stdout, unless it is to carry the token) redacted for every command while it runs."""
    saved = sys.stdout, sys.stderr
    if sys.stderr is not None:
        sys.stderr = Redacted(sys.stderr, secrets)
    if stdout and sys.stdout is not None:
        sys.stdout = Redacted(sys.stdout, secrets)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def fail(message: str, code: int, environ: Mapping[str, str]) -> int:
    # Redacted before the whitespace is folded: a token with a stray tab must still match.
    line = " ".join(redact(message, secrets_in(environ)).split())
    with contextlib.suppress(OSError, AttributeError):  # stderr closed: the exit status still says it
        sys.stderr.write(PREFIX + line + "\n")
    return code
