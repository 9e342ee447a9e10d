"""What `doctor`, `setup` and the argument parser print (issue 12): values from a token escaped, claims
that did not verify labelled, user_email hidden, the whole fix, one-line usage errors, and never a token."""

from __future__ import annotations

import json
import unicodedata

import pytest

from tests.fixtures.helper import AUDIENCE, PROJECT, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint
from tests.test_hygiene import spoilt_pieces

EMAIL = "sample-user@example.com"  # gitlab_claims's user_email


def doctor(helper: Helper, token: str, *args: str) -> tuple[int, str, dict]:
    """The text report, then the JSON one, of one doctor run each (no Authress check: it is not local)."""
    base = ["doctor", "--audience", AUDIENCE, "--project-path", PROJECT, "--check", "none", *args]
    text = helper.run(base, env={"AUTHRESS_KEY": token})
    as_json = helper.run([*base, "--json"], env={"AUTHRESS_KEY": token})
    assert text.returncode == as_json.returncode
    return text.returncode, text.stdout, json.loads(as_json.stdout)


def test_claims_cannot_fake_lines_or_drive_the_terminal(
    helper: Helper, issuer: LocalIssuer, other_key: SigningKey
) -> None:
    """Unverified claims are the attacker's text: newlines, a fake [pass] line, ANSI escapes, a bidi override."""
    hostile = "main\n  [pass] signature and claims  forged\x1b[2J\x1b]0;title\x07\u202egnp.exe\u2028x"
    claims = gitlab_claims(issuer.url, AUDIENCE, ref=hostile, environment="\r[pass]")
    claims["x\nfake\x1b"] = "\x00"
    _, text, _ = doctor(helper, mint(other_key, claims), "--issuer", issuer.url)
    assert all(c == "\n" or unicodedata.category(c)[0] not in "CZ" or c == " " for c in text), repr(text)
    assert not any(line.lstrip().startswith("[pass] signature and claims") for line in text.splitlines())
    assert "\\u001b[2J" in text and "\\u202egnp.exe" in text and "main\\n  [pass]" in text


def test_claims_that_did_not_verify_are_labelled_so(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey
) -> None:
    _, text, report = doctor(helper, mint(other_key, gitlab_claims(issuer.url, AUDIENCE)), "--issuer", issuer.url)
    assert "Claims, NOT verified (do not trust them):" in text and report["claims_verified"] is False
    args = ("--issuer", issuer.url, "--ref-type", "branch")
    _, text, report = doctor(helper, mint(signing_key, gitlab_claims(issuer.url, AUDIENCE)), *args)
    assert "\nClaims:\n" in text and "NOT verified" not in text and report["claims_verified"] is True


def test_user_email_is_hidden_unless_asked_for(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    """Job logs of public projects are public; a bound claim on the email must not show it either."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    args = ("--issuer", issuer.url, "--bound-claims", '{"user_email": "someone-else@example.com"}')
    code, text, report = doctor(helper, token, *args)
    assert code == 1 and report["steps"][-2]["status"] == "fail"  # the bound claim, before the skipped check
    assert EMAIL not in text and EMAIL not in json.dumps(report)
    assert report["claims"]["user_email"] == "[hidden; --show-personal shows it]"
    _, text, report = doctor(helper, token, *args, "--show-personal")
    assert EMAIL in text and report["claims"]["user_email"] == EMAIL


def test_the_fix_is_whole_even_when_a_value_holds_a_semicolon(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="x; y"))
    code, text, report = doctor(helper, token, "--issuer", issuer.url, "--ref", "main")
    assert code == 1
    assert report["fix"] == "this token is for another project, ref or job"
    assert text.rstrip().endswith("Fix: this token is for another project, ref or job")


def test_ref_without_ref_type_is_warned_about_by_doctor_and_bound_by_setup(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    code, _, report = doctor(helper, token, "--issuer", issuer.url, "--ref", "main")
    warning = next(s for s in report["steps"] if s["name"] == "ref_type")
    assert code == 0 and warning["status"] == "warn"
    assert 'ref is bound to "main" but ref_type is not, so a tag of that name would match too' in warning["detail"]
    assert report["fix"] == 'set "ref_type" to "branch" (or "tag")'
    _, _, report = doctor(helper, token, "--issuer", issuer.url, "--ref", "main", "--ref-type", "branch")
    assert "ref_type" not in {s["name"] for s in report["steps"]}

    guide = helper.run(["setup", "--json", "--project", PROJECT, "--branch", "main", "--audience", AUDIENCE])
    hcl = json.loads(guide.stdout)["module_hcl"]
    assert 'ref_type     = "branch" # else a tag named "main" would match too' in hcl


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'BBBBBB'}"


def stray(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:10]}\t{signature[10:]}"


@pytest.mark.parametrize("spoil", [tampered, stray], ids=["bad-signature", "stray-character"])
def test_no_command_prints_a_spoilt_token(helper: Helper, issuer: LocalIssuer, token: str, spoil) -> None:  # type: ignore[no-untyped-def]
    bad = spoil(token)
    query = {"audience": AUDIENCE, "issuer": issuer.url, "project_path": PROJECT}
    runs = [helper.external(query, bad)]
    flags = ["--audience", AUDIENCE, "--issuer", issuer.url, "--project-path", PROJECT, "--check", "none"]
    for args in (["env", *flags], ["doctor", *flags], ["doctor", *flags, "--json"]):
        runs.append(helper.run(args, env={"AUTHRESS_KEY": bad}))
    pieces = spoilt_pieces(token, bad)
    for run in runs:
        assert run.returncode == 1
        assert not any(piece in run.stdout + run.stderr for piece in pieces), run.args
        assert ("signature does not verify" if spoil is tampered else "a character outside base64url") in (
            run.stdout + run.stderr
        ) or "whitespace at position" in run.stdout + run.stderr


# --- the command line ------------------------------------------------------------------------------


def test_doctor_help_does_not_call_the_audience_required(helper: Helper) -> None:
    doctor_help = " ".join(helper.run(["doctor", "--help"]).stdout.split())
    env_help = " ".join(helper.run(["env", "--help"]).stdout.split())
    assert "--audience VALUE The exact `aud`" in doctor_help and "Default: the token's own `aud`" in doctor_help
    assert "--audience VALUE Required." in env_help


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
    helper.run(args).refused(fragment, code=2)


def test_setup_refuses_a_project_with_a_trailing_newline(helper: Helper) -> None:
    run = helper.run(["setup", "--project", PROJECT + "\n", "--branch", "main", "--audience", AUDIENCE])
    run.refused('--project is "my-org/authress-configuration\\n"', code=2)


@pytest.mark.parametrize("audience", ["http://acc-1a2b3c.api.authress.io", "acc-1a2b3c.api.authress.io", "https://a b"])
def test_setup_refuses_an_audience_the_module_would_refuse(helper: Helper, audience: str) -> None:
    run = helper.run(["setup", "--project", PROJECT, "--branch", "main", "--audience", audience])
    run.refused(f'--audience is "{audience}", not an https URL', code=2)


def test_the_doctor_command_setup_prints_passes_in_the_job_it_describes(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    """setup's last step must bind what the module binds, or doctor refuses the query it is given."""
    import shlex

    job = {"CI_SERVER_URL": issuer.url, "CI_PROJECT_PATH": PROJECT, "CI_COMMIT_REF_NAME": "main"}
    guide = helper.run(["setup", "--audience", AUDIENCE], env=job)
    command = shlex.split(guide.stdout.rstrip().splitlines()[-1])
    assert command[:2] == ["authress-gitlab-token", "doctor"]
    run = helper.run([*command[1:], "--check", "none"], env={**job, "AUTHRESS_KEY": token})
    assert run.returncode == 0, run.stdout
    assert "[pass] signature and claims" in run.stdout and "[warn]" not in run.stdout
