"""The README documents what the code does."""

from __future__ import annotations

from pathlib import Path

from scripts.query_table import table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_query_table_is_generated_from_the_schema() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- query-table:start -->\n", 1)[1].split("\n<!-- query-table:end -->", 1)[0]
    assert section == table(), "README query table is stale: run `python scripts/query_table.py`"
