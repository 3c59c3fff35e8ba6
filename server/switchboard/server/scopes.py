"""The one table of scopes: which scope each RPC needs.

The auth interceptor enforces it; a method missing from the table is refused
(PERMISSION_DENIED), so a new RPC is closed until it is listed here.
"""

from __future__ import annotations

from typing import Final

CONTACTS_READ = "contacts:read"
CONTACTS_WRITE = "contacts:write"
LEADS_READ = "leads:read"
LEADS_WRITE = "leads:write"
CAMPAIGNS_TRIGGER = "campaigns:trigger"
CAMPAIGNS_READ = "campaigns:read"
CONNECTORS_READ = "connectors:read"
CONNECTORS_ADMIN = "connectors:admin"

_CONTACTS = "/switchboard.v1.ContactSync/"
_LEADS = "/switchboard.v1.LeadScoring/"
_CAMPAIGNS = "/switchboard.v1.CampaignTriggers/"
_CONNECTORS = "/switchboard.v1.Connectors/"

SCOPE_BY_METHOD: Final[dict[str, str]] = {
    _CONTACTS + "UpsertContact": CONTACTS_WRITE,
    _CONTACTS + "GetContact": CONTACTS_READ,
    _CONTACTS + "ListContacts": CONTACTS_READ,
    _CONTACTS + "ImportContacts": CONTACTS_WRITE,
    _CONTACTS + "DeleteContact": CONTACTS_WRITE,
    _LEADS + "RecordActivity": LEADS_WRITE,
    # Scoring stores the new score, so it writes.
    _LEADS + "ScoreLead": LEADS_WRITE,
    _LEADS + "UpdateLeadStatus": LEADS_WRITE,
    _LEADS + "GetLead": LEADS_READ,
    _LEADS + "ScoreLeads": LEADS_WRITE,
    _CAMPAIGNS + "TriggerCampaign": CAMPAIGNS_TRIGGER,
    _CAMPAIGNS + "GetRun": CAMPAIGNS_READ,
    _CAMPAIGNS + "ListRuns": CAMPAIGNS_READ,
    _CAMPAIGNS + "WatchRun": CAMPAIGNS_READ,
    # The configured flows (events, connectors, actions): the same readers as the runs.
    _CAMPAIGNS + "ListTriggers": CAMPAIGNS_READ,
    _CONNECTORS + "ListConnectors": CONNECTORS_READ,
    # Direct calls reach real tools (and may send email): admin only.
    _CONNECTORS + "InvokeConnector": CONNECTORS_ADMIN,
    # Dead letters hold step payloads (personal data) and redriving re-sends them: admin.
    _CONNECTORS + "ListDeadLetters": CONNECTORS_ADMIN,
    _CONNECTORS + "RedriveDeadLetters": CONNECTORS_ADMIN,
}

ALL_SCOPES: Final[frozenset[str]] = frozenset(SCOPE_BY_METHOD.values())
