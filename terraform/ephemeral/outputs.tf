# The same outputs as the data-source module (../outputs.tf), each ephemeral: a value a provider
# block or another ephemeral context may use, never stored.

output "access_token" {
  description = "The verified ID token: the Authress provider's `access_key` (Authress accepts it as the Bearer token). Ephemeral: never in state or a saved plan."
  value       = local.result.access_token
  sensitive   = true
  ephemeral   = true
}

output "user_id" {
  description = "The token's `sub`: the Authress user ID your access record must name."
  value       = local.result.user_id
  ephemeral   = true
}

output "account_id" {
  description = "The Authress account ID from an audience `https://ACCOUNT_ID.api[-REGION].authress.io`; empty otherwise."
  value       = local.result.account_id
  ephemeral   = true
}

output "api_url" {
  description = "The Authress API URL from the audience (`https://ACCOUNT_ID.api.authress.io`); empty otherwise."
  value       = local.result.api_url
  ephemeral   = true
}

output "expires_at" {
  description = "When the token expires (RFC 3339, UTC): the job's start plus its timeout."
  value       = local.result.expires_at
  ephemeral   = true
}

output "project_path" {
  description = "The GitLab project the job ran in, e.g. `my-org/authress-configuration` (in a fork's merge request pipeline, the source project)."
  value       = local.result.project_path
  ephemeral   = true
}

output "project_id" {
  description = "The GitLab project ID."
  value       = local.result.project_id
  ephemeral   = true
}

output "namespace_path" {
  description = "The project's group or user, e.g. `my-org`."
  value       = local.result.namespace_path
  ephemeral   = true
}

output "ref" {
  description = "The branch or tag the job ran for."
  value       = local.result.ref
  ephemeral   = true
}

output "ref_type" {
  description = "`branch` or `tag`."
  value       = local.result.ref_type
  ephemeral   = true
}

output "ref_protected" {
  description = "`true` when the branch or tag is protected."
  value       = local.result.ref_protected
  ephemeral   = true
}

output "environment" {
  description = "The job's `environment:` name; empty when it has none."
  value       = local.result.environment
  ephemeral   = true
}

output "pipeline_id" {
  description = "The GitLab pipeline ID."
  value       = local.result.pipeline_id
  ephemeral   = true
}

output "job_id" {
  description = "The GitLab job ID."
  value       = local.result.job_id
  ephemeral   = true
}
