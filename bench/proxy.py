"""A forwarding HTTP proxy that adds a network round trip: ``python -m bench.proxy --upstream URL --rtt-ms 80``.

The client talks to the proxy, the proxy to the sandbox. Every request waits ``rtt_ms`` before it goes on
(the time a request and its answer spend on the wire, in one sleep), then is forwarded on a kept-alive
connection of its own; requests in flight at once wait side by side, as on a real network. Not emulated: the
extra round trip of a TCP (or TLS) handshake on a new connection, bandwidth. Same control protocol as
``bench.server``: the first stdout line is ``{"base_url"}``; stdin lines ``stats`` / ``reset``; EOF stops it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from crm_invoices.sandbox import server as sandbox_server

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}


class _Server(sandbox_server._Server):  # daemon threads; a client hanging up is not a traceback
    request_queue_size = 128

    def __init__(self, address, upstream: str, rtt: float):
        super().__init__(address, _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.rtt = rtt
        self.lock = threading.Lock()
        self.requests = 0


class _Handler(sandbox_server._Handler):  # HTTP/1.1 keep-alive, TCP_NODELAY, quiet
    server: _Server
    _upstream: http.client.HTTPConnection | None = None  # one per client connection

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(*self.server.upstream, timeout=600)
            self._upstream.connect()
            self._upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._upstream

    def _exchange(self, body: bytes | None, headers: dict[str, str]):
        conn = self._connection()
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        return response, response.read()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        with self.server.lock:
            self.server.requests += 1
        if self.server.rtt:
            time.sleep(self.server.rtt)
        try:
            try:
                response, data = self._exchange(body, headers)
            except (http.client.HTTPException, ConnectionError):  # a kept-alive connection the server closed
                self._drop()
                response, data = self._exchange(body, headers)
        except (http.client.HTTPException, OSError) as exc:
            self._drop()
            data = f"bench proxy: upstream failed: {exc!r}".encode()
            self.send_response(502)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if response.will_close:
            self._drop()

    def _drop(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def finish(self) -> None:
        self._drop()
        super().finish()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy")
    parser.add_argument("--upstream", required=True, help="the sandbox's base URL, e.g. http://127.0.0.1:8765")
    parser.add_argument("--rtt-ms", type=float, default=80.0, help="round trip added to every request")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = _Server(("127.0.0.1", args.port), args.upstream, args.rtt_ms / 1000)
    threading.Thread(target=server.serve_forever, name="proxy", daemon=True).start()
    host, port = server.server_address[:2]
    print(json.dumps({"base_url": f"http://{host}:{port}"}), flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            with server.lock:
                server.requests = 0
            print(json.dumps({"ok": True}), flush=True)
        else:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with server.lock:
                print(json.dumps({"requests": server.requests, "cpu": usage.ru_utime + usage.ru_stime}), flush=True)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
