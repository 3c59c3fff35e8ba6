"""Authentication: who is calling. Sets `CURRENT_PRINCIPAL` for the rest of the call.

Missing or bad credentials → UNAUTHENTICATED. Open services (health, reflection by default)
pass without credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from switchboard.server.auth.authenticator import Authenticator
from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.errors import Unauthenticated
from switchboard.server.interceptors.errors import abort_with
from switchboard.server.interceptors.wrapping import Context, Guard, GuardInterceptor, service_of


class AuthenticationInterceptor(GuardInterceptor):
    """Refuses calls without valid credentials, except to open services."""

    def __init__(self, authenticator: Authenticator, open_services: Collection[str]) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._open = frozenset(open_services)

    def guard_for(self, method: str) -> Guard | None:
        return None if service_of(method) in self._open else self._authenticated

    @asynccontextmanager
    async def _authenticated(self, context: Context) -> AsyncIterator[None]:
        try:
            principal = await self._authenticator.authenticate(context.invocation_metadata() or ())
        except Unauthenticated as exc:
            await abort_with(exc, context, "authentication")
        token = CURRENT_PRINCIPAL.set(principal)
        try:
            yield
        finally:
            CURRENT_PRINCIPAL.reset(token)
