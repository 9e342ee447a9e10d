"""What every command prints besides its result: the one-line failure, a warning, text for a terminal;
and what no output may hold: the token, service-client keys, passwords in URLs and the variables the user
marks. Chosen by name and shape, never by length: the audience, issuer, URLs and project paths a message
exists to show stay readable."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any

from .errors import fit, printable, redact

PREFIX = "authress-gitlab-token: "
MAX_LINE = 400  # a failure is one line, shorter than this with its prefix

SECRET_VARIABLES_ENV = "AUTHRESS_GITLAB_TOKEN_SECRET_VARIABLES"  # names, comma- or space-separated
# GitLab's predefined variables that hold credentials (GitLab masks them in job logs).
GITLAB_SECRETS = tuple(
    "CI_JOB_TOKEN CI_BUILD_TOKEN CI_JOB_JWT CI_JOB_JWT_V1 CI_JOB_JWT_V2 CI_REGISTRY_PASSWORD CI_DEPLOY_PASSWORD "
    "CI_DEPENDENCY_PROXY_PASSWORD".split()
)
MIN_SECRET_LENGTH = 8  # as GitLab's masked variables: a shorter value would blot out common words
# A compact JWS (a JSON header starts "eyJ") or a service-client key (CLIENT.KEY.ACCOUNT.PRIVATE): neither
# shape can hold ":" or "/", so no URL or path matches. No nested repetition: linear time.
_SECRET_SHAPE = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*|[\w-]+\.[\w-]+\.[\w-]+\.[\w+/=-]{16,}")
# The password of `scheme://user:password@host`; userinfo holds no "/", "?", "#", "@" or space.
_URL_PASSWORD = re.compile(r"://[^/?#@\s:]*:([^/?#@\s]*)@")

_named: set[str] = set()  # variables a command's query or flags name (`token_env`, `--key-env`)

# Messages name a setting as `query key "NAME"` (Terraform's data source: the module's variable of that
# name); a command given flags, or the CI/CD component, shows it as the user typed it: `--token-env`,
# `input "token_variable"`. One pattern, rewritten in one place (`worded`), so no message needs two texts.
_QUERY_KEY = re.compile(r'(?:the )?query key "([a-z_]+)"')
# The component's inputs for the settings its `env` call passes as flags: query key -> input.
COMPONENT_INPUTS = {
    **{key: key for key in ("audience", "issuer", "project_path", "ref", "ref_type", "check")},
    "token_env": "token_variable",
    "ref_protected": "protected_only",
}
_words = "query"  # "query", "flags" or "inputs": what the user typed, for this run


def speak(words: str) -> None:
    """Name settings in this run's messages as the user gave them: "query", "flags" or "inputs"."""
    global _words
    _words = words


def worded(text: str) -> str:
    """`text` with each `query key "NAME"` as the user typed it (a flag, a component input)."""
    if _words == "query":
        return text

    def name(match: re.Match[str]) -> str:
        key = match[1]
        if _words == "inputs" and key in COMPONENT_INPUTS:
            return f'input "{COMPONENT_INPUTS[key]}"'
        return "--" + key.replace("_", "-")

    return _QUERY_KEY.sub(name, text)


def name_secret(name: str | None) -> None:
    """The variable `name` holds a credential for this run: its value is redacted from every output."""
    if name:
        _named.add(name)


def secrets_in(environ: Mapping[str, str]) -> list[str]:
    """The values no output may hold: named variables, marked ones, secret shapes, URL passwords."""
    from .environment import DEFAULT_TOKEN_ENV

    marked = environ.get(SECRET_VARIABLES_ENV, "").replace(",", " ").split()
    names = {DEFAULT_TOKEN_ENV, *GITLAB_SECRETS, *_named, *marked}
    found = [environ[name].strip() for name in names if name in environ]
    for value in environ.values():
        if _SECRET_SHAPE.fullmatch(value.strip()):
            found.append(value.strip())
        if "://" in value:
            found.extend(match[1] for match in _URL_PASSWORD.finditer(value))
    return [v for v in found if len(v) >= MIN_SECRET_LENGTH]


class Redacted:
    """A text stream that writes everything with the secrets removed (defence in depth: messages are
    built without them). Each write is redacted whole, and every output is written in one piece."""

    def __init__(self, stream: IO[str], environ: Mapping[str, str]) -> None:
        self.stream, self.environ = stream, environ

    def write(self, text: str) -> int:
        return self.stream.write(redact(text, secrets_in(self.environ)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def redacted_output(environ: Mapping[str, str], stdout: bool) -> Iterator[None]:
    """stderr (and stdout, unless it is to carry the token) redacted for every command while it runs."""
    saved = sys.stdout, sys.stderr
    _named.clear()  # a run names its own variables (in-process runs share this module)
    if sys.stderr is not None:
        sys.stderr = Redacted(sys.stderr, environ)
    if stdout and sys.stdout is not None:
        sys.stdout = Redacted(sys.stdout, environ)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def fail(message: str, code: int, environ: Mapping[str, str]) -> int:
    """The failure's one line on stderr, redacted, made printable and cut to MAX_LINE; returns `code`."""
    # Redacted before the whitespace is folded: a token with a stray tab must still match.
    message = worded(message)
    line = fit(printable(" ".join(redact(message, secrets_in(environ)).split())), MAX_LINE - 1 - len(PREFIX))
    with contextlib.suppress(OSError, AttributeError):  # stderr closed: the exit status still says it
        sys.stderr.write(PREFIX + line + "\n")
    return code


def warn(message: str) -> None:
    """One line on stderr; the run still succeeds (Terraform shows stderr only on failure)."""
    sys.stderr.write(PREFIX + "warning: " + printable(" ".join(worded(message).split())) + "\n")


def shown(text: str) -> str:
    """`text` for a terminal, as doctor shows claims: a branch name cannot reorder or hide what follows."""
    return "\n".join(printable(line) for line in text.split("\n"))
