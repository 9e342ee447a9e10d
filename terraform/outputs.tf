output "access_token" {
  description = "The verified ID token: the Authress provider's `access_key` (Authress accepts it as the Bearer token). Kept in state and saved plans in plain text: see the README."
  value       = data.external.token.result.access_token
  sensitive   = true
}

output "user_id" {
  description = "The token's `sub`: the Authress user ID your access record must name."
  value       = data.external.token.result.user_id
}

output "account_id" {
  description = "The Authress account ID from an audience `https://ACCOUNT_ID.api[-REGION].authress.io`; empty otherwise."
  value       = data.external.token.result.account_id
}

output "api_url" {
  description = "The Authress API URL from the audience (`https://ACCOUNT_ID.api.authress.io`); empty otherwise."
  value       = data.external.token.result.api_url
}

output "expires_at" {
  description = "When the token expires (RFC 3339, UTC): the job's start plus its timeout."
  value       = data.external.token.result.expires_at
}

output "project_path" {
  description = "The GitLab project the job ran in, e.g. `my-org/authress-configuration` (in a fork's merge request pipeline, the source project)."
  value       = data.external.token.result.project_path
}

output "project_id" {
  description = "The GitLab project ID."
  value       = data.external.token.result.project_id
}

output "namespace_path" {
  description = "The project's group or user, e.g. `my-org`."
  value       = data.external.token.result.namespace_path
}

output "ref" {
  description = "The branch or tag the job ran for."
  value       = data.external.token.result.ref
}

output "ref_type" {
  description = "`branch` or `tag`."
  value       = data.external.token.result.ref_type
}

output "ref_protected" {
  description = "`true` when the branch or tag is protected."
  value       = data.external.token.result.ref_protected
}

output "environment" {
  description = "The job's `environment:` name; empty when it has none."
  value       = data.external.token.result.environment
}

output "pipeline_id" {
  description = "The GitLab pipeline ID."
  value       = data.external.token.result.pipeline_id
}

output "job_id" {
  description = "The GitLab job ID."
  value       = data.external.token.result.job_id
}
