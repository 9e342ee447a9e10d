"""One flag vocabulary across commands: the same names for the same things, no abbreviations, and a
usage error that names the flag the user typed, in one line with exit 2. What the parser answers needs
no process; the one line and the exit status are checked through the installed program."""

from __future__ import annotations

import json

import pytest

from authress_gitlab_token import flags as parsing
from authress_gitlab_token.cli import COMMANDS
from authress_gitlab_token.errors import QueryError
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, argv, doctor, guide
from tests.fixtures.issuer import LocalIssuer


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["setup", "--proj", "my-org/x"],
            'setup has no flag "--proj" (flags are never abbreviated); did you mean "--project"?',
        ),
        (
            ["setup", "--bran=main"],
            'setup has no flag "--bran" (flags are never abbreviated); did you mean "--branch"?',
        ),
        (
            ["doctor", "--aud", AUDIENCE],
            'doctor has no flag "--aud" (flags are never abbreviated); did you mean "--audience"?',
        ),
        (["env", "--audience", AUDIENCE, "--form", "dotenv"], 'did you mean "--format"?'),
        (
            ["setup", "--detailed-exit-code"],
            'setup has no flag "--detailed-exit-code"; did you mean "--detailed-exitcode"?',
        ),
        (["setup", "--ref", "main"], 'setup has no flag "--ref"; use --branch or --tag'),
        (["doctor", "--flurb"], 'doctor has no flag "--flurb"; see `authress-gitlab-token doctor --help`'),
        (["setup", "--role", "a", "b"], 'setup does not take "b" on its own'),
        # argparse takes the value "--" for nothing at all: a flag would be left a list, not a string
        (["setup", "--plan", "--key-env=--"], '--key-env is "--", which is not a value'),
        (["doctor", "--audience=--"], '--audience is "--", which is not a value'),
    ],
)
def test_an_unknown_or_abbreviated_flag_is_refused_with_the_nearest_real_one(args: list[str], fragment: str) -> None:
    with pytest.raises(QueryError) as refused:
        parsing.parse(args, COMMANDS)
    assert fragment in str(refused.value)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["doctor", "--bogus"], 'doctor has no flag "--bogus"; see `authress-gitlab-token doctor --help`'),
        (["env"], "the following arguments are required: --audience; see `authress-gitlab-token env --help`"),
        (["setup", "--plan", "--apply"], "argument --apply: not allowed with argument --plan"),
        (["nope"], "invalid choice: 'nope'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_a_usage_error_is_one_line_with_exit_2(helper: Helper, args: list[str], fragment: str) -> None:
    run = helper.run(args)
    run.refused(fragment, code=2)
    assert "usage:" not in run.stderr and "optional arguments" not in run.stderr


def test_doctor_help_does_not_call_the_audience_required() -> None:
    _, commands = parsing.parser(COMMANDS)
    doctor_help, env_help = (" ".join(commands[name].format_help().split()) for name in ("doctor", "env"))
    assert "--audience VALUE The exact `aud`" in doctor_help and "Default: the token's own `aud`" in doctor_help
    assert "--audience VALUE Required." in env_help


def test_every_command_takes_project_and_branch_for_the_same_things(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """`--project`/`--branch` in env and doctor bind what `--project-path`/`--ref`/`--ref-type` bind."""
    key = {"AUTHRESS_KEY": token}
    flags = {"audience": AUDIENCE, "issuer": issuer.url, "project": PROJECT}
    assert helper.run(argv("env", branch="main", **flags), env=key).returncode == 0
    helper.run(argv("env", tag="main", **flags), env=key).refused('"ref_type"', '"tag"')
    helper.run(argv("env", branch="prod", **flags), env=key).refused('"prod"')
    run = helper.run(argv("doctor", branch="main", check="none", **flags), env=key)
    assert run.returncode == 0, run.stdout
    assert "[warn]" not in run.stdout, "--branch did not bind ref_type"
    helper.run(argv("env", branch="main", ref="dev", **flags), env=key).refused(
        '--branch "main" and --ref/--ref-type name different refs', code=2
    )

    printed = helper.run(guide(project=None, project_path=PROJECT))
    assert printed.returncode == 0, printed.stderr
    assert f"project_path:{PROJECT}:ref_type:branch:ref:main" in printed.stdout


def test_a_flag_value_error_names_the_flag(helper: Helper) -> None:
    helper.run(["doctor", "--min-validity-seconds", "soon"]).refused('--min-validity-seconds is "soon"', code=2)
    helper.run(guide(branch="rel/*")).refused(
        '--branch is "rel/*", a glob; Authress matches the user ID exactly', code=2
    )
    helper.run(guide(project=None)).refused("no project; pass --project", code=2)


def test_setup_without_a_mode_refuses_the_flags_that_need_one(helper: Helper) -> None:
    helper.run(guide("--destroy")).refused("--destroy takes effect only with --plan or --apply", code=2)
    helper.run(guide("--apply", "--detailed-exitcode")).refused("--detailed-exitcode takes effect only with --plan")
    helper.run(guide("--list", branch=None)).refused(
        "--project takes effect only with a guide, --plan or --apply", code=2
    )
    helper.run(guide("--plan", "--allow-missing-roles")).refused(
        "--allow-missing-roles takes effect only with --apply", code=2
    )


def test_many_subjects_without_a_mode_print_a_guide_for_each(helper: Helper) -> None:
    run = helper.run(guide(project=("my-org/a", "my-org/b"), tag="v1"))
    assert run.returncode == 0, run.stderr
    heads = [line for line in run.stdout.splitlines() if line.startswith("== ")]
    assert heads == ["== my-org/a branch main", "== my-org/a tag v1", "== my-org/b branch main", "== my-org/b tag v1"]


# --- each setting named as the user gave it: a flag, a query key, a component input -------------------


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ({"issuer": "http://gitlab.example.com"}, '--issuer is "http://gitlab.example.com", which is not an https'),
        ({"leeway_seconds": "900"}, '--leeway-seconds is "900", more than 300'),
        ({"bound_claims": "{x"}, "--bound-claims is not JSON"),
        ({"audience": ""}, "--audience is empty; set it to a value (it has no default)"),
        ({"ref": ""}, "--ref is empty; leave it out"),
        ({"project_path": None}, "set --project-path (e.g."),
    ],
)
def test_a_refused_flag_is_named_as_the_flag_never_as_a_query_key(
    helper: Helper, token: str, flags: dict[str, str | None], shown: str
) -> None:
    given = {"audience": AUDIENCE, "project_path": PROJECT, **flags}
    run = helper.run(argv("env", **given), env={"AUTHRESS_KEY": token})
    run.refused(shown, code=2)
    assert "query key" not in run.stderr


def test_the_same_refusal_names_the_query_key_for_terraform(helper: Helper, token: str) -> None:
    run = helper.external({"audience": AUDIENCE, "project_path": PROJECT, "issuer": "http://x.example"}, token)
    run.refused('query key "issuer" is "http://x.example"', 'set the query key "issuer"', code=2)


def test_in_the_component_s_job_a_refusal_names_the_component_input(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """The component's before_script calls `env` with flags made from its inputs (AUTHRESS_TOKEN_VARIABLE
    set): its job log names the input the user wrote in the include."""
    job = {"AUTHRESS_TOKEN_VARIABLE": "AUTHRESS_ID_TOKEN", "AUTHRESS_ID_TOKEN": token}
    args = argv(
        "env", audience=AUDIENCE, issuer="http://x.example", token_env="AUTHRESS_ID_TOKEN", project_path=PROJECT
    )
    helper.run(args, env=job).refused('input "issuer" is "http://x.example"', code=2)
    empty = argv("env", audience="", token_env="AUTHRESS_ID_TOKEN", project_path=PROJECT)
    helper.run(empty, env=job).refused('input "audience" is empty; set it to a value', code=2)


def test_doctor_names_the_flag_in_its_fix(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    report = doctor(helper, token, audience=AUDIENCE, issuer=issuer.url, project_path=PROJECT, check="authress").report
    assert "query key" not in json.dumps(report), report["fix"]


@pytest.mark.parametrize("prefix", ["--ref-prot", "--ref-protec", "--token", "--project-p"])
def test_an_unambiguous_prefix_of_a_flag_is_never_taken_for_it(prefix: str) -> None:
    """argparse would take `--ref-prot true` as `--ref-protected true` (one flag starts so): a binding the
    user did not spell out must not be made, nor a check skipped, so the parser refuses it."""
    with pytest.raises(QueryError, match="flags are never abbreviated"):
        parsing.parse(["env", "--audience", AUDIENCE, prefix, "x"], COMMANDS)


def test_the_command_line_before_the_command_takes_no_abbreviation_either() -> None:
    """`--vers` is not `--version`: the top-level parser refuses prefixes like each command's."""
    with pytest.raises(QueryError, match="the following arguments are required: COMMAND"):
        parsing.parse(["--vers"], COMMANDS)
