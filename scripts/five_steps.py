"""The five steps as the README and the examples' READMEs hold them: `setup`'s own text, rendered with
the documented placeholders. `--write` puts it between the markers of each of those files."""

from __future__ import annotations

import sys
from pathlib import Path

from authress_gitlab_token.setup import guide as setup_guide

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted(ROOT.glob("examples/*/README.md"))]
START, END = "<!-- five-steps:start -->\n", "<!-- five-steps:end -->"
# The placeholders every document names: the account, the project, its default branch; gitlab.com.
PLACEHOLDERS = {"audience": "https://ACCOUNT_ID.api.authress.io", "project": "GROUP/PROJECT", "branch": "main"}


def steps() -> str:
    guide = setup_guide.build_all(
        [PLACEHOLDERS["project"]], [PLACEHOLDERS["branch"]], [], PLACEHOLDERS["audience"], None
    )[0]
    return guide.render()


def section(text: str) -> str | None:
    """What a document holds between the markers, or None without them."""
    if START not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0]


def write() -> None:
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        old = section(text)
        if old is not None:
            path.write_text(text.replace(START + old + END, START + steps() + END), encoding="utf-8")


if __name__ == "__main__":
    write() if sys.argv[1:] == ["--write"] else sys.stdout.write(steps())
