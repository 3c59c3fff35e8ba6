"""A vendor adapter's documented limits, used where the configuration sets none.

An adapter may declare `default_limits` (a `DefaultLimits`): the request rate and the
connections its vendor documents. `with_connector_defaults` fills them into each
connector's settings wherever the operator left the field unset, so the dispatcher's
guards (and whatever enforces quotas across workers) see the vendor's limits without
knowing the vendor. A value set in the configuration always wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.connectors.base import Connector


@dataclass(frozen=True, slots=True)
class DefaultLimits:
    """Limits an adapter's vendor documents; None leaves the dispatch default."""

    rate_per_s: float | None = None
    rate_burst: int | None = None
    max_concurrency: int | None = None


def default_limits_of(connector: Connector) -> DefaultLimits:
    """The limits a connector declares (none: no defaults)."""
    limits = getattr(connector, "default_limits", None)
    return limits if isinstance(limits, DefaultLimits) else DefaultLimits()


def with_connector_defaults(
    configs: Mapping[str, ConnectorSettings], registry: Mapping[str, Connector]
) -> dict[str, ConnectorSettings]:
    """Each connector's settings with its adapter's limits where the config set none."""
    effective: dict[str, ConnectorSettings] = {}
    for name, config in configs.items():
        connector = registry.get(name)
        limits = default_limits_of(connector) if connector is not None else DefaultLimits()
        update: dict[str, Any] = {}
        for field in ("rate_per_s", "rate_burst", "max_concurrency"):
            value = getattr(limits, field)
            if value is not None and field not in config.model_fields_set:
                update[field] = value
        effective[name] = config.model_copy(update=update) if update else config
    return effective
