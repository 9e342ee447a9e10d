"""The verifier one writes first, as the benchmark's yardstick: the same checks as the helper, but every
library imported up front and the issuer's keys fetched on every run (httpx for discovery, PyJWT's
PyJWKClient for the JWKS). Not part of the product."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import jsonschema
import jwt

SCHEMA = Path(__file__).resolve().parents[1] / "helper" / "authress_gitlab_token" / "query.schema.json"


def main() -> int:
    query = json.load(sys.stdin)
    jsonschema.validate(query, json.loads(SCHEMA.read_text(encoding="utf-8")))
    issuer = query["issuer"]
    discovery = httpx.get(issuer + "/.well-known/openid-configuration", timeout=5).json()
    if discovery["issuer"] != issuer:
        raise SystemExit("discovery names another issuer")
    token = os.environ["AUTHRESS_KEY"]
    key = jwt.PyJWKClient(discovery["jwks_uri"], timeout=5).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=query["audience"],
        issuer=issuer,
        leeway=60,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    for name in ("project_path", "ref"):
        if name in query and claims.get(name) != query[name]:
            raise SystemExit(f"claim {name} does not match")
    json.dump({"access_token": token, "user_id": claims["sub"]}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
