"""Call any Switchboard RPC with raw request bytes, whatever its streaming shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import MethodDescriptor

from switchboard.server.common.scopes import API_MODULES


@dataclass(frozen=True)
class Rpc:
    """One method: its path and whether each side streams."""

    path: str
    client_streaming: bool
    server_streaming: bool
    descriptor: MethodDescriptor

    @property
    def shape(self) -> str:
        """unary_unary, unary_stream, stream_unary or stream_stream."""
        return (
            f"{'stream' if self.client_streaming else 'unary'}_"
            f"{'stream' if self.server_streaming else 'unary'}"
        )


def all_rpcs() -> list[Rpc]:
    """Every method of every Switchboard service, read from the descriptors."""
    rpcs = []
    for module in API_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                rpcs.append(Rpc(path, m.client_streaming, m.server_streaming, m))
    return rpcs


async def _frames(frames: Sequence[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


async def call_raw(
    channel: grpc.aio.Channel,
    rpc: Rpc,
    frames: Sequence[bytes],
    *,
    deadline_s: float = 5.0,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> grpc.StatusCode:
    """Send `frames` (the first only, for unary requests) and return the final status code."""
    md = tuple(metadata) if metadata else None
    try:
        if rpc.shape == "unary_unary":
            await channel.unary_unary(rpc.path)(frames[0], timeout=deadline_s, metadata=md)
        elif rpc.shape == "unary_stream":
            async for _ in channel.unary_stream(rpc.path)(
                frames[0], timeout=deadline_s, metadata=md
            ):
                pass
        elif rpc.shape == "stream_unary":
            await channel.stream_unary(rpc.path)(_frames(frames), timeout=deadline_s, metadata=md)
        else:
            async for _ in channel.stream_stream(rpc.path)(
                _frames(frames), timeout=deadline_s, metadata=md
            ):
                pass
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
