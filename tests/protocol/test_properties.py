"""Property-based tests: any query either becomes Settings or is refused naming a key, and claim
globs match exactly what a plain reference matcher says. In process, for speed; the subprocess path
over the same functions is covered by the attack suite."""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authress_gitlab_token.errors import QueryError, printable, quoted
from authress_gitlab_token.external import load_schema, parse_query, plainly_valid, validate
from authress_gitlab_token.settings import MAX_LEEWAY, Settings, from_query
from authress_gitlab_token.verify import glob_match

KNOWN_KEYS = sorted(load_schema()["properties"])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Strings shaped like real values, and the edges each key's checks must hold against.
edge_strings = st.sampled_from(
    [
        "https://gitlab.com",
        "https://gitlab.com/",
        "http://gitlab.com",
        "https://[",
        "https://h:99999",
        "https://h:x",
        "https://u@h",
        "60",
        "301",
        "60\n",
        "99999",
        "AUTHRESS_KEY",
        "{}",
        "[]",
        '{"ref": "main"}',
        '{"ref": ["a", "b*"]}',
        '{"ref": []}',
        '{"": "x"}',
        "[" * 5000,
        "",
    ]
)
any_string = st.text(max_size=20) | edge_strings
bound_claims = any_string | st.builds(json.dumps, st.dictionaries(st.text(max_size=5), json_values, max_size=3))
# Values each key's schema accepts, so that the checks after the schema are reached as well.
schema_valid = st.fixed_dictionaries(
    {"audience": st.text(min_size=1, max_size=10)},
    optional={
        "issuer": (edge_strings | st.builds(lambda rest: "https://" + rest, st.text(max_size=20))).filter(bool),
        "token_env": st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
        "leeway_seconds": st.from_regex(r"[0-9]{1,3}", fullmatch=True),
        "min_validity_seconds": st.from_regex(r"[0-9]{1,5}", fullmatch=True),
        "bound_claims": bound_claims.filter(lambda v: len(v) >= 2),
        "allow_any_project": st.sampled_from(["true", "false"]),
        **{key: any_string.filter(bool) for key in ("subject", "project_path", "ref", "environment")},
    },
)
queries = st.one_of(
    st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), any_string | json_values, max_size=6),
    schema_valid,
)


def outcome(query: dict[str, Any]) -> Settings | QueryError:
    try:
        return from_query(parse_query(json.dumps(query).encode()), {})
    except QueryError as exc:
        return exc


@pytest.mark.slow
@settings(max_examples=400, deadline=2000)
@given(queries)
def test_any_json_object_becomes_settings_or_a_refusal_naming_a_key(query: dict[str, Any]) -> None:
    result = outcome(query)
    if isinstance(result, QueryError):
        message = str(result)
        assert "\n" not in message
        named = [*query, "audience", "allow_any_project"]  # an unbound query is told to bind or allow any project
        assert any(quoted(key) in message for key in named) or "bound_claims" in message, message
    else:
        assert result.audience == query["audience"]
        assert result.issuer.startswith("https://") and result.issuer == query.get("issuer", "https://gitlab.com")
        assert 0 <= result.leeway_seconds <= MAX_LEEWAY
        assert all(bound.globs and all(bound.globs) for bound in result.bound_claims)


@pytest.mark.slow
@settings(max_examples=400, deadline=2000)
@given(queries)
def test_the_early_fetchs_schema_check_agrees_with_jsonschema(query: dict[str, Any]) -> None:
    """The standard library decides every query: it accepts exactly what jsonschema accepts."""
    try:
        validate(query, load_schema())
        valid = True
    except QueryError:
        valid = False
    assert plainly_valid(query, load_schema()) == valid


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=300))
def test_any_bytes_on_stdin_are_a_query_or_a_query_error(raw: bytes) -> None:
    try:
        parse_query(raw)
    except QueryError as exc:
        assert "\n" not in str(exc)


# --- claim globs -------------------------------------------------------------------------------------


def reference_match(glob: str, value: str) -> bool:
    """The documented rule, written plainly: `*` any run, `?` one character, anything else itself."""

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(glob):
            return j == len(value)
        if glob[i] == "*":
            return match(i + 1, j) or (j < len(value) and match(i, j + 1))
        return j < len(value) and glob[i] in ("?", value[j]) and match(i + 1, j + 1)

    return match(0, 0)


def regex_match(glob: str, value: str) -> bool:
    """The matcher before the linear one (a backtracking regex): the semantics the new one must keep."""
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.fullmatch(pattern, value, re.DOTALL) is not None


# Regex and fnmatch metacharacters, separators GitLab claims use, and a newline.
ALPHABET = "ab*?.[]!^$()+{}|\\/:-\n"
globs = st.text(alphabet=ALPHABET, max_size=12) | st.text(max_size=8)
values = st.text(alphabet=ALPHABET.replace("*", "").replace("?", "") + "*?", max_size=14) | st.text(max_size=8)


@st.composite
def glob_and_a_value_it_names(draw: st.DrawFn) -> tuple[str, str]:
    """A glob and a value built from it: each `*` replaced by any run, each `?` by any character."""
    glob = draw(globs)
    value = "".join(
        draw(st.text(alphabet=ALPHABET, max_size=4)) if c == "*" else draw(st.characters()) if c == "?" else c
        for c in glob
    )
    return glob, value


@settings(max_examples=500, deadline=1000)
@given(globs, values)
def test_glob_matches_exactly_what_the_reference_matcher_says(glob: str, value: str) -> None:
    assert glob_match(glob, value) is reference_match(glob, value)


@pytest.mark.slow
@settings(max_examples=1000, deadline=1000)
@given(st.text(alphabet="ab*?", max_size=10), st.text(alphabet="ab", max_size=16))
def test_glob_over_a_small_alphabet_matches_as_the_reference_and_the_old_regex_say(glob: str, value: str) -> None:
    """Two letters make matches and near misses common, where taking a part's leftmost place could go wrong."""
    assert glob_match(glob, value) is reference_match(glob, value) is regex_match(glob, value)


@settings(max_examples=300, deadline=1000)
@given(glob_and_a_value_it_names())
def test_glob_matches_every_value_it_describes(pair: tuple[str, str]) -> None:
    glob, value = pair
    assert glob_match(glob, value)


@settings(max_examples=300, deadline=1000)
@given(st.text(max_size=12).filter(lambda g: "*" not in g and "?" not in g), st.text(max_size=12))
def test_glob_without_wildcards_matches_only_itself(glob: str, value: str) -> None:
    assert glob_match(glob, value) is (value == glob)
    assert glob_match(glob, glob)


PATTERNS = {key: prop["pattern"] for key, prop in load_schema()["properties"].items() if "pattern" in prop}


@settings(max_examples=200, deadline=1000)
@given(st.sampled_from(sorted(PATTERNS)).flatmap(lambda key: st.tuples(st.just(key), st.from_regex(PATTERNS[key]))))
def test_no_schema_pattern_takes_a_value_with_a_trailing_newline(key_and_value: tuple[str, str]) -> None:
    """JSON Schema patterns are searched, and Python's `$` also matches before a final newline."""
    key, value = key_and_value
    assert re.search(PATTERNS[key], value + "\n") is None, (key, value)


@settings(max_examples=500, deadline=1000)
@given(st.text())
def test_printable_leaves_no_character_that_could_drive_a_terminal(text: str) -> None:
    """doctor shows the token's claims with it: no control, format, separator or unassigned character."""
    shown = printable(text)
    assert all(c == " " or unicodedata.category(c)[0] not in "CZ" for c in shown)
    assert printable(shown) == shown  # what it prints is printable as it is
