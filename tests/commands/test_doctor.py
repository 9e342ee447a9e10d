"""`doctor`, run as installed against the local issuer and Authress: each step it reports and the one fix
it names, the claims it shows (escaped, labelled when they did not verify, user_email hidden), and its
report built from the same checks `external` runs."""

from __future__ import annotations

import json
import time
import unicodedata

import pytest

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.helper import AUDIENCE, PROJECT, SUB, Helper, argv, doctor, query
from tests.fixtures.issuer import DISCOVERY_PATH, JWKS_PATH, LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

EMAIL = "sample-user@example.com"  # gitlab_claims's user_email


def local(issuer: LocalIssuer, **extra: str) -> dict[str, str]:
    """doctor's flags for `token` without the Authress check, which needs no local stand-in then."""
    return query(issuer, check="none", **extra)


# --- the steps and the fix ------------------------------------------------------------------------


def test_doctor_in_a_ready_job_passes_every_step_and_shows_the_claims(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    authress.trust(issuer.url, AUDIENCE)
    authress.grant(SUB)
    args = argv("doctor", **query(issuer, api_url=authress.url, ref="main", ref_type="branch"))
    run = helper.run(args, env={"AUTHRESS_KEY": token})
    assert run.returncode == 0, run.stdout
    assert "holds a GitLab ID token (never shown)" in run.stdout
    assert f"  sub                 {SUB}" in run.stdout
    for line in ("[pass] issuer keys", "[pass] signature and claims", "[pass] bound ref", "[pass] authress"):
        assert line in run.stdout
    assert run.stdout.rstrip().endswith("OK: nothing: the token is ready for Terraform")
    assert authress.requests[0].token == token


def test_doctor_without_a_token_says_to_add_id_tokens(helper: Helper) -> None:
    diagnosis = doctor(helper, None, env={"GITLAB_CI": "true"}, audience=AUDIENCE, project_path=PROJECT)
    assert diagnosis.statuses == {"token": "fail"}
    assert "id_tokens" in diagnosis.report["fix"] and AUDIENCE in diagnosis.report["fix"]


def test_doctor_names_the_failing_bound_claim_and_skips_authress(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    diagnosis = doctor(helper, token, **query(issuer, api_url=authress.url, ref="prod"))
    assert diagnosis.statuses["bound ref"] == "fail"
    assert diagnosis.statuses["authress"] == "skip"
    assert diagnosis.report["fix"] == "this token is for another project, ref or job"
    assert diagnosis.report["claims"]["ref"] == "main"
    assert authress.requests == []


def test_doctor_reports_an_untrusted_token_with_the_identity_to_create(
    helper: Helper, issuer: LocalIssuer, authress: AuthressStandIn, token: str
) -> None:
    diagnosis = doctor(helper, token, **query(issuer, api_url=authress.url))
    assert diagnosis.statuses["signature and claims"] == "pass"
    assert diagnosis.statuses["authress"] == "fail"
    assert f'issuer "{issuer.url}" and audience "{AUDIENCE}"' in diagnosis.report["fix"]


@pytest.mark.slow
def test_doctor_reports_keys_it_cannot_fetch(helper: Helper, token: str) -> None:
    diagnosis = doctor(helper, token, **query("https://127.0.0.1:1"))
    assert diagnosis.statuses["issuer keys"] == "fail"
    assert "check the issuer is reachable" in diagnosis.report["fix"]


def test_doctor_takes_the_audience_from_the_token_and_says_so(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    diagnosis = doctor(helper, token, **local(issuer, audience=None))
    assert diagnosis.report["ok"] is True
    assert diagnosis.statuses["audience"] == "warn"
    assert diagnosis.statuses["authress"] == "skip"
    assert diagnosis.report["fix"] == "pass --audience to check it"


def test_doctor_skips_authress_when_the_audience_names_no_account(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    audience = "https://api.authress.io"
    token = mint(signing_key, gitlab_claims(issuer.url, audience))
    diagnosis = doctor(helper, token, **query(issuer, audience=audience))
    assert diagnosis.report["ok"] is True
    assert diagnosis.statuses["authress"] == "skip"
    assert "newest Authress Terraform provider refuses such tokens" in diagnosis.report["fix"]


def test_doctor_reports_an_expired_token(helper: Helper, issuer: LocalIssuer, signing_key: SigningKey) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=1_700_000_000))
    diagnosis = doctor(helper, token, **query(issuer))
    assert diagnosis.statuses["signature and claims"] == "fail"
    assert "run the job again" in diagnosis.report["fix"]


def test_doctor_judges_the_lifetime_as_external_does(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, lifetime=120))
    assert doctor(helper, token, **local(issuer)).statuses["lifetime"] == "pass"
    diagnosis = doctor(helper, token, **local(issuer, min_validity_seconds="600"))
    assert diagnosis.statuses["lifetime"] == "fail"
    assert "raise the job's `timeout:`" in diagnosis.report["fix"]
    # Past `exp` but within the leeway, and no minimum asked for: accepted, as `external` accepts it.
    late = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, now=int(time.time()) - 330))
    assert doctor(helper, late, **local(issuer)).statuses["lifetime"] == "pass"
    helper.external(query(issuer), late).result  # noqa: B018 -- must parse


def test_the_fix_is_whole_even_when_a_value_holds_a_semicolon(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="x; y"))
    diagnosis = doctor(helper, token, text=True, **local(issuer, ref="main"))
    assert diagnosis.run.returncode == 1
    assert diagnosis.report["fix"] == "this token is for another project, ref or job"
    assert diagnosis.text.rstrip().endswith("Fix: this token is for another project, ref or job")


def test_ref_without_ref_type_is_warned_about_by_doctor_and_bound_by_setup(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    diagnosis = doctor(helper, token, **local(issuer, ref="main"))
    warning = diagnosis.step("ref_type")
    assert diagnosis.run.returncode == 0 and warning["status"] == "warn"
    assert 'ref is bound to "main" but ref_type is not, so a tag of that name would match too' in warning["detail"]
    assert diagnosis.report["fix"] == 'set "ref_type" to "branch" (or "tag")'
    assert "ref_type" not in doctor(helper, token, **local(issuer, ref="main", ref_type="branch")).statuses

    guide = helper.run(argv("setup", "--json", project=PROJECT, branch="main", audience=AUDIENCE))
    hcl = json.loads(guide.stdout)["module_hcl"]
    assert 'ref_type     = "branch" # else a tag named "main" would match too' in hcl


def test_doctor_without_a_disk_cache_says_so_and_asks_the_issuer_once(
    helper: Helper, issuer: LocalIssuer, token: str
) -> None:
    env = {"AUTHRESS_GITLAB_TOKEN_CACHE_DIR": "", "XDG_CACHE_HOME": "relative/cache"}  # a relative path: no cache
    diagnosis = doctor(helper, token, env=env, **local(issuer))
    assert diagnosis.run.returncode == 0, diagnosis.run.stdout
    step = diagnosis.step("key cache")
    assert step["status"] == "warn"
    assert step["detail"].startswith('no disk cache: XDG_CACHE_HOME gives the relative path "relative/cache/')
    fix = "set XDG_CACHE_HOME or AUTHRESS_GITLAB_TOKEN_CACHE_DIR to an absolute path"
    assert diagnosis.report["fix"].startswith(fix)
    assert (issuer.hits(DISCOVERY_PATH), issuer.hits(JWKS_PATH)) == (1, 1)
    step = doctor(helper, token, **local(issuer)).step("key cache")
    assert (step["status"], step["detail"]) == ("pass", f'keys cached in "{helper.cache_dir}"')


def test_doctor_without_a_project_binding_checks_the_signature_and_names_the_flag(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, token: str
) -> None:
    unbound = local(issuer, project_path=None)
    diagnosis = doctor(helper, token, **unbound)
    assert diagnosis.run.returncode == 1
    assert diagnosis.statuses["signature and claims"] == "pass"
    assert diagnosis.statuses["binding"] == "fail"
    assert diagnosis.report["claims_verified"] is True
    assert diagnosis.report["fix"].startswith(f'pass --project-path "{PROJECT}"'), diagnosis.report["fix"]
    assert '"project_path"' not in diagnosis.report["fix"]

    # The attack the check stops: another project's claims under this token's signature.
    other = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, project_path="evil/project"))
    header, _, signature = token.split(".")
    diagnosis = doctor(helper, ".".join([header, other.split(".")[1], signature]), **unbound)
    assert diagnosis.run.returncode == 1
    assert diagnosis.statuses["signature and claims"] == "fail"
    assert "signature does not verify" in diagnosis.step("signature and claims")["detail"]
    assert diagnosis.report["claims_verified"] is False


# --- the claims it shows --------------------------------------------------------------------------


def test_claims_cannot_fake_lines_or_drive_the_terminal(
    helper: Helper, issuer: LocalIssuer, other_key: SigningKey
) -> None:
    """Unverified claims are the attacker's text: newlines, a fake [pass] line, ANSI escapes, a bidi override."""
    hostile = "main\n  [pass] signature and claims  forged\x1b[2J\x1b]0;title\x07\u202egnp.exe\u2028x"
    claims = gitlab_claims(issuer.url, AUDIENCE, ref=hostile, environment="\r[pass]")
    claims["x\nfake\x1b"] = "\x00"
    text = doctor(helper, mint(other_key, claims), text=True, **local(issuer)).text
    assert all(c == "\n" or unicodedata.category(c)[0] not in "CZ" or c == " " for c in text), repr(text)
    assert not any(line.lstrip().startswith("[pass] signature and claims") for line in text.splitlines())
    assert "\\u001b[2J" in text and "\\u202egnp.exe" in text and "main\\n  [pass]" in text


def test_claims_that_did_not_verify_are_labelled_so(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey, other_key: SigningKey
) -> None:
    forged = doctor(helper, mint(other_key, gitlab_claims(issuer.url, AUDIENCE)), text=True, **local(issuer))
    assert "Claims, NOT verified (do not trust them):" in forged.text and forged.report["claims_verified"] is False
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE))
    verified = doctor(helper, token, text=True, **local(issuer, ref_type="branch"))
    assert "\nClaims:\n" in verified.text and "NOT verified" not in verified.text
    assert verified.report["claims_verified"] is True


def test_user_email_is_hidden_unless_asked_for(helper: Helper, issuer: LocalIssuer, token: str) -> None:
    """Job logs of public projects are public; a bound claim on the email must not show it either."""
    flags = local(issuer, bound_claims='{"user_email": "someone-else@example.com"}')
    hidden = doctor(helper, token, text=True, **flags)
    assert hidden.run.returncode == 1 and hidden.report["steps"][-2]["status"] == "fail"  # before the skipped check
    assert EMAIL not in hidden.text and EMAIL not in json.dumps(hidden.report)
    assert hidden.report["claims"]["user_email"] == "[hidden; --show-personal shows it]"
    shown = doctor(helper, token, "--show-personal", text=True, **flags)
    assert EMAIL in shown.text and shown.report["claims"]["user_email"] == EMAIL


def test_the_json_report_stays_json_when_a_forged_claim_is_not_a_finite_number(
    helper: Helper, issuer: LocalIssuer, other_key: SigningKey
) -> None:
    """Python's json writes and reads NaN and Infinity; no other JSON reader takes them."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    claims = {**gitlab_claims(issuer.url, AUDIENCE), "nbf": float("inf"), "x_nan": float("nan")}
    diagnosis = doctor(helper, mint(other_key, claims), **local(issuer))
    report = json.loads(diagnosis.run.stdout, parse_constant=refuse)
    assert (report["claims"]["nbf"], report["claims"]["x_nan"]) == ("Infinity", "NaN")
