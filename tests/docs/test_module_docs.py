"""The module's README tables name exactly the module's variables and outputs, and its variables
mirror the helper's query."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "terraform"
SCHEMA = ROOT / "helper" / "authress_gitlab_token" / "query.schema.json"


def declared(kind: str, file: str) -> set[str]:
    return set(re.findall(rf'^{kind} "([a-z_]+)"', (MODULE / file).read_text(encoding="utf-8"), re.M))


def table_names(heading: str) -> set[str]:
    readme = (MODULE / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}


def test_the_inputs_table_lists_every_variable() -> None:
    assert table_names("Inputs") == declared("variable", "variables.tf")


def test_the_outputs_table_lists_every_output() -> None:
    assert table_names("Outputs") == declared("output", "outputs.tf")


def test_the_variables_mirror_the_helpers_query() -> None:
    query_keys = set(json.loads(SCHEMA.read_text(encoding="utf-8"))["properties"])
    passed = set(re.findall(r"^    ([a-z_]+) += ", (MODULE / "main.tf").read_text(encoding="utf-8"), re.M))
    assert passed == query_keys
    assert declared("variable", "variables.tf") == passed | {"program"}
