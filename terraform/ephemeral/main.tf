# The helper verifies the job's GitLab ID token and returns it as the Authress access token, as in the
# data-source module (../main.tf), with the same variables and query (variables.tf, query.tf). An
# ephemeral resource is opened at plan and again at apply, each time in the job that runs Terraform,
# and its result is never written to state or to a saved plan: a plan saved in one job and applied in
# a later one sends the later job's token.
ephemeral "local_command" "token" {
  command   = var.program[0]
  arguments = slice(var.program, 1, length(var.program))
  # Without stdin the helper reads nothing and refuses, saying to set this.
  stdin = jsonencode(local.query)
}

locals {
  result = jsondecode(ephemeral.local_command.token.stdout)
}
