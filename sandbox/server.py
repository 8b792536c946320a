"""The sandbox HTTP server: one loopback process that hosts every emulated provider.

Providers claim requests by path prefix (SalesMan ``/developer/v3/``, Bitrix24 ``/rest/``, ONLYOFFICE
``/api/2.0/``), so one port serves all three, as three different hosts would in real life. The server counts
requests per provider and per method so tests and the benchmark can compare them with the API's lower bound,
and applies the failure injection that each provider's :class:`Faults` asks for.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from .world import World


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # header names as sent (case preserved)
    body: bytes

    def header(self, name: str, exact_case: bool = False) -> str | None:
        if exact_case:
            return self.headers.get(name)
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # send half the body, then reset the connection (a fault)

    @classmethod
    def json(cls, payload: object, status: int = 200, headers: dict[str, str] | None = None,
             content_type: str = "application/json; charset=utf-8", encoder=None) -> Response:
        text = (encoder or (lambda o: json.dumps(o, ensure_ascii=False)))(payload)
        return cls(status, text.encode("utf-8"), {"Content-Type": content_type, **(headers or {})})


@dataclass
class Faults:
    """Failure injection for one provider. Counters are consumed as requests arrive.

    ``fail_next``: the next N requests answer ``fail_status`` (5xx) with ``fail_body``.
    ``nonjson_next``: the next N requests answer HTTP 200 with an HTML body (a PHP fatal error, say).
    ``truncate_next``: the next N requests answer HTTP 200 with the JSON cut in half.
    ``reset_next``: the next N requests get the headers and half the body, then the connection is reset (RST).
    ``stall_next``: the next N requests get no answer for ``stall_seconds`` (a client's read timeout fires).
    ``delay``: seconds to sleep before each answer.
    ``on_request``: hook ``(provider, request, n)`` called before handling, e.g. to change data between
    page requests; ``n`` counts this provider's requests.
    ``only_methods``: if set, the counters above only fire on requests whose method key is in it.
    """

    fail_next: int = 0
    fail_status: int = 500
    fail_body: bytes = b"Internal Server Error"
    nonjson_next: int = 0
    truncate_next: int = 0
    reset_next: int = 0
    stall_next: int = 0
    stall_seconds: float = 30.0
    delay: float = 0.0
    on_request: object | None = None
    only_methods: set[str] | None = None


class Provider(Protocol):
    name: str
    prefix: str
    faults: Faults

    def handle(self, request: Request) -> Response: ...

    def method_key(self, request: Request) -> str: ...

    def demo_env(self, base_url: str) -> dict[str, str]: ...


class Sandbox:
    """Owns the world, the providers and the HTTP server. Use :meth:`start` / :meth:`stop`, or ``with``."""

    def __init__(self, world: World | None = None, providers: list[Provider] | None = None,
                 host: str = "127.0.0.1", port: int = 0, **provider_options: dict):
        self.world = world or World.generate()
        self.providers: list[Provider] = providers if providers is not None else default_providers(
            self.world, provider_options)
        self.by_name = {p.name: p for p in self.providers}
        self.requests: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.sandbox = self
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    # ---- helpers for tests and the benchmark ---------------------------------------------------------------
    def __getitem__(self, name: str) -> Provider:
        return self.by_name[name]

    def demo_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for provider in self.providers:
            env.update(provider.demo_env(self.base_url))
        return env

    def count(self, provider: str, method: str | None = None) -> int:
        with self._lock:
            return sum(n for (p, m), n in self.requests.items()
                       if p == provider and (method is None or m == method))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- dispatch --------------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        # A provider that owns more than one path (Bitrix24: the portal's /rest/ and its OAuth server) says
        # so through handles(); the others are matched by their prefix.
        provider = next((p for p in self.providers if (p.handles(request.path) if hasattr(p, "handles")
                                                        else request.path.startswith(p.prefix))), None)
        if provider is None:
            return Response(404, b"no emulated provider at this path", {"Content-Type": "text/plain"})
        method = provider.method_key(request)
        with self._lock:
            self.requests[(provider.name, method)] += 1
            n = self.count_unlocked(provider.name)
        faults = provider.faults
        if faults.on_request is not None:
            faults.on_request(provider, request, n)
        if faults.delay:
            time.sleep(faults.delay)
        if faults.only_methods is None or method in faults.only_methods:
            with self._lock:
                if faults.fail_next > 0:
                    faults.fail_next -= 1
                    return Response(faults.fail_status, faults.fail_body, {"Content-Type": "text/html"})
                if faults.nonjson_next > 0:
                    faults.nonjson_next -= 1
                    return Response(200, b"<br />\n<b>Fatal error</b>:  Uncaught mysqli_sql_exception: "
                                         b"Deadlock found when trying to get lock",
                                    {"Content-Type": "application/json; charset=utf-8"})
                truncate = faults.truncate_next > 0
                if truncate:
                    faults.truncate_next -= 1
                reset = faults.reset_next > 0
                if reset:
                    faults.reset_next -= 1
                stall = faults.stall_next > 0
                if stall:
                    faults.stall_next -= 1
        else:
            truncate = reset = stall = False
        if stall:  # outside the lock: other requests go on while this one hangs
            time.sleep(faults.stall_seconds)
        with self.world.lock:
            response = provider.handle(request)
        if truncate:
            response.body = response.body[: max(1, len(response.body) // 2)]
        response.reset = reset
        return response

    def count_unlocked(self, provider: str) -> int:
        return sum(n for (p, _m), n in self.requests.items() if p == provider)


def default_providers(world: World, options: dict) -> list[Provider]:
    """Every provider the registry lists, each with its options (``salesman={"page_size": 50}``)."""
    from crm_invoices.pipelines.registry import SOURCES

    return [spec.make_provider(world, **options.get(spec.name, {})) for spec in SOURCES.values()]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def handle_error(self, request, client_address) -> None:
        # a client that hangs up (a timeout, a pool closing) is normal life for a server, not a traceback
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without TCP_NODELAY, headers and body go out in two segments and Nagle + delayed ACK add ~40 ms
        # to every request: the emulator would be slower than any real server.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:  # quiet: tests read stderr of the CLI, not of the sandbox
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                          {k: v for k, v in self.headers.items()}, body)
        try:
            response = self.server.sandbox.dispatch(request)
        except Exception as exc:  # an emulator bug must look like a server error, not hang the client
            response = Response(500, f"sandbox error: {exc!r}".encode(), {"Content-Type": "text/plain"})
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.reset:  # half the promised body, then RST (SO_LINGER 0): "connection reset by peer"
            self.wfile.write(response.body[: max(1, len(response.body) // 2)])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve
