"""The shared limits' rules, as plain functions over one connector's state.

Used by the store backend inside a write transaction; `redis.py` holds the same rules in
Lua. Times are wall-clock seconds (every process must read the same clock). The rules:

- rate: a token bucket of `burst` tokens refilled at `rate_per_s`; a taken call spends one
  token, and a call whose token is not there yet waits until it is (`delay_s`);
- slots: each process (holder) counts its calls in flight under a lease renewed while it
  claims; the slots of a process that died come free when its lease runs out;
- breaker: `breaker_failures` transient failures in a row open the circuit for
  `breaker_cooldown_s`; then one probe call may go (its lease ends a lost probe); a success
  closes the circuit, a failed probe opens it again;
- daily quota (UTC days): interactive calls may use all of it; bulk calls only what is left
  above the interactive reserve (`interactive_share` of the quota, rounded up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from switchboard.server.dispatch.limits.base import Lane, LimitSpec, Ticket

DAY_S = 86400.0
UNLIMITED = 1_000_000


@dataclass(slots=True)
class Slot:
    """One holder's calls in flight, and when its lease ends."""

    count: int
    expires: float


@dataclass(slots=True)
class SharedState:
    """One connector's shared state (bucket, breaker, quota, slots)."""

    tokens: float | None = None  # None: a full bucket (never used yet)
    at: float = 0.0
    failures: int = 0
    open_until: float = 0.0  # 0: closed
    probe_until: float = 0.0
    day: int = 0
    used: int = 0
    slots: dict[str, Slot] = field(default_factory=dict)

    def to_json(self) -> dict[str, float | int | None]:
        """The bucket, breaker and quota fields (slots are stored per holder)."""
        return {
            "tokens": self.tokens,
            "at": self.at,
            "failures": self.failures,
            "open_until": self.open_until,
            "probe_until": self.probe_until,
            "day": self.day,
            "used": self.used,
        }

    @classmethod
    def from_json(cls, value: dict[str, object] | None) -> SharedState:
        """Read back `to_json` (None: a fresh state)."""
        if not value:
            return cls()
        tokens = value.get("tokens")
        return cls(
            tokens=None if tokens is None else float(str(tokens)),
            at=float(str(value.get("at", 0.0))),
            failures=int(str(value.get("failures", 0))),
            open_until=float(str(value.get("open_until", 0.0))),
            probe_until=float(str(value.get("probe_until", 0.0))),
            day=int(str(value.get("day", 0))),
            used=int(str(value.get("used", 0))),
        )


def circuit(state: SharedState, now: float) -> str:
    """closed, open (cooling down) or half_open."""
    if state.open_until == 0.0:
        return "closed"
    return "open" if now < state.open_until else "half_open"


def _refill(state: SharedState, spec: LimitSpec, now: float) -> float:
    if state.tokens is None:
        state.tokens = float(spec.burst)
    elif spec.rate_per_s is not None:
        elapsed = max(0.0, now - state.at)
        state.tokens = min(float(spec.burst), state.tokens + elapsed * spec.rate_per_s)
    state.at = now
    return state.tokens


def _free_slots(state: SharedState, spec: LimitSpec, now: float) -> int:
    for holder in [h for h, s in state.slots.items() if s.expires <= now or s.count <= 0]:
        del state.slots[holder]
    return max(0, spec.max_concurrency - sum(s.count for s in state.slots.values()))


def _breaker_room(state: SharedState, now: float) -> int:
    which = circuit(state, now)
    if which == "closed":
        return UNLIMITED
    return int(which == "half_open" and state.probe_until <= now)


def _quota_left(state: SharedState, spec: LimitSpec, lane: Lane, now: float) -> int:
    if spec.daily_quota is None:
        return UNLIMITED
    today = int(now // DAY_S)
    if state.day != today:
        state.day, state.used = today, 0
    reserve = 0 if lane == "interactive" else spec.interactive_reserve
    return max(0, spec.daily_quota - reserve - state.used)


def budget(
    state: SharedState, spec: LimitSpec, now: float, lookahead_s: float = 0.0
) -> tuple[int, float | None]:
    """Calls that may start now (interactive lane), and seconds until the next token.

    Tokens due within `lookahead_s` count: their calls are claimed now and wait for their
    token (`Ticket.delay_s`), so a process that looks again only every poll still keeps
    the connector busy at its full rate, and never above it.
    """
    tokens = _refill(state, spec, now)
    ahead = 0.0 if spec.rate_per_s is None else tokens + spec.rate_per_s * lookahead_s
    rate_room = UNLIMITED if spec.rate_per_s is None else max(0, math.floor(ahead))
    room = min(
        rate_room,
        _free_slots(state, spec, now),
        _breaker_room(state, now),
        _quota_left(state, spec, "interactive", now),
    )
    wake = None
    if rate_room == 0 and spec.rate_per_s is not None:
        wake = (1.0 - ahead) / spec.rate_per_s
    return room, wake


def take(
    state: SharedState,
    spec: LimitSpec,
    holder: str,
    lanes: Sequence[Lane],
    now: float,
    lease_s: float,
) -> list[Ticket]:
    """Tickets for `lanes` calls in order: each takes a slot, quota and a rate token."""
    _refill(state, spec, now)
    tickets: list[Ticket] = []
    for lane in lanes:
        refused = _refusal(state, spec, lane, now)
        if refused is not None:
            tickets.append(refused)
            continue
        probe = circuit(state, now) == "half_open"
        if probe:
            state.probe_until = now + lease_s
        if spec.daily_quota is not None:
            state.used += 1
        mine = state.slots.setdefault(holder, Slot(0, 0.0))
        mine.count += 1
        mine.expires = now + lease_s
        delay = 0.0
        if spec.rate_per_s is not None and state.tokens is not None:
            state.tokens -= 1
            delay = 0.0 if state.tokens >= 0 else -state.tokens / spec.rate_per_s
        tickets.append(Ticket(True, delay_s=delay, probe=probe))
    return tickets


def _refusal(state: SharedState, spec: LimitSpec, lane: Lane, now: float) -> Ticket | None:
    if _breaker_room(state, now) == 0:
        wait = max(0.0, state.open_until - now) if now < state.open_until else 0.0
        return Ticket(False, reason="circuit open", retry_in_s=wait)
    if _quota_left(state, spec, lane, now) == 0:
        tomorrow = (int(now // DAY_S) + 1) * DAY_S
        return Ticket(False, reason=f"daily quota used up ({lane} lane)", retry_in_s=tomorrow - now)
    if _free_slots(state, spec, now) == 0:
        return Ticket(False, reason="no free concurrency slot")
    return None


def renew(state: SharedState, holder: str, now: float, lease_s: float) -> bool:
    """Extend this holder's slot lease while it is alive; True if anything changed."""
    mine = state.slots.get(holder)
    if mine is None or mine.count <= 0 or mine.expires - now > lease_s / 2:
        return False
    mine.expires = now + lease_s
    return True


def report(state: SharedState, spec: LimitSpec, ok: bool, probe: bool, now: float) -> str:
    """Tell the breaker how a call went; returns the new circuit state if it changed ("")."""
    if ok:
        was_open = state.open_until != 0.0
        state.failures, state.open_until, state.probe_until = 0, 0.0, 0.0
        return "closed" if was_open else ""
    state.failures += 1
    if not probe and state.failures < spec.breaker_failures:
        return ""
    opened = probe or state.open_until == 0.0
    state.open_until = now + spec.breaker_cooldown_s
    state.probe_until = 0.0
    return "open" if opened else ""


def release(state: SharedState, holder: str, count: int = 1) -> None:
    """Free `count` of this holder's slots."""
    mine = state.slots.get(holder)
    if mine is not None:
        mine.count = max(0, mine.count - count)
