# Manage Authress from a GitLab pipeline with the job's ID token: no stored secret.
# The module verifies the token (issuer, audience, project, branch) and hands it to the provider.

terraform {
  required_version = ">= 1.3"

  required_providers {
    authress = {
      source = "authress/authress"
      # A release whose provider block takes only `access_key`: it reads the API URL from the token's `aud`.
      version = ">= 2.0"
    }
  }

  # GitLab-managed Terraform state: configured by the TF_HTTP_* variables in .gitlab-ci.yml.
  backend "http" {}
}

variable "audience" {
  description = "Your Authress account's API URL, https://ACCOUNT_ID.api.authress.io: the job's id_tokens aud and the trusted identity's audience."
  type        = string
}

variable "issuer" {
  description = "Your GitLab's issuer. Null: $CI_SERVER_URL in a job, else https://gitlab.com."
  type        = string
  default     = null
}

variable "project_path" {
  description = "The one project whose pipelines may run this configuration."
  type        = string
  default     = "my-org/authress-configuration"
}

variable "ref" {
  description = "The branch whose jobs may run this configuration (the plan job for merge requests sets its own)."
  type        = string
  default     = "main"
}

variable "protected_only" {
  description = "Accept only tokens of jobs on protected branches."
  type        = bool
  default     = true
}

module "authress_token" {
  # In your repository: source = "git::https://gitlab.com/YOUR_GROUP/authress-gitlab-token.git//terraform?ref=v0.2.0"
  source = "../../terraform"

  audience             = var.audience
  issuer               = var.issuer
  project_path         = var.project_path
  ref_type             = "branch" # else a tag named like the branch would match too
  ref                  = var.ref
  ref_protected        = var.protected_only ? "true" : null
  min_validity_seconds = 60
}

provider "authress" {
  access_key = module.authress_token.access_token
}

resource "authress_role" "documents_reader" {
  role_id     = "ro_documents_reader"
  name        = "Documents reader"
  description = "Managed by Terraform from GitLab CI"

  permissions = {
    "documents:read" = {
      allow = true
    }
  }
}

output "authress_user_id" {
  description = "The Authress user ID this pipeline acts as: the one your access record must name."
  value       = module.authress_token.user_id
}

output "token_expires_at" {
  value = module.authress_token.expires_at
}
