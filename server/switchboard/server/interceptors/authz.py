"""Authorization: the caller must hold the scope `scopes.SCOPE_BY_METHOD` names for the method.

Runs after authentication. A method missing from the table is refused: closed by default.
Open services (health, reflection) pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.errors import PermissionDenied, Unauthenticated
from switchboard.server.interceptors.chain import Context, Entry, service_of


class AuthorizationGuard:
    """Checks the scope table; PERMISSION_DENIED names the scope that is missing."""

    def __init__(self, scope_by_method: Mapping[str, str], open_services: Collection[str]) -> None:
        self._scopes = dict(scope_by_method)
        self._open = frozenset(open_services)

    def entry_for(self, method: str) -> Entry | None:
        """The scope check for `method`; open services are not checked."""
        if service_of(method) in self._open:
            return None
        needed = self._scopes.get(method)

        def allowed(context: Context) -> None:
            principal = CURRENT_PRINCIPAL.get()
            if principal is None:
                raise Unauthenticated("missing credentials")
            if needed is None:
                raise PermissionDenied(f"{method} is not open to callers")
            if needed not in principal.scopes:
                raise PermissionDenied(f"{method} needs scope {needed!r}")

        return Entry(allowed)
