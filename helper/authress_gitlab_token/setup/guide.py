"""`setup`: what to enter in Authress and GitLab for one project and ref, derived from the same rules the
helper verifies with, so the portal, the job and the HCL agree on every string."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..authress import audience_warning
from ..environment import NO_JOB, Job
from ..errors import QueryError, quoted
from ..settings import DEFAULT_ISSUER, check_issuer
from .steps import PROVIDER_PIN, STEPS

# The job's ID token, named as the component's token_variable default: not AUTHRESS_KEY, which the
# provider would read by itself; the ephemeral module reads it (token_env) and verifies it.
ID_TOKEN_ENV = "AUTHRESS_ID_TOKEN"

# GitLab: each path part is letters, digits, "_", "-" and ".", not starting with "-"; a project is in a group.
_PROJECT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+\Z")
# `git check-ref-format`: no control characters, space, ~ ^ : ? * [ \\, "..", "@{", "//", and no part that
# starts with "." or ends with ".lock"; GitLab also refuses a name that starts with "-" or is "HEAD".
_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_HTTPS_URL = re.compile(r"https://[^/?#@\s]+(/[^?#\s]*)?")  # as the module's audience and api_url
# Where the helper is hosted: the canonical repository for the gitlab.com issuer; for a self-managed
# issuer, --helper-repository, else a placeholder on the issuer's host (never gitlab.com). Not a
# variable: a long URL in the environment reads as a secret.
REPOSITORY = "https://gitlab.com/authress-gitlab-token/authress-gitlab-token"
PLACEHOLDER = "YOUR_GROUP"
_GIT_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+\Z")


def default_repository(issuer: str = DEFAULT_ISSUER) -> str:
    """The canonical repository for gitlab.com; a placeholder on a self-managed issuer's own host."""
    if issuer == DEFAULT_ISSUER:
        return f"{REPOSITORY}.git"
    return f"https://{urlsplit(issuer).netloc}/{PLACEHOLDER}/authress-gitlab-token.git"


def install_command(version: str = __version__, repository: str = "") -> str:
    """The job's install of this very release, from its git tag (README, Install): the one pin that setup
    prints, derived from `__version__`; tests hold the documents' install lines to it."""
    return f'pip install "authress-gitlab-token @ git+{repository or default_repository()}@{version}"'


@dataclass(frozen=True)
class Guide:
    issuer: str
    audience: str
    project: str
    ref_type: str
    ref: str
    warnings: tuple[str, ...]
    repository: str = ""  # the helper's git URL; "" for the placeholder on the issuer's host

    @property
    def helper_repository(self) -> str:
        return self.repository or default_repository(self.issuer)

    @property
    def component(self) -> str:
        """The include path: `$CI_SERVER_FQDN` when the helper is on the issuer's instance."""
        parts = urlsplit(self.helper_repository)
        host = "$CI_SERVER_FQDN" if parts.netloc == urlsplit(self.issuer).netloc else parts.netloc
        return f"{host}{parts.path.removesuffix('.git')}/authress-token@{__version__}"

    @property
    def user_id(self) -> str:
        """GitLab's default `sub`, which is the Authress user ID of the access record."""
        return f"project_path:{self.project}:ref_type:{self.ref_type}:ref:{self.ref}"

    def id_tokens_yaml(self) -> str:
        return f"id_tokens:\n  {ID_TOKEN_ENV}:\n    aud: {json.dumps(self.audience)}\n"

    def component_yaml(self) -> str:
        """The include of this project's CI/CD component, as examples/gitlab/.gitlab-ci.yml has it."""
        inputs = {"audience": self.audience, "project_path": self.project, "ref": self.ref}
        if self.ref_type != "branch":  # the component's default
            inputs["ref_type"] = self.ref_type
        if self.issuer != DEFAULT_ISSUER:
            inputs["issuer"] = self.issuer
        inputs["helper_repository"] = self.helper_repository
        inputs["route"] = "ephemeral"  # step 4: the module runs the helper, as the example does
        body = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in inputs.items())
        return _mirror_note(self.helper_repository) + f"include:\n  - component: {self.component}\n    inputs:\n{body}"

    def module_hcl(self) -> str:
        """The ephemeral module (the recommended route, docs/routes.md): Terraform runs the helper, and the
        token is in neither the state nor a saved plan."""
        source = f"git::{self.helper_repository}//terraform/ephemeral?ref={__version__}"
        args = {"source": source, "audience": self.audience}
        if self.issuer != DEFAULT_ISSUER:
            args["issuer"] = self.issuer
        args.update(token_env=ID_TOKEN_ENV, project_path=self.project, ref_type=self.ref_type, ref=self.ref)
        width = max(len(k) for k in args)
        # ref alone would also pass a tag named like the branch (or a branch named like the tag).
        other = "branch" if self.ref_type == "tag" else "tag"
        notes = {
            "token_env": " # the job's id_tokens name",
            "ref_type": f" # else a {other} named {_hcl(self.ref)} would match too",
        }
        body = "".join(f"  {k.ljust(width)} = {_hcl(v)}{notes.get(k, '')}\n" for k, v in args.items())
        return (
            PROVIDER_PIN
            + _mirror_note(source)
            + "# Terraform >= 1.10 or OpenTofu >= 1.11 (older: //terraform, which keeps the token in state)\n"
            + 'module "authress_token" {\n'
            f"{body}}}\n\n"
            'provider "authress" {\n'
            "  custom_domain = module.authress_token.api_url\n"
            "  access_key    = module.authress_token.access_token\n"
            "}\n"
        )

    def doctor_command(self) -> str:
        """The `doctor` run that checks this setup in the job: the same bindings as the module call."""
        flags = [("--audience", self.audience), ("--project-path", self.project)]
        flags += [("--ref-type", self.ref_type), ("--ref", self.ref), ("--token-env", ID_TOKEN_ENV)]
        return "authress-gitlab-token doctor " + " ".join(f"{k} {shlex.quote(v)}" for k, v in flags)

    def setup_command(self, mode: str) -> str:
        """`setup --plan` or `--apply` for this pipeline: steps 1 and 2 in one command."""
        flags = [("--project", self.project), (f"--{self.ref_type}", self.ref), ("--audience", self.audience)]
        flags += [("--issuer", self.issuer)] if self.issuer != DEFAULT_ISSUER else []
        args = " ".join(f"{k} {shlex.quote(v)}" for k, v in flags)
        return f"authress-gitlab-token setup --{mode} {args} --role ROLE_ID"

    def to_json(self) -> dict[str, Any]:
        return {
            "trusted_identity": {"issuer": self.issuer, "audience": self.audience},
            "access_record_user_id": self.user_id,
            "component_yaml": self.component_yaml(),
            "id_tokens_yaml": self.id_tokens_yaml(),
            "module_hcl": self.module_hcl(),
            "install_command": install_command(repository=self.helper_repository),
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """The five steps with this pipeline's values: the README and the examples hold the same text
        rendered with the documented placeholders (scripts/five_steps.py)."""
        return STEPS.format(
            issuer=self.issuer,
            audience=self.audience,
            user_id=self.user_id,
            ref_type=self.ref_type,
            ref=self.ref,
            setup_plan=self.setup_command("plan"),
            setup_apply=self.setup_command("apply"),
            component=_indent(self.component_yaml(), 7),
            id_tokens=_indent(self.id_tokens_yaml(), 7),
            install=install_command(repository=self.helper_repository),
            module=_indent(self.module_hcl(), 7),
            doctor=self.doctor_command(),
        )


def _mirror_note(url: str) -> str:
    """A comment naming the placeholder while setup cannot know where the user mirrors the helper."""
    if PLACEHOLDER not in url:
        return ""
    return f"# {PLACEHOLDER}: the group of your mirror of authress-gitlab-token (--helper-repository)\n"


def _hcl(value: str) -> str:
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _indent(text: str, width: int) -> str:
    return "".join(" " * width + line + "\n" if line else "\n" for line in text.splitlines())


def build_all(
    projects: Sequence[str],
    branches: Sequence[str],
    tags: Sequence[str],
    audience: str | None,
    issuer: str | None,
    job: Job = NO_JOB,
    repository: str | None = None,
) -> list[Guide]:
    """Every project x ref named (branches, then tags), in the order given; an error names the flag."""
    projects = list(dict.fromkeys(projects)) or [job.project_path]
    for project in projects:
        if not project or not _PROJECT.match(project) or project.endswith((".git", ".atom")):
            raise QueryError(
                (f"--project is {quoted(project)}" if project else "no project")
                + "; pass --project GROUP/PROJECT (subgroups allowed; letters, digits, "
                '"_", "-", "."; repeatable; default: $CI_PROJECT_PATH)'
            )
    refs = [("branch", b) for b in dict.fromkeys(branches)] + [("tag", t) for t in dict.fromkeys(tags)]
    if not refs and job.commit_tag:
        refs = [("tag", job.commit_tag)]
    elif not refs and job.ref_name:
        refs = [("branch", job.ref_name)]
    if not refs:
        raise QueryError("no branch or tag; pass --branch NAME or --tag NAME (default: $CI_COMMIT_REF_NAME)")
    for ref_type, ref in refs:
        check_ref(ref_type, ref)
    audience, issuer = trust(audience, issuer, job)
    repository = repository or ""
    if repository and not _GIT_URL.match(repository):
        raise QueryError(
            f"--helper-repository is {quoted(repository)}; pass the https git URL of your copy of "
            "authress-gitlab-token, e.g. https://gitlab.example.com/platform/authress-gitlab-token.git"
        )
    warning = audience_warning(audience, "")
    warnings = (warning,) if warning else ()
    return [Guide(issuer, audience, p, t, r, warnings, repository) for p in projects for t, r in refs]


def trust(audience: str | None, issuer: str | None, job: Job = NO_JOB) -> tuple[str, str]:
    """(audience, issuer) of the trusted identity: the audience checked, the issuer defaulted and checked."""
    if not audience or not _HTTPS_URL.fullmatch(audience):
        raise QueryError(
            f"--audience is {quoted(audience)}, not an https URL (the module refuses that); pass --audience with "
            "your account's API URL, https://ACCOUNT_ID.api.authress.io (Authress portal -> API access)"
        )
    source = "--issuer"
    if not issuer:
        issuer = job.server_url or DEFAULT_ISSUER
        source = "CI_SERVER_URL" if job.server_url else "the default issuer"
    check_issuer(issuer, source)
    return audience, issuer


def check_ref(ref_type: str, ref: str) -> None:
    """Refuse a ref GitLab refuses, and say so when a glob is given: Authress matches a user ID exactly."""
    if any(c in ref for c in "*?["):
        raise QueryError(
            f"--{ref_type} is {quoted(ref)}, a glob; Authress matches the user ID exactly, so setup grants named "
            f"{ref_type} names only: pass --{ref_type} once for each (it is repeatable)"
        )
    problem = ref_problem(ref)
    if problem:
        raise QueryError(
            f"the {ref_type} is {quoted(ref)}, which {problem}; GitLab refuses such a name (git check-ref-format)"
        )


def ref_problem(ref: str) -> str | None:
    """Why git (`check-ref-format --branch`) or GitLab refuses `ref` as a branch or tag name, or None."""
    stray = _REF_CHARS.search(ref)
    if stray:
        return f"holds {quoted(stray[0])}"
    if ref == "HEAD" or ref == "@" or ref.startswith("-"):
        return 'is "HEAD", "@" or starts with "-"'
    if any(bad in ref for bad in ("..", "@{", "//")) or ref.startswith("/") or ref.endswith(("/", ".")):
        return 'holds "..", "@{" or "//", or starts or ends with "/", or ends with "."'
    if any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/")):
        return 'has a part that starts with "." or ends with ".lock"'
    return None
