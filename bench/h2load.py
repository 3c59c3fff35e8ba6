"""Server capacity with a cheap client: h2load (nghttp2) sending pre-encoded requests."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from google.protobuf.message import Message

_RPS = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)")
_DONE = re.compile(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def available() -> bool:
    """True when the h2load binary is installed (Debian package nghttp2-client)."""
    return shutil.which("h2load") is not None


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: no compression flag, 4-byte big-endian length."""
    body = message.SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def run_grpc(
    port: int, method: str, message: Message, in_flight: int, seconds: float, warmup: float
) -> dict[str, float]:
    """Drive `method` with the same request over h2c at `in_flight` concurrent streams."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(grpc_frame(message))
        body = Path(f.name)
    try:
        return _run(
            [
                *_load_args(in_flight, seconds, warmup),
                "-d",
                str(body),
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                f"http://127.0.0.1:{port}{method}",
            ]
        )
    finally:
        body.unlink()


def run_http1(url: str, in_flight: int, seconds: float, warmup: float) -> dict[str, float]:
    """Drive a GET over HTTP/1.1 keep-alive connections (one request in flight each)."""
    return _run(
        [
            "--h1",
            "-c",
            str(in_flight),
            "-m",
            "1",
            "-t",
            "1",
            "-D",
            str(max(1, round(seconds))),
            "--warm-up-time",
            str(max(1, round(warmup))),
            url,
        ]
    )


def _load_args(in_flight: int, seconds: float, warmup: float) -> list[str]:
    # Many connections with 2 streams each, so that SO_REUSEPORT, which hashes each
    # connection to one worker, spreads the load evenly: with 8 connections, 2 workers
    # measured 0.97-1.04x one worker (uneven splits), with 32 connections 1.29x. The same
    # shape is used for every gRPC target so the ratios compare like with like.
    clients = max(1, in_flight // 2)
    return [
        "-c",
        str(clients),
        "-m",
        str(max(1, in_flight // clients)),
        "-t",
        "1",
        "-D",
        str(max(1, round(seconds))),
        "--warm-up-time",
        str(max(1, round(warmup))),
    ]


def _run(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        ["h2load", *args], capture_output=True, text=True, timeout=120, check=False
    ).stdout
    rps, mean, done = _RPS.search(out), _MEAN.search(out), _DONE.search(out)
    if not (rps and mean and done):
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    if int(done.group(3)):
        raise RuntimeError(f"h2load saw failed requests:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "mean_ms": float(mean.group(1)) * _UNIT_MS[mean.group(2)],
        "calls": float(done.group(2)),
    }
