"""Process-level runtime choices: the event loop and the protobuf backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from google.protobuf.internal import api_implementation

T = TypeVar("T")
log = logging.getLogger(__name__)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when it is installed (measured +9-14 % requests/s with
    grpc.aio), else on the standard asyncio loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(main)
    return uvloop.run(main)


def check_protobuf_backend() -> str:
    """Warn when protobuf is not on its fast upb backend; return the backend's name."""
    backend = api_implementation.Type()
    if backend != "upb":
        log.warning(
            "protobuf runs on its %r backend, not upb: encoding and decoding are several "
            "times slower. Install the protobuf wheel for this platform (not a pure-Python "
            "build) and unset PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION.",
            backend,
        )
    return str(backend)
