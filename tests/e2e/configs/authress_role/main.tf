# The end-to-end configuration for authress/authress 2.0.39 (the generation with `custom_domain`): the
# module verifies the job's token, the provider sends it as Bearer to the API URL and manages a role.
# The audience here is https://acc-1a2b3c.api.authress.test (reached through the tests' CONNECT
# proxy), which names no *.authress.io account, so `api_url` passes it on as a custom domain would be.

terraform {
  required_version = ">= 1.3"

  required_providers {
    authress = {
      source  = "authress/authress"
      version = "2.0.39"
    }
  }
}

variable "audience" {
  type = string
}

variable "issuer" {
  type = string
}

variable "permissions" {
  type = map(object({ allow = bool }))
  default = {
    "documents:read" = { allow = true }
  }
}

module "authress_token" {
  source = "../../../../terraform"

  audience      = var.audience
  issuer        = var.issuer
  api_url       = var.audience
  project_path  = "my-org/authress-configuration"
  ref           = "main"
  ref_protected = "true"
}

provider "authress" {
  custom_domain = module.authress_token.api_url
  access_key    = module.authress_token.access_token
}

resource "authress_role" "deployer" {
  role_id     = "ro_terraform-deployer"
  name        = "Terraform deployer"
  description = "Managed by Terraform from GitLab CI"
  permissions = var.permissions
}
