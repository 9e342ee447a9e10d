"""What Authress needs beside the token: the account ID and API URL its audience names."""

from __future__ import annotations

import re

# https://ACCOUNT.api.authress.io or https://ACCOUNT.api-REGION.authress.io (a trailing slash tolerated).
_ACCOUNT_API = re.compile(r"^https://(?P<account>[a-z0-9][a-z0-9-]*)\.(?P<api>api(?:-[a-z0-9-]+)?)\.authress\.io/?$")


def account_from_audience(audience: str) -> tuple[str, str]:
    """(account_id, api_url) for an Authress account API audience; ("", "") for anything else."""
    match = _ACCOUNT_API.match(audience)
    if match is None:
        return "", ""
    account = match["account"]
    return account, f"https://{account}.{match['api']}.authress.io"
