"""Property: random and malformed requests — raw bytes, random messages, corrupted
messages — to every RPC, with and without credentials, get a proper status code (never
UNKNOWN or INTERNAL; UNAUTHENTICATED without a key), and the server keeps serving."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.process import ServerProcess
from tests.rawcalls import Rpc, all_rpcs

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
# Streams that follow the log: a valid request is answered by waiting for new events, so
# running into the (shorter) deadline is the proper end of the call.
FOLLOWING = {"/switchboard.v1.Events/StreamEvents"}
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.text(max_size=40),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_ENUM: st.integers(-3, 12),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=20),
}


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of `descriptor`'s type with a random subset of fields set at random."""
    msg = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2 or field.message_type.GetOptions().map_entry:
                continue
            if field.message_type.full_name.startswith("google.protobuf."):
                continue  # well-known types: left to the dedicated tests
            sub = draw(_message(field.message_type, depth + 1))
            target = getattr(msg, field.name)
            if field.is_repeated:
                target.add().CopyFrom(sub)
            else:
                target.CopyFrom(sub)
            continue
        strategy = _SCALARS.get(field.type)
        if strategy is None:
            continue
        value = draw(strategy)
        try:
            if field.is_repeated:
                getattr(msg, field.name).append(value)
            else:
                setattr(msg, field.name, value)
        except (ValueError, TypeError):
            pass  # e.g. an enum value proto3 rejects in Python
    return msg


@st.composite
def _frame(draw: st.DrawFn, rpc: Rpc) -> bytes:
    """Raw random bytes, a random valid message, or a valid message corrupted."""
    kind = draw(st.sampled_from(["raw", "message", "corrupted"]))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    data = draw(_message(rpc.descriptor.input_type)).SerializeToString()
    if kind == "message" or not data:
        return data
    cut = draw(st.integers(0, len(data) - 1))
    return data[:cut] + bytes([draw(st.integers(0, 255))]) + data[cut + 1 : cut + 1 + cut % 3]


@st.composite
def _call(draw: st.DrawFn) -> tuple[Rpc, list[bytes]]:
    rpc = draw(st.sampled_from(all_rpcs()))
    frames = draw(st.lists(_frame(rpc), min_size=1, max_size=3))
    return rpc, frames


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A child process: the server's own use of `random` (retry jitter) cannot disturb
    # Hypothesis, and a crash would show as a dead process.
    db = tmp_path_factory.mktemp("fuzz") / "sb.db"
    env = {"SWITCHBOARD_LIMITS__RATE_PER_S": "0", "SWITCHBOARD_AUTH__ENABLED": "true"}
    proc = ServerProcess(db, env, ("--local",))
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def sync_channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture(scope="module")
def local_key(server: ServerProcess) -> str:
    """The development key the server printed (auth is on, as in production)."""
    assert server.proc.stderr is not None
    for _ in range(5):
        match = re.search(r"Bearer (sb_[\w-]+)", server.proc.stderr.readline())
        if match:
            return match.group(1)
    raise AssertionError("no local key printed")


def _send(channel: grpc.Channel, rpc: Rpc, frames: list[bytes], key: str | None) -> grpc.StatusCode:
    md = (("authorization", f"Bearer {key}"),) if key else None
    try:
        if rpc.shape == "unary_unary":
            channel.unary_unary(rpc.path)(frames[0], timeout=5.0, metadata=md)
        elif rpc.shape == "unary_stream":
            timeout = 1.0 if rpc.path in FOLLOWING else 5.0
            list(channel.unary_stream(rpc.path)(frames[0], timeout=timeout, metadata=md))
        elif rpc.shape == "stream_unary":
            channel.stream_unary(rpc.path)(iter(frames), timeout=5.0, metadata=md)
        else:
            list(channel.stream_stream(rpc.path)(iter(frames), timeout=5.0, metadata=md))
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return,attr-defined]
    return grpc.StatusCode.OK


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(call=_call(), with_key=st.booleans())
def test_every_answer_is_a_proper_status(
    sync_channel: grpc.Channel, local_key: str, call: tuple[Rpc, list[bytes]], with_key: bool
) -> None:
    rpc, frames = call
    code = _send(sync_channel, rpc, frames, local_key if with_key else None)
    allowed = ALLOWED if with_key else {grpc.StatusCode.UNAUTHENTICATED}
    if with_key and rpc.path in FOLLOWING:
        allowed = ALLOWED | {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert code in allowed, f"{rpc.path} answered {code} to {frames!r}"


def test_server_still_serves_after_the_fuzzing(
    server: ServerProcess, sync_channel: grpc.Channel, local_key: str
) -> None:
    health = sync_channel.unary_unary("/grpc.health.v1.Health/Check")
    listed = sync_channel.unary_unary("/switchboard.v1.Connectors/ListConnectors")
    md = (("authorization", f"Bearer {local_key}"),)
    answers = (health(b"", timeout=5.0), len(listed(b"", timeout=5.0, metadata=md)) > 0)
    assert (answers, server.proc.poll()) == ((b"\x08\x01", True), None)
