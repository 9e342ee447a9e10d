# The same in terraform/ and terraform/ephemeral/ (query.tf says why it is a copy).

variable "audience" {
  description = "The exact `aud` the token must carry: the job's `id_tokens` `aud`, and the same string as the Authress trusted identity's audience. The newest Authress provider needs `https://ACCOUNT_ID.api.authress.io`."
  type        = string

  validation {
    condition     = can(regex("^https://[^/?#]+", var.audience))
    error_message = "The audience must be an https URL, e.g. https://ACCOUNT_ID.api.authress.io (the job's id_tokens aud)."
  }
}

variable "issuer" {
  description = "The expected `iss`, an https URL without a trailing slash. Null: `$CI_SERVER_URL` in a GitLab job, else `https://gitlab.com`."
  type        = string
  default     = null

  validation {
    condition     = var.issuer == null || can(regex("^https://[^/?#]+(/[^?#]*[^/?#])?$", var.issuer))
    error_message = "The issuer must be an https URL without a trailing slash, e.g. https://gitlab.com."
  }
}

variable "token_env" {
  description = "The environment variable that holds the ID token (the name under the job's `id_tokens:`). Null: `AUTHRESS_KEY`."
  type        = string
  default     = null

  validation {
    condition     = var.token_env == null || can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.token_env))
    error_message = "The token_env must be an environment variable name, e.g. AUTHRESS_KEY."
  }
}

variable "subject" {
  description = "Glob for `sub`, e.g. `project_path:my-org/authress-configuration:ref_type:branch:ref:main`. Null: not checked."
  type        = string
  default     = null
}

variable "project_path" {
  description = "Glob for `project_path`, e.g. `my-org/authress-configuration`. Null: not checked."
  type        = string
  default     = null
}

variable "namespace_path" {
  description = "Glob for `namespace_path`, e.g. `my-org`. Null: not checked."
  type        = string
  default     = null
}

variable "ref" {
  description = "Glob for `ref` (the branch or tag name), e.g. `main`. Null: not checked."
  type        = string
  default     = null
}

variable "ref_type" {
  description = "`branch` or `tag`. Null: not checked."
  type        = string
  default     = null

  validation {
    condition     = var.ref_type == null || contains(["branch", "tag"], coalesce(var.ref_type, "-"))
    error_message = "The ref_type must be \"branch\" or \"tag\"."
  }
}

variable "ref_protected" {
  description = "`true` to accept only tokens of jobs on protected branches and tags (`false` for the opposite). Null: not checked."
  type        = string
  default     = null

  validation {
    condition     = var.ref_protected == null || contains(["true", "false"], coalesce(var.ref_protected, "-"))
    error_message = "The ref_protected must be \"true\" or \"false\"."
  }
}

variable "environment" {
  description = "Glob for `environment` (only jobs with an `environment:` carry it). Null: not checked."
  type        = string
  default     = null
}

variable "bound_claims" {
  description = "Any other claims to bind: claim name -> list of globs, any of which may match, e.g. `{ pipeline_source = [\"push\", \"web\"] }`. Null: none."
  type        = map(list(string))
  default     = null
}

variable "allow_any_project" {
  description = "`true` to accept a token from any GitLab project with this audience. Without it, the helper refuses to run unless `project_path`, `namespace_path`, `subject` or `bound_claims` on one of those names the project: any project on the instance can ask GitLab for a token with your audience."
  type        = bool
  default     = false
  nullable    = false
}

variable "leeway_seconds" {
  description = "Clock skew allowed on `exp`, `nbf` and `iat`, in whole seconds (0-300). Null: 60."
  type        = number
  default     = null

  validation {
    condition     = var.leeway_seconds == null || (floor(coalesce(var.leeway_seconds, 0)) == coalesce(var.leeway_seconds, 0) && coalesce(var.leeway_seconds, 0) >= 0 && coalesce(var.leeway_seconds, 0) <= 300)
    error_message = "The leeway_seconds must be a whole number from 0 to 300."
  }
}

variable "min_validity_seconds" {
  description = "Refuse a token that expires sooner than this, in whole seconds (0-86400). The job timeout sets the token's lifetime. Null: 0."
  type        = number
  default     = null

  validation {
    condition     = var.min_validity_seconds == null || (floor(coalesce(var.min_validity_seconds, 0)) == coalesce(var.min_validity_seconds, 0) && coalesce(var.min_validity_seconds, 0) >= 0 && coalesce(var.min_validity_seconds, 0) <= 86400)
    error_message = "The min_validity_seconds must be a whole number from 0 to 86400."
  }
}

variable "check" {
  description = "`authress`: before returning the token, ask the Authress API whether it trusts it and grants it access, and say which setup step is missing. Null: `none`."
  type        = string
  default     = null

  validation {
    condition     = var.check == null || contains(["none", "authress"], coalesce(var.check, "-"))
    error_message = "The check must be \"none\" or \"authress\"."
  }
}

variable "api_url" {
  description = "The Authress API base URL when it is not the one the audience names (a custom domain). Null: derived from the audience."
  type        = string
  default     = null

  validation {
    condition     = var.api_url == null || can(regex("^https://[^/?#]+", var.api_url))
    error_message = "The api_url must be an https URL, e.g. https://auth.example.com."
  }
}

variable "program" {
  description = "The helper's argv, found on PATH and run without a shell (by `data \"external\"`, or by `ephemeral \"local_command\"` in the ephemeral module)."
  type        = list(string)
  default     = ["authress-gitlab-token", "external"]

  validation {
    condition     = length(var.program) > 0
    error_message = "The program must name the helper, e.g. [\"authress-gitlab-token\", \"external\"]."
  }
}
