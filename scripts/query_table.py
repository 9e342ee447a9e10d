"""Print the query table of docs/query.md from query.schema.json, the one source of truth for the query."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "helper" / "authress_gitlab_token" / "query.schema.json"


def table() -> str:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    rows = ["| key | meaning |", "|---|---|"]
    rows += [f"| `{key}` | {prop['description']} |" for key, prop in schema["properties"].items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
