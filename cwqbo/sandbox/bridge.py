"""Serve any `handle(httpx.Request) -> httpx.Response` over loopback HTTP, or in-process as an httpx transport.

Loopback lets clients that are not ours (python-quickbooks, pyconnectwise, a browser) and the `cwqbo`
command in a subprocess talk to the same simulators the in-process tests use; it binds 127.0.0.1 only.
`in_process_transport` is the socket-free twin: the same handler, and a simulated dropped connection
reaches the client as the transport error it would get over the socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from cwqbo.sandbox.faults import DropConnection

Handler = Callable[[httpx.Request], httpx.Response]
LOOPBACK = "127.0.0.1"


def _make_request_handler(handle: Handler) -> type[BaseHTTPRequestHandler]:
    class _RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:  # the client went away mid-request (killed): a server never handles half a body
                self.close_connection = True
                return
            address = self.server.server_address  # (host, port): the server binds an IPv4 address
            port = address[1] if isinstance(address, tuple) else ""
            host = self.headers.get("Host") or f"{LOOPBACK}:{port}"
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=[(k, v) for k, v in self.headers.items()],
                content=body,
            )
            try:
                response = handle(request)
            except DropConnection:
                self.close_connection = True
                self.connection.close()
                return
            content = response.read()
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    continue
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            return

    return _RequestHandler


def in_process_transport(handle: Handler) -> httpx.MockTransport:
    """`handle` as an httpx transport with no socket.

    A `DropConnection` (the simulator committed, or hung, then closed the connection) surfaces as
    `httpx.ReadError`, carrying the simulator's reason. Over loopback httpx reports the same close as
    `RemoteProtocolError`; both are `httpx.TransportError`, the only thing client code handles, so it takes the
    same retry and recovery path either way.
    """

    def serve(request: httpx.Request) -> httpx.Response:
        try:
            return handle(request)
        except DropConnection as exc:
            raise httpx.ReadError(str(exc), request=request) from exc

    return httpx.MockTransport(serve)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1; `url` is its base URL."""

    def __init__(self, handle: Handler, port: int = 0) -> None:
        self._server = ThreadingHTTPServer((LOOPBACK, port), _make_request_handler(handle))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
