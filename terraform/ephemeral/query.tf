# The query the helper reads on stdin, built from the variables. This file and variables.tf are the
# same in terraform/ and terraform/ephemeral/, so a user switches routes by changing `source`: edit
# both copies (tests/docs/test_module_docs.py compares them byte for byte). Copies, not symlinks: a
# module fetched as an archive (a registry, an https .tar.gz) gets a symlink as an empty file.
# Null inputs are left out so the helper applies its own defaults; every value is a string because
# the external protocol carries strings only.
locals {
  query = { for key, value in {
    audience             = var.audience
    issuer               = var.issuer
    token_env            = var.token_env
    subject              = var.subject
    project_path         = var.project_path
    namespace_path       = var.namespace_path
    ref                  = var.ref
    ref_type             = var.ref_type
    ref_protected        = var.ref_protected
    environment          = var.environment
    bound_claims         = var.bound_claims == null ? null : jsonencode(var.bound_claims)
    allow_any_project    = var.allow_any_project ? "true" : null
    leeway_seconds       = var.leeway_seconds == null ? null : tostring(var.leeway_seconds)
    min_validity_seconds = var.min_validity_seconds == null ? null : tostring(var.min_validity_seconds)
    check                = var.check
    api_url              = var.api_url
  } : key => value if value != null }
}
