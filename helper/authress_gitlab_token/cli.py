"""Command line: argv, stdin, stdout and exit codes live here and in external.py only (output.py words
and redacts what is printed; entry.py writes it out and ends the process)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import HelperError, QueryError, quoted
from .output import fail, name_secret, redacted_output, shown, speak, warn, worded

if TYPE_CHECKING:
    import argparse

    from .environment import SetupEnv
    from .setup import guide as setup_guide

ENV_NAME = "AUTHRESS_KEY"  # the variable the Authress Terraform provider reads


def cmd_external(args: argparse.Namespace | None, environ: Mapping[str, str]) -> int:
    """Terraform's data "external": query on stdin, verified token and claims on stdout."""
    from . import access_token, external, settings, sources

    if sys.stdin is None:
        raise QueryError(f"stdin is closed, so there is no query; {external.USAGE}")
    query = external.parse_query(external.read_raw(sys.stdin.buffer))
    name_secret(query.get("token_env"))
    config = settings.from_query(query, environ)
    credential = sources.find_credential(environ, config.token_env, config.audience)
    outcome = access_token.obtain(config, credential)
    # After success: a failure stays one line.
    warn_about_audience(config.audience, config.api_url, outcome.audience)
    external.write_result(outcome.to_external(), sys.stdout)
    return 0


def cmd_env(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Verify as `external` does, then print the token as AUTHRESS_KEY for a job script: it reaches the
    Authress provider through the environment and never enters Terraform state."""
    import shlex

    from . import access_token, settings, sources
    from .flags import query_from_args

    config = settings.from_query(query_from_args(args), environ)
    credential = sources.find_credential(environ, config.token_env, config.audience)
    outcome = access_token.obtain(config, credential)
    token = shlex.quote(outcome.token)
    warn_about_audience(config.audience, config.api_url, outcome.audience)
    sys.stdout.write(f"export {ENV_NAME}={token}\n" if args.format == "shell" else f"{ENV_NAME}={token}\n")
    return 0


def cmd_doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Show where the token came from, its claims (never the token), each check passed or failed, the
    Authress check, and the one fix to make."""
    from . import doctor
    from .flags import query_from_args

    report = doctor.diagnose(query_from_args(args), environ, show_personal=args.show_personal)
    if args.json:
        value = report.to_json()
        value["fix"] = worded(value["fix"])
        for step in value["steps"]:
            step["detail"] = worded(step["detail"])
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
    else:
        sys.stdout.write(worded(report.render()))
    return 0 if report.ok else 1


def cmd_setup(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Print what to enter in Authress and GitLab for each project and branch or tag; with --plan, what
    Authress lacks of it; with --apply, make it so (with an Authress service-client admin key); with
    --list, what this tool made; with --destroy, take the named pipelines' grants back."""
    from . import environment
    from .setup import guide as setup_guide

    admin, modes = args.plan or args.apply, "--plan or --apply (and not with --destroy)"
    guide_too = "a guide, --plan or --apply (--list shows every pipeline setup made)"
    for flag, given, needs, words in [
        ("--destroy", args.destroy, admin, "--plan or --apply"),
        ("--destroy-trusted-identity", args.destroy_trusted_identity, args.destroy, "--destroy"),
        ("--detailed-exitcode", args.detailed_exitcode, args.plan, "--plan"),
        ("--allow-missing-roles", args.allow_missing_roles, args.apply, "--apply"),
        ("--role", args.role, admin and not args.destroy, modes),
        ("--resource", args.resource != "*", admin and not args.destroy, modes),
        ("--api-url", args.api_url, admin or args.list, "--plan, --apply or --list"),
        ("--project", args.projects, not args.list, guide_too),
        ("--branch", args.branches, not args.list, guide_too),
        ("--tag", args.tags, not args.list, guide_too),
    ]:
        if given and not needs:
            raise QueryError(f"{flag} takes effect only with {words}; add it, or leave {flag} out")
    if args.destroy_trusted_identity:
        raise QueryError(
            "--destroy-trusted-identity: Authress's API has no call that removes a trusted identity (only "
            "getAccountIdentities and delegateAuthentication); remove it in the portal, Connections -> OIDC "
            "trusted identities, once no other project relies on it"
        )
    env = environment.setup_from(environ, args.key_env, calls_authress=bool(admin or args.list))
    if args.list:
        from .setup import account

        audience, issuer = setup_guide.trust(args.audience, args.issuer, env.job)
        return setup_list(account.listing(issuer, audience, args.api_url or "", env), args.json)
    guides = setup_guide.build_all(
        args.projects, args.branches, args.tags, args.audience, args.issuer, env.job, args.helper_repository
    )
    if admin:
        return setup_changes(args, guides, env)
    for warning in dict.fromkeys(w for g in guides for w in g.warnings):
        warn(warning)
    if args.json:
        value: Any = guides[0].to_json() if len(guides) == 1 else [g.to_json() for g in guides]
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
    else:
        heads = [f"== {g.project} {g.ref_type} {g.ref}\n" if len(guides) > 1 else "" for g in guides]
        sys.stdout.write("\n".join(shown(h + g.render()) for h, g in zip(heads, guides, strict=True)))
    return 0


def setup_changes(args: argparse.Namespace, guides: list[setup_guide.Guide], env: SetupEnv) -> int:
    from .setup import account
    from .setup.plan import user_id_warning

    request = account.Request(
        tuple(args.role or ()),
        args.resource,
        args.api_url or "",
        apply=args.apply,
        destroy=args.destroy,
        allow_missing_roles=args.allow_missing_roles,
    )
    for guide in guides:
        problem = user_id_warning(guide)
        if problem:
            warn(problem)
    api_url, changes = account.run(guides, request, env)
    pending = [c for c in changes if c.pending]
    # A `!` line is a problem to fix (the trust cannot work as planned): never "nothing to change", never
    # exit 0. A role --allow-missing-roles let --apply grant is the one the user accepted.
    problems = [c for c in changes if c.action == "problem" and not (c.kind == "role" and args.allow_missing_roles)]
    if args.json:
        mode = "apply" if args.apply else "plan"
        value = {"mode": mode, "destroy": args.destroy, "api_url": api_url, "changes": [c.to_json() for c in changes]}
        sys.stdout.write(json.dumps({**value, "pending": len(pending), "problems": len(problems)}, indent=2) + "\n")
    else:
        sys.stdout.write("".join(shown(c.line()) + "\n" for c in changes))
        done = f"Plan: {len(pending)} change(s)" if args.plan else f"Applied: {len(pending)} change(s)"
        if problems:
            done += f"; {len(problems)} problem(s) to fix (the lines starting with !)."
        elif not pending:
            done = "Nothing to change."
        else:
            done += "; run with --apply to make them." if args.plan else "."
        sys.stdout.write(done + "\n")
    if problems:
        # Exit 1, as any error is under --detailed-exitcode (2 would tell a gate "changes pending, fine").
        what = "setup --plan" if args.plan else "setup --apply"
        raise HelperError(
            f"{what} found {len(problems)} problem(s), each on a line starting with !",
            "fix each as its line says, then run setup --plan again",
        )
    return 2 if args.detailed_exitcode and pending else 0


def setup_list(listing: dict[str, Any], as_json: bool) -> int:
    if as_json:
        sys.stdout.write(json.dumps(listing, indent=2) + "\n")
        return 0
    lines = [
        f"trusted identity issuer {quoted(i['issuer'])} audience {quoted(i['audience'])} "
        f"userIdExpression {quoted(i['user_id_expression'])}"
        for i in listing["trusted_identities"]
    ] or ["no trusted identity for this issuer"]
    for r in listing["access_records"]:
        grants = "; ".join(f"roles {quoted(s['roles'])} on {quoted(s['resources'])}" for s in r["statements"])
        lines.append(f"access record {quoted(r['record_id'])} users {quoted(r['users'], 400)} {grants}")
    for r in listing["not_setups"]:
        lines.append(f"! access record {quoted(r['record_id'])} users {quoted(r['users'], 400)}: {r['note']}")
    if not listing["complete"]:
        lines.append("(more records than one listing reads: narrow it in the portal)")
    count = f"{len(listing['access_records'])} access record(s) made by this tool."
    sys.stdout.write(shown("\n".join(lines)) + f"\n{count}\n")
    return 0


def warn_about_audience(audience: str, api_url: str, token_audience: str) -> None:
    """One warning at most: an audience that names no Authress API, else a token only provider 2.0.39 takes."""
    from .authress import audience_warning, newest_provider_warning

    message = audience_warning(audience, api_url) or newest_provider_warning(token_audience)
    if message:
        warn(message)


COMMANDS = {"external": cmd_external, "env": cmd_env, "doctor": cmd_doctor, "setup": cmd_setup}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else list(argv)
    # Messages name each setting as the user gave it: a query key to Terraform, a flag on the command
    # line, an input of the CI/CD component in the `env` call its job makes (it sets the variable).
    component = argv[:1] == ["env"] and bool(environ.get("AUTHRESS_TOKEN_VARIABLE"))
    speak("query" if argv[:1] == ["external"] else "inputs" if component else "flags")
    # Only `external` and `env` print the token, and only on stdout; everything else is redacted.
    with redacted_output(environ, stdout=argv[:1] not in (["external"], ["env"])):
        try:
            if sys.stdout is None:
                raise HelperError("stdout is closed, so nothing could be printed; run it with stdout open")
            if argv == ["external"]:
                # Terraform's call, made on every plan and refresh: importing argparse and building the
                # parser would add about 5 ms to a run (README, Performance).
                return cmd_external(None, environ)
            from . import flags

            args = flags.parse(argv, COMMANDS)
            name_secret(getattr(args, "q_token_env", None))
            name_secret(getattr(args, "key_env", None))
            code: int = args.run(args, environ)
            return code
        except HelperError as exc:
            # Terraform's -detailed-exitcode: 2 means changes pending, so a refusal is 1 there.
            code = 1 if exc.exit_code == 2 and "--detailed-exitcode" in argv else exc.exit_code
            return fail(str(exc), code, environ)
        except Exception as exc:  # noqa: BLE001 -- never a traceback: it could carry the token
            return fail(f"internal error ({type(exc).__name__}); please report it with the command you ran", 1, environ)
