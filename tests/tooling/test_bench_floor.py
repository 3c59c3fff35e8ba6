"""The per-call floor bench passes gRPC core options to the echo server as typed values."""

from __future__ import annotations

import grpc
import pytest

from bench.echo_server import parse_option


def test_integer_option_values_become_integers() -> None:
    assert parse_option("grpc.http2.bdp_probe=0") == ("grpc.http2.bdp_probe", 0)
    assert parse_option("grpc.max_receive_message_length=65536") == (
        "grpc.max_receive_message_length",
        65536,
    )
    assert parse_option("grpc.some_signed=-1") == ("grpc.some_signed", -1)


def test_text_option_values_stay_text() -> None:
    assert parse_option("grpc.optimization_target=throughput") == (
        "grpc.optimization_target",
        "throughput",
    )


async def test_parsed_options_are_accepted_by_a_grpc_aio_server() -> None:
    # gRPC core rejects a string where it expects an integer (and vice versa) only when the
    # server is built, so build one with every kind of value the floor bench passes.
    options = [
        parse_option("grpc.optimization_target=latency"),
        parse_option("grpc.http2.bdp_probe=0"),
        parse_option("grpc.max_send_message_length=65536"),
    ]
    server = grpc.aio.server(options=options)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert port > 0
    finally:
        await server.stop(None)


@pytest.mark.parametrize("text", ["grpc.name", "grpc.name="])
def test_option_without_value_is_an_empty_text(text: str) -> None:
    assert parse_option(text) == ("grpc.name", "")
