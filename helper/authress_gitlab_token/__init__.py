"""authress-gitlab-token: a verified GitLab CI ID token, handed to Terraform as the Authress access token."""

__version__ = "0.3.0"
