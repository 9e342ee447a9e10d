# The end-to-end configuration for the newest authress/authress (only `access_key`: it reads the API URL
# from the token's `aud`). It cannot be built here (the Go module proxy refuses its module); its test
# skips saying so, and tests/e2e/configs/authress_call emulates its first call with data "http".

terraform {
  required_version = ">= 1.3"

  required_providers {
    authress = {
      source  = "authress/authress"
      version = "> 2.0.39"
    }
  }
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
  ref           = "main"
  ref_protected = "true"
}

provider "authress" {
  access_key = module.authress_token.access_token
}

resource "authress_role" "deployer" {
  role_id     = "ro_terraform-deployer"
  name        = "Terraform deployer"
  description = "Managed by Terraform from GitLab CI"
  permissions = {
    "documents:read" = { allow = true }
  }
}
