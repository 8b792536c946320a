"""sources/http.py: a thin request on the pool of a dlt retrying session keeps that session's retries, headers
and exceptions. Every fault is played by a loopback server, and each answer is compared with what the same
request through the session itself (``session.send``, what RESTClient uses) gives."""

from __future__ import annotations

import socket
import struct
import threading
from collections import deque

import pytest
import requests
from crm_invoices.sources.common import is_malformed, make_session, reason
from crm_invoices.sources.http import Redirected, ThinClient, json_body

OK_BODY = b'{"result": "Success", "data": [1, 2, 3]}'


class Loopback:
    """A one-connection-at-a-time HTTP/1.1 server on 127.0.0.1 with keep-alive. Each request takes the next
    scripted action (the last one repeats): ``("ok", status, body)``, ``("reset",)`` (RST before any answer),
    ``("cut",)`` (headers promise 100 bytes, 10 come, then RST), ``("stall", seconds)``, ``("redirect",)``.
    Every request is recorded as (method, path, headers, body)."""

    def __init__(self, *actions):
        self.actions = deque(actions)
        self.seen: list[tuple[str, str, dict, bytes]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def script(self, *actions) -> None:
        self.actions = deque(actions)

    def _next(self):
        return self.actions.popleft() if len(self.actions) > 1 else self.actions[0]

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := reader.readline()) not in (b"\r\n", b""):
                    name, value = h.decode().split(":", 1)
                    headers[name.strip()] = value.strip()
                body = reader.read(int(headers.get("Content-Length", 0)))
                self.seen.append((method, path, headers, body))
                action = self._next()
                if action[0] == "reset" or action[0] == "cut":
                    if action[0] == "cut":
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 100\r\n\r\n" + OK_BODY[:10])
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if action[0] == "stall":
                    threading.Event().wait(action[1])
                    action = ("ok", 200, OK_BODY)
                if action[0] == "redirect":
                    conn.sendall(b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://example.invalid/\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                    continue
                _, status, payload = action
                conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        except OSError:
            return
        finally:
            reader.close()
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def server():
    srv = Loopback(("ok", 200, OK_BODY))
    yield srv
    srv.close()


def _html_200(resp, exc) -> bool:  # a retry condition like SalesMan's PHP error page check
    return resp is not None and resp.status_code == 200 and is_malformed(resp)


def clients(base: str, attempts: int = 3, timeout: float = 5):
    retrying = make_session(timeout=timeout, max_attempts=attempts, backoff_factor=0, retry_condition=_html_200)
    headers = {"Content-Type": "application/json", "login": "me@example.com", "apikey": "SECRET-KEY-123"}
    return retrying, ThinClient(retrying, base + "/api/", headers), headers


def via_session(retrying, base: str, headers: dict, method: str = "POST", body: bytes | None = b"{}"):
    """The same request through the dlt session (its own retry wrapper), as RESTClient sends it."""
    session = retrying.session
    prepared = session.prepare_request(requests.Request(method, base + "/api/x", headers=headers, data=body))
    return session.send(prepared)


def outcome(call):
    """(status, body) of an answer, or (exception type, its reason) of a failure."""
    try:
        resp = call()
    except requests.RequestException as exc:
        return type(exc), reason(exc)
    return resp.status_code, resp.content


def test_post_sends_the_body_and_headers_exactly(server):
    retrying, thin, _ = clients(server.url)
    assert thin.usable
    resp = thin.request("POST", "invoice/list", body=json_body({"offset": 30, "name": "Ёж"}))
    assert (resp.status_code, resp.content, resp.url) == (200, OK_BODY, server.url + "/api/invoice/list")
    assert resp.json() == {"result": "Success", "data": [1, 2, 3]}
    method, path, headers, body = server.seen[-1]
    assert (method, path, body) == ("POST", "/api/invoice/list", b'{"offset": 30, "name": "\\u0401\\u0436"}')
    assert headers["Content-Type"] == "application/json"  # exactly: SalesMan ignores the body otherwise
    assert headers["Content-Length"] == str(len(body))
    assert (headers["apikey"], headers["login"]) == ("SECRET-KEY-123", "me@example.com")
    assert headers["User-Agent"] == retrying.session.headers["User-Agent"]  # the session's own headers too
    thin.request("GET", "invoice/7", headers={"Authorization": "token-1"})
    method, path, headers, body = server.seen[-1]
    assert (method, path, body, headers["Authorization"]) == ("GET", "/api/invoice/7", b"", "token-1")
    assert "Content-Length" not in headers


def test_the_same_json_body_as_requests(server):
    params = {"offset": 0, "active": False, "ids": [1, 2], "date": "2026-01-01", "nested": {"x": None}}
    prepared = requests.Request("POST", server.url, json=params).prepare()
    assert json_body(params) == prepared.body


@pytest.mark.parametrize("first", [("ok", 503, b"busy"), ("ok", 502, b""), ("reset",), ("cut",),
                                   ("ok", 200, b"<br /><b>Fatal error</b>")])
def test_a_transient_fault_is_retried_then_answered(server, first):
    retrying, thin, headers = clients(server.url)
    server.script(first, first, ("ok", 200, OK_BODY))
    resp = thin.request("POST", "x", body=b"{}")
    assert (resp.status_code, resp.content) == (200, OK_BODY)
    assert len(server.seen) == 3  # two faults, then the answer: the session's policy, three attempts
    server.script(first, first, ("ok", 200, OK_BODY))
    assert outcome(lambda: via_session(retrying, server.url, headers)) == (200, OK_BODY)


@pytest.mark.parametrize("fault", [("ok", 503, b"busy"), ("reset",), ("cut",), ("stall", 3)])
def test_a_lasting_fault_fails_as_the_session_fails(server, fault):
    retrying, thin, headers = clients(server.url, timeout=1)
    server.script(fault)
    thin_outcome = outcome(lambda: thin.request("POST", "x", body=b"{}"))
    assert len(server.seen) == 3
    assert thin_outcome == outcome(lambda: via_session(retrying, server.url, headers))
    expected = {"ok": 503, "reset": requests.ConnectionError, "cut": requests.exceptions.ChunkedEncodingError,
                "stall": requests.ReadTimeout}[fault[0]]
    assert thin_outcome[0] == expected
    assert "SECRET-KEY-123" not in str(thin_outcome)


def test_a_refused_connection_is_a_connection_error_not_a_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    retrying, thin, headers = clients(dead)
    failed = outcome(lambda: thin.request("POST", "x", body=b"{}"))
    assert failed == outcome(lambda: via_session(retrying, dead, headers))
    assert failed[0] is requests.ConnectionError


def test_a_redirect_hands_the_request_back_to_the_session(server):
    _, thin, _ = clients(server.url)
    server.script(("redirect",))
    with pytest.raises(Redirected):
        thin.request("POST", "x", body=b"{}")
    assert not thin.usable


def test_behind_a_proxy_or_for_a_url_requests_refuses_it_is_not_used(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert not clients(server.url)[1].usable
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert clients(server.url)[1].usable
    assert not clients("ftp://127.0.0.1")[1].usable
    assert not clients("127.0.0.1:80")[1].usable


def test_each_thread_runs_in_its_own_sessions_policy(server):
    retrying, thin, _ = clients(server.url)
    server.script(("ok", 503, b"busy"), ("ok", 200, OK_BODY))
    results = []
    worker = threading.Thread(target=lambda: results.append(thin.request("POST", "x", body=b"{}").status_code))
    worker.start()
    worker.join()
    assert results == [200] and len(server.seen) == 2
    assert thin.request("POST", "x", body=b"{}").status_code == 200
