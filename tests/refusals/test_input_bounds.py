"""No input hangs or crashes the helper: every pattern is checked in linear time after the length, a
number too long to read is a query error, and a fuzzer over the query and every flag of every command
sees exit 2 and one line, each run within a second of CPU time (a wall clock would measure the load of
the machine, not the helper; a run that blocks instead is caught by the subprocess timeout)."""

from __future__ import annotations

import json
import re
import resource
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authress_gitlab_token.external import load_schema
from authress_gitlab_token.setup.resource_uri import resource_uri_valid
from tests.fixtures.helper import AUDIENCE, PROJECT, Helper, Run, query
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint

CPU_SECONDS = 1.0  # per run: a refusal costs about 0.2 s of CPU, most of it Python's start
WALL_SECONDS = 20.0  # per run, only against a run that blocks; the load of the machine is not ours
# Authress's Resource.resourceUri pattern as published (data/authress-openapi.yaml).
PUBLISHED_RESOURCE = re.compile(
    r"^([*]|[/]?((([a-zA-Z0-9-_.+=~|@]{1,128}|[*])(:([a-zA-Z0-9-_.+=~|@]{1,128}|[*]|))*)/?){0,15}([/][*]|[/]|))$"
)
SETUP_BASE = ["setup", "--plan", "--role=terraform", f"--project={PROJECT}", "--branch=main", f"--audience={AUDIENCE}"]
NO_TIMEOUT = {"AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT": "never"}  # any query that gets as far is refused there


def bounded(helper: Helper, args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> Run:
    """One run of the real CLI, which must refuse with exit 2 and one line within CPU_SECONDS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = helper.run(args, stdin, env, timeout=WALL_SECONDS)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    run.refused(code=2)
    assert used < CPU_SECONDS, f"{used:.2f} s of CPU for {args!r}"
    return run


@pytest.mark.parametrize(
    "resource_uri",
    [
        "/projects/terraform-state-bucket#1",
        "/" + "a:" * 200 + "#",
        "a" * 128 + "/" + "b*" * 150 + "!",
        "/x" * 16,
        "/" + "a" * 129 * 4 + "#",
    ],
    ids=["the report", "colons", "stars", "sixteen parts", "long runs"],
)
def test_a_resource_uri_near_miss_is_refused_at_once(helper: Helper, resource_uri: str) -> None:
    bounded(helper, [*SETUP_BASE, f"--resource={resource_uri}"]).refused("--resource is", code=2)


@pytest.mark.parametrize("uri", ["/x" * 13 + "/" + "a" * 129, "/x" * 14 + "/" + "a" * 129, "/x" * 14 + "/" + "a" * 128])
def test_a_name_longer_than_128_characters_counts_as_two_parts_as_authress_reads_it(uri: str) -> None:
    """Fifteen parts at most: a 129-character name is two of them, so after fourteen others it is one too many."""
    assert resource_uri_valid(uri) == (PUBLISHED_RESOURCE.match(uri) is not None)


@given(st.text("a*:/#", max_size=10))
def test_the_resource_check_takes_exactly_what_authress_publishes(uri: str) -> None:
    """Short strings only: on a near miss the published regex takes exponential time."""
    assert resource_uri_valid(uri) == (PUBLISHED_RESOURCE.match(uri) is not None and not uri.endswith("\n"))


@pytest.mark.parametrize(
    ("uri", "valid"),
    [
        ("a" * 128, True),
        ("a" * 129, True),
        ("/x" * 15, True),
        ("/x" * 15 + "/*", True),
        ("/x" * 16, False),
        ("/" + "a" * 511, True),
        ("/" + "a" * 512, False),
        ("*", True),
        ("/documents/*", True),
        ("a//b", False),
    ],
)
def test_the_resource_check_counts_parts_and_length_as_authress_does(uri: str, valid: bool) -> None:
    assert resource_uri_valid(uri) is valid
    if len(uri) <= 512:
        assert (PUBLISHED_RESOURCE.match(uri) is not None) is valid


@pytest.mark.parametrize(
    "raw",
    [
        '{"audience": "x", "leeway_seconds": ' + "9" * 4301 + "}",
        '{"audience": ' + "-" + "1" * 5000 + "}",
        '[{"audience": 1e999999}, ' + "7" * 100_00 + "]",
        json.dumps(
            {"audience": AUDIENCE, "project_path": PROJECT, "bound_claims": '{"project_id": ' + "2" * 5000 + "}"}
        ),
    ],
    ids=["leeway", "negative", "in an array", "inside bound_claims"],
)
def test_a_number_too_long_to_read_is_a_query_error(helper: Helper, raw: str) -> None:
    run = bounded(helper, ["external"], raw.encode())
    assert "internal error" not in run.stderr


def test_a_glob_with_many_stars_against_a_long_branch_name_answers_at_once(
    helper: Helper, issuer: LocalIssuer, signing_key: SigningKey
) -> None:
    """Whoever names the branch chooses the claim: a backtracking matcher took 80 s here (5 stars,
    255 characters); this one takes about 10 microseconds (bench/globs.py). The bound is the wait."""
    token = mint(signing_key, gitlab_claims(issuer.url, AUDIENCE, ref="/" * 1000))
    started = time.monotonic()
    run = helper.external(query(issuer, ref="*/*/*/*/*/*/*/*/main"), token)
    run.refused('claim "ref" is "//////')
    assert time.monotonic() - started < 20


# --- the fuzzer --------------------------------------------------------------------------------------

HUGE = "\x00HUGE\x00"  # put into the JSON text as a number of 4,301 to 6,000 digits
hostile_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=120),
    st.text("/*:?a#-._@ \n", min_size=1, max_size=700),
    st.builds(
        lambda unit, n, end: unit * n + end,
        st.sampled_from(["*/", "a", "/x", "a:", "9", "?", "*a"]),
        st.integers(1, 700),
        st.sampled_from(["#", "!", "\n", "", "/"]),
    ),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text | st.just(HUGE),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)
QUERY_KEYS = sorted(load_schema()["properties"])
FLAGS = [f"--{key.replace('_', '-')}" for key in QUERY_KEYS]
SETUP_FLAGS = [
    "--project",
    "--branch",
    "--tag",
    "--audience",
    "--issuer",
    "--role",
    "--resource",
    "--api-url",
    "--key-env",
]
fuzz = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def flags(names: list[str], values: dict[str, str]) -> list[str]:
    return [f"{name}={values[name]}" for name in names if name in values]


@fuzz
@given(st.dictionaries(st.sampled_from([*QUERY_KEYS, "token", "x"]), json_values, max_size=6), st.integers(4301, 6000))
def test_any_query_is_refused_with_one_line_in_bounded_time(helper: Helper, query: dict[str, Any], digits: int) -> None:
    raw = json.dumps(query).replace(json.dumps(HUGE), "9" * digits)
    run = bounded(helper, ["external"], raw.encode(), NO_TIMEOUT)
    assert "internal error" not in run.stderr


@fuzz
@given(st.sampled_from(["env", "doctor"]), st.dictionaries(st.sampled_from(FLAGS), hostile_text, min_size=1))
def test_any_flags_of_env_and_doctor_are_refused_with_one_line_in_bounded_time(
    helper: Helper, command: str, values: dict[str, str]
) -> None:
    # doctor reports a bad environment as a failed step: a leeway that is no number makes any flags a refusal
    given_flags = [*flags(FLAGS, values), "--leeway-seconds=soon"] if command == "doctor" else flags(FLAGS, values)
    if command == "env" and "--audience" not in values:
        given_flags.append(f"--audience={AUDIENCE}")
    run = bounded(helper, [command, *given_flags], env=NO_TIMEOUT)
    assert "internal error" not in run.stderr


@fuzz
@given(st.dictionaries(st.sampled_from(SETUP_FLAGS), hostile_text, min_size=1))
def test_any_flags_of_setup_are_refused_with_one_line_in_bounded_time(helper: Helper, values: dict[str, str]) -> None:
    """With --plan and no admin key, every setup refuses before any request, whatever its flags."""
    if "--tag" in values:
        values.pop("--branch", None)
    run = bounded(helper, ["setup", "--plan", *flags(SETUP_FLAGS, values)])
    assert "internal error" not in run.stderr
