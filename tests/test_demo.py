"""`make demo`, the README's first command, works and shows no token."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def test_the_demo_verifies_a_token_refuses_another_branch_and_prints_no_token() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    assert '"user_id": "project_path:my-org/authress-configuration:ref_type:branch:ref:main"' in done.stdout
    assert 'claim "ref" is "main", expected "release"' in done.stdout
    assert "module outputs" in done.stdout or "Terraform: skipped" in done.stdout
    assert not JWT.search(output), "the demo printed a token"
