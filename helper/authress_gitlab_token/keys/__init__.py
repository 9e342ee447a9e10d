"""The issuer's signing keys: lookup (the cache, then discovery and the JWKS), cache, policy. Empty on
purpose: a cold run imports keys.lookup before jwt, so nothing heavy may be imported here."""
