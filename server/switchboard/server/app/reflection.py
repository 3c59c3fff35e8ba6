"""Server reflection that also resolves method names (`pkg.Service.Method`).

With protobuf's upb backend, `DescriptorPool.FindFileContainingSymbol` does not find
methods, so `grpcurl describe switchboard.v1.ContactSync.UpsertContact` failed with
"Symbol not found". This pool view falls back to the service that owns the method.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection


class MethodAwarePool:
    """Delegates to a real pool; resolves `Service.Method` to the service's file."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def FindFileContainingSymbol(self, symbol: str) -> Any:
        """The file defining `symbol`, methods included."""
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service_name, _, method = symbol.rpartition(".")
            service = self._pool.FindServiceByName(service_name)  # KeyError if not a service
            if method not in service.methods_by_name:
                raise
            return service.file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def enable(server: grpc.aio.Server, service_names: tuple[str, ...]) -> None:
    """Register reflection for `service_names` (plus reflection itself) on `server`."""
    names = (*service_names, reflection.SERVICE_NAME)
    # The reflection servicer only calls pool methods, which MethodAwarePool provides.
    pool: Any = MethodAwarePool(descriptor_pool.Default())
    reflection.enable_server_reflection(names, server, pool=pool)
