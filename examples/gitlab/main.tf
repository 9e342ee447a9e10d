# Manage Authress from a GitLab pipeline with the job's ID token: no stored secret.
# The module runs the helper, which verifies the token (issuer, audience, project, branch), and hands
# it to the provider as an ephemeral value: it is in neither the state nor a saved plan.

terraform {
  # 1.10: ephemeral resources (OpenTofu: 1.11). Older versions: the module's //terraform, whose
  # data "external" keeps the token in the state (docs/routes.md).
  required_version = ">= 1.10"

  required_providers {
    authress = {
      source = "authress/authress"
      # The generation whose provider block takes `custom_domain` (required) and `access_key`, tested
      # end to end by this project. The newest releases ("> 2.0.39") take only `access_key` and read
      # the API URL from the token's `aud`: see the README's table of provider generations.
      version = "2.0.39"
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
  description = "The one project whose pipelines may run this configuration, GROUP/PROJECT. The job sets it from the component's project_path input (TF_VAR_project_path)."
  type        = string
}

variable "ref" {
  description = "The branch whose jobs may run this configuration. The job sets it from the component's ref input (the plan job for merge requests sets its own)."
  type        = string
}

variable "ref_type" {
  description = "Whether ref names a branch or a tag. The job sets it from the component's ref_type input."
  type        = string
}

variable "protected_only" {
  description = "Accept only tokens of jobs on protected branches."
  type        = bool
  default     = true
}

module "authress_token" {
  # The tag pins the module to the same release as the helper the job installs (self-managed GitLab:
  # your mirror's clone URL, README "Five steps").
  source = "git::https://gitlab.com/authress-gitlab-token/authress-gitlab-token.git//terraform/ephemeral?ref=0.3.0"

  audience             = var.audience
  issuer               = var.issuer
  token_env            = "AUTHRESS_ID_TOKEN" # the component's id_tokens name
  project_path         = var.project_path
  ref                  = var.ref
  ref_type             = var.ref_type # else a tag named like the branch would match too
  ref_protected        = var.protected_only ? "true" : null
  min_validity_seconds = 60
}

provider "authress" {
  custom_domain = module.authress_token.api_url
  access_key    = module.authress_token.access_token
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

# The module's outputs are ephemeral, so no root output shows them: `authress-gitlab-token doctor` in the
# job prints the user ID (`user_id`) your access record must name.
