"""A stand-in for the CRM's webhook receiver: a real HTTP server on a free port that records what
it is sent and can be told to fail (503) for a client's first deliveries."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from domain import signature


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class CrmReceiver:
    secret: str
    # client id -> how many deliveries about that client to answer 503 first (-1: all of them)
    failing: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                about = json.loads(body)["data"].get("clientId", "")
                left = receiver.failing.get(about, 0)
                if left > 0:
                    receiver.failing[about] = left - 1
                status = 503 if left != 0 else 200
                receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/wavelaunch"

    def delivered(self) -> list[Received]:
        """The deliveries it accepted, each checked against the shared secret."""
        ok = [r for r in self.received if r.status == 200]
        for r in ok:
            assert signature.valid(r.body, r.headers.get("x-webhook-signature"), self.secret)
        return ok

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
