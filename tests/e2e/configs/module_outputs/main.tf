# The end-to-end configuration for the module alone: what it hands to Terraform.

terraform {
  required_version = ">= 1.3"
}

variable "audience" {
  type = string
}

variable "issuer" {
  type = string
}

module "authress_token" {
  source = "../../../../terraform"

  audience      = var.audience
  issuer        = var.issuer
  project_path  = "my-org/authress-configuration"
  ref_type      = "branch"
  ref           = "main"
  ref_protected = "true"
}

output "access_token" {
  value     = module.authress_token.access_token
  sensitive = true
}

output "claims" {
  value = {
    user_id        = module.authress_token.user_id
    account_id     = module.authress_token.account_id
    api_url        = module.authress_token.api_url
    expires_at     = module.authress_token.expires_at
    project_path   = module.authress_token.project_path
    project_id     = module.authress_token.project_id
    namespace_path = module.authress_token.namespace_path
    ref            = module.authress_token.ref
    ref_type       = module.authress_token.ref_type
    ref_protected  = module.authress_token.ref_protected
    environment    = module.authress_token.environment
    pipeline_id    = module.authress_token.pipeline_id
    job_id         = module.authress_token.job_id
  }
}
