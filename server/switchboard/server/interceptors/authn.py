"""Authentication: who is calling. Sets `CURRENT_PRINCIPAL` for the rest of the call.

Missing or bad credentials → UNAUTHENTICATED. Open services (health, reflection by default)
pass without credentials.
"""

from __future__ import annotations

from collections.abc import Collection

from switchboard.server.auth.authenticator import Authenticator
from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.interceptors.chain import Context, Entry, service_of


class AuthenticationGuard:
    """Refuses calls without valid credentials, except to open services."""

    def __init__(self, authenticator: Authenticator, open_services: Collection[str]) -> None:
        self._authenticator = authenticator
        self._open = frozenset(open_services)
        self._entry = Entry(self._authenticate, is_async=True)

    def entry_for(self, method: str) -> Entry | None:
        """Open services need no credentials."""
        return None if service_of(method) in self._open else self._entry

    async def _authenticate(self, context: Context) -> None:
        # Raises Unauthenticated, which the chain maps to UNAUTHENTICATED.
        principal = await self._authenticator.authenticate(context.invocation_metadata() or ())
        # Not reset on exit: grpc.aio runs each call in a task of its own.
        CURRENT_PRINCIPAL.set(principal)
