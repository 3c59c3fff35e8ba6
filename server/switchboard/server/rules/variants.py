"""A/B variants: which variant of a trigger a contact gets, the same every time.

The choice hashes the trigger's event and the contact's id (SHA-256, not Python's `hash`,
which changes between processes), so every worker and every restart agrees, and a contact
sees one variant across its runs. Variants are taken in name order, so reordering them in
the configuration moves no one; changing a weight moves only the contacts near the edges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from switchboard.server.config.flow import TriggerSettings


def assign(event: str, contact_id: str, weights: Mapping[str, int]) -> str:
    """The variant of `contact_id` for the trigger of `event` ("" when there are none)."""
    total = sum(weights.values())
    if total <= 0:
        return ""
    digest = hashlib.sha256(f"{event}\x00{contact_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for name in sorted(weights):
        point -= weights[name]
        if point < 0:
            return name
    raise AssertionError("unreachable: the weights add up to the total")


def variant_params(trigger: TriggerSettings, variant: str, index: int) -> dict[str, Any]:
    """Step `index`'s params in `variant`: the step's own, with the variant's merged over."""
    params = dict(trigger.steps[index].params)
    chosen = trigger.variants.get(variant)
    if chosen is not None:
        params.update(chosen.params.get(index, {}))
    return params
