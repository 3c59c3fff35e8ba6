"""nginx as the gRPC load balancer, with a generated config in a temporary prefix.

Open-source nginx checks upstreams passively only: a replica that refuses or drops a
connection counts as a failure, and after `max_fails` of them within `fail_timeout` it is
left out for `fail_timeout`, then tried again with live traffic. A request that could not
be sent to a replica (connection refused) goes to the next one; a request already sent is
not re-sent (gRPC calls are POSTs, not idempotent to nginx); nginx then answers
`grpc-status: 14` (UNAVAILABLE) itself, which gRPC clients retry. A bare HTTP 502 would
not be retried: gRPC counts a call with response headers as answered.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

_INSTALL = "apt-get update -qq && apt-get install -y -qq nginx"

# One line per attempt that reached nginx: the HTTP status (502 when no replica answered),
# the gRPC status (a header on errors answered at once, else a trailer), and the replica(s).
_LOG_FORMAT = (
    "$status grpc=$sent_http_grpc_status$sent_trailer_grpc_status "
    'upstream="$upstream_addr" upstream_status="$upstream_status"'
)


def find_nginx() -> tuple[str | None, str]:
    """The nginx binary, installing the Debian package when root; else (None, why)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found:
        return found, ""
    if os.geteuid() != 0:
        return None, "nginx (Debian package nginx) is not installed and not root to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        _INSTALL, shell=True, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx", ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"could not install nginx ({_INSTALL!r}: {tail[0]})"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render_config(prefix: Path, port: int, upstreams: list[int]) -> str:
    """The nginx.conf text: one HTTP/2 listener passing every call to the replicas."""
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams
    )
    return f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format grpc '{_LOG_FORMAT}';
    access_log {prefix}/access.log grpc;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream switchboard {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        http2_max_concurrent_streams 1024;
        location / {{
            grpc_pass grpc://switchboard;
            grpc_connect_timeout 1s;
            grpc_read_timeout 30s;
            grpc_next_upstream error timeout;
            # No replica answered: say UNAVAILABLE the gRPC way (a trailers-only answer),
            # which clients retry. A bare HTTP 502 also reads as UNAVAILABLE, but gRPC
            # does not retry it (response headers arrived, so the call counts as answered).
            error_page 502 503 504 = @unavailable;
        }}
        location @unavailable {{
            default_type application/grpc;
            add_header grpc-status 14 always;
            add_header grpc-message "no replica answered; try again" always;
            return 204;
        }}
    }}
}}
"""


class Nginx:
    """One nginx master (and its worker) in the foreground, stopped by its pid."""

    def __init__(self, binary: str, upstreams: list[int], port: int | None = None) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="switchboard-nginx-"))
        os.chmod(self.prefix, 0o755)  # the worker (nobody, when run as root) writes temp files
        self.port = port or free_port()
        conf = self.prefix / "nginx.conf"
        conf.write_text(render_config(self.prefix, self.port, upstreams))
        self._stderr = (self.prefix / "stderr.log").open("w")
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(conf)],
            stdout=self._stderr,
            stderr=subprocess.STDOUT,
        )
        self._wait_listening(timeout_s=10.0)

    @property
    def target(self) -> str:
        """The address callers use."""
        return f"127.0.0.1:{self.port}"

    def _wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen:\n" + self._logs())

    def _logs(self) -> str:
        parts = [self.prefix / "stderr.log", self.prefix / "error.log"]
        return "\n".join(p.read_text()[-800:] for p in parts if p.exists())

    def attempt_statuses(self) -> Counter[str]:
        """Attempts seen by nginx, by outcome: `OK`, `grpc=<code>` or `http=<status>`."""
        counts: Counter[str] = Counter()
        log = self.prefix / "access.log"
        for line in log.read_text().splitlines() if log.exists() else []:
            status, grpc_part = line.split(" ", 2)[:2]
            # nginx writes "-" for an unset variable: one of the two is always unset.
            code = grpc_part.removeprefix("grpc=").replace("-", "")
            if code not in ("0", ""):
                counts[f"grpc={code}"] += 1  # a replica's error, or nginx's @unavailable
            else:
                counts["OK" if status == "200" else f"http={status}"] += 1
        return counts

    def stop(self) -> None:
        """Quit (SIGQUIT, graceful) our own master by pid, then remove the prefix."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        shutil.rmtree(self.prefix, ignore_errors=True)
