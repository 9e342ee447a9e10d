"""`make stand-ins` (scripts/stand_ins.py), as docs/try-it.md tells a user to try `setup` by hand: it
prints export lines, the commands it prints work with them, and Ctrl-C stops it and removes its files."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import stand_ins
from tests.fixtures.helper import Helper
from tests.fixtures.tokens import MINTED

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    child: subprocess.Popen[str]
    printed: list[str]

    def exports(self) -> dict[str, str]:
        """The export lines as the shell reads them (PATH aside: the test's helper is used)."""
        values = {}
        for line in self.printed:
            found = re.fullmatch(r"export (\w+)=(.*)", line)
            if found and found[1] != "PATH":
                (values[found[1]],) = shlex.split(found[2])
        return values

    def commands(self) -> dict[str, list[str]]:
        """Each printed command (its first flag as the key), with the exports expanded, as a shell would."""
        env = self.exports()
        lines = [line for line in self.printed if line.startswith("authress-gitlab-token ")]
        expanded = [
            shlex.split(re.sub(r'"\$(\w+)"', lambda m: shlex.quote(env[m[1]]), line), comments=True)[1:]
            for line in lines
        ]
        return {" ".join(argv[:3] if argv[2] == "--destroy" else argv[:2]): argv for argv in expanded}


@pytest.fixture
def running() -> Iterator[Running]:
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "stand_ins.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    printed: list[str] = []
    assert child.stdout is not None
    for line in child.stdout:
        printed.append(line.rstrip("\n"))
        if line.rstrip("\n") == stand_ins.READY:
            break
    try:
        assert printed and printed[-1] == stand_ins.READY, (printed, child.stderr.read() if child.stderr else "")
        yield Running(child, printed)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_the_printed_exports_and_commands_run_setup_and_doctor_and_ctrl_c_stops_it(
    running: Running, helper: Helper
) -> None:
    env = running.exports()
    assert set(env) == {
        *("SSL_CERT_FILE", "HTTPS_PROXY", "NO_PROXY"),
        *("AUTHRESS_KEY", "AUTHRESS_AUDIENCE", "GITLAB_ISSUER", "GITLAB_ID_TOKEN"),
    }
    assert env["AUTHRESS_AUDIENCE"] == "https://acc-local.api.authress.io"  # the five steps' form, via the proxy
    MINTED.update([env["AUTHRESS_KEY"], env["GITLAB_ID_TOKEN"]])  # secrets: the leak scan looks for them
    assert Path(env["SSL_CERT_FILE"]).is_file()
    commands = running.commands()
    assert set(commands) == {
        "setup --plan",
        "setup --apply",
        "setup --list",
        "doctor --token-env",
        "setup --apply --destroy",
    }

    untrusted = helper.run(commands["doctor --token-env"], env=env)
    assert untrusted.returncode == 1 and "answered 401: Authress does not trust this token" in untrusted.stdout

    plan = helper.run(commands["setup --plan"], env=env)
    assert (plan.returncode, plan.stderr) == (0, ""), plan.stderr
    assert plan.stdout.splitlines()[-1] == "Plan: 2 change(s); run with --apply to make them."
    applied = helper.run(commands["setup --apply"], env=env)
    assert applied.stdout.splitlines()[-1] == "Applied: 2 change(s).", applied.stderr
    listed = helper.run(commands["setup --list"], env=env)
    assert listed.stdout.splitlines()[-1] == "1 access record(s) made by this tool.", listed.stderr
    assert "no trusted identity" not in listed.stdout
    doctor = helper.run(commands["doctor --token-env"], env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert '[pass] authress              account "acc-local" is readable' in doctor.stdout
    destroyed = helper.run(commands["setup --apply --destroy"], env=env)
    assert destroyed.stdout.splitlines()[-1] == "Applied: 1 change(s).", destroyed.stderr

    running.child.send_signal(signal.SIGINT)
    rest, errors = running.child.communicate(timeout=15)
    assert running.child.returncode == 0, errors
    assert rest == "# stand-ins stopped\n" and errors == ""
    assert not Path(env["SSL_CERT_FILE"]).exists(), "Ctrl-C left the temporary folder behind"
    port = int(env["HTTPS_PROXY"].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
