"""Undecodable request bytes get INVALID_ARGUMENT on every RPC, not grpcio's UNKNOWN."""

from __future__ import annotations

import grpc
import pytest

from tests.rawcalls import Rpc, all_rpcs, call_raw

# b"\xff": a field tag whose varint never ends. b"\x0a\x05ab": a length-delimited field 1
# that claims 5 bytes and carries 2.
BAD_FRAMES = [
    pytest.param(b"\xff", id="unterminated-varint"),
    pytest.param(b"\x0a\x05ab", id="truncated-field"),
]
RPCS = [pytest.param(rpc, id=rpc.path.rsplit(".", 1)[1]) for rpc in all_rpcs()]


@pytest.mark.parametrize("frame", BAD_FRAMES)
@pytest.mark.parametrize("rpc", RPCS)
async def test_undecodable_request_is_invalid_argument(
    channel: grpc.aio.Channel, rpc: Rpc, frame: bytes
) -> None:
    code = await call_raw(channel, rpc, [frame])
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_error_names_the_message_type(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/switchboard.v1.ContactSync/GetContact")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"\xff", timeout=5.0)
    assert "switchboard.v1.GetContactRequest" in (caught.value.details() or "")


async def test_bad_frame_after_good_ones_in_a_stream(channel: grpc.aio.Channel) -> None:
    rpc = next(r for r in all_rpcs() if r.path.endswith("/ScoreLeads"))
    code = await call_raw(channel, rpc, [b"", b"\xff"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_valid_raw_bytes_still_decode(channel: grpc.aio.Channel) -> None:
    rpc = next(r for r in all_rpcs() if r.path.endswith("/ListConnectors"))
    assert await call_raw(channel, rpc, [b""]) == grpc.StatusCode.OK
