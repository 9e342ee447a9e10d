"""The five steps, one text: `setup` prints it with the user's values; the README and the examples'
READMEs hold it rendered with the documented placeholders (scripts/five_steps.py; tests compare)."""

from __future__ import annotations

# The provider generation the example pins and the tests run (README, "Two generations").
PROVIDER_PIN = """\
terraform {
  required_providers {
    authress = {
      source  = "authress/authress"
      version = "2.0.39" # the newest releases take no custom_domain: README, provider generations
    }
  }
}

"""
# The five steps, word for word in setup's output, the README and the examples' READMEs.
STEPS = """\
1. **Trust GitLab in Authress.** Authress portal -> Connections -> OIDC trusted identities: add one
   with

       issuer:   {issuer}
       audience: {audience}

   The audience is your account's API URL (Authress portal -> API access); the job's `id_tokens` aud
   is exactly this string.
2. **Grant the pipeline a role.** Authress portal -> Access records: create one whose user ID is
   exactly

       {user_id}

   with the roles Terraform needs. This is GitLab's default `sub` for the project and {ref_type}; a
   project that changed its ID token sub claim components uses the `user_id` that `doctor` shows.
   Steps 1 and 2 in one command, with an admin's Authress service-client access key in
   `$AUTHRESS_KEY`: `--plan` shows what is missing, `--apply` makes it, a rerun changes nothing.

       {setup_plan}
       {setup_apply}

3. **Verify the token in the job.** In `.gitlab-ci.yml`, include the CI/CD component (GitLab >= 17.0)
   and give the job that runs Terraform `extends: .authress-gitlab-token`. It asks GitLab for the ID
   token, installs the helper at this release and verifies the token before Terraform starts; a job
   that drops its `before_script` gets no unverified token.

{component}
   Without the component, ask for the token in that job (GitLab >= 15.7) under this name, never
   `AUTHRESS_KEY` (the provider reads that one unverified), and install the helper:

{id_tokens}
       {install}

4. **Read it in Terraform** through the ephemeral module: Terraform runs the helper, which verifies
   the token again, and hands it to the provider version this project tests, `authress/authress`
   2.0.39. The token is in neither the state nor a saved plan (docs/routes.md).

{module}
5. **Push to the protected {ref_type} `{ref}`.** A refused token stops the job with one line that
   names the claim or the setup step to fix. In the job, this shows every check:

       {doctor}
"""
