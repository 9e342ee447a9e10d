# Manage Authress with OpenTofu from GitLab's OpenTofu CI/CD component. OpenTofu runs the helper itself
# through the module's ephemeral resource (the ephemeral route): the plan job verifies its own ID token
# to plan, the apply job verifies its own to apply the saved plan, and the token is in neither the
# state nor the saved plan.

terraform {
  # 1.11: ephemeral resources in OpenTofu (Terraform: 1.10).
  required_version = ">= 1.11"

  required_providers {
    authress = {
      source = "authress/authress"
      # The generation whose provider block takes `custom_domain` (required) and `access_key`.
      version = "2.0.39"
    }
  }

  # GitLab-managed state: the OpenTofu component configures it (state_name input).
  backend "http" {}
}

variable "authress_api_url" {
  description = "Your Authress account's API URL, https://ACCOUNT_ID.api.authress.io: the audience of the job's ID token."
  type        = string
}

variable "project_path" {
  description = "The one project whose pipelines may run this configuration, GROUP/PROJECT."
  type        = string
}

variable "ref" {
  description = "The protected branch whose jobs may run this configuration: the default branch."
  type        = string
}

module "authress_token" {
  # The tag pins the module to the same release as the helper the job installs (self-managed GitLab:
  # your mirror's clone URL, README "Five steps").
  source = "git::https://gitlab.com/authress-gitlab-token/authress-gitlab-token.git//terraform/ephemeral?ref=0.3.0"

  audience      = var.authress_api_url
  token_env     = "AUTHRESS_ID_TOKEN" # the job's id_tokens name; the provider never reads it itself
  project_path  = var.project_path
  ref_type      = "branch"
  ref           = var.ref
  ref_protected = "true"
  check         = "authress" # at plan: one call to Authress names a missing setup step
}

provider "authress" {
  custom_domain = module.authress_token.api_url
  access_key    = module.authress_token.access_token
}

resource "authress_role" "documents_reader" {
  role_id     = "ro_documents_reader"
  name        = "Documents reader"
  description = "Managed by OpenTofu from GitLab CI"

  permissions = {
    "documents:read" = {
      allow = true
    }
  }
}
