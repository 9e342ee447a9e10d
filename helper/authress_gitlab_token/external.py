"""Terraform's external protocol: one JSON object of strings in on stdin, one out on stdout."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import IO, Any, TypeGuard

from .errors import QueryError, json_type, quoted

MAX_QUERY_BYTES = 64 * 1024
SCHEMA_PATH = Path(__file__).with_name("query.schema.json")
USAGE = 'run it from Terraform\'s data "external", or pipe a JSON object of strings to it'
# An ephemeral "local_command" without `stdin` runs the helper with an empty standard input.
NO_QUERY = (
    "no query on stdin; set stdin = jsonencode({...}) (the query, a JSON object of strings) in the ephemeral "
    '"local_command" that runs it, or run it from Terraform\'s data "external"'
)


@cache
def load_schema() -> dict[str, Any]:
    """The query schema, read once a run (callers copy it before changing it)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def read_raw(stream: IO[bytes]) -> bytes:
    """The query's bytes, within MAX_QUERY_BYTES."""
    raw = stream.read(MAX_QUERY_BYTES + 1)
    if len(raw) > MAX_QUERY_BYTES:
        raise QueryError(f"the query on stdin is larger than {MAX_QUERY_BYTES} bytes; {USAGE}")
    return raw


def parse_query(raw: bytes) -> dict[str, str]:
    """The validated query; every refusal names the key and the fix."""
    if not raw.strip():
        raise QueryError(NO_QUERY)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise QueryError(f"the query on stdin is not JSON ({exc.msg} at byte {exc.pos}); {USAGE}") from None
    except UnicodeDecodeError:
        raise QueryError(f"the query on stdin is not UTF-8 text; {USAGE}") from None
    except RecursionError:
        raise QueryError(f"the query on stdin is nested too deeply; {USAGE}") from None
    except ValueError:  # Python refuses to read an integer of more than 4,300 digits
        raise QueryError(f"the query on stdin holds a number too long to read; {USAGE}") from None
    if not isinstance(value, dict):
        raise QueryError(f"the query on stdin is a JSON {json_type(value)}, expected an object; {USAGE}")
    check_query(value, load_schema())
    return value


def check_query(value: Any, schema: dict[str, Any], what: str = "query key") -> None:
    """The standard library judges the query; jsonschema is imported only to word a refusal (or to judge
    a keyword the plain judge does not know), so an accepted query never loads it."""
    if not plainly_valid(value, schema):
        validate(value, schema, what)


_PLAIN_KEYWORDS = {"type", "minLength", "maxLength", "enum", "pattern", "description", "$ref"}


def plainly_valid(query: Any, schema: dict[str, Any]) -> TypeGuard[dict[str, str]]:
    """Whether `query` passes the schema, judged with the standard library for the keywords the query
    schema uses (any other keyword: False, and jsonschema judges)."""
    import re

    properties = schema["properties"]
    if not isinstance(query, dict) or any(k not in query for k in schema.get("required", [])):
        return False
    for key, value in query.items():
        rule = properties.get(key)
        if rule is None or not isinstance(value, str):
            return False
        if "$ref" in rule:
            rule = schema["$defs"][rule["$ref"].removeprefix("#/$defs/")]
        if not set(rule) <= _PLAIN_KEYWORDS or rule.get("type", "string") != "string":
            return False
        if not rule.get("minLength", 0) <= len(value) <= rule.get("maxLength", len(value)):
            return False
        if value not in rule.get("enum", [value]) or not re.search(rule.get("pattern", ""), value):
            return False
    return True


def validate(value: Any, schema: dict[str, Any], what: str = "query key") -> None:
    """Validate with jsonschema and turn the first error into a message that names the key."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return
    raise QueryError(describe(errors[0], schema, what))


def describe(error: Any, schema: dict[str, Any], what: str) -> str:
    properties = schema.get("properties", {})
    path = list(error.absolute_path)
    where = f"{what} {quoted(path[0])}" if path else "the query"
    desc = properties.get(path[0], {}).get("description", "") if path else ""
    kind = error.validator
    if kind == "additionalProperties" and not path:
        extra = sorted(set(error.instance) - set(properties))
        return f"unknown {what} {quoted(extra[0])}; known keys: {', '.join(sorted(properties))}"
    if kind == "required":
        missing = [k for k in schema.get("required", []) if k not in error.instance]
        return f"{what} {quoted(missing[0])} is required; set it in the data source's query"
    if kind == "type":
        return f"{where} must be a string, got a JSON {json_type(error.instance)}; Terraform sends strings only"
    if kind == "minLength" and error.instance:
        return f"{where} is {quoted(error.instance)}, shorter than {error.validator_value} characters"
    if kind == "minLength":
        if desc.startswith("Required."):  # no default to fall back to
            return f"{where} is empty; set it to a value (it has no default)"
        return f"{where} is empty; leave it out (null in Terraform) to use the default"
    if kind == "maxLength":
        return f"{where} is longer than {error.validator_value} characters; no GitLab claim is that long"
    if kind == "enum":
        return f"{where} is {quoted(error.instance)}, expected one of {', '.join(map(quoted, error.validator_value))}"
    if kind == "pattern":
        expected = desc.split(". ")[0].split("; ")[0].rstrip(".")  # its first clause: the line stays short
        return f"{where} is {quoted(error.instance, 80)}, which is not allowed; expected: {expected}"
    return f"{where} is not allowed: {error.message[:200]}"


def write_result(result: dict[str, str], stream: IO[str]) -> None:
    """One compact JSON object of strings, nothing else: Terraform parses stdout as map[string]string."""
    if not all(isinstance(v, str) for v in result.values()):
        raise TypeError("external results must all be strings")
    stream.write(json.dumps(result, separators=(",", ":"), sort_keys=True))
    stream.write("\n")
    stream.flush()
