# The env route for authress/authress 2.0.39: no data source; the provider reads the token the job's
# verified export put in AUTHRESS_KEY, so the token never enters state. Run by the component's jobs
# in gitlab-ci-local (tests/e2e/test_component_pipelines.py).

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

provider "authress" {
  custom_domain = var.audience
}

resource "authress_role" "env_route" {
  role_id     = "ro_env_route"
  name        = "Env route"
  description = "Managed by Terraform from GitLab CI"
  permissions = {
    "documents:read" = { allow = true }
  }
}
