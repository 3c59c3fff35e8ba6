"""A/B variant use-cases: checking a requested variant, and each variant's results."""

from __future__ import annotations

from collections.abc import Mapping

from switchboard.server.common.timeutil import now_us, to_us
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.errors import FailedPrecondition, NotFound
from switchboard.server.rules.validation import MAX_KEY_NAME, Violations, check_length
from switchboard.server.store.base import Store
from switchboard.v1 import campaigns_pb2


def check_variant(trigger: TriggerSettings, variant: str) -> None:
    """INVALID_ARGUMENT unless `variant` is empty or one of the trigger's variants."""
    if not variant or variant in trigger.variants:
        return
    v = Violations()
    known = ", ".join(sorted(trigger.variants)) or "none: the trigger has no variants"
    v.add("variant", f"{variant!r} is not a variant of this trigger (variants: {known})")
    v.raise_if_any()


class VariantResults:
    """Exposures and conversions per variant, read from the runs and activities."""

    def __init__(self, store: Store, triggers: Mapping[str, TriggerSettings]) -> None:
        self._store = store
        self._triggers = triggers

    async def results(
        self, req: campaigns_pb2.GetVariantResultsRequest
    ) -> campaigns_pb2.GetVariantResultsResponse:
        """The trigger's variants with their counts, ordered by name."""
        v = Violations()
        check_length(v, "event", req.event, MAX_KEY_NAME)
        if not req.event:
            v.add("event", "is required")
        check_length(v, "conversion_type", req.conversion_type, MAX_KEY_NAME)
        since = to_us(req.start_time) if req.HasField("start_time") else 0
        until = to_us(req.end_time) if req.HasField("end_time") else now_us() + 1
        if until <= since:
            v.add("end_time", "must be after start_time")
        v.raise_if_any()
        trigger = self._triggers.get(req.event)
        if trigger is None:
            known = ", ".join(sorted(self._triggers)) or "none"
            raise NotFound(
                f"no trigger is configured for event {req.event!r} (configured: {known})"
            )
        if not trigger.variants:
            raise FailedPrecondition(
                f"trigger {req.event!r} has no variants (see docs/variants.md)"
            )
        conversion = req.conversion_type or trigger.conversion
        if not conversion:
            raise FailedPrecondition(
                f"trigger {req.event!r} has no conversion activity type: set conversion_type "
                "or the trigger's `conversion` setting"
            )
        counts = await self._store.read(
            lambda tx: tx.variant_results(req.event, since, until, conversion)
        )
        found = {c.variant: c for c in counts}
        resp = campaigns_pb2.GetVariantResultsResponse(conversion_type=conversion)
        for name in sorted(trigger.variants):
            count = found.get(name)
            exposures = count.exposures if count else 0
            conversions = count.conversions if count else 0
            resp.results.add(
                variant=name,
                weight=trigger.variants[name].weight,
                exposures=exposures,
                conversions=conversions,
                conversion_rate=conversions / exposures if exposures else 0.0,
            )
        return resp
