# What `make demo` applies (scripts/demo.py copies it as main.tf beside a copy of terraform/): the module
# verifies the job's GitLab ID token, and authress/authress 2.0.39 creates a role with it as the Bearer.
# The audience, https://acc-demo.api.authress.test, reaches the local Authress stand-in through the
# demo's CONNECT proxy (.test never resolves anywhere); it names no *.authress.io account, so `api_url`
# passes it on as a custom domain would be.
#
# The route is the module's source, one line: "./terraform" (data "external", hashicorp/external; the
# token lands in the state) or "./terraform/ephemeral" (ephemeral "local_command", hashicorp/local,
# Terraform >= 1.10; the token never does). scripts/demo.py reads it from this line.

terraform {
  required_version = ">= 1.10"

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

module "authress_token" {
  source = "./terraform/ephemeral"

  audience     = var.audience
  issuer       = var.issuer
  api_url      = var.audience
  project_path = "my-org/authress-configuration"
  ref_type     = "branch" # else a tag named "main" would match too
  ref          = "main"
}

provider "authress" {
  custom_domain = module.authress_token.api_url
  access_key    = module.authress_token.access_token
}

resource "authress_role" "deployer" {
  role_id     = "ro_terraform-deployer"
  name        = "Terraform deployer"
  description = "Created by make demo with the job's GitLab ID token as the Bearer"
  permissions = {
    "documents:read" = { allow = true }
  }
}
