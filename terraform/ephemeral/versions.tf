terraform {
  # 1.10: ephemeral resources and ephemeral outputs (OpenTofu 1.11 reads the same).
  required_version = ">= 1.10"

  required_providers {
    local = {
      source = "hashicorp/local"
      # 2.7.0 added ephemeral "local_command"; the end-to-end tests run 2.9.0.
      version = ">= 2.7.0, < 3.0.0"
    }
  }
}
