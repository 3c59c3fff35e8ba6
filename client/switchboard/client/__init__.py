"""Switchboard client.

```python
from switchboard.client import Switchboard

async with Switchboard("localhost:50051", api_key="...") as sb:
    reply = await sb.contacts.upsert(email="ada@example.com", lists=["newsletter"])
    run = await sb.campaigns.trigger("newsletter.signup", email="ada@example.com")
```

`SyncSwitchboard` offers the same calls to synchronous code. Every failed call raises a
`SwitchboardError`; replies are the protobuf messages of `switchboard.v1` (typed stubs).
`switchboard.client.testing.FakeSwitchboard` is an in-memory server for callers' tests.
"""

from __future__ import annotations

from ._async import Switchboard
from ._campaigns import Campaigns
from ._config import TLSConfig
from ._connectors import Connectors
from ._contacts import Contacts
from ._errors import (
    AbortedError,
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SwitchboardError,
    UnauthenticatedError,
    UnavailableError,
)
from ._events import Events
from ._leads import Leads
from ._messages import ContactFields
from ._sync import SyncCampaigns, SyncConnectors, SyncContacts, SyncLeads, SyncSwitchboard

__all__ = [
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

# Present the public classes as members of this package (in reprs, docs and tracebacks).
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
