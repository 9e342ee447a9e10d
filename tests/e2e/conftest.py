"""The end-to-end fixtures, registered for pytest; they and every builder the tests use live in
tests/e2e/toolchain.py, which the tests import (never this file)."""

from tests.e2e.toolchain import authress_api, create_status, pipeline, toolchain

__all__ = ["authress_api", "create_status", "pipeline", "toolchain"]
