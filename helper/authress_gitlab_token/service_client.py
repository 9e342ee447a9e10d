"""Authress service-client access keys: parse one, and mint the short-lived token it stands for.

Minting follows the published SDKs: authress-sdk.js `src/serviceClientTokenProvider.js` (header
`{alg: EdDSA, kid, typ: at+jwt}`, claims aud/iss/sub/iat/exp, `scope: openid`) and authress-sdk.py
`authress/utils/service_client_token_provider.py` (`client_id` beside `sub`; the issuer origin is
`https://ACCOUNT.api.authress.io` unless a custom domain that is not an authress.io host is named).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import TokenMalformed, quoted

# CLIENT_ID.KEY_ID.ACCOUNT_ID.PRIVATE_KEY; the last part is standard base64 (no dots), the others ids.
_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9+/=]+$")
LIFETIME = 3600  # the SDKs mint for 24 h; a token that may land in Terraform state should not live that long
MAX_LIFETIME = 86400


@dataclass(frozen=True)
class AccessKey:
    """A parsed service-client access key; the private key never appears in a repr."""

    client_id: str
    key_id: str
    account_id: str
    private_key: Any = field(repr=False)  # cryptography's Ed25519PrivateKey


@dataclass(frozen=True)
class MintedToken:
    token: str = field(repr=False)
    claims: dict[str, Any]


def looks_like_access_key(value: str) -> bool:
    return _SHAPE.match(value) is not None


def parse(value: str, origin: str) -> AccessKey:
    """The key's parts, once its private key loads as PKCS#8 Ed25519; an error names what to fix."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    client_id, key_id, account_id, encoded = value.split(".")
    try:
        private_key = load_der_private_key(base64.b64decode(encoded, validate=True), password=None)
        wrong = "" if isinstance(private_key, Ed25519PrivateKey) else "private key is not Ed25519"
    except (binascii.Error, ValueError, TypeError):
        wrong = "private key part is not a base64 PKCS#8 key"
    if wrong:
        raise TokenMalformed(
            f"{origin} looks like an Authress service-client access key (client {quoted(client_id)}) but its {wrong}",
            "create a new access key for the service client in Authress and copy it whole",
        )
    return AccessKey(client_id, key_id, account_id, private_key)


def issuer_origin(account_id: str, api_url: str) -> str:
    """As the SDKs do: a named custom domain is the issuer's origin; an authress.io host never is."""
    host = urlsplit(api_url).hostname or ""
    if api_url and not (host == "authress.io" or host.endswith(".authress.io")):
        return api_url.rstrip("/")
    return f"https://{account_id}.api.authress.io"


def mint(key: AccessKey, api_url: str = "", lifetime: int = LIFETIME, now: float | None = None) -> MintedToken:
    """An EdDSA access token for the client, as authress-sdk.js and authress-sdk.py sign one."""
    import jwt

    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": f"{issuer_origin(key.account_id, api_url)}/v1/clients/{quote(key.client_id, safe='')}",
        "sub": key.client_id,
        "client_id": key.client_id,
        "aud": f"{key.account_id}.accounts.authress.io",
        "iat": issued,
        "exp": issued + min(max(lifetime, 60), MAX_LIFETIME),
        "scope": "openid",
    }
    token = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.key_id, "typ": "at+jwt"})
    return MintedToken(token, claims)
