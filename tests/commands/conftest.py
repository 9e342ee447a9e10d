"""The account `setup --plan/--apply` works on, shared by its tests: an admin's service client with its
access and the roles a pipeline is granted, and `setup` run against it with the admin's key."""

from __future__ import annotations

import pytest

from tests.fixtures.authress import AuthressStandIn
from tests.fixtures.authress_admin import add_role
from tests.fixtures.helper import AdminSetup, Helper
from tests.fixtures.issuer import LocalIssuer
from tests.fixtures.service_clients import ServiceClientKey


@pytest.fixture
def admin() -> ServiceClientKey:
    return ServiceClientKey.generate(client_id="sc_admin", key_id="key-ad01")


@pytest.fixture
def empty(authress: AuthressStandIn, admin: ServiceClientKey) -> AuthressStandIn:
    """An account with nothing for the pipeline: only the admin's service client and its access, and the
    roles a pipeline is granted."""
    authress.add_client(admin.client_id, admin.key_id, admin.public)
    authress.grant(admin.client_id)
    for role in ("ro_terraform", "ro_audit"):
        add_role(authress, role)
    return authress


@pytest.fixture
def admin_setup(helper: Helper, issuer: LocalIssuer, empty: AuthressStandIn, admin: ServiceClientKey) -> AdminSetup:
    return AdminSetup(helper, issuer, empty, admin.value)
