"""The ceiling: a bare grpc.aio server answering GetContact-shaped calls with a fixed reply.

Same grpcio, same event loop choice and the same protobuf messages as Switchboard, so the
difference measured is what Switchboard adds (validation, cache, store, interceptors).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc

from switchboard.v1 import contacts_pb2

ECHO_METHOD = "/switchboard.bench.Echo/GetContact"


def fixed_reply() -> contacts_pb2.GetContactResponse:
    """A reply of the same size as a typical stored contact."""
    contact = contacts_pb2.Contact(
        id="c_01M847PNZXWYG14T8DV5Y61M89",
        email="bench-00001@example.com",
        first_name="Bench",
        last_name="Mark",
        company="Acme Corp",
        job_title="Director of Marketing",
        country="FR",
        phone="+33612345678",
        lists=["newsletter", "customers"],
        version=3,
        attributes={"plan": "pro", "source": "bench"},
    )
    contact.consent.opt_in = True
    contact.consent.source = "bench"
    contact.created_at.FromMicroseconds(1_700_000_000_000_000)
    contact.updated_at.FromMicroseconds(1_700_000_000_000_000)
    return contacts_pb2.GetContactResponse(contact=contact)


def parse_option(text: str) -> tuple[str, int | str]:
    """`name=value` from the command line; an integer value stays an integer for gRPC core."""
    name, _, value = text.partition("=")
    return (name, int(value)) if value.lstrip("-").isdigit() else (name, value)


async def serve(port: int, options: list[tuple[str, int | str]] | None = None) -> None:
    reply = fixed_reply()

    async def get(
        request: contacts_pb2.GetContactRequest, context: Any
    ) -> contacts_pb2.GetContactResponse:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "switchboard.bench.Echo",
        {
            "GetContact": grpc.unary_unary_rpc_method_handler(
                get,
                request_deserializer=contacts_pb2.GetContactRequest.FromString,
                response_serializer=contacts_pb2.GetContactResponse.SerializeToString,
            )
        },
    )
    server = grpc.aio.server(options=options or None)
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"echo serving on 127.0.0.1:{bound}", file=sys.stderr, flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    # gRPC core channel arguments, `name=value` (bench/floor.py tries several).
    parser.add_argument("--option", action="append", type=parse_option, default=[])
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.port, args.option))
    else:
        asyncio.run(serve(args.port, args.option))


if __name__ == "__main__":
    main()
