"""What every client command shares: connection options, exit codes and one-line errors."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from switchboard.client import Switchboard, SwitchboardError

from .local_key import find_local_key

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_TARGET = "localhost:50051"


class Exit(IntEnum):
    """Exit codes that scripts can rely on (documented in the README)."""

    OK = 0
    SERVER_ERROR = 1  # the server answered with an error status
    USAGE = 2  # bad arguments or unreadable input (click's own code for usage errors)
    PARTIAL = 3  # an import finished, but some rows were rejected
    UNREACHABLE = 4  # no answer in time: UNAVAILABLE or DEADLINE_EXCEEDED
    RUN_FAILED = 5  # the run ended, but not with SUCCEEDED
    INTERRUPTED = 130  # Ctrl-C


_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class CommandError(click.ClickException):
    """Printed as one line, `Error: …`, with its own exit code."""

    def __init__(self, message: str, exit_code: int = Exit.SERVER_ERROR) -> None:
        super().__init__(message)
        # click declares `exit_code` a ClassVar, but reads it from the instance it catches.
        self.exit_code = exit_code  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the server, from the common options."""

    target: str
    api_key: str | None
    timeout: float

    def client(self, *, separate_connection: bool = False) -> Switchboard:
        """A new asynchronous client; use it with `async with`.

        With `separate_connection`, the client opens its own TCP connection instead of
        sharing one with other clients of the same target (gRPC's default).
        """
        options = [("grpc.use_local_subchannel_pool", 1)] if separate_connection else []
        return Switchboard(self.target, api_key=self.api_key, timeout=self.timeout, options=options)


#: `-o/--output FILE` of the commands that write a file (`-`, the default: standard output).
output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="File to write; `-` (the default) is standard output.",
)


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --target, --api-key and --timeout; the command receives `conn: Connection`."""

    @click.option(
        "--target",
        envvar="SWITCHBOARD_TARGET",
        default=DEFAULT_TARGET,
        show_default=True,
        help="Server host:port (env: SWITCHBOARD_TARGET).",
    )
    @click.option(
        "--api-key",
        envvar="SWITCHBOARD_API_KEY",
        help="Sent as `authorization: Bearer KEY` (env: SWITCHBOARD_API_KEY). Default for a "
        "local target: the key `switchboard serve --local` wrote.",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=10.0,
        show_default=True,
        help="Deadline of each call, in seconds.",
    )
    @functools.wraps(command)
    def wrapper(target: str, api_key: str | None, timeout: float, **kwargs: Any) -> Any:
        return command(conn=Connection(target, api_key or _local_key(target), timeout), **kwargs)

    return wrapper


def _local_key(target: str) -> str | None:
    found = find_local_key(target)
    if found is None:
        return None
    key, path = found
    click.echo(f"switchboard: using the local development key from {path}", err=True)
    return key


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a command's coroutine; client errors become one line and an exit code."""
    try:
        return asyncio.run(coro)
    except SwitchboardError as exc:
        code = Exit.UNREACHABLE if exc.code in _UNREACHABLE else Exit.SERVER_ERROR
        raise CommandError(_one_line(exc), code) from None
    except KeyboardInterrupt:
        raise CommandError("interrupted", Exit.INTERRUPTED) from None


def _one_line(exc: SwitchboardError) -> str:
    # The server's message usually names the bad fields already; list only the others.
    extra = [f"{v.field}: {v.description}" for v in exc.field_violations]
    extra = [text for text in extra if text not in exc.message]
    suffix = f" ({'; '.join(extra)})" if extra else ""
    return f"{exc.code.name}: {exc.message}{suffix}".replace("\n", " ")


def async_command(func: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """Lets a click command be written as a coroutine function, run by `run`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return run(_awaited(func(*args, **kwargs)))

    return wrapper


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def as_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data with the proto field names (as grpcurl shows them)."""
    return MessageToDict(message, preserving_proto_field_name=True)


def echo_json(message: Message) -> None:
    """Prints a message as one line of JSON."""
    click.echo(json.dumps(as_dict(message), sort_keys=True))


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --json: print the reply as one line of JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON, one object a line.")(
        command
    )


def short_enum(name: str) -> str:
    """`RUN_STATUS_SUCCEEDED` → `succeeded`."""
    for prefix in (
        "RUN_STATUS_",
        "STEP_STATUS_",
        "CONNECTOR_HEALTH_",
        "LEAD_GRADE_",
        "LEAD_STATUS_",
    ):
        if name.startswith(prefix):
            return name.removeprefix(prefix).lower()
    return name.lower()
