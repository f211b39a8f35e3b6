"""What every listener of the daemon shares: binding at start, and uvicorn without signals."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from controller.errors import ConfigError


def bind(addr: str, variable: str) -> socket.socket:
    """Bind ``host:port`` now, so a taken port is a clear one-line error (naming ``variable``)
    at start rather than a traceback once the daemon runs."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{variable}: cannot listen on {addr}: {exc.strerror or exc}") from None
    return sock


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
