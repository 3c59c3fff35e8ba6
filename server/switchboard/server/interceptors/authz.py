"""Authorization: the caller must hold the scope `scopes.SCOPE_BY_METHOD` names for the method.

Runs after authentication. A method missing from the table is refused: closed by default.
Open services (health, reflection) pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.errors import PermissionDenied, Unauthenticated
from switchboard.server.interceptors.errors import abort_with
from switchboard.server.interceptors.wrapping import Context, Guard, GuardInterceptor, service_of


class AuthorizationInterceptor(GuardInterceptor):
    """Checks the scope table; PERMISSION_DENIED names the scope that is missing."""

    def __init__(self, scope_by_method: Mapping[str, str], open_services: Collection[str]) -> None:
        super().__init__()
        self._scopes = dict(scope_by_method)
        self._open = frozenset(open_services)

    def guard_for(self, method: str) -> Guard | None:
        return None if service_of(method) in self._open else self._guard_for(method)

    def _guard_for(self, method: str) -> Callable[[Context], AbstractAsyncContextManager[None]]:
        needed = self._scopes.get(method)

        @asynccontextmanager
        async def allowed(context: Context) -> AsyncIterator[None]:
            principal = CURRENT_PRINCIPAL.get()
            if principal is None:
                await abort_with(Unauthenticated("missing credentials"), context, method)
            elif needed is None:
                await abort_with(
                    PermissionDenied(f"{method} is not open to callers"), context, method
                )
            elif needed not in principal.scopes:
                await abort_with(
                    PermissionDenied(f"{method} needs scope {needed!r}"), context, method
                )
            yield

        return allowed
