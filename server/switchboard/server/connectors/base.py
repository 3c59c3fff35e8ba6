"""The connector adapter contract.

A connector is the bridge from Switchboard to one marketing tool (CRM, ESP, personalization,
...). Every adapter implements `Connector`:

- `name`: the name it was configured under (used in trigger steps);
- `kind`: the adapter type (`crm`, `esp`, `fake`, ...);
- `actions`: the action names it accepts, e.g. `contacts.upsert`;
- `invoke(action, payload, ctx)`: perform one action and return a JSON-like result. It must
  raise `RetryableConnectorError` for transient failures and `PermanentConnectorError` for
  ones that would fail again; any other exception is treated as retryable by the dispatcher.
  `ctx.idempotency_key` is stable across retries of the same step: pass it on to the tool.
- `health()`: raise if the tool is unreachable; return quickly.
- `aclose()`: release resources.

Optional, found with `isinstance` / `purposes_of`:

- `BatchConnector`: a tool with a batch endpoint also implements `invoke_batch(action,
  items)` and says how many items one vendor call may carry (`max_batch`). The dispatcher
  coalesces due steps of one connector and action into such calls; each item keeps its own
  outcome, attempts and idempotency key. A batch connector may also define
  `max_batch_bytes(action) -> int | None`: the most JSON payload bytes one call may carry
  (found with `batch_limits`; None or absent: no byte limit).
- `purposes`: the consent purposes the connector serves (`email_marketing`, `analytics`,
  `personalization`, `advertising`); an empty set serves no personal-data purpose.

Adapters know nothing of gRPC. Built-in adapters keep their state through `ConnectorState`,
which the store implements. A change that reads before it writes (a counter, a list, a
"counted once per key" record) goes through `ConnectorState.transaction`, so concurrent
calls cannot lose each other's updates and a crash cannot keep half of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from switchboard.server.errors import ConnectorError, PermanentConnectorError

JsonDict = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class InvokeContext:
    """What an adapter may know about the call besides its payload."""

    idempotency_key: str
    run_id: str = ""
    step_index: int = -1
    attempt: int = 1
    deadline_s: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Connector(Protocol):
    """One marketing tool behind Switchboard. See the module docstring for the contract."""

    name: str
    kind: str
    actions: frozenset[str]

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Perform `action` with `payload`; return a JSON-compatible result."""
        ...

    async def health(self) -> None:
        """Raise if the tool cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release resources held by the adapter."""
        ...


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One step inside a batch call: its payload and its own context (idempotency key...)."""

    payload: JsonDict
    ctx: InvokeContext


#: One item's outcome in a batch: its result, or the error for that item alone.
ItemOutcome = JsonDict | ConnectorError


@runtime_checkable
class BatchConnector(Connector, Protocol):
    """A connector whose tool has a batch endpoint.

    `invoke_batch` returns one outcome per item, in the items' order: a partial failure
    fails only the items it names (a `RetryableConnectorError` item is retried alone, a
    `PermanentConnectorError` item fails alone). Raise instead when the whole call failed
    (e.g. 429 or 5xx for the request): every item is then retried or failed together.
    """

    def max_batch(self, action: str) -> int:
        """Items one call of `action` may carry; 1 means `action` is not batched."""
        ...

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Perform `action` for every item in as few vendor calls as the tool allows."""
        ...


def batch_limits(connector: Connector, action: str) -> tuple[int, int | None]:
    """Items and payload bytes one call of `action` may carry: (1, None) when not batched.

    `max_batch_bytes` is optional (added after `BatchConnector`), so it is looked up here
    rather than required by the protocol.
    """
    if not isinstance(connector, BatchConnector):
        return 1, None
    count = max(1, connector.max_batch(action))
    max_bytes = getattr(connector, "max_batch_bytes", None)
    limit: int | None = max_bytes(action) if callable(max_bytes) else None
    return count, limit


def purposes_of(connector: Connector) -> frozenset[str]:
    """The consent purposes a connector serves (none declared: none)."""
    purposes: Collection[str] = getattr(connector, "purposes", frozenset())
    return frozenset(purposes)


class StateTx(Protocol):
    """One connector's state inside one transaction (synchronous: no I/O of its own)."""

    def get(self, collection: str, key: str) -> JsonDict | None:
        """Return the value as this transaction sees it, or None."""
        ...

    def put(self, collection: str, key: str, value: JsonDict) -> None:
        """Insert or replace a value."""
        ...

    def delete(self, collection: str, key: str) -> bool:
        """Remove a value; return whether it existed."""
        ...


class ConnectorState(Protocol):
    """Durable key/value state for built-in adapters, scoped by connector and collection.

    `get`, `put`, `delete` and `scan` are each their own transaction. `transaction(fn)` runs
    `fn` as one: nothing else changes the state between its reads and its writes, and its
    writes are kept all together (durably, in the store) or not at all.
    """

    async def transaction(self, fn: Callable[[StateTx], T]) -> T:
        """Run `fn` atomically and return its result; an exception from `fn` keeps nothing.

        `fn` must not block or await: it runs while other writers wait.
        """
        ...

    async def get(self, collection: str, key: str) -> JsonDict | None:
        """Return the stored value or None."""
        ...

    async def put(self, collection: str, key: str, value: JsonDict) -> None:
        """Insert or replace a value."""
        ...

    async def delete(self, collection: str, key: str) -> bool:
        """Remove a value; return whether it existed."""
        ...

    async def scan(self, collection: str, prefix: str = "", limit: int = 1000) -> list[JsonDict]:
        """Values whose key starts with `prefix`, in key order."""
        ...


def require(payload: JsonDict, key: str, kind: type = str) -> Any:
    """Fetch a required payload field, or fail permanently with a message naming it."""
    value = payload.get(key)
    if value is None or value == "":
        raise PermanentConnectorError(f"payload field '{key}' is required")
    if not isinstance(value, kind):
        raise PermanentConnectorError(f"payload field '{key}' must be a {kind.__name__}")
    return value


def reject_unknown_options(
    name: str, kind: str, options: Mapping[str, Any], allowed: Collection[str] = ()
) -> None:
    """A settings error naming the options an adapter does not take, and those it does."""
    if unknown := sorted(set(options) - set(allowed)):
        takes = ", ".join(sorted(allowed)) or "none"
        raise ValueError(
            f"connector {name!r}: option(s) {', '.join(map(repr, unknown))} unknown; "
            f"{kind} takes {takes}"
        )


def require_action(connector: Connector, action: str) -> None:
    """Fail permanently (no retry can help) when `connector` has no such action."""
    if action not in connector.actions:
        raise PermanentConnectorError(
            f"connector {connector.name!r} ({connector.kind}) has no action {action!r}; "
            f"supported: {', '.join(sorted(connector.actions))}"
        )


def payload_contact(payload: JsonDict) -> tuple[JsonDict, str]:
    """The payload's contact and its id, both required."""
    contact: JsonDict = require(payload, "contact", dict)
    return contact, require(contact, "id")
