# The end-to-end configuration: the module verifies the job's token, then data "http" makes the call
# the newest Authress provider makes first when it is configured: GET {aud}/v1/accounts/{accountId}
# with the token as Bearer, at the API URL the token's aud names. (That provider cannot be built here;
# authress/authress 2.0.39 runs for real in tests/e2e/configs/authress_role.)

terraform {
  required_version = ">= 1.3"

  required_providers {
    http = {
      source  = "hashicorp/http"
      version = ">= 1.2.0"
    }
  }
}

variable "audience" {
  type = string
}

variable "issuer" {
  type = string
}

variable "check" {
  type    = string
  default = null
}

variable "api_url" {
  type    = string
  default = null
}

module "authress_token" {
  source = "../../../../terraform"

  audience      = var.audience
  issuer        = var.issuer
  project_path  = "my-org/authress-configuration"
  ref_type      = "branch"
  ref           = "main"
  ref_protected = "true"
  check         = var.check
  api_url       = var.api_url
}

locals {
  # As the provider does: the account ID is the first label of the audience's host.
  account_id = regex("^https://([^./]+)\\.", var.audience)[0]
}

data "http" "account" {
  url = "${var.audience}/v1/accounts/${local.account_id}"

  request_headers = {
    Accept        = "application/json"
    Authorization = "Bearer ${module.authress_token.access_token}"
  }
}

output "authress_account_id" {
  description = "The account as the Authress API returned it to the helper's token."
  value       = jsondecode(data.http.account.body).accountId
}
