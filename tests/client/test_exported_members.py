from __future__ import annotations
import __future__

import types

import switchboard.client

#: The public submodules: imported on their own, never by `import switchboard.client`.
PUBLIC_SUBMODULES = {"cli", "testing"}


def test_all_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(switchboard.client).items()
        if not name.startswith("_")
        and not isinstance(value, __future__._Feature)
        and not (isinstance(value, types.ModuleType) and name in PUBLIC_SUBMODULES)
    }

    assert set(switchboard.client.__all__) == public
    assert len(switchboard.client.__all__) == len(public)


def test_the_exported_names() -> None:
    assert switchboard.client.__all__ == [
        "AbortedError",
        "AlreadyExistsError",
        "Campaigns",
        "Connectors",
        "ContactFields",
        "Contacts",
        "DeadlineExceededError",
        "Events",
        "FailedPreconditionError",
        "FieldViolation",
        "InvalidArgumentError",
        "Leads",
        "NotFoundError",
        "PermissionDeniedError",
        "ResourceExhaustedError",
        "Switchboard",
        "SwitchboardError",
        "SyncCampaigns",
        "SyncConnectors",
        "SyncContacts",
        "SyncLeads",
        "SyncSwitchboard",
        "TLSConfig",
        "UnauthenticatedError",
        "UnavailableError",
    ]


def test_exported_errors_share_one_base() -> None:
    errors = [
        getattr(switchboard.client, name)
        for name in switchboard.client.__all__
        if name.endswith("Error")
    ]

    assert all(issubclass(error, switchboard.client.SwitchboardError) for error in errors)
