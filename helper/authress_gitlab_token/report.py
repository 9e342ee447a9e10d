"""`doctor`'s report: the steps and claims it found, shown for a terminal or as JSON. Values from the
token are the attacker's text until its signature passes: escaped, labelled, personal ones hidden."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from . import sources
from .errors import printable, quoted

PERSONAL_CLAIMS = ("user_email",)  # job logs are public on public projects
HIDDEN = "[hidden; --show-personal shows it]"
# "what is wrong; what to do": the first "; " outside the JSON-quoted values a message holds.
_WHAT_IS_WRONG = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^"])*?; ')
KINDS = {sources.GITLAB_ID_TOKEN: "a GitLab ID token", sources.SERVICE_CLIENT_KEY: "an Authress service-client key"}


@dataclass(frozen=True)
class Step:
    name: str
    status: str  # "pass" | "fail" | "warn" | "skip"
    detail: str


@dataclass(frozen=True)
class Report:
    origin: str
    kind: str
    claims: dict[str, Any]
    steps: tuple[Step, ...]
    now: float
    verified: bool = False  # the claims passed the signature check (or the key minted a token)

    @property
    def ok(self) -> bool:
        return not any(s.status == "fail" for s in self.steps)

    @property
    def fix(self) -> str:
        """What to do about the first failure, else the first warning: messages read "what is wrong; what
        to do", so all after the first "; " outside quoted values (the whole message when there is none)."""
        for status in ("fail", "warn"):
            step = next((s for s in self.steps if s.status == status), None)
            if step is not None:
                wrong = _WHAT_IS_WRONG.match(step.detail)
                return step.detail[wrong.end() :] if wrong else step.detail
        return "nothing: the token is ready for Terraform"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "credential": {"origin": self.origin, "kind": self.kind},
            "claims": self.claims,
            "claims_verified": self.verified,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "fix": self.fix,
        }

    def render(self) -> str:
        """For a terminal: every value from the token or the query escaped, so none can fake a line."""
        from .verify import TIME_CLAIMS, is_numeric_date, rfc3339

        kind = KINDS.get(self.kind, "nothing usable")
        lines = [f"Token:  {printable(self.origin or 'none')} holds {kind} (never shown)"]
        if self.claims:
            lines.append("Claims:" if self.verified else "Claims, NOT verified (do not trust them):")
            width = max(len(k) for k in self.claims)
            for name, value in self.claims.items():
                text = value if isinstance(value, str) else quoted(value, 200)
                if name in TIME_CLAIMS and is_numeric_date(value):
                    text = f"{rfc3339(value)} ({_relative(value - self.now)})"
                lines.append(f"  {printable(name.ljust(width))}  {printable(text)}")
        lines.append("Checks:")
        width = max(len(s.name) for s in self.steps)
        lines += [f"  [{s.status}] {printable(s.name.ljust(width))}  {printable(s.detail)}" for s in self.steps]
        lines.append(("OK: " if self.ok else "Fix: ") + printable(self.fix))
        return "\n".join(lines) + "\n"


def _relative(seconds: float) -> str:
    return f"in {int(seconds)} s" if seconds >= 0 else f"{int(-seconds)} s ago"


def without_personal(report: Report) -> Report:
    """The personal claims' values hidden wherever they appear, in the table and in the steps."""
    values = [v for k, v in report.claims.items() if k in PERSONAL_CLAIMS and isinstance(v, str) and v]
    if not values:
        return report

    def hide(text: str) -> str:
        for value in values:
            text = text.replace(value, HIDDEN).replace(json.dumps(value)[1:-1], HIDDEN)
        return text

    claims = {k: HIDDEN if k in PERSONAL_CLAIMS else v for k, v in report.claims.items()}
    steps = tuple(dataclasses.replace(s, detail=hide(s.detail)) for s in report.steps)
    return dataclasses.replace(report, claims=claims, steps=steps)
