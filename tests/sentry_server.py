"""A local Sentry ingest endpoint for tests: real ``HttpTransport`` traffic, no network.

sentry-sdk posts gzip'd envelopes to ``/api/<project>/envelope/``. This server decodes
them and keeps every item, so a test can assert on the event exactly as Sentry would
receive it (after processors, serialization and ``before_send``). It listens on
127.0.0.1 with an ephemeral port and runs in a daemon thread; ``close()`` stops it.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/api/(?P<project>[^/]+)/envelope/?$")


@dataclass
class Item:
    """One envelope item: its header and its decoded JSON payload (or raw bytes)."""

    headers: dict[str, Any]
    payload: Any
    raw_size: int
    project: str
    envelope_headers: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Split an envelope into its header and ``(item header, payload bytes)`` pairs.

    Items carry an explicit ``length`` or end at the next newline, as the envelope
    format allows both.
    """
    first, _, rest = body.partition(b"\n")
    env_headers = json.loads(first) if first.strip() else {}
    items: list[tuple[dict[str, Any], bytes]] = []
    pos = 0
    while pos < len(rest):
        nl = rest.find(b"\n", pos)
        if nl == -1:
            nl = len(rest)
        header_line = rest[pos:nl]
        pos = nl + 1
        if not header_line.strip():
            continue
        headers = json.loads(header_line)
        length = headers.get("length")
        if isinstance(length, int):
            payload = rest[pos : pos + length]
            pos += length
            if rest[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = rest.find(b"\n", pos)
            if end == -1:
                end = len(rest)
            payload = rest[pos:end]
            pos = end + 1
        items.append((headers, payload))
    return env_headers, items


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # only when sentry-sdk chose brotli

        return bytes(brotli.decompress(body))
    return body


class SentryServer:
    """Threaded HTTP server that records decoded envelope items; use as a context manager."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.requests = 0
        self.errors: list[str] = []
        self._cond = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = _PATH.match(self.path.split("?", 1)[0])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if match is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                try:
                    raw = _decode(body, self.headers.get("Content-Encoding", ""))
                    env_headers, parts = parse_envelope(raw)
                    decoded = []
                    for headers, payload in parts:
                        content: Any = payload
                        if headers.get("type") in ("event", "transaction", "client_report"):
                            content = json.loads(payload)
                        decoded.append(
                            Item(headers, content, len(payload), match["project"], env_headers)
                        )
                except Exception as exc:  # the test asserts on server.errors
                    with server._cond:
                        server.errors.append(f"{type(exc).__name__}: {exc}")
                        server._cond.notify_all()
                    self.send_response(400)
                    self.end_headers()
                    return
                with server._cond:
                    server.requests += 1
                    server.items.extend(decoded)
                    server._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="sentry-test-server", daemon=True
        )
        self._thread.start()

    def dsn(self, project: int = 1) -> str:
        return f"http://public@127.0.0.1:{self.port}/{project}"

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._cond:
            return [i.payload for i in self.items if i.type == "event"]

    def clear(self) -> None:
        with self._cond:
            self.items.clear()
            self.errors.clear()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first received event matching ``predicate``; AssertionError after ``timeout``."""

        def found() -> dict[str, Any] | None:
            for item in self.items:
                if item.type == "event" and predicate(item.payload):
                    return dict(item.payload)
            return None

        with self._cond:
            ok = self._cond.wait_for(lambda: found() is not None or bool(self.errors), timeout)
            if self.errors:
                raise AssertionError(f"ingest server could not decode an envelope: {self.errors}")
            event = found()
            if not ok or event is None:
                seen = [
                    (e.get("event_id"), (e.get("exception") or {}).get("values", [{}])[-1:])
                    for e in self.events
                ]
                raise AssertionError(f"no matching event within {timeout}s; received: {seen}")
            return event

    def event(self, event_id: str | None, timeout: float = 10.0) -> dict[str, Any]:
        """The event with this id (as returned by ``capture_exception``)."""
        assert event_id, "capture returned no event id (dropped before sending)"
        return self.wait_for(lambda e: e.get("event_id") == event_id, timeout)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SentryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
