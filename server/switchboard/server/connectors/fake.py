"""A scriptable in-memory adapter for tests and demos.

Configured through options (so a settings file can make it slow, flaky or down) and, in
tests, through `script()` and `set_healthy()`. The most recent `RECORDED_CALLS`
invocations are recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

from switchboard.server.connectors.base import (
    ConnectorState,
    InvokeContext,
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
_OPTIONS = frozenset({"actions", "fail_times", "fail_mode", "latency_s", "healthy"})


class FakeConnector:
    """Answers from a script, else echoes its params.

    Options:
        actions: action names it accepts besides "echo" (default none).
        fail_times: the first N invocations fail (default 0).
        fail_mode: "retryable" or "permanent": how those invocations fail.
        latency_s: seconds to wait before answering (default 0).
        healthy: whether `health()` passes (default true).
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
        self._invocations = 0
        self._state = state

    def script(self, action: str, *outcomes: Outcome) -> None:
        """Queue outcomes for `action`: a dict is returned, an exception raised, in order."""
        if action not in self.actions:
            raise ValueError(f"connector {self.name!r} has no action {action!r}")
        self._scripts.setdefault(action, deque()).extend(outcomes)

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
