"""The webhook connector's batch form: many steps in one signed POST.

With `max_batch` above 1 a webhook connector is a `BatchConnector`. One request carries

    {"type": action, "timestamp": unix_seconds,
     "batch": [{"id": step_key, "data": payload}, ...]}

signed like a single webhook. Its `webhook-id` (and `Idempotency-Key`) is `batch_` + the
first 32 hex digits of SHA-256 over the items' keys, so a retry of the same items carries
the same id, and a retry of only the failed items a new one. Each item's own key is its
`id` in the body: a receiver deduplicates per item with it.

A 2xx answer may say how each item went, in order: `{"results": [...]}`, one object per
item; an object with an `error` fails that item (`"retryable": true` to have it retried,
permanent otherwise), any other object is that item's result. Without `results`, every item
succeeded. A non-2xx answer fails the whole batch, classified by status as for one step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from switchboard.server.connectors.base import BatchItem, ItemOutcome, JsonDict
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError


def batch_id(items: Sequence[BatchItem]) -> str:
    """The batch's `webhook-id`: stable for the same items, new for another set."""
    keys = "\n".join(item.ctx.idempotency_key for item in items)
    return "batch_" + hashlib.sha256(keys.encode()).hexdigest()[:32]


def batch_body(action: str, timestamp: int, items: Sequence[BatchItem]) -> bytes:
    """The request body for `items`."""
    batch = [{"id": item.ctx.idempotency_key, "data": item.payload} for item in items]
    body = {"type": action, "timestamp": timestamp, "batch": batch}
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def item_outcomes(what: str, answer: JsonDict, count: int) -> list[ItemOutcome]:
    """Each item's outcome from a 2xx answer (`answer` as the single-step call returns it).

    Raises:
        PermanentConnectorError: `results` is there but is not one object per item.
    """
    status = answer.get("status")
    body = answer.get("body")
    results = body.get("results") if isinstance(body, dict) else None
    if results is None:
        return [{"status": status} for _ in range(count)]
    if not isinstance(results, list) or len(results) != count:
        raise PermanentConnectorError(
            f"{what} answered a batch of {count} with 'results' that is not {count} objects"
        )
    return [_item(what, status, result) for result in results]


def _item(what: str, status: Any, result: Any) -> ItemOutcome:
    if not isinstance(result, dict):
        return PermanentConnectorError(f"{what}: an item result is not an object")
    if "error" not in result:
        return {"status": status, "body": result}
    message = f"{what} refused the item: {str(result['error'])[:200]}"
    if result.get("retryable") is True:
        return RetryableConnectorError(message)
    return PermanentConnectorError(message)
