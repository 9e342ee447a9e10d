"""One flag vocabulary across commands: the same names for the same things, no abbreviations, and a
usage error that names the flag the user typed, in one line with exit 2."""

from __future__ import annotations

import pytest

from tests.fixtures.helper import AUDIENCE, PROJECT, Helper
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
    ],
)
def test_an_unknown_or_abbreviated_flag_is_refused_with_the_nearest_real_one(
    helper: Helper, args: list[str], fragment: str
) -> None:
    run = helper.run(args)
    run.refused(fragment, code=2)
    assert "usage:" not in run.stderr and "optional arguments" not in run.stderr


def test_every_command_takes_project_and_branch_for_the_same_things(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """`--project`/`--branch` in env and doctor bind what `--project-path`/`--ref`/`--ref-type` bind."""
    flags = ["--audience", AUDIENCE, "--issuer", issuer.url, "--project", PROJECT]
    assert helper.run(["env", *flags, "--branch", "main"], env={"AUTHRESS_KEY": token}).returncode == 0
    helper.run(["env", *flags, "--tag", "main"], env={"AUTHRESS_KEY": token}).refused('"ref_type"', '"tag"')
    helper.run(["env", *flags, "--branch", "prod"], env={"AUTHRESS_KEY": token}).refused('"prod"')
    run = helper.run(["doctor", *flags, "--branch", "main", "--check", "none"], env={"AUTHRESS_KEY": token})
    assert run.returncode == 0, run.stdout
    assert "[warn]" not in run.stdout, "--branch did not bind ref_type"
    helper.run(["env", *flags, "--branch", "main", "--ref", "dev"], env={"AUTHRESS_KEY": token}).refused(
        '--branch "main" and --ref/--ref-type name different refs', code=2
    )

    guide = helper.run(["setup", "--project-path", PROJECT, "--branch", "main", "--audience", AUDIENCE])
    assert guide.returncode == 0, guide.stderr
    assert f"project_path:{PROJECT}:ref_type:branch:ref:main" in guide.stdout


def test_a_flag_value_error_names_the_flag(helper: Helper) -> None:
    helper.run(["doctor", "--min-validity-seconds", "soon"]).refused('--min-validity-seconds is "soon"', code=2)
    helper.run(["setup", "--project", "my-org/x", "--branch", "rel/*", "--audience", AUDIENCE]).refused(
        '--branch is "rel/*", a glob; Authress matches the user ID exactly', code=2
    )
    helper.run(["setup", "--audience", AUDIENCE, "--branch", "main"]).refused("no project; pass --project", code=2)


def test_setup_without_a_mode_refuses_the_flags_that_need_one(helper: Helper) -> None:
    base = ["setup", "--project", "my-org/x", "--branch", "main", "--audience", AUDIENCE]
    helper.run([*base, "--destroy"]).refused("--destroy takes effect only with --plan or --apply", code=2)
    helper.run([*base, "--apply", "--detailed-exitcode"]).refused("--detailed-exitcode takes effect only with --plan")
    helper.run(["setup", "--list", "--project", "my-org/x", "--audience", AUDIENCE]).refused(
        "--project takes effect only with a guide, --plan or --apply", code=2
    )
    helper.run([*base, "--plan", "--allow-missing-roles"]).refused(
        "--allow-missing-roles takes effect only with --apply", code=2
    )


def test_many_subjects_without_a_mode_print_a_guide_for_each(helper: Helper) -> None:
    args = ["setup", "--project", "my-org/a", "--project", "my-org/b", "--branch", "main", "--tag", "v1"]
    run = helper.run([*args, "--audience", AUDIENCE])
    assert run.returncode == 0, run.stderr
    heads = [line for line in run.stdout.splitlines() if line.startswith("== ")]
    assert heads == ["== my-org/a branch main", "== my-org/a tag v1", "== my-org/b branch main", "== my-org/b tag v1"]
