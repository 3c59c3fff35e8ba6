"""Who is calling: set by the auth interceptor for the duration of a call."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its name, how it proved it, and the scopes it holds."""

    name: str
    scopes: frozenset[str]
    method: str  # "api_key" or "jwt"


# Each gRPC call runs in its own task, so a value set here is the current call's caller.
CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar("principal", default=None)
