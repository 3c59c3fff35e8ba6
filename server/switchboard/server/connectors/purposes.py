"""Which consent purposes each configured connector serves: its kind's, or its settings'.

An adapter declares what its tool does with the data it receives (`purposes` on the class,
see `base.py`); `[connectors.<name>] purposes = [...]` replaces that for one connector, e.g.
`[]` for an ESP connector that sends only transactional mail, or `["analytics"]` for a
webhook into a tracking tool. Names are checked against the vocabulary in `rules/consent.py`
when the registry is built, so a typo stops the server instead of stopping (or never
stopping) deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.connectors.base import Connector, purposes_of
from switchboard.server.rules.consent import describe_unknown, unknown_purposes

log = logging.getLogger(__name__)

#: Kinds that can send anything anywhere: what they serve is the operator's to say.
_GENERIC_KINDS = frozenset({"webhook", "http"})


def served_purposes(connector: Connector, config: ConnectorSettings | None) -> frozenset[str]:
    """The purposes `connector` serves: its settings' when given, else its kind's."""
    if config is not None and config.purposes is not None:
        return frozenset(config.purposes)
    return purposes_of(connector)


def exempt_actions_of(connector: Connector) -> frozenset[str]:
    """Further actions the adapter declares always allowed (`consent_exempt_actions`)."""
    actions: Collection[str] = getattr(connector, "consent_exempt_actions", frozenset())
    return frozenset(actions)


def check_purposes(name: str, config: ConnectorSettings, connector: Connector) -> None:
    """Reject unknown purpose names; note a generic connector that declares none.

    Raises:
        ValueError: naming the connector and the known purposes.
    """
    declared = [*(config.purposes or ()), *sorted(purposes_of(connector))]
    if unknown := unknown_purposes(declared):
        raise ValueError(f"connector {name!r}: {describe_unknown(unknown)}")
    # An adapter that declares its own (the http kind's required `options.purposes`) is
    # checked against them: nothing to point out.
    if config.purposes is None and connector.kind in _GENERIC_KINDS and not purposes_of(connector):
        log.warning(
            "connector %r (%s) declares no consent purposes: its steps are sent for every "
            "contact; set purposes = [...] in [connectors.%s] (or [] to say it serves none)",
            name,
            connector.kind,
            name,
            extra={"fields": {"connector": name, "kind": connector.kind}},
        )
