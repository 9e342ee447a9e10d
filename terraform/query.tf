# The query both modules send the helper, built from the variables in one place: this module's
# data "external" and the ephemeral module (ephemeral/query.tf is a symlink to this file, as
# ephemeral/variables.tf is to variables.tf). Null inputs are left out so the helper applies its own
# defaults; every value is a string because the external protocol carries strings only.
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
