"""WSGI and ASGI middleware: every request runs inside :func:`sa_explain.operation`.

The request becomes the explanation's ``context`` (kind ``"request"``, name
``"POST /orders"``), and its ``key`` identifies the payload so that two identical
submissions can be named as twins by the duplicate detector:

* the ``Idempotency-Key`` header when the client sends one (digested: the header
  value never appears in an explanation);
* otherwise, for methods that change state (POST, PUT, PATCH, DELETE), a digest of the
  method, path, query string, the ``Authorization`` header (so two users sending the
  same body are not twins) and the body, when the body is at most ``max_body`` bytes;
* otherwise no key (the request still gets a context, it just has no twins).

Reading the body for the digest buffers it (at most ``max_body`` bytes) and hands the
application an identical stream, so the application is unaffected. A 5xx response
records the outcome ``failure`` even when nothing raised. With WSGI, the operation
covers the call of the application (where Flask and Django run the view); a streamed
body generated later by the server runs outside it.

Flask: ``app.wsgi_app = WSGIMiddleware(app.wsgi_app)``. FastAPI/Starlette:
``app.add_middleware(ASGIMiddleware)`` (or wrap the app). See ``examples/``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from sa_explain.context import operation
from sa_explain.duplicates import digest

__all__ = ["ASGIMiddleware", "WSGIMiddleware", "request_key"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_MAX_BODY = 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_key(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    scope_headers: Sequence[str] = ("authorization",),
) -> str | None:
    """The payload key of a request: digest of the Idempotency-Key, else of its content.

    ``headers`` must have lower-case names. Returns None when the request has neither
    an idempotency key nor a digestible body (a GET, or a body over the limit).
    """
    idem = headers.get("idempotency-key")
    if idem:
        return digest((), {"idempotency_key": idem, "path": path})
    if method.upper() not in WRITE_METHODS or body is None:
        return None
    scoped = {h: headers.get(h) for h in scope_headers if headers.get(h)}
    return digest((method.upper(), path, query, body), {"scope": scoped})


class WSGIMiddleware:
    """Wrap a WSGI application so each request is an operation (Flask, Django, …)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        scope_headers: Sequence[str] = ("authorization",),
        name: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.scope_headers = tuple(h.lower() for h in scope_headers)
        self.name = name

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if length > self.max_body:
            return None
        stream = environ.get("wsgi.input")
        if stream is None or length == 0:
            return b""
        body: bytes = stream.read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "") or "/")
        key: str | None = None
        try:
            headers = {
                k[5:].replace("_", "-").lower(): str(v)
                for k, v in environ.items()
                if k.startswith("HTTP_")
            }
            body = None
            if "idempotency-key" not in headers and method in WRITE_METHODS:
                body = self._body(environ)
            key = request_key(
                method,
                path,
                str(environ.get("QUERY_STRING", "")),
                headers,
                body,
                scope_headers=self.scope_headers,
            )
        except Exception:
            key = None
        name = self.name(environ) if self.name is not None else f"{method} {path}"
        rid = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex
        with operation(name, key=key, id=str(rid), kind="request") as ctx:

            def _start(status: str, *args: Any) -> Any:
                if status[:1] == "5":
                    ctx["_outcome"] = "failure"
                return start_response(status, *args)

            # The view runs inside this call. A streaming body (a generator that the
            # server iterates later) runs after the operation has ended, without context.
            return self.app(environ, _start)


class ASGIMiddleware:
    """Wrap an ASGI application so each HTTP request is an operation (FastAPI, Starlette)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        scope_headers: Sequence[str] = ("authorization",),
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.scope_headers = tuple(h.lower() for h in scope_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", "/"))
        headers: dict[str, str] = {}
        for k, v in scope.get("headers") or ():
            headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        buffered: list[Message] = []
        body: bytes | None = None
        if "idempotency-key" not in headers and method in WRITE_METHODS:
            body, buffered = await self._read(receive)
        try:
            key = request_key(
                method,
                path,
                (scope.get("query_string") or b"").decode("latin-1"),
                headers,
                body,
                scope_headers=self.scope_headers,
            )
        except Exception:
            key = None
        pending = list(buffered)

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        rid = headers.get("x-request-id") or uuid.uuid4().hex
        with operation(f"{method} {path}", key=key, id=rid, kind="request") as ctx:

            async def watch(message: Message) -> None:
                if message.get("type") == "http.response.start" and (
                    int(message.get("status", 200)) >= 500
                ):
                    ctx["_outcome"] = "failure"
                await send(message)

            await self.app(scope, replay, watch)

    async def _read(self, receive: Receive) -> tuple[bytes | None, list[Message]]:
        """Buffer the request body up to ``max_body``; past it, stop and give up the digest."""
        messages: list[Message] = []
        size = 0
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message.get("type") != "http.request":
                return None, messages
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body:
                return None, messages
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), messages
