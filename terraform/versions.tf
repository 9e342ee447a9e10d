terraform {
  # 1.3: optional object attributes and the validation forms used here; OpenTofu 1.6+ reads the same.
  required_version = ">= 1.3"

  required_providers {
    external = {
      source = "hashicorp/external"
      # 1.2.0 already has program/query/result as used here; 2.x is what a registry serves today.
      # The end-to-end tests run both 1.2.0 and 2.4.0.
      version = ">= 1.2.0, < 3.0.0"
    }
  }
}
