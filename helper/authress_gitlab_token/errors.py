"""One exception type per thing a user must fix; each message says what is wrong and what to do."""

from __future__ import annotations

import json
import re

# The user info of any URL (`https://user:password@host`): a credential, never echoed. Starts at the
# literal "://" and stops at the first "/", so the search is linear in the text's length.
_USER_INFO = re.compile(r'://[^/?#@\s"]*@')


def quoted(value: object, limit: int = 120) -> str:
    """A value as it may appear in a message: JSON-quoted, control characters escaped, URL user info
    hidden, then cut short (cutting first could leave half a password)."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    if "@" in text:
        text = _USER_INFO.sub("://[redacted]@", text)
    return text if len(text) <= limit else text[: limit - 4] + '..."'


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')  # a JSON-quoted value in a message
KEEP_QUOTED = 80  # a value cut to fit is kept this long: a user ID to copy stays whole


def fit(text: str, limit: int) -> str:
    """`text` within `limit` characters, for a line a person reads in a CI log: the longest quoted
    values cut first (to no less than KEEP_QUOTED), then, as a last resort, the middle."""
    while len(text) > limit:
        longest = max(_QUOTED.finditer(text), key=lambda m: len(m[0]), default=None)
        if longest is None or len(longest[0]) <= KEEP_QUOTED:
            break
        keep = max(KEEP_QUOTED, len(longest[0]) - (len(text) - limit))
        text = text[: longest.start()] + longest[0][: keep - 4] + '..."' + text[longest.end() :]
    if len(text) > limit:
        head = (limit - 5) // 2
        text = text[:head] + " ... " + text[len(text) - (limit - 5 - head) :]
    return text


def json_type(value: object) -> str:
    """The JSON type of a parsed value ("object", "array", ...), for a message about it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def printable(text: str) -> str:
    """`text` with every control, format, separator or unassigned character JSON-escaped: a value from a
    token shown on a terminal cannot start a line, move the cursor or reorder what follows it."""
    import unicodedata  # only doctor shows claims; the warm `external` run skips this import

    return "".join(json.dumps(c)[1:-1] if c != " " and unicodedata.category(c)[0] in "CZ" else c for c in text)


class HelperError(Exception):
    """A failure the user can fix: `problem` says what is wrong, `fix` what to do ("" when the message
    has no remedy to offer); the one line printed is "problem; fix". `exit_code` is what the process returns."""

    exit_code = 1

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class QueryError(HelperError):
    """The query (or the configuration it names) is refused before any token is looked at."""

    exit_code = 2


class TokenNotFound(HelperError):
    """No credential where the settings say it should be."""


class TokenMalformed(HelperError):
    """The credential is not a well-formed JWT or service-client key."""


class VerificationFailed(HelperError):
    """The token is a JWT but fails a check: header, signature, registered or bound claims."""


class KeyFetchFailed(HelperError):
    """The issuer's discovery document or keys could not be fetched or are unusable."""


class AuthressCheckFailed(HelperError):
    """Authress refused the token, or could not be asked."""


class CertificatesMissing(HelperError):
    """SSL_CERT_FILE names no readable file: no HTTPS request could verify anything."""


class ProxyUnusable(HelperError):
    """A proxy variable (HTTPS_PROXY, ALL_PROXY, HTTP_PROXY) holds a value no request could go through."""


def redact(text: str, secrets: list[str]) -> str:
    """Remove each secret, and each long dot-separated part of one, from `text` (defence in depth); also
    as `quoted` and `printable` show them, escaped (a token with a stray tab in it, say)."""
    pieces: set[str] = set()
    for secret in secrets:
        if secret:
            pieces.add(secret)
            # A service-client key is CLIENT.KEY.ACCOUNT.PRIVATE: the IDs name things a message exists to
            # show (an account in an audience), and only the private part is secret on its own.
            parts = secret.split(".")
            pieces.update(part for part in (parts[-1:] if len(parts) == 4 else parts) if len(part) >= 16)
    pieces |= {json.dumps(piece)[1:-1] for piece in pieces}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "[redacted]")
    return text
