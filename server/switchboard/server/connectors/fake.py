"""A scriptable in-memory adapter for tests and demos.

Configured through options (so a settings file can make it slow, flaky or down) and, in
tests, through `script()` and `set_healthy()`. The most recent `RECORDED_CALLS`
invocations are recorded in `calls`.

With `max_batch` above 1 it is also a `BatchConnector`: `invoke_batch` records each call's
items in `batch_calls`, fails whole calls through `script_batch()` or `fail_times`, and
single items through `fail_item()`.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from switchboard.server.connectors.base import (
    BatchItem,
    ConnectorState,
    InvokeContext,
    ItemOutcome,
    JsonDict,
    reject_unknown_options,
    require_action,
)
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

Outcome = JsonDict | Exception
RECORDED_CALLS = 1000
_OPTIONS = frozenset(
    {"actions", "fail_times", "fail_mode", "latency_s", "healthy", "max_batch", "max_batch_bytes"}
)


class FakeConnector:
    """Answers from a script, else echoes its params.

    Options:
        actions: action names it accepts besides "echo" (default none).
        fail_times: the first N invocations fail (default 0).
        fail_mode: "retryable" or "permanent": how those invocations fail.
        latency_s: seconds to wait before answering (default 0).
        healthy: whether `health()` passes (default true).
        max_batch: items one `invoke_batch` call may carry (default 1: not batched).
        max_batch_bytes: payload bytes one batch call may carry (default 0: no limit).
    """

    kind: str = "fake"

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        self.actions: frozenset[str] = _actions(name, options.get("actions", ["echo"]))
        self.fail_times = int(_non_negative(name, "fail_times", options.get("fail_times", 0), int))
        self.fail_mode: Literal["retryable", "permanent"] = _fail_mode(name, options)
        self._failure: type[ConnectorError] = (
            PermanentConnectorError if self.fail_mode == "permanent" else RetryableConnectorError
        )
        self.latency_s = _non_negative(name, "latency_s", options.get("latency_s", 0.0), float)
        healthy = options.get("healthy", True)
        if not isinstance(healthy, bool):
            raise ValueError(f"connector {name!r}: option 'healthy' must be a bool")
        self.healthy = healthy
        # The most recent calls only: a fake under sustained load (make bench) would otherwise
        # grow by ~4 KB a call.
        self.calls: deque[tuple[str, JsonDict, InvokeContext]] = deque(maxlen=RECORDED_CALLS)
        self._scripts: dict[str, deque[Outcome]] = {}
        self._max_batch = max(
            1, int(_non_negative(name, "max_batch", options.get("max_batch", 1), int))
        )
        self._max_batch_bytes = int(
            _non_negative(name, "max_batch_bytes", options.get("max_batch_bytes", 0), int)
        )
        #: Each batch call: its action and its items' idempotency keys, in order.
        self.batch_calls: deque[tuple[str, list[str]]] = deque(maxlen=RECORDED_CALLS)
        #: The payload of every item of every batch call, in order.
        self.batch_payloads: deque[JsonDict] = deque(maxlen=RECORDED_CALLS)
        self._batch_scripts: dict[str, deque[Exception]] = {}
        self._item_failures: dict[str, deque[ConnectorError]] = {}
        self._invocations = 0
        self._state = state

    def script(self, action: str, *outcomes: Outcome) -> None:
        """Queue outcomes for `action`: a dict is returned, an exception raised, in order."""
        if action not in self.actions:
            raise ValueError(f"connector {self.name!r} has no action {action!r}")
        self._scripts.setdefault(action, deque()).extend(outcomes)

    def script_batch(self, action: str, *failures: Exception) -> None:
        """Make the next batch calls of `action` raise these, one call each (whole-batch)."""
        self._batch_scripts.setdefault(action, deque()).extend(failures)

    def fail_item(self, idempotency_key: str, *errors: ConnectorError) -> None:
        """Fail the item with this key in its next batch calls, one error per call."""
        self._item_failures.setdefault(idempotency_key, deque()).extend(errors)

    def fail_email(self, email: str, *errors: ConnectorError) -> None:
        """Fail the items whose payload's contact has this email, one error per call (for
        deliveries whose idempotency key is not known in advance, like a chunk run's)."""
        self._item_failures.setdefault(f"email:{email}", deque()).extend(errors)

    def max_batch(self, action: str) -> int:
        """The `max_batch` option, for every action."""
        return self._max_batch

    def max_batch_bytes(self, action: str) -> int | None:
        """The `max_batch_bytes` option (None when unset)."""
        return self._max_batch_bytes or None

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Record the call; fail it whole or per item as scripted, else echo each item."""
        self.batch_calls.append((action, [item.ctx.idempotency_key for item in items]))
        self.batch_payloads.extend(item.payload for item in items)
        self._invocations += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        require_action(self, action)
        if self._invocations <= self.fail_times:
            raise self._failure(f"connector {self.name!r}: scripted failure {self._invocations}")
        scripted = self._batch_scripts.get(action)
        if scripted:
            raise scripted.popleft()
        return [self._item_outcome(action, item) for item in items]

    def _item_outcome(self, action: str, item: BatchItem) -> ItemOutcome:
        failures = self._item_failures.get(item.ctx.idempotency_key)
        contact = item.payload.get("contact")
        if not failures and isinstance(contact, dict):
            failures = self._item_failures.get(f"email:{contact.get('email')}")
        if failures:
            return failures.popleft()
        echo = copy.deepcopy(item.payload.get("params", {}))
        return {"ok": True, "action": action, "attempt": item.ctx.attempt, "echo": echo}

    def set_healthy(self, healthy: bool) -> None:
        """Make `health()` pass or fail from now on."""
        self.healthy = healthy

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Record the call, wait `latency_s`, then fail, play the script, or echo."""
        self.calls.append((action, copy.deepcopy(payload), ctx))
        self._invocations += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        require_action(self, action)
        if self._invocations <= self.fail_times:
            raise self._failure(f"connector {self.name!r}: scripted failure {self._invocations}")
        queue = self._scripts.get(action)
        if queue:
            outcome = queue.popleft()
            if isinstance(outcome, Exception):
                raise outcome
            return copy.deepcopy(outcome)
        echo = copy.deepcopy(payload.get("params", {}))
        return {"ok": True, "action": action, "attempt": ctx.attempt, "echo": echo}

    async def health(self) -> None:
        """Raise `RetryableConnectorError` while unhealthy."""
        if not self.healthy:
            raise RetryableConnectorError(f"connector {self.name!r} is unhealthy")

    async def aclose(self) -> None:
        """Nothing to release."""


def _actions(name: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
        raise ValueError(f"connector {name!r}: option 'actions' must be a list of action names")
    return frozenset({"echo", *value})


def _non_negative(name: str, option: str, value: Any, kind: type[int] | type[float]) -> float:
    # An int is a fine float; a float is not a fine count. bool is neither.
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed) or value < 0:
        raise ValueError(f"connector {name!r}: option {option!r} must be a {kind.__name__} >= 0")
    return float(value)


def _fail_mode(name: str, options: Mapping[str, Any]) -> Literal["retryable", "permanent"]:
    mode = options.get("fail_mode", "retryable")
    if mode == "retryable":
        return "retryable"
    if mode == "permanent":
        return "permanent"
    raise ValueError(f"connector {name!r}: option 'fail_mode' must be 'retryable' or 'permanent'")
