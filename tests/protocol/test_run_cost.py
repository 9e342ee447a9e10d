"""What a run costs the issuer and the job, as behaviour: no timings here (those live in bench/)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from authress_gitlab_token import external
from authress_gitlab_token.keys.cache import KeyCache
from tests.fixtures.helper import Helper, InProcess, query
from tests.fixtures.issuer import LocalIssuer


def imported_modules(stderr: str) -> set[str]:
    """Module names from `PYTHONPROFILEIMPORTTIME` lines: `import time: self | cumulative | name`."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_terraforms_call_with_cached_keys_loads_no_http_client_and_no_parser(
    process: Helper, issuer: LocalIssuer, token: str
) -> None:
    helper = process  # a new interpreter per run: what it imports is the run's
    profile = {"PYTHONPROFILEIMPORTTIME": "1"}
    cold = helper.external(query(issuer, ref="main"), token, profile)
    assert cold.returncode == 0 and cold.result["user_id"]
    assert "httpx" in imported_modules(cold.stderr), "the import trace does not show the fetch's httpx"

    warm = helper.external(query(issuer, ref="main"), token, profile)
    assert warm.returncode == 0 and warm.result["user_id"]
    modules = imported_modules(warm.stderr)
    assert "authress_gitlab_token.verify" in modules
    assert "jsonschema" not in modules, "an accepted query is judged by the standard library alone"
    assert not {m for m in modules if m.split(".")[0] in ("httpx", "httpcore", "h11")}
    # Our own HTTP layer too (network.py and its proxies: about 5 ms of a warm run's import).
    assert not {"authress_gitlab_token.network", "authress_gitlab_token.proxies"} & modules
    assert "argparse" not in modules, "Terraform's `external` call should not build the argument parser"
    assert len(issuer.requests) == 2


class CountedEnviron(Mapping[str, str]):
    """An environment that counts the reads of each variable."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values, self.reads = dict(values), Counter[str]()

    def __getitem__(self, name: str) -> str:
        self.reads[name] += 1
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


OPENED: list[str] | None = None  # the files opened while a counted run is under way


def _count_opens(event: str, args: tuple[Any, ...]) -> None:
    if OPENED is not None and event == "open" and isinstance(args[0], str | Path):
        OPENED.append(str(args[0]))


sys.addaudithook(_count_opens)  # a hook cannot be removed: it counts only while OPENED is a list

SETTINGS = ("AUTHRESS_GITLAB_TOKEN_HTTP_TIMEOUT", "AUTHRESS_GITLAB_TOKEN_CACHE_DIR", "SSL_CERT_FILE")


@pytest.mark.parametrize("run", ["cold", "warm"])
def test_one_external_run_reads_each_setting_the_schema_and_the_key_cache_once(
    helper: Helper,
    issuer: LocalIssuer,
    token: str,
    in_process: InProcess,
    run: str,
) -> None:
    global OPENED
    stdin = json.dumps(query(issuer, ref="main")).encode()
    if run == "warm":
        assert in_process.run(["external"], stdin, {**helper.env, "AUTHRESS_KEY": token}).returncode == 0
    environ = CountedEnviron({**helper.env, "AUTHRESS_KEY": token})
    external.load_schema.cache_clear()  # as in a new process
    OPENED = []
    try:
        done = in_process.run(["external"], stdin, environ)
    finally:
        opened, OPENED = OPENED, None
    assert done.returncode == 0, done.stderr
    assert {name: environ.reads[name] for name in SETTINGS} == dict.fromkeys(SETTINGS, 1)
    cache_file = str(KeyCache(helper.cache_dir, issuer.url).path)
    assert opened.count(str(external.SCHEMA_PATH)) == 1
    assert opened.count(cache_file) == 1
    assert len(issuer.requests) == 2
