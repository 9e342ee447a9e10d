"""One exception type per thing a user must fix; each message says what is wrong and what to do."""

from __future__ import annotations

import json


def quoted(value: object, limit: int = 120) -> str:
    """A value as it may appear in a message: JSON-quoted, control characters escaped, cut short."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def printable(text: str) -> str:
    """`text` with every control, format, separator or unassigned character JSON-escaped: a value from a
    token shown on a terminal cannot start a line, move the cursor or reorder what follows it."""
    import unicodedata  # only doctor shows claims; the warm `external` run skips this import

    return "".join(json.dumps(c)[1:-1] if c != " " and unicodedata.category(c)[0] in "CZ" else c for c in text)


class HelperError(Exception):
    """A failure the user can fix; `exit_code` is what the process returns."""

    exit_code = 1


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
            pieces.update(part for part in secret.split(".") if len(part) >= 16)
    pieces |= {json.dumps(piece)[1:-1] for piece in pieces}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "[redacted]")
    return text
