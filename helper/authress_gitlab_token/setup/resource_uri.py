"""Authress's Resource.resourceUri pattern, checked in linear time. The published regex,
`^([*]|[/]?((([A]{1,128}|[*])(:([A]{1,128}|[*]|))*)/?){0,15}([/][*]|[/]|))$` with A the characters
a-z A-Z 0-9 - _ . + = ~ | @, nests repetitions: a near miss such as "/projects/bucket#1" made Python's
regex engine backtrack for ever. This reads the same language left to right, counting the groups."""

from __future__ import annotations

MAX_LENGTH = 512
MAX_GROUPS = 15
MAX_RUN = 128
_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+=~|@")


def resource_uri_valid(uri: str) -> bool:
    """Whether Authress accepts `uri` as a resource URI; the length is checked first."""
    if len(uri) > MAX_LENGTH:
        return False
    if uri == "*":
        return True
    body = uri.removeprefix("/")
    # The trailing "/*" or "/" is best taken as the regex's last part: that never needs another group.
    body = body[:-2] if body.endswith("/*") else body[:-1] if body.endswith("/") else body
    if not body:
        return True
    stretches = body.split("/")
    if stretches[-1] == "":  # the last group's own optional "/"
        stretches.pop()
    groups = 0
    for stretch in stretches:
        count = _groups(stretch)
        if not count:  # None, or an empty stretch: "//" inside the path
            return False
        groups += count
    return groups <= MAX_GROUPS


def _groups(stretch: str) -> int | None:
    """The fewest groups `X(:Y)*` that spell `stretch` (X a run of at most MAX_RUN name characters or
    "*"; Y the same or empty), taking each part as long as it may; None when none can."""
    groups, i, end = 0, 0, len(stretch)
    while i < end:
        if stretch[i] == ":" or (stretch[i] not in _NAME and stretch[i] != "*"):
            return None  # a group starts with X, and X is never empty
        i = _part(stretch, i)
        groups += 1
        while i < end and stretch[i] == ":":
            i = _part(stretch, i + 1)  # Y: "*", a run, or empty
    return groups


def _part(stretch: str, i: int) -> int:
    """The end of the part starting at `i`: one "*", or a run of up to MAX_RUN name characters (or none)."""
    if i < len(stretch) and stretch[i] == "*":
        return i + 1
    run = i
    while run < len(stretch) and run - i < MAX_RUN and stretch[run] in _NAME:
        run += 1
    return run
