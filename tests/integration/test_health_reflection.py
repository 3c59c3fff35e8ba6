"""Health checking and server reflection are always on."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchboard.server.app.build import SERVICE_NAMES, App

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("", id="overall"),
        *(pytest.param(s, id=s.split(".")[-1]) for s in SERVICE_NAMES),
    ],
)
async def test_health_serving(channel: grpc.aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    resp = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    assert resp.status == SERVING


async def test_health_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Check(health_pb2.HealthCheckRequest(service="nope.v1.Nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_every_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for resp in stub.ServerReflectionInfo(iter([request])):
        names.update(s.name for s in resp.list_services_response.service)
    assert set(SERVICE_NAMES) <= names
    assert "grpc.health.v1.Health" in names


async def test_reflection_describes_contact_sync(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="switchboard.v1.ContactSync"
    )
    async for resp in stub.ServerReflectionInfo(iter([request])):
        protos = resp.file_descriptor_response.file_descriptor_proto
        assert protos, resp
        from google.protobuf import descriptor_pb2

        files = [descriptor_pb2.FileDescriptorProto.FromString(p) for p in protos]
        services = {s.name for f in files for s in f.service}
        assert "ContactSync" in services


async def test_health_not_serving_during_shutdown(app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        await app.health.enter_graceful_shutdown()
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize(
    ("symbol", "found"),
    [
        pytest.param("switchboard.v1.ContactSync.UpsertContact", True, id="method"),
        pytest.param("switchboard.v1.CampaignTriggers.WatchRun", True, id="streaming-method"),
        pytest.param("switchboard.v1.ContactSync.Nope", False, id="unknown-method"),
    ],
)
async def test_reflection_resolves_method_symbols(
    channel: grpc.aio.Channel, symbol: str, found: bool
) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    async for resp in stub.ServerReflectionInfo(iter([request])):
        assert bool(resp.file_descriptor_response.file_descriptor_proto) is found
        assert (resp.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]) is not found
