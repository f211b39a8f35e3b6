"""A real HTTP receiver on loopback for notification tests: it records every request and can
answer 500 (or any status) for the next N, like a target that is down for a while."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_ok(self, secret: str) -> bool:
        ts = self.headers.get("x-spot-controller-timestamp", "")
        given = self.headers.get("x-spot-controller-signature", "")
        mac = hmac.new(secret.encode(), ts.encode() + b"." + self.body, hashlib.sha256)
        return hmac.compare_digest(given, "sha256=" + mac.hexdigest())


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0  # answer the next N requests with ``fail_status``
    fail_status: int = 500
    fail_every: int = 0  # also answer every Nth request with ``fail_status`` (0: never)
    answer: bytes = b"{}"  # a robot's answer: b'{"errcode":0,"errmsg":"ok"}'
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Received]:
        """Requests answered 2xx (what the sender counts as delivered)."""
        with self.lock:
            return [r for r in self.requests if r.headers.get("x-test-answered") == "ok"]

    def events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.delivered()]


@contextmanager
def receiving(receiver: Receiver | None = None) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 on a free port for the duration of the block."""
    rec = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.lock:
                failing = rec.fail_next > 0 or (
                    rec.fail_every > 0 and (len(rec.requests) + 1) % rec.fail_every == 0
                )
                if rec.fail_next > 0:
                    rec.fail_next -= 1
                headers["x-test-answered"] = "fail" if failing else "ok"
                rec.requests.append(Received(parts.path, parse_qs(parts.query), headers, body))
            status = rec.fail_status if failing else 200
            answer = b"{}" if failing else rec.answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
