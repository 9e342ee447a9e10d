"""`doctor`'s report: the steps and claims it found, shown for a terminal or as JSON. Values from the
token are the attacker's text until its signature passes: escaped, labelled, personal ones hidden."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from .. import sources
from ..errors import printable, quoted

PERSONAL_CLAIMS = ("user_email",)  # job logs are public on public projects
HIDDEN = "[hidden; --show-personal shows it]"
KINDS = {sources.GITLAB_ID_TOKEN: "a GitLab ID token", sources.SERVICE_CLIENT_KEY: "an Authress service-client key"}


@dataclass(frozen=True)
class Step:
    name: str
    status: str  # "pass" | "fail" | "warn" | "skip"
    detail: str  # as the error prints it: "what is wrong; what to do"
    fix: str = ""  # what to do, "" when the message offers no remedy


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
    def first(self) -> Step | None:
        """The first failure, else the first warning: what the report ends with."""
        for status in ("fail", "warn"):
            step = next((s for s in self.steps if s.status == status), None)
            if step is not None:
                return step
        return None

    @property
    def fix(self) -> str:
        """What to do about the first failure or warning; "" when its message offers no remedy."""
        step = self.first
        return "nothing: the token is ready for Terraform" if step is None else step.fix

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "credential": {"origin": self.origin, "kind": self.kind},
            "claims": _json_safe(self.claims),
            "claims_verified": self.verified,
            "steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in self.steps],
            "fix": self.fix,
        }

    def render(self) -> str:
        """For a terminal: every value from the token or the query escaped, so none can fake a line."""
        from ..verify import TIME_CLAIMS, is_numeric_date, rfc3339

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
        step = self.first
        if step is not None and not step.fix:  # never a diagnosis dressed up as a fix
            lines.append("Why: " + printable(step.detail))
        else:
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
    steps = tuple(dataclasses.replace(s, detail=hide(s.detail), fix=hide(s.fix)) for s in report.steps)
    return dataclasses.replace(report, claims=claims, steps=steps)


def _json_safe(value: Any) -> Any:
    """`value` with each NaN or infinite number (a forged claim; Python's json reads them) as its
    name in a string, so that the report stays JSON for any reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
