"""The command line's flags: one vocabulary for every command, the query flags generated from
query.schema.json, no abbreviations, and every usage error one line that names the flag."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import __version__
from .environment import DEFAULT_TOKEN_ENV
from .errors import QueryError, quoted

PROG = "authress-gitlab-token"
ENV_NAME = DEFAULT_TOKEN_ENV  # the variable the Authress Terraform provider reads


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line (argparse prints the usage too), with exit status 2 as argparse's."""

    def error(self, message: str) -> Any:
        # argparse quotes the refused value whole: cut a long one, so the line stays short
        message = re.sub(r"'([^']{60})[^']+'", r"'\1...'", message)
        if len(message) > 300:  # a value quoted otherwise (it holds a "'"): keep the start and the choices
            message = message[:200] + "..." + message[-80:]
        raise QueryError(f"{message}; see `{self.prog} --help`")


def parse(argv: Sequence[str], commands: Mapping[str, Callable[..., int]]) -> argparse.Namespace:
    """The parsed flags; an unknown or abbreviated flag is refused with the nearest real one."""
    for given in argv:
        flag, is_value, value = given.partition("=")
        if is_value and value == "--" and flag.startswith("--"):  # argparse would drop it and give a list
            raise QueryError(f'{flag} is "--", which is not a value; pass the value itself, or leave {flag} out')
    root, subparsers = parser(commands)
    args, extra = root.parse_known_args(list(argv))
    if extra:
        raise QueryError(unknown(extra[0], args.command, subparsers[args.command]))
    return args


def unknown(given: str, command: str, sub: argparse.ArgumentParser) -> str:
    if not given.startswith("-"):
        return (
            f"{command} does not take {quoted(given)} on its own; every flag takes one value (repeat the flag "
            f"to give more), see `{PROG} {command} --help`"
        )
    flag = given.split("=", 1)[0]
    known = sorted(o for a in sub._actions for o in a.option_strings if o.startswith("--"))
    what = f"{command} has no flag {quoted(flag)}"
    if command == "setup" and flag in ("--ref", "--ref-type"):  # the flags env and doctor have for it
        return f"{what}; use --branch or --tag (setup names a ref exactly; --ref binds a glob in env and doctor)"
    prefixed = [o for o in known if o.startswith(flag)]
    if prefixed:
        return f"{what} (flags are never abbreviated); did you mean {quoted(prefixed[0])}?"
    near = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    if near:
        return f"{what}; did you mean {quoted(near[0])}?"
    return f"{what}; see `{PROG} {command} --help` for its flags"


def parser(
    commands: Mapping[str, Callable[..., int]],
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    p = OneLineErrors(
        prog=PROG,
        description="Verify a GitLab CI ID token and hand it to Terraform as the Authress access token.",
        allow_abbrev=False,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        run = commands[name]
        made = sub.add_parser(name, help=help_text, description=run.__doc__, allow_abbrev=False)
        made.set_defaults(run=run)
        return made

    command("external", 'speak Terraform\'s data "external" protocol (query on stdin)')
    env = command("env", "verify, then print `export AUTHRESS_KEY=...` for a job script")
    query_options(env, audience_required=True)
    env.add_argument("--format", choices=["shell", "dotenv"], default="shell", help="shell: `export NAME=VALUE`")

    doctor = command("doctor", "explain what works and what to fix")
    query_options(doctor, audience_required=False)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--show-personal", action="store_true", help="show user_email (hidden by default: job logs can be public)"
    )
    setup_options(command("setup", "print what to enter in Authress and GitLab, or make it so"))
    return p, dict(sub.choices)


def setup_options(setup: argparse.ArgumentParser) -> None:
    setup.add_argument(
        "--project",
        "--project-path",
        dest="projects",
        action="append",
        default=[],
        help="GROUP/PROJECT (repeatable); default $CI_PROJECT_PATH",
    )
    setup.add_argument(
        "--branch",
        dest="branches",
        action="append",
        default=[],
        help="a branch that may apply, exactly (repeatable); default $CI_COMMIT_REF_NAME",
    )
    setup.add_argument("--tag", dest="tags", action="append", default=[], help="a tag that may apply (repeatable)")
    setup.add_argument("--audience", help="the account's API URL, https://ACCOUNT_ID.api.authress.io")
    setup.add_argument("--issuer", help="GitLab's issuer; default $CI_SERVER_URL, else https://gitlab.com")
    setup.add_argument(
        "--helper-repository",
        help="the https git URL of your copy of authress-gitlab-token, for the install line, include and "
        "module source (default: the canonical repository on gitlab.com, YOUR_GROUP on another issuer's host)",
    )
    setup.add_argument("--json", action="store_true", help="machine-readable output")
    mode = setup.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="show what Authress lacks (needs the admin key)")
    mode.add_argument("--apply", action="store_true", help="create or update it in Authress (needs the admin key)")
    mode.add_argument("--list", action="store_true", help="show what this tool made in Authress (read-only)")
    setup.add_argument(
        "--destroy", action="store_true", help="with --plan/--apply: remove the named pipelines' access records"
    )
    setup.add_argument(
        "--destroy-trusted-identity",
        action="store_true",
        help="with --destroy: also the trusted identity (Authress's API cannot; setup says what to do)",
    )
    setup.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="with --plan: exit 0 nothing to change, 2 changes, 1 an error or a ! problem",
    )
    setup.add_argument(
        "--allow-missing-roles", action="store_true", help="with --apply: grant a role the account does not have yet"
    )
    setup.add_argument("--role", action="append", help="with --plan/--apply: a role ID to grant (repeatable)")
    setup.add_argument("--resource", default="*", help="with --plan/--apply: the resource URI granted on (default *)")
    setup.add_argument("--api-url", help="with --plan/--apply/--list: the Authress API URL when the audience is not it")
    setup.add_argument(
        "--key-env",
        default=ENV_NAME,
        help=f"with --plan/--apply/--list: the variable with the admin's service-client key (default {ENV_NAME})",
    )


def query_options(p: argparse.ArgumentParser, audience_required: bool) -> None:
    """One flag per query key (`--token-env` for `token_env`), from the query schema: the two stay alike.
    `--project` is `--project-path` too, and `--branch`/`--tag` bind `ref` and `ref_type` exactly."""
    from .external import load_schema

    schema = load_schema()
    for key, prop in schema["properties"].items():
        help_text = prop["description"].replace("%", "%%")
        required = audience_required and key in schema.get("required", [])
        if key in schema.get("required", []) and not required:
            help_text = help_text.removeprefix("Required. ") + " Default: the token's own `aud`."
        names = ["--" + key.replace("_", "-")] + (["--project"] if key == "project_path" else [])
        p.add_argument(
            *names,
            dest=f"q_{key}",
            metavar=None if "enum" in prop else "VALUE",
            choices=prop.get("enum"),
            required=required,
            help=help_text,
        )
    exact = p.add_mutually_exclusive_group()
    exact.add_argument("--branch", metavar="NAME", help="the branch, exactly: `--ref NAME --ref-type branch`")
    exact.add_argument("--tag", metavar="NAME", help="the tag, exactly: `--ref NAME --ref-type tag`")


def query_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The flags given, as the query `external` would read, validated against the same schema; an error
    names the key, which the output shows as the flag the user typed (output.worded)."""
    from .external import check_query, load_schema

    query = given_options(args)
    check_query(query, {**load_schema(), "required": []})
    return query


def given_options(args: argparse.Namespace) -> dict[str, str]:
    """The query keys given as flags, not yet validated; `--branch`/`--tag` as `ref` and `ref_type`."""
    query = {k[2:]: v for k, v in vars(args).items() if k.startswith("q_") and v is not None}
    for ref_type in ("branch", "tag"):
        name = getattr(args, ref_type, None)
        if name is None:
            continue
        if query.get("ref", name) != name or query.get("ref_type", ref_type) != ref_type:
            raise QueryError(
                f"--{ref_type} {quoted(name)} and --ref/--ref-type name different refs; pass --{ref_type} alone"
            )
        query.update(ref=name, ref_type=ref_type)
    return query
