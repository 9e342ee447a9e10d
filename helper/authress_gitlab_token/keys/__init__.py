"""The issuer's signing keys: lookup (IssuerKeys, which owns the early fetch), the disk cache, the fetch
(discovery, then the JWKS), the policy for which keys may verify.

Empty on purpose: a cold run imports keys.lookup before jwt and cryptography, so nothing heavy may be
imported here."""
