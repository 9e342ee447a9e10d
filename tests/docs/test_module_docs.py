"""The module's README tables name exactly the module's variables and outputs, its variables mirror the
helper's query, and the ephemeral module shares the variables and the query and declares the same
outputs, each ephemeral."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "terraform"
EPHEMERAL = MODULE / "ephemeral"
SCHEMA = ROOT / "helper" / "authress_gitlab_token" / "query.schema.json"


def declared(kind: str, file: str, module: Path = MODULE) -> set[str]:
    return set(re.findall(rf'^{kind} "([a-z_]+)"', (module / file).read_text(encoding="utf-8"), re.M))


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
    passed = set(re.findall(r"^    ([a-z_]+) += ", (MODULE / "query.tf").read_text(encoding="utf-8"), re.M))
    assert passed == query_keys
    assert declared("variable", "variables.tf") == passed | {"program"}


def test_the_ephemeral_module_has_the_same_variables_and_query() -> None:
    """A user switches routes by changing `source`. Copies, not symlinks: an archive-fetched module
    (registry, https .tar.gz) gets a symlink as an empty file (tests/e2e/test_ephemeral.py shows it)."""
    for name in ("variables.tf", "query.tf"):
        copy = EPHEMERAL / name
        assert not copy.is_symlink(), f"{copy}: a symlink arrives empty in an archive-fetched module"
        assert copy.read_bytes() == (MODULE / name).read_bytes(), f"edit both copies: cp terraform/{name} {copy}"


def test_the_ephemeral_module_declares_the_same_outputs_each_ephemeral() -> None:
    assert declared("output", "outputs.tf", EPHEMERAL) == declared("output", "outputs.tf")
    blocks = (EPHEMERAL / "outputs.tf").read_text(encoding="utf-8").split('\noutput "')[1:]
    assert blocks and all("\n  ephemeral   = true\n" in block for block in blocks)
    sensitive = {block.split('"', 1)[0] for block in blocks if "sensitive   = true" in block}
    assert sensitive == {"access_token"}


def test_the_ephemeral_module_runs_the_helper_with_the_query_on_stdin() -> None:
    main = (EPHEMERAL / "main.tf").read_text(encoding="utf-8")
    assert re.findall(r'^ephemeral "([a-z_]+)"', main, re.M) == ["local_command"]
    assert "stdin = jsonencode(local.query)" in main
    assert not re.search(r'^(data|resource) "', main, re.M), "the ephemeral module stores nothing"
