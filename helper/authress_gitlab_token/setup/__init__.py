"""`setup`: what to enter in Authress and GitLab (guide, from the one text in steps), and with an admin
key, the account's side made so (account: --plan, --apply, --destroy, --list), planned field by field
(plan) through the admin API; resource_uri checks Authress's resource pattern."""
