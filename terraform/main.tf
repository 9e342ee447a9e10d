# The helper verifies the job's GitLab ID token and returns it as the Authress access token.
# Null inputs are left out of the query so the helper applies its own defaults; every value is a
# string because Terraform's external protocol carries strings only.
locals {
  query = {
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
  }
}

data "external" "token" {
  program = var.program
  query   = { for key, value in local.query : key => value if value != null }
}
