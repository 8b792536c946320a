"""Thin requests on the pooled connections of a dlt ``requests.Client`` session: what requests and dlt's
RESTClient do per request, minus what the same request to the same host repeats every time.

Why: a call that a load makes thousands of times (SalesMan's every ``POST``, ONLYOFFICE's ``GET invoice/{id}``)
costs the client its per-request CPU. Measured against the local emulators (client CPU per call, body
decoded): RESTClient 0.8-1.1 ms, requests' ``HTTPAdapter.send`` with a prepared request ~0.43 ms, the
adapter's own urllib3 pool ~0.27 ms. What RESTClient adds is per-request work whose result never changes
within a run: preparing and re-quoting the URL, merging the session's settings, walking the environment for
proxies and ``~/.netrc``, a cookie jar, a log line.

What stays the same as a request sent through the session (``session.send``):

- the connection pool: the one of the adapter the dlt session mounts for the URL, with the session's TLS
  settings (``verify``, ``cert``: the environment's ``REQUESTS_CA_BUNDLE`` and the like, resolved once);
- the headers: the session's own (dlt's ``User-Agent``, ``Accept-Encoding``, ``Connection``) under the
  caller's, headers set to ``None`` dropped as requests drops them;
- the timeout: the session's (``request_timeout`` of the dlt client), connect and read;
- the retry policy: every attempt runs inside the ``Retrying`` dlt built for this thread's session (statuses,
  exceptions, the caller's ``retry_condition``, backoff, ``Retry-After``), rebuilt when dlt rebuilds the
  session;
- the exceptions: urllib3's errors mapped as ``HTTPAdapter.send`` maps them (a refused connection is a
  ``ConnectionError``, a connect timeout a ``ConnectTimeout``, ...) and the body read as ``Response.content``
  reads it (a connection cut in the middle of the body is a ``ChunkedEncodingError``), so the callers' error
  messages read the same whichever path a request took.

Not done here: cookies (none of these APIs sets one: the credentials go in headers), proxies and redirects.
Behind a proxy :attr:`ThinClient.usable` is False, and a redirect (an ``http://`` URL the server moves to
``https://``) makes :meth:`ThinClient.request` raise :class:`Redirected` and the client unusable from then
on: the caller sends that request, and every later one, through its session, which handles both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import requests
from requests.cookies import cookiejar_from_dict
from requests.utils import get_encoding_from_headers, select_proxy, urlparse
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util import Timeout

__all__ = ["Redirected", "ThinClient", "json_body"]


class Redirected(Exception):
    """The server redirected a request: send it (and the later ones) through the session instead."""


def json_body(value: Any) -> bytes:
    """A JSON body exactly as requests encodes ``json=value`` (its own JSON module, ``allow_nan=False``)."""
    return requests.compat.json.dumps(value, allow_nan=False).encode("utf-8")


class ThinClient:
    """Requests below ``base_url`` on the connection pool of ``retrying`` (a dlt ``requests.Client``), each
    attempt wrapped in the retry policy of the calling thread's dlt session (dlt keeps one per thread).

    ``settings``: the environment's ``proxies``/``verify``/``cert`` for ``base_url`` when the caller resolved
    them already (``Session.merge_environment_settings``); resolved here otherwise. A URL requests would
    refuse (no scheme, an unknown one) makes the client unusable too, so the caller's session reports it."""

    def __init__(self, retrying, base_url: str, headers: Mapping[str, str | None] | None = None, *,
                 settings: Mapping[str, Any] | None = None):
        self.retrying, self.base_url = retrying, base_url
        session = retrying.session
        self.headers = {k: v for k, v in {**session.headers, **(headers or {})}.items() if v is not None}
        timeout = session.timeout
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.timeout = Timeout(connect=connect, read=read)
        self.pool, self.prefix, self.adapter, self.redirected = None, "", None, False
        self._local = threading.local()
        try:
            if settings is None:
                settings = session.merge_environment_settings(base_url, {}, None, None, None)
            probe = requests.Request("GET", base_url).prepare()
            self.adapter = session.get_adapter(probe.url)
            if isinstance(self.adapter, requests.adapters.HTTPAdapter) and \
                    not select_proxy(probe.url, settings["proxies"] or {}):
                self.pool = self.adapter.get_connection_with_tls_context(probe, settings["verify"], {},
                                                                         settings["cert"])
                self.prefix = urlparse(probe.url).path
        except requests.RequestException:
            self.pool = None

    @property
    def usable(self) -> bool:
        """False behind a proxy, for a URL requests refuses, or once the server redirected: send through the
        session then."""
        return self.pool is not None and not self.redirected

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> requests.Response:
        """The response of ``<method> <base_url><path>`` after the session's retries, its body read.

        Raises what ``session.send`` raises once the retries are spent (``requests.RequestException``), and
        :class:`Redirected` when the server redirects (the session follows redirects as requests does)."""
        session = self.retrying.session
        local = self._local
        if getattr(local, "session", None) is not session:
            local.session, local.call = session, session.send.retry.wraps(self._attempt)
        resp = local.call(method, path, body, headers)
        if resp.is_redirect:
            self.redirected = True
            raise Redirected(f"{method} {self.base_url}{path} answered HTTP {resp.status_code}")
        return resp

    def _attempt(self, method: str, path: str, body: bytes | None,
                 headers: Mapping[str, str] | None) -> requests.Response:
        try:
            raw = self.pool.urlopen(method, self.prefix + path, body=body,
                                    headers={**self.headers, **headers} if headers else self.headers,
                                    redirect=False, assert_same_host=False, preload_content=False,
                                    decode_content=False, retries=self.adapter.max_retries, timeout=self.timeout)
        # the mapping of requests.adapters.HTTPAdapter.send, in its order
        except (ProtocolError, OSError) as err:
            raise requests.ConnectionError(err) from None
        except MaxRetryError as err:
            if isinstance(err.reason, ConnectTimeoutError) and not isinstance(err.reason, NewConnectionError):
                raise requests.ConnectTimeout(err) from None
            if isinstance(err.reason, ResponseError):
                raise requests.exceptions.RetryError(err) from None
            if isinstance(err.reason, ProxyError):
                raise requests.exceptions.ProxyError(err) from None
            if isinstance(err.reason, Urllib3SSLError):
                raise requests.exceptions.SSLError(err) from None
            raise requests.ConnectionError(err) from None
        except ClosedPoolError as err:
            raise requests.ConnectionError(err) from None
        except ProxyError as err:
            raise requests.exceptions.ProxyError(err) from None
        except Urllib3SSLError as err:
            raise requests.exceptions.SSLError(err) from None
        except ReadTimeoutError as err:
            raise requests.ReadTimeout(err) from None
        except InvalidHeader as err:
            raise requests.exceptions.InvalidHeader(err) from None
        return _Reply(raw, self.base_url + path)


class _Reply(requests.Response):
    """A requests Response over urllib3's, its body read as ``Response.content`` reads it (same exceptions).
    Not ``Response.__init__``: its cookie jar and the copy of the headers were ~10 % of this path's CPU, and
    these clients keep no cookies. urllib3's headers are case-insensitive already."""

    def __init__(self, raw: Any, url: str):  # noqa: D107 - super().__init__ skipped on purpose (see above)
        self.status_code, self.reason, self.url, self.headers = raw.status, raw.reason, url, raw.headers
        self.raw, self.history, self.request, self.connection, self._next = None, [], None, None, None
        self.encoding = get_encoding_from_headers(raw.headers)
        self.elapsed = _NO_TIME
        self._content_consumed = False
        try:  # the mapping of requests.models.Response.iter_content
            self._content = raw.read(decode_content=True) or b""
        except ProtocolError as err:
            raise requests.exceptions.ChunkedEncodingError(err) from None
        except DecodeError as err:
            raise requests.exceptions.ContentDecodingError(err) from None
        except ReadTimeoutError as err:
            raise requests.ConnectionError(err) from None
        except Urllib3SSLError as err:
            raise requests.exceptions.SSLError(err) from None
        self._content_consumed = True

    @property
    def cookies(self):  # only ever read by callers that keep cookies
        return cookiejar_from_dict({})


_NO_TIME = timedelta(0)
