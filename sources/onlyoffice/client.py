"""The ONLYOFFICE API client: token auth with one fresh login after a 401, on dlt's RESTClient."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests as _requests
from dlt.sources.helpers.rest_client import RESTClient

from ..common import SourceError, make_session
from ..http import Redirected, ThinClient
from .helpers import (
    RETRY_STATUSES,
    RateLimitGate,
    Transport,
    envelope_error,
    fail,
    response_of,
    should_retry,
    what_of,
)
from .settings import API_PREFIX, AUTH_PATH, CREDENTIALS_FIX, ENV


class NotFound(Exception):
    """404 for one object: it was deleted between the list and the detail call."""


class PortalAuth:
    """The token for ``Authorization``. With username/password it is requested once per run and kept in
    memory only: a token is a credential, so it never goes to dlt state, logs or the warehouse. A refused
    login is remembered: the threads that hit the same 401 must not each try again, every failure counts
    towards the portal's brute-force lock."""

    def __init__(self, url: str, transport: Transport, token: str | None, username: str | None,
                 password: str | None):
        self.url, self.transport = url, transport
        self.username, self.password = username, password
        self._token = token or None
        self._refused: tuple[str, str] | None = None  # (cause, fix) of a failed login
        self._lock = threading.Lock()
        self.logins = 0

    @property
    def can_login(self) -> bool:
        return bool(self.username and self.password)

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._login_once()
            return self._token

    def renew(self, stale: str, what: str) -> bool:
        """After a 401: log in again, once per stale token (threads may all hit the same 401). False when
        there is no password to log in with."""
        if not self.can_login:
            return False
        with self._lock:
            if self._token == stale:
                try:
                    self._token = self._login_once()
                except SourceError as exc:
                    self._refused = (f"{what} answered HTTP 401 mid-run (the token expired or its sessions were "
                                     f"logged out), and logging in again failed: {exc.cause}", exc.fix)
                    raise fail(*self._refused) from None
            return True

    def authorized(self, send: Callable[[str], Any], what: str) -> Any:
        """``send(token)``, and once more with a fresh login after a 401: the *same* request again."""
        renewed = False
        while True:
            token = self.token()
            resp = send(token)
            if resp.status_code == 401 and not renewed and self.renew(token, what):
                renewed = True
                continue
            return resp

    def _login_once(self) -> str:
        if self._refused is not None:
            raise fail(*self._refused)
        try:
            return self._login()
        except SourceError as exc:
            self._refused = (exc.cause, exc.fix)
            raise

    def _login(self) -> str:
        self.logins += 1
        resp = self.transport.send(lambda: self.transport.session.post(
            self.url, json={"userName": self.username, "password": self.password},
            headers={"Accept": "application/json"}), self.url)
        message = envelope_error(resp)
        if message and "too many" in message.lower():
            raise fail(f"the portal locked the login after repeated failures ({message}).",
                       f"wait a minute, then check {ENV}USERNAME and {ENV}PASSWORD.")
        if message is not None or resp.status_code in (401, 403):
            raise fail(f"the portal rejected the username or password (HTTP {resp.status_code}: "
                       f"{message or resp.reason}).", CREDENTIALS_FIX + ".")
        body = response_of(resp, "authentication", self.transport.max_attempts)
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            flags = sorted(k for k in (body if isinstance(body, dict) else {}) if k in ("sms", "tfa", "tfaKey"))
            raise fail(f"authentication returned no token{' (two-factor authentication: ' + ', '.join(flags) + ')' if flags else ''}.",
                       CREDENTIALS_FIX + ".")
        return str(token)


class PortalSession(_requests.Session):
    """The session RESTClient sends through. Each request gets the current token, goes out on dlt's retrying
    session behind the rate-limit gate, and after a 401 goes once more with a fresh login: the *same*
    request again, which neither response hooks nor paginators can do."""

    def __init__(self, transport: Transport, auth: PortalAuth, url: str):
        super().__init__()
        self.transport, self.portal_auth = transport, auth  # not ``auth``: requests applies that itself
        # Every request goes to the one portal, so the environment's proxies and CA bundle (HTTPS_PROXY,
        # NO_PROXY, REQUESTS_CA_BUNDLE...) are resolved once here: requests would otherwise walk the whole
        # environment twice per request (getproxies_environment, ~0.5 ms of a ~1 ms request in the profile
        # of 2,000 invoice/{id} calls) and stat ~/.netrc (the token header replaces any netrc login anyway).
        settings = self.merge_environment_settings(url, {}, None, None, None)
        self.proxies, self.verify, self.cert = settings["proxies"], settings["verify"], settings["cert"]
        self.trust_env = False

    def send(self, request, **kwargs):  # type: ignore[override]
        def signed(token: str):
            request.headers["Authorization"] = token
            return self.transport.send(lambda: self.transport.session.send(request, **kwargs), request.url)

        return self.portal_auth.authorized(signed, what_of(request.url))


class OnlyofficeClient(RESTClient):
    """dlt's RESTClient with ONLYOFFICE's rules: exact decimals (the stock ``response.json()`` goes through
    float), envelope errors turned into SourceErrors after dlt's retries, the cloud's rate limit waited out,
    and one re-login on a 401."""

    def __init__(self, base_url: str, *, token: str | None, username: str | None, password: str | None,
                 timeout: float, max_attempts: int, backoff_factor: float, rate_limit_waits: int = 30,
                 rate_limit: int = 500, rate_window: float = 10.0):
        self.root = base_url.rstrip("/")
        retrying = make_session(timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor,
                                retry_condition=should_retry, status_codes=RETRY_STATUSES)
        transport = Transport(retrying, RateLimitGate(rate_limit_waits, rate_limit, rate_window), timeout, max(1, max_attempts))
        self.portal_auth = PortalAuth(f"{self.root}{API_PREFIX}{AUTH_PATH}", transport, token, username, password)
        self.max_attempts = transport.max_attempts
        super().__init__(base_url=f"{self.root}{API_PREFIX}crm/", headers={"Accept": "application/json"},
                         data_selector="response", session=PortalSession(transport, self.portal_auth, self.root))
        # the per-invoice GET on the pool directly (see fetch_one); the environment as PortalSession resolved it
        self.thin = ThinClient(retrying, self.base_url, self.headers,
                               settings={"proxies": self.session.proxies, "verify": self.session.verify,
                                         "cert": self.session.cert})

    def extract_response(self, response, data_selector):
        return self.checked(response, what_of(response.request.url))

    def checked(self, resp, what: str) -> Any:
        """``response`` of a successful envelope, or a SourceError that says what to do."""
        if resp.status_code == 401:
            how = ("the token from a fresh login was refused too" if self.portal_auth.can_login else
                   "the token is wrong, expired, or its sessions were logged out")
            raise fail(f"the portal refused the credentials for {what} (HTTP 401 {resp.text.strip()[:40]!r}; {how}).",
                       CREDENTIALS_FIX + ".")
        if resp.status_code == 404 and envelope_error(resp) is not None:
            raise NotFound(what)
        return response_of(resp, what, self.max_attempts)

    def fetch(self, path: str, params: dict | None = None) -> Any:
        return self.checked(self.get(path, params=params), f"crm/{path}")

    def fetch_one(self, path: str) -> Any:
        """``fetch`` for the per-invoice call (one per invoice on a first load: the API has no bulk read of
        lines), on the session's connection pool directly where it can be (``sources/http.py``; 0.27 ms of
        client CPU a call against 0.80 ms through RESTClient), with the same rate-limit gate, re-login after a
        401, retries and failures. Behind a proxy, or once the portal redirected, through RESTClient."""
        if not self.thin.usable:
            return self.fetch(path)
        what, url, transport = f"crm/{path}", self.base_url + path, self.session.transport

        def signed(token: str) -> _requests.Response:
            return transport.send(lambda: self.thin.request("GET", path, headers={"Authorization": token}), url)

        try:
            resp = self.session.portal_auth.authorized(signed, what)
        except Redirected:
            return self.fetch(path)  # this one and every later call through RESTClient, which follows redirects
        return self.checked(resp, what)
