# A hand-written ephemeral "local_command" that forgets `stdin`: the helper reads an empty standard
# input and its one line says to set it (tests/e2e/test_ephemeral.py).

terraform {
  required_version = ">= 1.10"

  required_providers {
    local = {
      source  = "hashicorp/local"
      version = "2.9.0"
    }
  }
}

ephemeral "local_command" "token" {
  command   = "authress-gitlab-token"
  arguments = ["external"]
}

locals {
  access_token = jsondecode(ephemeral.local_command.token.stdout).access_token
}
