# The helper verifies the job's GitLab ID token and returns it as the Authress access token. The query
# is built in query.tf (the same in the ephemeral module).
data "external" "token" {
  program = var.program
  query   = local.query
}
