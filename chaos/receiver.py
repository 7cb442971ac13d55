"""An outside system's webhook endpoint, in the runner's process: it records every push with its
idempotency key (``X-Yujing-Delivery``) and checks its signature, and, once armed, holds the
next push open so the runner can kill the case service while that delivery is in flight.

A held push is recorded as received before it is answered: the receiver has it, as a real one
that acted on a request whose sender then died would. Whether the service sends it again is what
the run measures.
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cases.service import verify
from chaos.compare import Push

HOLD_LIMIT_SECONDS = 120.0  # a held push is answered after this even if nobody released it


class WebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.pushes: list[Push] = []
        self.held_key: str | None = None
        self.holding = threading.Event()  # a push is being held open now
        self._armed = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, name="chaos-receiver", daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signed = verify(receiver.secret, self.headers.get("X-Yujing-Timestamp", ""), body,
                                self.headers.get("X-Yujing-Signature", ""))
                receiver._received(Push(self.headers.get("X-Yujing-Delivery", ""), body, signed))
                # The sender may be dead by now (that is the point of holding): its socket is gone.
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _received(self, push: Push) -> None:
        with self._lock:
            self.pushes.append(push)
            hold = self._armed
            self._armed = False
            if hold:
                self.held_key = push.key
        if hold:
            self.holding.set()
            self._released.wait(HOLD_LIMIT_SECONDS)
            self.holding.clear()

    def arm(self) -> None:
        """Hold the next push open until :meth:`release`."""
        with self._lock:
            self._armed = True

    @property
    def armed(self) -> bool:
        return self._armed

    def release(self) -> None:
        self._released.set()

    def received(self) -> list[Push]:
        with self._lock:
            return list(self.pushes)

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
