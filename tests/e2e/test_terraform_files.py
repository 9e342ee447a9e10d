"""Every .tf file we ship is formatted and valid for the Terraform CLI (and OpenTofu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.ca import LocalCA
from tests.fixtures.helper import safe

from .toolchain import CLIS, ROOT, Terraform, Toolchain, copy_config, stage

pytestmark = pytest.mark.e2e


def test_every_tf_file_is_formatted(toolchain: Toolchain, ca: LocalCA, tmp_path: Path) -> None:
    tf = Terraform(toolchain.cli("terraform"), ROOT, toolchain, ca, tmp_path)
    folders = ["terraform", "examples", "tests/e2e/configs"]
    assert all(any((ROOT / f).rglob("*.tf")) for f in folders)
    for folder in folders:
        run = tf("fmt", "-check", "-recursive", "-diff", folder)
        assert run.returncode == 0, f"run `terraform fmt -recursive {folder}`:\n{safe(run.output)}"


@pytest.mark.parametrize(
    ("config", "providers"),
    [
        ("terraform", []),
        ("tests/e2e/configs/module_outputs", []),
        ("tests/e2e/configs/authress_call", ["hashicorp/http@1.2.0"]),
        ("tests/e2e/configs/authress_role", ["authress/authress@2.0.39"]),
    ],
)
@pytest.mark.parametrize("cli", CLIS)
def test_the_module_and_the_test_configurations_validate(
    cli: str, config: str, providers: list[str], toolchain: Toolchain, ca: LocalCA, tmp_path: Path
) -> None:
    for provider in ["hashicorp/external@2.4.0", *providers]:
        toolchain.provider(provider)
    tf = Terraform(toolchain.cli(cli), stage(config, tmp_path, "2.4.0"), toolchain, ca, tmp_path)
    tf.ok("init", "-input=false")
    assert "The configuration is valid" in tf.ok("validate").output


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("audience", "api.authress.io", "The audience must be an https URL"),
        ("issuer", "https://gitlab.com/", "without a trailing slash"),
        ("ref_protected", "yes", 'The ref_protected must be "true" or "false"'),
        ("leeway_seconds", "301", "The leeway_seconds must be a whole number from 0 to 300"),
        ("check", "always", 'The check must be "none" or "authress"'),
    ],
)
def test_the_module_refuses_a_bad_input_before_running_the_helper(
    variable: str, value: str, message: str, toolchain: Toolchain, ca: LocalCA, tmp_path: Path
) -> None:
    toolchain.provider("hashicorp/external@2.4.0")
    copy_config(ROOT / "terraform", tmp_path / "terraform")
    root = tmp_path / "root"
    root.mkdir()
    inputs = {"audience": "https://acc-1a2b3c.api.authress.io", variable: value}
    body = "\n".join(f'  {k} = "{v}"' if k != "leeway_seconds" else f"  {k} = {v}" for k, v in inputs.items())
    (root / "main.tf").write_text(f'module "token" {{\n  source = "../terraform"\n{body}\n}}\n', encoding="utf-8")
    tf = Terraform(toolchain.cli("terraform"), root, toolchain, ca, tmp_path)
    tf.ok("init", "-input=false")
    run = tf("validate")
    assert run.returncode != 0
    assert message in run.flat(), safe(run.output)
