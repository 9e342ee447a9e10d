# Manage Authress with OpenTofu from GitLab's OpenTofu CI/CD component. The job has verified its ID
# token and exported it as AUTHRESS_KEY before OpenTofu starts (the env route), so the token is in
# neither the state nor the saved plan; the provider reads it from the environment.

terraform {
  required_version = ">= 1.6"

  required_providers {
    authress = {
      source = "authress/authress"
      # The generation whose provider block takes `custom_domain` (required); its `access_key` falls
      # back to the AUTHRESS_KEY environment variable.
      version = "2.0.39"
    }
  }

  # GitLab-managed state: the OpenTofu component configures it (state_name input).
  backend "http" {}
}

variable "authress_api_url" {
  description = "Your Authress account's API URL, https://ACCOUNT_ID.api.authress.io: the audience of the job's ID token."
  type        = string

  validation {
    condition     = can(regex("^https://[^/?#]+$", var.authress_api_url))
    error_message = "The authress_api_url must be an https URL without a path, e.g. https://ACCOUNT_ID.api.authress.io."
  }
}

provider "authress" {
  custom_domain = var.authress_api_url
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
