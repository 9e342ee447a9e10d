"""What the admin API's answers must be before setup reads them: JSON Schemas of the fields setup reads,
from the OpenAPI description (Authress/authress-local `api/openapi.yaml`: IdentityCollection,
AccessRecord, AccessRecordCollection, Role; `nullable` as a type list), other fields allowed. admin_api checks every
answer it reads here, in one place, so an answer of another shape (a proxy or a login page answering
JSON) is one line naming what was wrong, never an AttributeError deep in the plan."""

from __future__ import annotations

from typing import Any

from ..errors import json_type, printable

_TEXT: dict[str, Any] = {"type": "string"}
_MAYBE_TEXT: dict[str, Any] = {"type": ["string", "null"]}


def _objects(key: str) -> dict[str, Any]:
    """A nullable list of `{key: string}` (User, or the description's group reference)."""
    item = {"type": "object", "required": [key], "properties": {key: _TEXT}}
    return {"type": ["array", "null"], "items": item}


_STATEMENT: dict[str, Any] = {
    "type": "object",
    "required": ["roles", "resources"],
    "properties": {
        "roles": {"type": "array", "items": _TEXT},
        "resources": {
            "type": "array",
            "items": {"type": "object", "required": ["resourceUri"], "properties": {"resourceUri": _TEXT}},
        },
        "users": _objects("userId"),
        "groups": _objects("groupId"),
    },
}
RECORD: dict[str, Any] = {
    "type": "object",
    "required": ["name", "statements"],
    "properties": {
        "recordId": _TEXT,
        "name": _TEXT,
        "description": _MAYBE_TEXT,
        "status": _TEXT,
        "users": _objects("userId"),
        "admins": _objects("userId"),
        "groups": _objects("groupId"),
        "statements": {"type": "array", "items": _STATEMENT},
        "tags": {"type": ["object", "null"], "additionalProperties": _TEXT},
    },
}
RECORDS: dict[str, Any] = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "records": {"type": "array", "items": RECORD},
        "pagination": {
            "type": ["object", "null"],
            "properties": {"next": {"type": ["object", "null"], "properties": {"cursor": _MAYBE_TEXT}}},
        },
    },
}
IDENTITIES: dict[str, Any] = {
    "type": "object",
    "required": ["identities"],
    "properties": {
        "identities": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["issuer", "audience"],
                "properties": {"issuer": _TEXT, "audience": _TEXT, "userIdExpression": _MAYBE_TEXT},
            },
        }
    },
}
ROLE: dict[str, Any] = {"type": "object"}  # only its presence is read

# A JSON type (errors.json_type) as a message names it.
_KINDS = {"object": "an object", "array": "a list", "string": "a string", "boolean": "true or false", "null": "null"}


def problem(body: Any, schema: dict[str, Any]) -> str | None:
    """What is wrong with `body` (`records[0].tags is a list, not an object`), or None when it fits.
    Names where and which kinds, never a value from the answer."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(body))
    if error is None:
        return None
    # A key is the answer's own text (a tag's name): escaped, so the message stays one line.
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{printable(p)}" for p in error.absolute_path).lstrip(".")
    where = where or "the body"
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = [_KINDS.get(w, "a number") for w in wanted]
        return f"{where} is {_KINDS.get(json_type(error.instance), 'a number')}, not {' or '.join(words)}"
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f'{where} has no "{missing}"'
    return f"{where} is not what the description allows ({error.validator})"
