"""A web server on loopback for the tests that fetch pages: routes set per test, every request recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Pages(BaseHTTPRequestHandler):
    """Routes: path -> (status, headers, body, delay before answering). Every request is recorded."""

    routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
    seen: list[dict[str, str]] = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        status, headers, body, delay = self.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"no", 0.0))
        time.sleep(delay)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler: type[Pages] = Pages) -> Iterator[ThreadingHTTPServer]:
    """Serve `handler`'s routes (emptied first) on a free loopback port until the block ends."""
    handler.routes, handler.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
